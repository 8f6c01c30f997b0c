"""Registered endpoints module by module, on an emulated account of their own: keys sealed with KMS
and verified with PyNaCl, the fan-out of one event to each destination, what an attempt teaches
about an endpoint's health, the pause a Retry-After asks for, and a recovery's bounded rate."""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from nacl.signing import VerifyKey
from standardwebhooks import Webhook

from bridge.clients import deliveries_table, endpoints_table
from bridge.outbound.pinned_post import AttemptResult
from bridge.store import deliveries, endpoints
from bridge.store.deliveries import DeliveryStatus
from bridge.store.job_record import JobRecord
from bridge.tenancy import Caller
from bridge.timeutil import iso
from bridge.webhooks import dispatch, endpoint_health, endpoint_keys, recovery, sender
from bridge.webhooks import endpoints as endpoint_api
from bridge.webhooks.dispatch import DeliveryMessage, FanOutMessage, Recovery, RecoveryMessage, parse_message
from bridge_local.emulator import EmbeddedAws
from bridge_local.local_stack import forget_cached_clients
from bridge_local.testing import create_table_like, environ_restored

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
DAY = 86_400


@pytest.fixture(scope="module")
def aws() -> Iterator[EmbeddedAws]:
    with environ_restored(), EmbeddedAws() as embedded:
        suffix = uuid.uuid4().hex[:8]
        dynamodb = embedded.client("dynamodb")
        for logical_id, name in (
            ("JobsTable", "jobs"),
            ("WebhookDeliveriesTable", "deliveries"),
            ("WebhookEndpointsTable", "endpoints"),
        ):
            create_table_like(dynamodb, logical_id, f"{name}-{suffix}")
        sqs = embedded.client("sqs")
        key_id = embedded.client("kms").create_key()["KeyMetadata"]["KeyId"]
        topic = embedded.client("sns").create_topic(Name=f"events-{suffix}")["TopicArn"]
        bus = embedded.client("events").create_event_bus(Name=f"bus-{suffix}")["EventBusArn"].rsplit("/", 1)[1]
        os.environ.update(
            JOBS_TABLE_NAME=f"jobs-{suffix}",
            WEBHOOK_DELIVERIES_TABLE_NAME=f"deliveries-{suffix}",
            WEBHOOK_ENDPOINTS_TABLE_NAME=f"endpoints-{suffix}",
            WEBHOOK_QUEUE_URL=sqs.create_queue(QueueName=f"hooks-{suffix}")["QueueUrl"],
            WEBHOOK_DEAD_LETTER_QUEUE_URL=sqs.create_queue(QueueName=f"dead-{suffix}")["QueueUrl"],
            WEBHOOK_ENDPOINT_KEY_ID=key_id,
            EVENT_TOPIC_ARN=topic,
            EVENT_BUS_NAME=bus,
            WEBHOOK_ALLOW_LOOPBACK="true",
        )
        forget_cached_clients()
        yield embedded
    forget_cached_clients()


@pytest.fixture
def owner(aws: EmbeddedAws) -> Caller:
    return Caller(owner_id="own_" + uuid.uuid4().hex)


def register(owner: Caller, **fields: Any) -> dict[str, Any]:
    return endpoint_api.create(
        owner, endpoint_api.EndpointCreate(url=fields.pop("url", "http://127.0.0.1:9/hook"), **fields)
    )


def job_of(owner: Caller, *, callback: bool = False) -> JobRecord:
    return JobRecord.model_validate(
        {
            "task_id": "task_" + uuid.uuid4().hex[:12],
            "status": "processing",
            "model": "video-default",
            "submitted_at": iso(T0),
            "created_at": iso(T0),
            "deadline_at": int((T0 + timedelta(hours=2)).timestamp()),
            "owner_id": owner.owner_id,
            "callback_url": "http://127.0.0.1:9/callback" if callback else None,
            "webhook_events_filter": ["completed"] if callback else None,
        }
    )


def completed_event(job: JobRecord) -> dict[str, Any]:
    return {"id": "evt_" + uuid.uuid4().hex, "type": "video.generation.completed", "data": {"task_id": job.task_id}}


# --------------------------------------------------------------------------- keys


def test_keys_are_sealed_under_the_endpoints_own_context_and_sign_v1_and_v1a(aws: EmbeddedAws, owner: Caller) -> None:
    created = register(owner, signature_versions=["v1", "v1a"])
    stored = endpoints.get_endpoint(owner.owner_id, created["id"])
    assert stored is not None and created["secret"] not in stored.keys_sealed
    keys = endpoint_keys.unseal(stored)
    assert keys.current.v1 == created["secret"]
    assert keys.current.public_key() == created["public_keys"][0]["key"]

    # The ciphertext copied onto another endpoint's row does not open there.
    moved = stored.model_copy(update={"endpoint_id": "ep_" + "0" * 32})
    with pytest.raises(Exception, match=r"InvalidCiphertext|AccessDenied|context"):
        endpoint_keys.unseal(moved)

    now = datetime.now(UTC)
    signature = endpoint_keys.signatures(
        keys.active(now), ["v1", "v1a"], message_id="msg_1", timestamp=now, body='{"a":1}'
    )
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(int(now.timestamp())), "webhook-signature": signature}
    Webhook(created["secret"]).verify('{"a":1}', headers)  # v1
    v1a = next(part for part in signature.split() if part.startswith("v1a,")).removeprefix("v1a,")
    public = VerifyKey(base64.b64decode(created["public_keys"][0]["key"].removeprefix("whpk_")))
    public.verify(f'msg_1.{headers["webhook-timestamp"]}.{{"a":1}}'.encode(), base64.b64decode(v1a))


def test_a_rotation_keeps_the_previous_keys_for_the_overlap_only(aws: EmbeddedAws, owner: Caller) -> None:
    keys = endpoint_keys.SealedKeys(current=endpoint_keys.new_key_set())
    rotated = endpoint_keys.rotated(keys, overlap_s=3600, now=T0)
    assert rotated.previous is not None and rotated.previous.v1 == keys.current.v1
    assert len(rotated.active(T0 + timedelta(minutes=59))) == 2
    assert rotated.active(T0 + timedelta(hours=1, seconds=1)) == [rotated.current]
    assert endpoint_keys.rotated(keys, overlap_s=0, now=T0).previous is None
    assert "whsec" not in repr(rotated) and "whsk" not in repr(rotated)


# --------------------------------------------------------------------------- fan-out


def test_one_event_fans_out_to_the_callback_and_each_matching_enabled_endpoint(aws: EmbeddedAws, owner: Caller) -> None:
    wanted = register(owner, event_types=["completed"])
    register(owner, event_types=["failed"])  # another event type
    off = register(owner)
    endpoint_api.update(owner, off["id"], endpoint_api.EndpointUpdate(enabled=False))
    register(Caller(owner_id="own_" + uuid.uuid4().hex))  # another owner's
    job = job_of(owner, callback=True)
    event = completed_event(job)

    message = parse_message(json.dumps(dispatch.prepare_delivery(job, event, T0, requeue_existing=True)))
    assert isinstance(message, FanOutMessage)
    assert [d.event_id for d in message.deliveries()] == [event["id"], f"{event['id']}_{wanted['id']}"]
    rows = {row["event_id"]: row for row in deliveries.list_deliveries(job.task_id)}
    assert rows[f"{event['id']}_{wanted['id']}"]["endpoint_id"] == wanted["id"]
    assert rows[event["id"]]["callback_url"] == job.callback_url
    # A retried poll queues nothing new once the deliveries were attempted, and both again if not.
    assert dispatch.prepare_delivery(job, event, T0, requeue_existing=False) is None
    assert dispatch.prepare_delivery(job, event, T0, requeue_existing=True) == message.model_dump(exclude_none=True)


def test_a_single_destination_is_queued_as_a_plain_delivery(aws: EmbeddedAws, owner: Caller) -> None:
    endpoint = register(owner)
    job = job_of(owner)
    event = completed_event(job)
    message = parse_message(json.dumps(dispatch.prepare_delivery(job, event, T0, requeue_existing=True)))
    assert message == DeliveryMessage(task_id=job.task_id, event_id=f"{event['id']}_{endpoint['id']}")
    assert dispatch.wanted_kinds(job) == {"completed", "failed", "timed_out", "canceled"}


# --------------------------------------------------------------------------- health


def stored(owner: Caller, endpoint_id: str) -> endpoints.Endpoint:
    found = endpoints.get_endpoint(owner.owner_id, endpoint_id)
    assert found is not None
    return found


def test_failures_start_the_period_a_success_ends_it_and_the_period_disables(aws: EmbeddedAws, owner: Caller) -> None:
    endpoint_id = register(owner)["id"]
    failed = AttemptResult(500, 10)
    endpoint_health.after_attempt(stored(owner, endpoint_id), failed, T0)
    endpoint_health.after_attempt(stored(owner, endpoint_id), failed, T0 + timedelta(days=1))
    assert stored(owner, endpoint_id).failing_since == iso(T0)
    endpoint_health.after_attempt(stored(owner, endpoint_id), AttemptResult(204, 10), T0 + timedelta(days=2))
    assert stored(owner, endpoint_id).failing_since is None
    assert stored(owner, endpoint_id).last_success_at == iso(T0 + timedelta(days=2))

    start = T0 + timedelta(days=3)
    endpoint_health.after_attempt(stored(owner, endpoint_id), failed, start)
    endpoint_health.after_attempt(stored(owner, endpoint_id), failed, start + timedelta(days=5, seconds=-1))
    assert stored(owner, endpoint_id).enabled
    endpoint_health.after_attempt(stored(owner, endpoint_id), failed, start + timedelta(days=5))
    disabled = stored(owner, endpoint_id)
    assert not disabled.enabled and disabled.disabled_reason == "failing" and disabled.disable_notice is None


def test_a_410_disables_at_once_and_the_notice_is_owed_until_published(
    aws: EmbeddedAws, owner: Caller, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint_id = register(owner)["id"]
    published: list[dict[str, Any]] = []
    real_send = endpoint_health.send_notice

    def refused(endpoint: endpoints.Endpoint) -> None:
        raise RuntimeError("topic unavailable")

    monkeypatch.setattr(endpoint_health, "send_notice", refused)
    with pytest.raises(RuntimeError):
        endpoint_health.after_attempt(stored(owner, endpoint_id), AttemptResult(410, 5), T0)
    owed = stored(owner, endpoint_id)
    assert not owed.enabled and owed.disabled_reason == "gone" and owed.disable_notice
    monkeypatch.setattr(endpoint_health, "send_notice", lambda e: (published.append(e.model_dump()), real_send(e)))
    # A second 410 disables nothing again; the owed notice goes out with the next message for it.
    endpoint_health.after_attempt(stored(owner, endpoint_id), AttemptResult(410, 5), T0)
    assert published == []
    real_send(stored(owner, endpoint_id))
    assert stored(owner, endpoint_id).disable_notice is None


def test_retry_after_pauses_the_endpoint_for_every_delivery(
    aws: EmbeddedAws, owner: Caller, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint_id = register(owner)["id"]
    endpoint_health.after_attempt(stored(owner, endpoint_id), AttemptResult(429, 5, retry_after_s=120), T0)
    until = stored(owner, endpoint_id).throttled_until
    assert until is not None and T0.timestamp() + 120 <= until <= T0.timestamp() + 122
    # A shorter pause asked later does not shorten it.
    endpoint_health.after_attempt(stored(owner, endpoint_id), AttemptResult(503, 5, retry_after_s=5), T0)
    assert stored(owner, endpoint_id).throttled_until == until

    job = job_of(owner)
    event = completed_event(job)
    message = DeliveryMessage.model_validate(dispatch.prepare_delivery(job, event, T0, requeue_existing=True))
    held: list[tuple[DeliveryMessage, float]] = []
    monkeypatch.setattr(sender, "enqueue", lambda m, delay_s: held.append((m, delay_s)))
    assert sender.deliver(message, now=T0 + timedelta(seconds=10)) == "throttled"
    ((later, delay),) = held
    assert later.due_at is not None and until <= later.due_at <= until + sender.THROTTLE_SPREAD_S
    assert delay == pytest.approx(later.due_at - (T0.timestamp() + 10))
    assert deliveries.get_delivery(job.task_id, message.event_id)["attempt_count"] == 0


def test_a_delivery_to_a_disabled_or_deleted_endpoint_stops_without_an_attempt(aws: EmbeddedAws, owner: Caller) -> None:
    disabled, deleted = register(owner)["id"], register(owner)["id"]
    job = job_of(owner)
    event = completed_event(job)
    fan_out = FanOutMessage.model_validate(dispatch.prepare_delivery(job, event, T0, requeue_existing=True))
    endpoint_api.update(owner, disabled, endpoint_api.EndpointUpdate(enabled=False))
    endpoint_api.delete(owner, deleted)
    outcomes = [sender.deliver(message, now=T0) for message in fan_out.deliveries()]
    assert outcomes == [DeliveryStatus.STOPPED, DeliveryStatus.STOPPED]
    rows = {row["endpoint_id"]: row for row in deliveries.list_deliveries(job.task_id)}
    assert rows[disabled]["stopped_reason"] == "endpoint_disabled" and rows[disabled]["attempts"] == []
    assert rows[deleted]["stopped_reason"] == "endpoint_deleted"


# --------------------------------------------------------------------------- recovery


def test_recovery_resends_failed_deliveries_since_a_time_page_by_page(
    aws: EmbeddedAws, owner: Caller, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint_id = register(owner)["id"]
    table = deliveries_table()
    for i in range(recovery.PAGE_SIZE + 3):
        job = job_of(owner)
        event = completed_event(job)
        deliveries.create_delivery(
            task_id=job.task_id, event=event, endpoint_id=endpoint_id, owner_id=owner.owner_id, now=T0, expires_at=None
        )
        status = DeliveryStatus.DELIVERED if i % 10 == 0 else DeliveryStatus.DEAD_LETTERED
        table.update_item(
            Key={"task_id": job.task_id, "event_id": f"{event['id']}_{endpoint_id}"},
            UpdateExpression="SET #s = :s, created_at = :at",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": status, ":at": iso(T0 + timedelta(seconds=i))},
        )
    sent: list[Any] = []
    monkeypatch.setattr(recovery, "enqueue", lambda message, delay_s: sent.append(message))
    since = iso(T0 + timedelta(seconds=2))
    assert recovery.resend_page(Recovery(owner_id=owner.owner_id, endpoint_id=endpoint_id, since=since)) == "recovering"
    follow = [m for m in sent if isinstance(m, RecoveryMessage)]
    resent = [m for m in sent if isinstance(m, DeliveryMessage)]
    assert len(follow) == 1 and 0 < len(resent) <= recovery.PAGE_SIZE
    assert all(m.round == 2 for m in resent)
    # The same page again (a repeated message) resends nothing twice.
    sent.clear()
    recovery.resend_page(Recovery(owner_id=owner.owner_id, endpoint_id=endpoint_id, since=since))
    assert [m for m in sent if isinstance(m, DeliveryMessage)] == []
    sent.clear()
    assert recovery.resend_page(follow[0].recover) == "recovered"
    rest = [m for m in sent if isinstance(m, DeliveryMessage)]
    failed_since = {f"{i}" for i in range(2, recovery.PAGE_SIZE + 3) if i % 10 != 0}
    assert len(resent) + len(rest) == len(failed_since)
    assert len({m.event_id for m in resent + rest}) == len(failed_since)


def test_recovery_spaces_its_resends_at_the_stated_rate(
    aws: EmbeddedAws, owner: Caller, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint_id = register(owner)["id"]
    for _ in range(12):
        job = job_of(owner)
        event = completed_event(job)
        deliveries.create_delivery(
            task_id=job.task_id, event=event, endpoint_id=endpoint_id, owner_id=owner.owner_id, now=T0, expires_at=None
        )
        deliveries.stop_delivery(
            job.task_id, f"{event['id']}_{endpoint_id}", round_no=1, reason="endpoint_disabled", now=T0
        )
    delays: list[float] = []
    monkeypatch.setattr(recovery, "enqueue", lambda message, delay_s: delays.append(delay_s))
    recovery.resend_page(Recovery(owner_id=owner.owner_id, endpoint_id=endpoint_id, since=iso(T0 - timedelta(days=1))))
    assert delays == [i / recovery.RATE_PER_S for i in range(12)]


def test_recover_refuses_a_disabled_endpoint_and_a_time_older_than_the_log(aws: EmbeddedAws, owner: Caller) -> None:
    endpoint_id = register(owner)["id"]
    too_old = endpoint_api.RecoveryRequest(since=datetime.now(UTC) - timedelta(days=15))
    with pytest.raises(Exception, match="at most 14 days"):
        endpoint_api.recover(owner, endpoint_id, too_old)
    endpoint_api.update(owner, endpoint_id, endpoint_api.EndpointUpdate(enabled=False))
    with pytest.raises(Exception, match="enable the endpoint"):
        endpoint_api.recover(owner, endpoint_id, endpoint_api.RecoveryRequest(since=datetime.now(UTC)))


def test_an_owner_has_at_most_the_stated_number_of_endpoints(aws: EmbeddedAws, owner: Caller) -> None:
    for _ in range(endpoints.MAX_ENDPOINTS_PER_OWNER):
        register(owner)
    with pytest.raises(Exception, match=f"at most {endpoints.MAX_ENDPOINTS_PER_OWNER}"):
        register(owner)
    assert endpoints_table().name.startswith("endpoints-")
