"""One receiver's behaviour harms no other delivery: the real delivery function on a batch of real
deliveries, receivers on loopback that drip, hang and stream forever, the real table and queues.

The fixture's WebhookTimeoutSeconds is 2 and its retry schedule 1, 1, 2 s.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from bridge_local.emulator import LambdaContext
from bridge_local.receiver import Reply

from .conftest import LocalBridge, bridge_settings

pytestmark = pytest.mark.integration

TIMEOUT_S = 2.0
# An attempt may end this long after its timeout: closing the connection and scheduling, no more.
MARGIN_S = 1.0


def new_delivery(bridge: LocalBridge, path: str, *replies: Reply, url: str | None = None) -> dict[str, Any]:
    """A logged, pending delivery of a completed event to the receiver; returns its queue message."""
    from bridge.store import deliveries
    from bridge.timeutil import utcnow

    task_id = f"v_{uuid.uuid4().hex}"
    event = {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": "video.generation.completed",
        "data": {"task_id": task_id, "status": "completed"},
    }
    if replies:
        bridge.receiver.script(path, replies)
    deliveries.create_delivery(
        task_id=task_id, event=event, callback_url=url or f"{bridge.receiver.url}{path}", now=utcnow(), expires_at=None
    )
    return {"task_id": task_id, "event_id": event["id"], "round": 1, "attempt": 1}


def sqs_event(messages: list[dict[str, Any]], receipts: list[str] | None = None) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": (receipts or [])[n] if receipts else f"receipt-{n}",
                "body": json.dumps(message) if isinstance(message, dict) else message,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:webhooks",
                "awsRegion": "us-east-1",
            }
            for n, message in enumerate(messages)
        ]
    }


def invoke(bridge: LocalBridge, event: dict[str, Any], timeout_s: float = 90.0) -> dict[str, Any]:
    context = LambdaContext(
        function_name="webhook-delivery-test",
        function_version="$LATEST",
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:webhook-delivery-test",
        memory_limit_in_mb=256,
        timeout_s=timeout_s,
    )
    return bridge.stack.handlers["WebhookDeliveryFunction"](event, context)


def row(bridge: LocalBridge, message: dict[str, Any]) -> dict[str, Any]:
    from bridge.store import deliveries

    found = deliveries.get_delivery(message["task_id"], message["event_id"])
    assert found is not None
    return found


def wait_for_status(bridge: LocalBridge, message: dict[str, Any], status: str, timeout: float = 30) -> dict[str, Any]:
    return bridge.wait_until(
        lambda: (found := row(bridge, message))["status"] == status and found, timeout, f"delivery {status}"
    )


# --------------------------------------------------------------------------- one batch, many receivers


def test_a_batch_delivers_on_time_past_receivers_that_drip_hang_and_stream(bridge: LocalBridge) -> None:
    ok = Reply(200)
    bad = {
        "drip": new_delivery(bridge, "/iso/drip", Reply(200, body="{}", mode="drip", drip_s=0.5), ok),
        "hang": new_delivery(bridge, "/iso/hang", Reply(200, mode="hang"), ok),
        "endless": new_delivery(bridge, "/iso/endless", Reply(500, mode="endless", drip_s=0.5), ok),
    }
    good = new_delivery(bridge, "/iso/good", ok)

    started, wall_started = time.monotonic(), time.time()
    answer = invoke(bridge, sqs_event([*bad.values(), good]))
    took = time.monotonic() - started

    assert answer == {"batchItemFailures": []}  # nothing goes back to the queue
    # Three receivers held their attempts to the timeout; the batch took no longer than that.
    assert took < 3 * (TIMEOUT_S + MARGIN_S) + MARGIN_S, took
    [arrived] = bridge.receiver.deliveries("/iso/good")
    # Behind three misbehaving receivers, delayed by their attempts and no more.
    assert arrived.received_at - wall_started < 3 * (TIMEOUT_S + MARGIN_S)
    assert row(bridge, good)["status"] == "delivered"
    for name, message in bad.items():
        attempt = row(bridge, message)["attempts"][0]  # the retry may have come already
        assert attempt["latency_ms"] < (TIMEOUT_S + MARGIN_S) * 1000, (name, attempt)
        if name == "endless":
            assert attempt["status_code"] == 500 and attempt["error"].endswith("[body cut short: timed out]")
        else:
            assert attempt["status_code"] is None and attempt["error"] == "timed out after 2s"
        assert attempt["retry_in_s"] >= 1
    # The retries come on the schedule (through the real queue and pollers) and are delivered.
    for message in bad.values():
        delivered = wait_for_status(bridge, message, "delivered")
        assert [a["attempt"] for a in delivered["attempts"]] == [1, 2]


# --------------------------------------------------------------------------- near the function's end


@contextmanager
def scratch_queue(bridge: LocalBridge) -> Iterator[str]:
    """A webhook queue of the test's own, so the pollers never see its messages."""
    sqs = bridge.aws.client("sqs")
    url = sqs.create_queue(QueueName=f"webhooks-scratch-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    # IAM is enforced: the delivery function's role gets the scratch queue as it has the real one.
    iam, role = bridge.aws.client("iam"), bridge.stack.roles["WebhookDeliveryFunctionRole"].role_name
    grant = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["sqs:SendMessage", "sqs:ChangeMessageVisibility"], "Resource": arn}
        ],
    }
    iam.put_role_policy(RoleName=role, PolicyName="scratch-queue", PolicyDocument=json.dumps(grant))
    try:
        with bridge_settings(WEBHOOK_QUEUE_URL=url):
            yield url
    finally:
        iam.delete_role_policy(RoleName=role, PolicyName="scratch-queue")


def receive(bridge: LocalBridge, url: str, count: int) -> list[dict[str, Any]]:
    sqs = bridge.aws.client("sqs")
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    while len(got) < count and time.monotonic() < deadline:
        got += sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=300, WaitTimeSeconds=1).get(
            "Messages", []
        )
    return got


def test_records_it_has_no_time_for_go_back_unprocessed_and_at_once(bridge: LocalBridge) -> None:
    with scratch_queue(bridge) as queue_url:
        slow = new_delivery(bridge, "/late/slow", Reply(200, mode="hang"))
        later = new_delivery(bridge, "/late/later", Reply(200))
        sqs = bridge.aws.client("sqs")
        for message in (slow, later):
            sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(message))
        received = sorted(
            receive(bridge, queue_url, 2), key=lambda m: json.loads(m["Body"])["task_id"] != slow["task_id"]
        )
        event = sqs_event([json.loads(m["Body"]) for m in received], [m["ReceiptHandle"] for m in received])
        ids = [record["messageId"] for record in event["Records"]]

        # Room for one attempt (2 s + 5 s of overhead) but not for a second after it.
        answer = invoke(bridge, event, timeout_s=TIMEOUT_S + 5 + 1.5)

        assert answer == {"batchItemFailures": [{"itemIdentifier": ids[1]}]}
        assert row(bridge, slow)["attempts"][0]["error"] == "timed out after 2s"
        untouched = row(bridge, later)
        assert untouched["attempt_count"] == 0 and untouched["status"] == "pending"  # the schedule is not spent
        assert bridge.receiver.deliveries("/late/later") == []
        # Handed back at once, not after the 300 s visibility timeout.
        [again] = receive(bridge, queue_url, 1)
        assert json.loads(again["Body"]) == later

        answer = invoke(bridge, sqs_event([later]))
        assert answer == {"batchItemFailures": []} and row(bridge, later)["status"] == "delivered"


# --------------------------------------------------------------------------- failures outside the receiver


def test_an_unreadable_signing_secret_is_a_logged_failed_attempt_retried_on_schedule(bridge: LocalBridge) -> None:
    from aws_lambda_powertools.utilities import parameters

    message = new_delivery(bridge, "/fail/secret", Reply(200))
    secret_id = bridge.stack.resources["WebhookSigningSecret"]
    sm = bridge.aws.client("secretsmanager")
    original = sm.get_secret_value(SecretId=secret_id)["SecretString"]
    sm.put_secret_value(SecretId=secret_id, SecretString="{not json")
    parameters.clear_caches()
    try:
        answer = invoke(bridge, sqs_event([message]))
    finally:
        sm.put_secret_value(SecretId=secret_id, SecretString=original)
        parameters.clear_caches()

    assert answer == {"batchItemFailures": []}  # not redelivered by SQS: retried by the schedule
    [attempt] = row(bridge, message)["attempts"]
    assert attempt["error"] == "could not attempt: the webhook signing secret is not valid JSON"
    assert bridge.receiver.deliveries("/fail/secret") == []
    delivered = wait_for_status(bridge, message, "delivered")
    assert [a["status_code"] for a in delivered["attempts"]] == [None, 200]


def test_a_non_ascii_host_from_an_old_row_is_delivered_by_its_idna_name(
    bridge: LocalBridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bridge.outbound import ssrf_guard

    real = ssrf_guard.system_resolver
    monkeypatch.setattr(
        ssrf_guard,
        "system_resolver",
        lambda host, port: ["127.0.0.1"] if host == "xn--bcher-kva.example" else real(host, port),
    )
    url = f"http://bücher.example:{bridge.receiver.url.rpartition(':')[2]}/idna/old-row"
    message = new_delivery(bridge, "/idna/old-row", url=url)

    assert invoke(bridge, sqs_event([message])) == {"batchItemFailures": []}

    assert row(bridge, message)["status"] == "delivered"
    [received] = bridge.receiver.deliveries("/idna/old-row")
    assert received.headers["host"].startswith("xn--bcher-kva.example:")


def test_a_failed_hand_on_comes_back_and_hands_on_without_a_second_attempt(
    bridge: LocalBridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bridge.webhooks import sender

    message = new_delivery(bridge, "/fail/handon", Reply(500, body="busy"), Reply(200))
    real = sender.enqueue

    def sqs_down(follow: Any, *, delay_s: float) -> None:
        if follow.task_id == message["task_id"]:
            raise EndpointConnectionError(endpoint_url="https://sqs.invalid")
        real(follow, delay_s=delay_s)

    monkeypatch.setattr(sender, "enqueue", sqs_down)
    event = sqs_event([message])
    answer = invoke(bridge, event)

    # The attempt is logged; the message goes back to the queue because its successor is not queued.
    assert answer == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
    logged = row(bridge, message)
    assert logged["status"] == "retrying" and logged["hand_on_pending"] == 1
    assert [a["status_code"] for a in logged["attempts"]] == [500]

    monkeypatch.setattr(sender, "enqueue", real)
    assert sender.deliver(message) == "handed_on"  # the same message, back from the queue
    assert "hand_on_pending" not in row(bridge, message)
    delivered = wait_for_status(bridge, message, "delivered")
    assert [a["status_code"] for a in delivered["attempts"]] == [500, 200]
    assert len(bridge.receiver.deliveries("/fail/handon")) == 2  # attempt 1 was not made again


def test_when_the_log_cannot_be_written_the_message_comes_back(
    bridge: LocalBridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bridge.store import deliveries

    message = new_delivery(bridge, "/fail/log", Reply(200), Reply(200))
    real = deliveries.record_attempt

    def dynamodb_down(**kwargs: Any) -> bool:
        if kwargs["task_id"] == message["task_id"]:
            raise EndpointConnectionError(endpoint_url="https://dynamodb.invalid")
        return real(**kwargs)

    monkeypatch.setattr(deliveries, "record_attempt", dynamodb_down)
    event = sqs_event([message])
    assert invoke(bridge, event) == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
    assert row(bridge, message)["attempt_count"] == 0

    monkeypatch.setattr(deliveries, "record_attempt", real)
    assert invoke(bridge, event) == {"batchItemFailures": []}  # back from the queue: attempted again
    assert row(bridge, message)["status"] == "delivered"


def test_a_message_that_is_no_delivery_is_dead_lettered_as_such(bridge: LocalBridge) -> None:
    answer = invoke(bridge, sqs_event(["{not json", json.dumps({"task_id": ""})]))
    assert answer == {"batchItemFailures": []}
    sqs = bridge.aws.client("sqs")
    dead_letters = bridge.stack.queue_urls["WebhookDeadLetterQueue"]

    def unreadable() -> list[dict[str, Any]]:
        found = []
        for message in sqs.receive_message(QueueUrl=dead_letters, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        ):
            body = json.loads(message["Body"])
            if body.get("reason") == "unreadable_message":
                found.append(body)
                sqs.delete_message(QueueUrl=dead_letters, ReceiptHandle=message["ReceiptHandle"])
        return found

    kept: list[dict[str, Any]] = []
    bridge.wait_until(lambda: kept.extend(unreadable()) or len(kept) >= 2, 20, "two unreadable dead letters")
    assert sorted(body["body"] for body in kept) == sorted(["{not json", json.dumps({"task_id": ""})])
