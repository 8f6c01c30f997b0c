"""Watch the local observation queues: every SNS message and every EventBridge event.

The deployer subscribes one SQS queue to the topic (SNS envelope kept) and routes the bus's
events to another; this module reads them, parses both shapes, and prints them for humans.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import boto3

from bridge_cli.format import event_line

Event = dict[str, Any]


def _sqs_client() -> Any:
    # A session per caller: boto3 sessions are not thread-safe; endpoint comes from the env.
    return boto3.session.Session().client("sqs")


def _maybe_json(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_message(body: str) -> Event:
    """Turn one SQS message body into {"channel": "sns"|"eventbridge"|"raw", ...}."""
    data = _maybe_json(body)
    if isinstance(data, dict) and data.get("Type") == "Notification" and "TopicArn" in data:
        attributes = {name: attr.get("Value") for name, attr in (data.get("MessageAttributes") or {}).items()}
        return {
            "channel": "sns",
            "topic_arn": data["TopicArn"],
            "message_id": data.get("MessageId"),
            "subject": data.get("Subject"),
            "attributes": attributes,
            "event": _maybe_json(data.get("Message")),
        }
    if isinstance(data, dict) and "detail-type" in data and "source" in data:
        return {
            "channel": "eventbridge",
            "id": data.get("id"),
            "detail_type": data["detail-type"],
            "source": data["source"],
            "time": data.get("time"),
            "event": data.get("detail"),
        }
    return {"channel": "raw", "event": data}


def receive(queue_url: str, wait_s: int = 1, sqs: Any = None) -> list[Event]:
    """One long-poll receive; the messages are deleted once parsed."""
    client = sqs or _sqs_client()
    response = client.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_s, MessageAttributeNames=["All"]
    )
    messages = response.get("Messages", [])
    events = [parse_message(message["Body"]) for message in messages]
    if messages:
        # One call for the batch: under load a delete per message made the observer the bottleneck.
        client.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )
    return events


def drain(queue_url: str, timeout: float = 5.0, *, expect: int | None = None, sqs: Any = None) -> list[Event]:
    """Collect parsed events from `queue_url`.

    With `expect`, return as soon as that many arrived (or at `timeout`); without it, return
    after the first empty receive that follows at least one message (or at `timeout`).
    """
    client = sqs or _sqs_client()
    deadline = time.monotonic() + timeout
    events: list[Event] = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return events
        batch = receive(queue_url, wait_s=max(0, min(1, int(remaining))), sqs=client)
        events.extend(batch)
        if expect is not None and len(events) >= expect:
            return events
        if expect is None and events and not batch:
            return events


def format_event(event: Event) -> str:
    """One readable block per event, headed by its channel."""
    channel = event.get("channel", "raw")
    lines: list[str]
    if channel == "sns":
        lines = [f"── SNS  {event.get('topic_arn', '')}"]
        for name, value in sorted((event.get("attributes") or {}).items()):
            lines.append(f"   attribute {name} = {value}")
    elif channel == "eventbridge":
        lines = [f"── EventBridge  {event.get('source')}  detail-type: {event.get('detail_type')}"]
    else:
        lines = ["── message"]
    body = event.get("event")
    rendered = json.dumps(body, indent=2, sort_keys=True) if not isinstance(body, str) else body
    lines.extend("   " + line for line in rendered.splitlines())
    return "\n".join(lines)


_CHANNEL_LABELS = {"sns": "SNS", "eventbridge": "EventBridge"}


def format_event_line(event: Event) -> str:
    """One line per event (the local run's default): channel, then what `video-bridge tail` shows
    (time, type, task, status, url or error), then the owner; `format_event` has the whole body."""
    label = _CHANNEL_LABELS.get(event.get("channel", "raw"), "message")
    body = event.get("event")
    if isinstance(body, dict) and isinstance(body.get("data"), dict):
        text = event_line(body)
        if body["data"].get("owner_id"):
            text += f"  owner {body['data']['owner_id']}"
    else:
        # Not an outcome envelope: still one line, compact JSON.
        text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"), sort_keys=True)
    # Padded so the columns line up whichever channel the event came through.
    return f"── {label:<11} {text}"


class EventTail:
    """Background readers of the observation queues, calling `on_event` for each event."""

    def __init__(
        self, queue_urls: Iterable[str], on_event: Callable[[Event], None], wait_s: int = 1, readers: int = 1
    ) -> None:
        self.queue_urls = [url for url in queue_urls if url]
        self.on_event = on_event
        self.wait_s = wait_s
        self.readers = readers  # receivers per queue: more keep up with a busy topic
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _run(self, queue_url: str) -> None:
        client = _sqs_client()
        while not self._stop.is_set():
            try:
                batch = receive(queue_url, wait_s=self.wait_s, sqs=client)
            except Exception:  # the emulator is going away; stop quietly
                if self._stop.wait(0.5):
                    return
                continue
            for event in batch:
                self.on_event(event)

    def start(self) -> EventTail:
        for url in self.queue_urls:
            for _ in range(self.readers):
                thread = threading.Thread(target=self._run, args=(url,), name="event-tail", daemon=True)
                thread.start()
                self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.wait_s + 5)
        self._threads.clear()


def print_event(event: Event) -> None:
    print(format_event(event), flush=True)
