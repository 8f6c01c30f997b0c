"""Signed webhooks end to end: real state machine, real queue, real delivery function, a real
HTTP receiver on loopback, and the standardwebhooks verifier as the judge of every signature."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from standardwebhooks import Webhook

from bridge_local.receiver import Reply

from .conftest import LocalBridge, bridge_settings

pytestmark = pytest.mark.integration


def submit_with_callback(bridge: LocalBridge, path: str, *, query: str = "", **fields: Any) -> str:
    body = {"model": "video-default", "prompt": "a fox in snow", "callback_url": f"{bridge.receiver.url}{path}{query}"}
    body.update(fields)
    response = bridge.submit(body, run_s=1.0, queue_s=0.2)
    assert response.status_code == 202, response.text
    return response.json()["task_id"]


def test_completion_webhook_is_signed_delivered_once_and_logged(bridge: LocalBridge) -> None:
    task_id = submit_with_callback(bridge, "/hooks/happy", metadata={"order": "A-17", "tries": 1})
    [received] = bridge.receiver.wait_for("/hooks/happy")
    delivery = bridge.wait_for_delivery_status(task_id, "delivered")

    # An independent verifier (not the receiver's own flag) accepts the signature.
    payload = Webhook(bridge.signing_secret).verify(received.body, received.headers)
    assert payload["type"] == "video.generation.completed"
    assert payload["data"]["task_id"] == task_id
    assert payload["data"]["metadata"] == {"order": "A-17", "tries": 1}
    assert received.webhook_id == payload["id"] == delivery["event_id"]
    # The body is the very envelope SNS and EventBridge carry.
    sns_event = bridge.events.wait_for(task_id)["sns"][0]["event"]
    assert sns_event == payload
    assert delivery["attempt_count"] == 1
    [attempt] = delivery["attempts"]
    assert attempt["status_code"] == 200 and attempt["error"] is None and attempt["latency_ms"] >= 0
    time.sleep(2.5)  # longer than the first retry delay: nothing else may arrive
    assert len(bridge.receiver.deliveries("/hooks/happy")) == 1
    assert "sk-integration" not in received.body


def test_failing_receiver_gets_the_same_webhook_id_until_it_succeeds(bridge: LocalBridge) -> None:
    bridge.receiver.script("/hooks/flaky", [Reply(500), Reply(500), Reply(200)])
    task_id = submit_with_callback(bridge, "/hooks/flaky")
    received = bridge.receiver.wait_for("/hooks/flaky", count=3)
    delivery = bridge.wait_for_delivery_status(task_id, "delivered")

    assert {r.webhook_id for r in received} == {delivery["event_id"]}
    assert [r.answered for r in received] == [500, 500, 200]
    for request in received:  # every attempt signed afresh, every signature valid
        Webhook(bridge.signing_secret).verify(request.body, request.headers)
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 500, 200]
    assert [a["attempt"] for a in delivery["attempts"]] == [1, 2, 3]
    assert delivery["attempts"][0]["error"].startswith("HTTP 500")
    assert all(a["retry_in_s"] >= 1 for a in delivery["attempts"][:2])


def test_retry_after_is_honoured(bridge: LocalBridge) -> None:
    # The schedule says about 1 s; the receiver asks for 4.
    bridge.receiver.script("/hooks/busy", [Reply(503, {"Retry-After": "4"}), Reply(200)])
    task_id = submit_with_callback(bridge, "/hooks/busy")
    first, second = bridge.receiver.wait_for("/hooks/busy", count=2, timeout=40)
    delivery = bridge.wait_for_delivery_status(task_id, "delivered")

    assert delivery["attempts"][0]["retry_in_s"] >= 4
    assert second.received_at - first.received_at >= 3.9
    assert first.webhook_id == second.webhook_id


def test_410_stops_all_further_attempts(bridge: LocalBridge) -> None:
    task_id = submit_with_callback(bridge, "/hooks/gone", query="?status=410")
    bridge.receiver.wait_for("/hooks/gone")
    delivery = bridge.wait_for_delivery_status(task_id, "gone")
    time.sleep(3)  # past every retry delay of the test schedule
    assert len(bridge.receiver.deliveries("/hooks/gone")) == 1
    assert [a["status_code"] for a in bridge.delivery_rows(task_id)[0]["attempts"]] == [410]
    assert delivery["next_attempt_at"] is None


def test_redirects_are_failures_and_never_followed(bridge: LocalBridge) -> None:
    target = f"{bridge.receiver.url}/hooks/redirect-target"
    bridge.receiver.script("/hooks/moved", [Reply(307, {"Location": target}), Reply(200)])
    task_id = submit_with_callback(bridge, "/hooks/moved")
    delivery = bridge.wait_for_delivery_status(task_id, "delivered")

    assert [a["status_code"] for a in delivery["attempts"]] == [307, 200]
    assert "not followed" in delivery["attempts"][0]["error"]
    assert bridge.receiver.deliveries("/hooks/redirect-target") == []


def test_a_receiver_slower_than_the_timeout_is_retried(bridge: LocalBridge) -> None:
    bridge.receiver.script("/hooks/slow", [Reply(200, delay_s=3.5), Reply(200)])
    task_id = submit_with_callback(bridge, "/hooks/slow")
    delivery = bridge.wait_for_delivery_status(task_id, "delivered")

    first, second = delivery["attempts"]
    assert first["status_code"] is None and "timed out" in first["error"]
    assert second["status_code"] == 200
    received = bridge.receiver.wait_for("/hooks/slow", count=2)
    assert received[0].webhook_id == received[1].webhook_id


def test_exhausted_retries_go_to_the_dead_letter_queue_and_the_job_says_so(bridge: LocalBridge) -> None:
    task_id = submit_with_callback(bridge, "/hooks/down", query="?status=500")
    delivery = bridge.wait_for_delivery_status(task_id, "dead_lettered", timeout=60)

    # The test schedule has 3 retries: 4 attempts in all; the row says why it ended.
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 500, 500, 500]
    assert delivery["dead_letter_reason"] == "retries_exhausted"
    assert len(bridge.receiver.deliveries("/hooks/down")) == 4
    # The row says dead_lettered first; the dead letter is sent and noted on the job right after.
    job = bridge.wait_until(
        lambda: (
            (found := bridge.api.get(f"/v1/videos/generations/{task_id}").json()).get("webhook_dead_letters") and found
        ),
        what="the dead letter noted on the job",
    )
    assert job["webhook_dead_letters"] == [delivery["event_id"]]

    sqs = bridge.aws.client("sqs")
    dead = _drain(sqs, bridge.stack.queue_urls["WebhookDeadLetterQueue"])
    mine = [m for m in dead if m.get("event_id") == delivery["event_id"]]
    assert len(mine) == 1
    assert mine[0]["reason"] == "retries_exhausted" and mine[0]["last_status_code"] == 500
    assert mine[0]["event"]["data"]["task_id"] == task_id


def test_redelivery_sends_the_same_webhook_id_again(bridge: LocalBridge) -> None:
    task_id = submit_with_callback(bridge, "/hooks/again")
    bridge.wait_for_delivery_status(task_id, "delivered")
    [delivery] = bridge.delivery_rows(task_id)

    answer = bridge.api.post(f"/v1/videos/generations/{task_id}/webhooks/{delivery['event_id']}/redeliver")
    assert answer.status_code == 202, answer.text
    assert answer.json()["round"] == 2
    first, second = bridge.receiver.wait_for("/hooks/again", count=2)
    assert first.webhook_id == second.webhook_id == delivery["event_id"]
    assert Webhook(bridge.signing_secret).verify(second.body, second.headers) == first.event
    redelivered = bridge.wait_until(
        lambda: next(
            (d for d in bridge.delivery_rows(task_id) if d["round"] == 2 and d["status"] == "delivered"), None
        ),
        what="round 2 delivered",
    )
    assert [(a["round"], a["attempt"]) for a in redelivered["attempts"]] == [(1, 1), (2, 1)]


def test_redelivery_of_unknown_things_is_a_404_envelope(bridge: LocalBridge) -> None:
    task_id = submit_with_callback(bridge, "/hooks/unknown")
    bridge.wait_for_delivery_status(task_id, "delivered")
    no_event = bridge.api.post(f"/v1/videos/generations/{task_id}/webhooks/evt_nope/redeliver")
    assert no_event.status_code == 404
    assert no_event.json()["error"]["code"] == "webhook_delivery_not_found"
    no_task = bridge.api.get("/v1/videos/generations/v_missing/webhooks")
    assert no_task.status_code == 404 and no_task.json()["error"]["code"] == "task_not_found"


def test_default_filter_sends_only_the_outcome(bridge: LocalBridge) -> None:
    task_id = submit_with_callback(bridge, "/hooks/default")
    bridge.wait_for_delivery_status(task_id, "delivered")
    bridge.wait_for_executions_to_end(task_id)
    types = [r.event["type"] for r in bridge.receiver.deliveries("/hooks/default")]
    assert types == ["video.generation.completed"]
    assert len(bridge.delivery_rows(task_id)) == 1


def test_filter_can_ask_for_started_and_throttled_progress(bridge: LocalBridge) -> None:
    body = {
        "model": "video-default",
        "prompt": "a fox in snow",
        "callback_url": f"{bridge.receiver.url}/hooks/progress",
        "webhook_events_filter": ["started", "progress", "completed"],
    }
    response = bridge.submit(body, run_s=14.0, queue_s=0.2)
    assert response.status_code == 202, response.text
    task_id = response.json()["task_id"]
    bridge.wait_for_executions_to_end(task_id, timeout=60)
    rows = bridge.wait_until(
        lambda: (r := bridge.delivery_rows(task_id)) and all(d["status"] == "delivered" for d in r) and r,
        what="every delivery delivered",
    )
    events = sorted((r.event for r in bridge.receiver.deliveries("/hooks/progress")), key=lambda e: e["time"])
    types = [e["type"].rpartition(".")[2] for e in events]
    assert types[0] == "started" and types[-1] == "completed"
    assert types.count("started") == 1 and types.count("completed") == 1
    progress = [e for e in events if e["type"].endswith(".progress")]
    assert progress, "no progress webhook at all"
    values = [e["data"]["progress"] for e in progress]
    assert values == sorted(set(values))
    # Throttled: polls come every 3 s, progress webhooks at most every 5 s (the configured interval).
    stamps = [time.mktime(time.strptime(e["time"][:19], "%Y-%m-%dT%H:%M:%S")) for e in progress]
    assert all(later - earlier >= 5 for earlier, later in itertools.pairwise(stamps))
    polls = int(bridge.job_row(task_id)["poll_count"]["N"])
    assert len(progress) < polls - 1
    assert len(rows) == len(events)


def test_filter_without_the_outcome_sends_nothing(bridge: LocalBridge) -> None:
    task_id = submit_with_callback(bridge, "/hooks/failed-only", webhook_events_filter=["failed"])
    bridge.events.wait_for(task_id)
    bridge.wait_for_executions_to_end(task_id)
    time.sleep(1.5)
    assert bridge.receiver.deliveries("/hooks/failed-only") == []
    assert bridge.delivery_rows(task_id) == []


def test_rotation_signs_with_both_secrets(bridge: LocalBridge) -> None:
    from aws_lambda_powertools.utilities import parameters

    secret_id = bridge.stack.resources["WebhookSigningSecret"]
    sm = bridge.aws.client("secretsmanager")
    original = sm.get_secret_value(SecretId=secret_id)["SecretString"]
    new_secret = "whsec_" + "bmV3LXNpZ25pbmctc2VjcmV0LWZvci1yb3RhdGlvbi0xMjM0"
    sm.put_secret_value(
        SecretId=secret_id, SecretString=json.dumps({"current": new_secret, "previous": bridge.signing_secret})
    )
    parameters.clear_caches()
    try:
        task_id = submit_with_callback(bridge, "/hooks/rotation")
        [received] = bridge.receiver.wait_for("/hooks/rotation")
        bridge.wait_for_delivery_status(task_id, "delivered")
    finally:
        sm.put_secret_value(SecretId=secret_id, SecretString=original)
        parameters.clear_caches()
    assert len(received.headers["webhook-signature"].split(" ")) == 2
    for secret in (new_secret, bridge.signing_secret):
        Webhook(secret).verify(received.body, received.headers)


def _drain(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    bodies: list[dict[str, Any]] = []
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        )
        if not messages:
            return bodies
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


# Every internal address family the guard must refuse, written the ways an attacker would try.
INTERNAL_CALLBACKS = [
    "https://127.0.0.1/hook",
    "https://127.1.2.3/hook",
    "https://localhost/hook",
    "https://[::1]/hook",
    "https://10.0.0.5/hook",
    "https://172.16.3.4/hook",
    "https://192.168.1.10/hook",
    "https://100.64.0.1/hook",
    "https://169.254.169.254/latest/meta-data/",
    "https://[fe80::1]/hook",
    "https://[fc00::1]/hook",
    "https://224.0.0.1/hook",
    "https://[ff02::1]/hook",
    "https://0.0.0.0/hook",
    "https://[::]/hook",
    "https://240.0.0.1/hook",
    "https://[::ffff:10.0.0.1]/hook",
    "https://[::ffff:169.254.169.254]/hook",
    "https://[64:ff9b::a9fe:a9fe]/hook",
    "https://[2002:a9fe:a9fe::1]/hook",
    "http://93.184.216.34/hook",  # public, but not https
]


@pytest.fixture
def loopback_not_allowed() -> Iterator[None]:
    with bridge_settings(WEBHOOK_ALLOW_LOOPBACK="false"):
        yield


@pytest.mark.parametrize("callback_url", INTERNAL_CALLBACKS)
def test_internal_callback_urls_are_refused_at_submit(
    bridge: LocalBridge, loopback_not_allowed: Any, callback_url: str
) -> None:
    accepted_before = bridge.simulator.task_count()
    response = bridge.api.post(
        "/v1/videos/generations", json={"model": "video-default", "prompt": "x", "callback_url": callback_url}
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "callback_url" and error["code"] == "invalid_callback_url"
    assert error["type"] == "invalid_request_error"
    assert bridge.simulator.task_count() == accepted_before  # Router One was never asked


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"callback_url": 42}, "callback_url"),
        ({"callback_url": "ftp://example.com/x"}, "callback_url"),
        ({"callback_url": "https://user:pw@example.com/x"}, "callback_url"),
        ({"callback_url": "https://example.com/x", "webhook_events_filter": ["finished"]}, "webhook_events_filter.0"),
        ({"callback_url": "https://example.com/x", "webhook_events_filter": []}, "webhook_events_filter"),
        ({"callback_url": "https://example.com/x", "webhook_events_filter": "completed"}, "webhook_events_filter"),
        ({"webhook_events_filter": ["completed"]}, "callback_url"),
        ({"metadata": ["not", "an", "object"]}, "metadata"),
        ({"metadata": {"blob": "x" * 3000}}, "metadata"),
    ],
)
def test_invalid_webhook_fields_get_a_400_naming_the_field(
    bridge: LocalBridge, body: dict[str, Any], param: str
) -> None:
    response = bridge.api.post("/v1/videos/generations", json={"model": "video-default", "prompt": "x", **body})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


def test_duplicate_stale_and_unknown_messages_are_dropped_without_a_request(bridge: LocalBridge) -> None:
    from bridge.webhooks import sender

    task_id = submit_with_callback(bridge, "/hooks/dupes")
    delivery = bridge.wait_for_delivery_status(task_id, "delivered")
    event_id = delivery["event_id"]

    # SQS delivers at least once: the same message again, an old round, and a delivery that does not exist.
    assert sender.deliver({"task_id": task_id, "event_id": event_id, "round": 1, "attempt": 1}) == "stale"
    assert sender.deliver({"task_id": task_id, "event_id": event_id, "round": 7, "attempt": 1}) == "stale"
    assert sender.deliver({"task_id": task_id, "event_id": "evt_missing", "round": 1, "attempt": 1}) == "unknown"
    time.sleep(1)
    assert len(bridge.receiver.deliveries("/hooks/dupes")) == 1
    assert len(bridge.delivery_rows(task_id)[0]["attempts"]) == 1


def test_a_message_that_arrives_before_its_due_time_is_not_sent_yet(bridge: LocalBridge) -> None:
    from bridge.webhooks import sender

    bridge.receiver.script("/hooks/early", [Reply(503, {"Retry-After": "60"})])
    task_id = submit_with_callback(bridge, "/hooks/early")
    retrying = bridge.wait_for_delivery_status(task_id, "retrying")
    assert retrying["attempts"][0]["retry_in_s"] >= 60
    # Attempt 2 handed over too soon (SQS delays stop at 15 minutes, so long waits hop): back to the queue.
    early = {"task_id": task_id, "event_id": retrying["event_id"], "round": 1, "attempt": 2, "due_at": time.time() + 60}
    assert sender.deliver(early) == "deferred"
    time.sleep(1)
    assert len(bridge.receiver.deliveries("/hooks/early")) == 1
    assert len(bridge.delivery_rows(task_id)[0]["attempts"]) == 1
