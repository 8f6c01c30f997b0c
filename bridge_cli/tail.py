"""Follow the outcome events live: a temporary SQS queue subscribed to the bridge's SNS topic.

`TemporaryQueue` creates the queue (with a policy that lets only that topic send to it),
subscribes it with raw message delivery, and removes both again; `follow` long-polls it.
Queues are named `video-bridge-tail-<random>`, so one left behind by a killed process is easy
to find and delete.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from bridge_cli.api import EXIT_REFUSED, EXIT_UNAVAILABLE, CliError

QUEUE_PREFIX = "video-bridge-tail-"
LONG_POLL_S = 20  # SQS's maximum: one request per 20 s while nothing happens
QUEUE_RETENTION_S = 3600

Event = dict[str, Any]


def region_of(topic_arn: str) -> str | None:
    """The region inside `arn:aws:sns:<region>:<account>:<name>`, if the ARN has that shape."""
    parts = topic_arn.split(":")
    if len(parts) >= 6 and parts[0] == "arn" and parts[2] == "sns" and parts[3]:
        return parts[3]
    return None


def filter_policy(
    *, statuses: list[str] | None, models: list[str] | None, owners: list[str] | None = None
) -> dict[str, list[str]] | None:
    """An SNS filter policy on the topic's message attributes (`status`, `model`, `owner_id`), or None for all."""
    chosen = (("status", statuses), ("model", models), ("owner_id", owners))
    policy = {name: values for name, values in chosen if values}
    return policy or None


def queue_policy(queue_arn: str, topic_arn: str) -> dict[str, Any]:
    """Allow SNS to send to the queue, for messages of this one topic only."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AllowVideoBridgeTopic",
                "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
            }
        ],
    }


def parse_body(body: str) -> Event:
    """The event envelope in one message body.

    With raw delivery the body is the envelope itself; should a subscription deliver SNS's
    own wrapper instead, the envelope is unwrapped from its `Message`. Anything that is not
    JSON is kept as `{"raw": body}`.
    """
    try:
        data = json.loads(body)
    except ValueError:
        return {"raw": body}
    if isinstance(data, dict) and data.get("Type") == "Notification" and isinstance(data.get("Message"), str):
        return parse_body(data["Message"])
    return data if isinstance(data, dict) else {"raw": data}


def aws_error(exc: Exception, endpoint_url: str | None) -> CliError:
    """A botocore failure as a one-line CliError: refused requests exit 2, unreachable AWS exits 3."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, NoRegionError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 400)
        operation = exc.operation_name
        return CliError(
            f"{operation}: {error.get('Message') or 'refused'}",
            EXIT_UNAVAILABLE if status >= 500 else EXIT_REFUSED,
            code=error.get("Code"),
        )
    if isinstance(exc, EndpointConnectionError):
        where = endpoint_url or "AWS"
        return CliError(f"cannot reach AWS at {where}: {exc}", EXIT_UNAVAILABLE)
    if isinstance(exc, NoCredentialsError):
        return CliError("no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID)", EXIT_REFUSED)
    if isinstance(exc, NoRegionError):
        return CliError("no AWS region: pass --region", EXIT_REFUSED)
    return CliError(f"AWS call failed: {exc}", EXIT_UNAVAILABLE)


class TemporaryQueue:
    """An SQS queue subscribed to the topic for as long as the `with` block runs."""

    def __init__(self, sns: Any, sqs: Any, topic_arn: str, filter_policy: dict[str, list[str]] | None = None) -> None:
        self.sns = sns
        self.sqs = sqs
        self.topic_arn = topic_arn
        self.filter_policy = filter_policy
        self.name = QUEUE_PREFIX + uuid.uuid4().hex[:16]
        self.url: str | None = None
        self.arn: str | None = None
        self.subscription_arn: str | None = None

    def open(self) -> str:
        """Create the queue, let the topic write to it, subscribe it; returns the queue URL."""
        self.url = self.sqs.create_queue(
            QueueName=self.name,
            Attributes={"MessageRetentionPeriod": str(QUEUE_RETENTION_S)},
            tags={"created-by": "video-bridge tail"},
        )["QueueUrl"]
        self.arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        # The policy first: a subscription to a queue the topic may not write to would drop events.
        self.sqs.set_queue_attributes(
            QueueUrl=self.url, Attributes={"Policy": json.dumps(queue_policy(self.arn, self.topic_arn))}
        )
        attributes = {"RawMessageDelivery": "true"}
        if self.filter_policy:
            attributes["FilterPolicy"] = json.dumps(self.filter_policy)
        self.subscription_arn = self.sns.subscribe(
            TopicArn=self.topic_arn,
            Protocol="sqs",
            Endpoint=self.arn,
            Attributes=attributes,
            ReturnSubscriptionArn=True,
        )["SubscriptionArn"]
        return self.url

    def close(self) -> list[str]:
        """Unsubscribe and delete the queue; returns what could not be cleaned up (never raises)."""
        problems: list[str] = []
        if self.subscription_arn:
            try:
                self.sns.unsubscribe(SubscriptionArn=self.subscription_arn)
                self.subscription_arn = None
            except Exception as exc:
                problems.append(f"could not unsubscribe {self.subscription_arn}: {exc}")
        if self.url:
            try:
                self.sqs.delete_queue(QueueUrl=self.url)
                self.url = None
            except Exception as exc:
                problems.append(f"could not delete queue {self.url}: {exc}")
        return problems


def follow(
    sqs: Any,
    queue_url: str,
    on_event: Callable[[Event], None],
    *,
    count: int | None = None,
    stop_after_s: float | None = None,
    long_poll_s: int = LONG_POLL_S,
) -> int:
    """Long-poll the queue and hand each event to `on_event`; returns how many were handled.

    Stops after `count` events or `stop_after_s` seconds, whichever comes first; without
    either it runs until interrupted.
    """
    deadline = None if stop_after_s is None else time.monotonic() + stop_after_s
    seen = 0
    while count is None or seen < count:
        wait_s = long_poll_s
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            wait_s = max(0, min(long_poll_s, int(left)))
        wanted = 10 if count is None else max(1, min(10, count - seen))
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=wanted, WaitTimeSeconds=wait_s).get(
            "Messages", []
        )
        for message in messages:
            on_event(parse_body(message.get("Body", "")))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            seen += 1
            if count is not None and seen >= count:
                break
    return seen
