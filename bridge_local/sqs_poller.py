"""Lambda's SQS event source mapping, locally: poll a queue, invoke the function, delete what succeeded.

As on AWS: messages go to the function in batches of up to BatchSize as an SQS event; with
ReportBatchItemFailures only the listed messages stay on the queue, a function error keeps the
whole batch. Kept messages come back after the visibility timeout, and the queue's redrive
policy moves them to the dead-letter queue after maxReceiveCount receives (moto does that part).
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterable
from typing import Any

import boto3

from bridge_local.deployer import SqsEventSource


def sqs_event(records: list[dict[str, Any]], source: SqsEventSource, region: str) -> dict[str, Any]:
    """The event Lambda hands a function for a batch of received messages."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": message.get("MessageAttributes", {}),
                "md5OfBody": message.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": source.queue_arn,
                "awsRegion": region,
            }
            for message in records
        ]
    }


class SqsPoller:
    """One background thread per event source."""

    def __init__(self, source: SqsEventSource, region: str, wait_s: int = 1) -> None:
        self.source = source
        self.region = region
        self.wait_s = wait_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> SqsPoller:
        self._thread = threading.Thread(target=self._run, name=f"sqs-{self.source.function_name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.wait_s + 10)

    def _run(self) -> None:
        # Own session and clients: boto3 sessions are not thread-safe.
        session = boto3.session.Session()
        sqs, lam = session.client("sqs"), session.client("lambda")
        while not self._stop.is_set():
            try:
                self.poll_once(sqs, lam)
            except Exception as exc:  # keep polling; a local hiccup must not end the event source
                print(f"[sqs {self.source.function_name}] {type(exc).__name__}: {exc}", file=sys.stderr)
                self._stop.wait(1)

    def poll_once(self, sqs: Any, lam: Any) -> int:
        messages = sqs.receive_message(
            QueueUrl=self.source.queue_url,
            MaxNumberOfMessages=min(10, self.source.batch_size),
            WaitTimeSeconds=self.wait_s,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return 0
        response = lam.invoke(
            FunctionName=self.source.function_name,
            Payload=json.dumps(sqs_event(messages, self.source, self.region)).encode("utf-8"),
        )
        if response.get("FunctionError"):
            return 0  # the whole batch stays; it reappears after the visibility timeout
        failed: set[str] = set()
        if self.source.report_batch_item_failures:
            result = json.loads(response["Payload"].read() or b"null") or {}
            failed = {item.get("itemIdentifier") for item in result.get("batchItemFailures") or []}
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            sqs.delete_message_batch(
                QueueUrl=self.source.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done[start:][:10])],
            )
        return len(done)


def start_pollers(sources: Iterable[SqsEventSource], region: str) -> list[SqsPoller]:
    return [SqsPoller(source, region).start() for source in sources]
