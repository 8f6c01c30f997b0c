"""Registered webhook endpoints on the local stack, over HTTP: per tenant, signed with their own keys
(v1 and v1a, verified here with libraries independent of the signing code), rotated with an
overlap, disabled when they keep failing or answer 410, re-enabled and recovered, paused by
Retry-After, and listed with their deliveries across jobs."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from standardwebhooks import Webhook

from bridge.timeutil import iso
from bridge_local.alarms import alarms_of
from bridge_local.receiver import ReceivedWebhook, Reply

from .conftest import ENDPOINT_TENANT_API_KEY, TENANT_B_API_KEY, LocalBridge, bridge_settings

pytestmark = pytest.mark.integration

ENDPOINTS = "/v1/webhook-endpoints"
# The disable period, shortened by configuration (a deployed stack's default is 5 days).
DISABLE_AFTER_S = 3
FOX = {"model": "video-default", "prompt": "a fox in snow"}
OUTCOMES = ["completed", "failed", "timed_out", "canceled"]


@pytest.fixture(scope="module")
def owner(bridge: LocalBridge) -> Iterator[httpx.Client]:
    """This module's tenant: no other module's jobs fan out to the endpoints it registers."""
    with bridge.client_for(ENDPOINT_TENANT_API_KEY) as client:
        yield client


@pytest.fixture(scope="module")
def tenant_b(bridge: LocalBridge) -> Iterator[httpx.Client]:
    with bridge.client_for(TENANT_B_API_KEY) as client:
        yield client


@pytest.fixture
def cleanup(bridge: LocalBridge, tenant_b: httpx.Client) -> Iterator[list[tuple[httpx.Client, str]]]:
    """Endpoints a test made, deleted after it so other tests' jobs do not fan out to them."""
    made: list[tuple[httpx.Client, str]] = []
    yield made
    for client, endpoint_id in made:
        client.delete(f"{ENDPOINTS}/{endpoint_id}")


def register(client: httpx.Client, cleanup: list[tuple[httpx.Client, str]], url: str, **fields: Any) -> dict[str, Any]:
    response = client.post(ENDPOINTS, json={"url": url, "event_types": OUTCOMES} | fields)
    assert response.status_code == 201, response.text
    endpoint = response.json()
    cleanup.append((client, endpoint["id"]))
    return endpoint


def submit(client: httpx.Client, bridge: LocalBridge, body: dict[str, Any] | None = None, **sim: Any) -> str:
    if sim:
        bridge.simulator.queue_next(**sim)
    response = client.post("/v1/videos/generations", json=body or FOX)
    assert response.status_code == 202, response.text
    return str(response.json()["task_id"])


def v1_verifies(secret: str, record: ReceivedWebhook) -> bool:
    try:
        Webhook(secret).verify(record.body, record.headers)
    except Exception:
        return False
    return True


def v1a_verifies(public_key: str, record: ReceivedWebhook) -> bool:
    """Any v1a signature of the request verifies under this key (PyNaCl, not the signing code)."""
    key = VerifyKey(base64.b64decode(public_key.removeprefix("whpk_")))
    signed = f"{record.headers['webhook-id']}.{record.headers['webhook-timestamp']}.{record.body}".encode()
    for part in record.headers["webhook-signature"].split():
        version, _, signature = part.partition(",")
        if version != "v1a":
            continue
        try:
            key.verify(signed, base64.b64decode(signature))
        except BadSignatureError:
            continue
        return True
    return False


def versions(record: ReceivedWebhook) -> list[str]:
    return [part.partition(",")[0] for part in record.headers["webhook-signature"].split()]


# --------------------------------------------------------------------------- owners and fan-out


def test_each_tenants_endpoint_gets_its_own_events_only(
    bridge: LocalBridge, owner: httpx.Client, tenant_b: httpx.Client, cleanup: list[tuple[httpx.Client, str]]
) -> None:
    a = register(owner, cleanup, f"{bridge.receiver.url}/hooks/ep-tenant-a?status=200")
    b = register(tenant_b, cleanup, f"{bridge.receiver.url}/hooks/ep-tenant-b?status=200")
    assert "secret" in a and a["secret"].startswith("whsec_")

    task_a = submit(owner, bridge, run_s=0.5)
    task_b = submit(tenant_b, bridge, run_s=0.5)
    got_a = bridge.receiver.wait_for("/hooks/ep-tenant-a", timeout=40)
    got_b = bridge.receiver.wait_for("/hooks/ep-tenant-b", timeout=40)
    time.sleep(2)  # any stray delivery would have arrived by now

    tasks_a = {r.event["data"]["task_id"] for r in bridge.receiver.deliveries("/hooks/ep-tenant-a")}
    tasks_b = {r.event["data"]["task_id"] for r in bridge.receiver.deliveries("/hooks/ep-tenant-b")}
    assert tasks_a == {task_a} and tasks_b == {task_b}
    assert all(v1_verifies(a["secret"], r) for r in got_a)
    assert all(v1_verifies(b["secret"], r) for r in got_b)
    assert not v1_verifies(b["secret"], got_a[0])

    # Neither tenant sees, changes or lists the other's endpoint.
    for method in ("GET", "PATCH", "DELETE"):
        answer = tenant_b.request(method, f"{ENDPOINTS}/{a['id']}", json={} if method == "PATCH" else None)
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "webhook_endpoint_not_found"
    assert tenant_b.get(f"{ENDPOINTS}/{a['id']}/deliveries").status_code == 404
    assert [e["id"] for e in tenant_b.get(ENDPOINTS).json()["data"]] == [b["id"]]
    # The secret is shown once: never by a read or a list.
    assert "secret" not in owner.get(f"{ENDPOINTS}/{a['id']}").json()
    assert all("secret" not in e for e in owner.get(ENDPOINTS).json()["data"])


def test_a_callback_and_an_endpoint_each_get_their_own_delivery_and_webhook_id(
    bridge: LocalBridge, owner: httpx.Client, cleanup: list[tuple[httpx.Client, str]]
) -> None:
    endpoint = register(owner, cleanup, f"{bridge.receiver.url}/hooks/ep-fan-endpoint?status=200")
    task_id = submit(owner, bridge, FOX | {"callback_url": f"{bridge.receiver.url}/hooks/ep-fan-callback"}, run_s=0.5)
    to_callback = bridge.receiver.wait_for("/hooks/ep-fan-callback", timeout=40)[0]
    to_endpoint = bridge.receiver.wait_for("/hooks/ep-fan-endpoint", timeout=40)[0]

    assert to_callback.event == to_endpoint.event  # the same event
    assert to_callback.webhook_id == to_callback.event["id"]
    assert to_endpoint.webhook_id == f"{to_endpoint.event['id']}_{endpoint['id']}"
    assert to_callback.verified and v1_verifies(endpoint["secret"], to_endpoint)
    assert not v1_verifies(endpoint["secret"], to_callback)  # the stack's secret signs callbacks

    rows = bridge.wait_until(
        lambda: (
            (found := bridge.delivery_rows(task_id, owner)) and all(r["status"] == "delivered" for r in found) and found
        ),
        what="both deliveries delivered",
    )
    destinations = sorted(json.dumps(r["destination"], sort_keys=True) for r in rows)
    assert destinations == sorted(
        [json.dumps({"type": "callback_url"}), json.dumps({"endpoint_id": endpoint["id"], "type": "endpoint"})]
    )
    assert len({r["webhook_id"] for r in rows}) == 2 and {r["event_id"] for r in rows} == {to_callback.event["id"]}


def test_event_types_choose_what_an_endpoint_gets(
    bridge: LocalBridge, owner: httpx.Client, cleanup: list[tuple[httpx.Client, str]]
) -> None:
    register(owner, cleanup, f"{bridge.receiver.url}/hooks/ep-only-failed?status=200", event_types=["failed"])
    completed = submit(owner, bridge, run_s=0.5)
    failed = submit(owner, bridge, run_s=0.5, outcome="failed")
    got = bridge.receiver.wait_for("/hooks/ep-only-failed", timeout=40)
    bridge.events.wait_for(completed)
    time.sleep(1.5)
    assert {r.event["data"]["task_id"] for r in bridge.receiver.deliveries("/hooks/ep-only-failed")} == {failed}
    assert got[0].event["type"] == "video.generation.failed"


def test_an_endpoint_url_must_pass_the_ssrf_check_at_registration_and_at_each_attempt(
    bridge: LocalBridge, owner: httpx.Client, cleanup: list[tuple[httpx.Client, str]]
) -> None:
    for url in ("https://169.254.169.254/latest", "https://10.0.0.7/hook", "ftp://example.com/x", "not a url"):
        answer = owner.post(ENDPOINTS, json={"url": url})
        assert answer.status_code == 400, url
        assert answer.json()["error"]["code"] == "invalid_endpoint_url" and answer.json()["error"]["param"] == "url"
    endpoint = register(owner, cleanup, f"{bridge.receiver.url}/hooks/ep-ssrf-later?status=200")
    bad = owner.patch(f"{ENDPOINTS}/{endpoint['id']}", json={"url": "https://169.254.169.254/"})
    assert bad.status_code == 400
    # Loopback is allowed on this local stack; with the setting off, the same endpoint is refused at the attempt.
    with bridge_settings(WEBHOOK_ALLOW_LOOPBACK="false"):
        task_id = submit(owner, bridge, run_s=0.5)
        row = bridge.wait_until(
            lambda: next(
                (
                    r
                    for r in bridge.delivery_rows(task_id, owner)
                    if r["destination"]["type"] == "endpoint" and r["attempt_count"]
                ),
                None,
            ),
            what="an attempt to the endpoint",
        )
    attempt = owner.get(f"/v1/videos/generations/{task_id}/webhooks").json()["deliveries"]
    logged = next(d for d in attempt if d["webhook_id"] == row["webhook_id"])["attempts"][0]
    assert logged["status_code"] is None and logged["error"].startswith("refused")
    assert bridge.receiver.deliveries("/hooks/ep-ssrf-later") == []


# --------------------------------------------------------------------------- keys


def test_rotation_signs_with_both_keys_during_the_overlap_in_v1_and_v1a(
    bridge: LocalBridge, owner: httpx.Client, cleanup: list[tuple[httpx.Client, str]]
) -> None:
    endpoint = register(
        owner, cleanup, f"{bridge.receiver.url}/hooks/ep-rotating?status=200", signature_versions=["v1", "v1a"]
    )
    old_secret, old_public = endpoint["secret"], endpoint["public_keys"][0]["key"]
    first = submit(owner, bridge, run_s=0.5)
    record = bridge.receiver.wait_for("/hooks/ep-rotating", timeout=40)[0]
    assert record.event["data"]["task_id"] == first
    assert versions(record) == ["v1", "v1a"]
    assert v1_verifies(old_secret, record) and v1a_verifies(old_public, record)

    rotated = owner.post(f"{ENDPOINTS}/{endpoint['id']}/rotate", json={"overlap_seconds": 3600})
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    keys = rotated.json()["public_keys"]
    assert new_secret != old_secret and len(keys) == 2
    new_public = keys[0]["key"]
    assert keys[1] == {"key": old_public, "expires_at": keys[1]["expires_at"]} and keys[1]["expires_at"]

    second = submit(owner, bridge, run_s=0.5)
    record = bridge.wait_until(
        lambda: next(
            (r for r in bridge.receiver.deliveries("/hooks/ep-rotating") if r.event["data"]["task_id"] == second), None
        ),
        what="a delivery after the rotation",
    )
    assert sorted(versions(record)) == ["v1", "v1", "v1a", "v1a"]
    assert v1_verifies(new_secret, record) and v1_verifies(old_secret, record)
    assert v1a_verifies(new_public, record) and v1a_verifies(old_public, record)
    assert not v1a_verifies(new_public, record.__class__(**(record.__dict__ | {"body": record.body + " "})))

    # Without an overlap the old keys stop at once.
    assert owner.post(f"{ENDPOINTS}/{endpoint['id']}/rotate", json={"overlap_seconds": 0}).status_code == 200
    third = submit(owner, bridge, run_s=0.5)
    record = bridge.wait_until(
        lambda: next(
            (r for r in bridge.receiver.deliveries("/hooks/ep-rotating") if r.event["data"]["task_id"] == third), None
        ),
        what="a delivery after the second rotation",
    )
    assert versions(record) == ["v1", "v1a"]
    assert not v1_verifies(new_secret, record) and not v1a_verifies(new_public, record)


def test_an_endpoints_keys_are_sealed_in_its_row(
    bridge: LocalBridge, owner: httpx.Client, cleanup: list[tuple[httpx.Client, str]]
) -> None:
    endpoint = register(owner, cleanup, f"{bridge.receiver.url}/hooks/ep-sealed?status=200")
    rows = bridge.aws.client("dynamodb").scan(TableName=bridge.stack.resources["WebhookEndpointsTable"])["Items"]
    row = next(r for r in rows if r["endpoint_id"]["S"] == endpoint["id"])
    stored = json.dumps(row)
    assert endpoint["secret"] not in stored and "whsk_" not in stored and "whsec_" not in stored
    assert "keys_sealed" in row


# --------------------------------------------------------------------------- health


def wait_for_endpoint(
    bridge: LocalBridge, owner: httpx.Client, endpoint_id: str, check: Any, what: str
) -> dict[str, Any]:
    return bridge.wait_until(
        lambda: (found := owner.get(f"{ENDPOINTS}/{endpoint_id}").json()) and check(found) and found,
        timeout=60,
        what=what,
    )


def test_an_endpoint_answering_410_is_disabled_at_once_and_its_owner_told(
    bridge: LocalBridge, owner: httpx.Client, cleanup: list[tuple[httpx.Client, str]]
) -> None:
    endpoint = register(owner, cleanup, f"{bridge.receiver.url}/hooks/ep-gone?status=410")
    submit(owner, bridge, run_s=0.5)
    found = wait_for_endpoint(bridge, owner, endpoint["id"], lambda e: not e["enabled"], "the endpoint disabled")
    assert found["disabled_reason"] == "gone"
    notice = bridge.events.wait_for(endpoint["id"])
    sns = notice["sns"][0]
    assert sns["event"]["type"] == "webhook.endpoint.disabled"
    assert sns["attributes"]["owner_id"] == owner.get("/v1/account").json()["owner_id"] != bridge.owner_id
    assert notice["eventbridge"][0]["detail_type"] == "Webhook Endpoint Disabled"
    assert notice["eventbridge"][0]["event"]["data"] == sns["event"]["data"]
    assert sns["event"]["data"]["reason"] == "gone" and sns["event"]["data"]["endpoint_id"] == endpoint["id"]


def test_a_failing_endpoint_is_disabled_after_the_period_then_re_enabled_and_recovered(
    bridge: LocalBridge, owner: httpx.Client, cleanup: list[tuple[httpx.Client, str]]
) -> None:
    endpoint = register(owner, cleanup, f"{bridge.receiver.url}/hooks/ep-down?status=500")
    started = datetime.now(UTC) - timedelta(seconds=1)
    alarms = alarms_of(bridge.stack)
    alarm = alarms.name_of("WebhookEndpointsDisabledAlarm")
    with alarms.inbox() as inbox, bridge_settings(ENDPOINT_DISABLE_AFTER_SECONDS=str(DISABLE_AFTER_S)):
        # The shared stack: start from OK (an earlier disable may still count in the alarm's window).
        bridge.aws.client("cloudwatch").set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="test: from OK")
        # Two jobs fail together; their retries (1, 1, 2 s, with jitter at least 3.2 s in all) outlast the period.
        tasks = [submit(owner, bridge, run_s=0.5) for _ in range(2)]
        found = wait_for_endpoint(bridge, owner, endpoint["id"], lambda e: not e["enabled"], "the endpoint disabled")
        failing_for = datetime.fromisoformat(found["disabled_at"]) - datetime.fromisoformat(found["failing_since"])
        assert failing_for >= timedelta(seconds=DISABLE_AFTER_S)
        assert found["disabled_reason"] == "failing"
        notice = bridge.events.wait_for(endpoint["id"])
        assert notice["sns"][0]["event"]["data"]["reason"] == "failing"
        # The alarm fires on the metric the disable emitted, and tells the alarm topic.
        assert alarm in alarms.evaluate_now()
        assert inbox.wait_for(alarm, "ALARM")["NewStateValue"] == "ALARM"

    # Its deliveries end: those still retrying stop, none is attempted any more.
    log = bridge.wait_until(
        lambda: (
            (rows := owner.get(f"{ENDPOINTS}/{endpoint['id']}/deliveries").json()["data"])
            and len(rows) == 2
            and all(r["status"] in ("stopped", "dead_lettered") for r in rows)
            and rows
        ),
        what="the endpoint's deliveries ended",
    )
    assert {r["task_id"] for r in log} == set(tasks)

    # The owner fixes the receiver, re-enables the endpoint and recovers what failed since it started.
    answer = owner.patch(
        f"{ENDPOINTS}/{endpoint['id']}",
        json={"enabled": True, "url": f"{bridge.receiver.url}/hooks/ep-back?status=200"},
    )
    assert answer.status_code == 200 and answer.json()["enabled"] and answer.json()["failing_since"] is None
    recovery = owner.post(f"{ENDPOINTS}/{endpoint['id']}/recover", json={"since": iso(started)})
    assert recovery.status_code == 202, recovery.text
    back = bridge.receiver.wait_for("/hooks/ep-back", count=2, timeout=40)
    assert {r.event["data"]["task_id"] for r in back} == set(tasks)
    delivered = owner.get(f"{ENDPOINTS}/{endpoint['id']}/deliveries", params={"status": "delivered"}).json()
    assert len(delivered["data"]) == 2 and all(r["round"] == 2 for r in delivered["data"])


def test_retry_after_from_an_endpoint_holds_back_every_delivery_to_it(
    bridge: LocalBridge, owner: httpx.Client, cleanup: list[tuple[httpx.Client, str]]
) -> None:
    register(owner, cleanup, f"{bridge.receiver.url}/hooks/ep-busy?status=200")
    bridge.receiver.script("/hooks/ep-busy", [Reply(503, {"Retry-After": "6"})])
    first = submit(owner, bridge, run_s=0.5)
    refused = bridge.receiver.wait_for("/hooks/ep-busy", timeout=40)[0]
    assert refused.answered == 503 and refused.event["data"]["task_id"] == first
    second = submit(owner, bridge, run_s=0.5)

    def both_delivered() -> dict[str, float] | None:
        found = {
            r.event["data"]["task_id"]: r.received_at
            for r in bridge.receiver.deliveries("/hooks/ep-busy")
            if r.answered == 200
        }
        return found if {first, second} <= set(found) else None

    arrivals = bridge.wait_until(both_delivered, timeout=40, what="both delivered after the pause")
    # The second job's first attempt waited out the pause the first job's answer asked for.
    assert arrivals[second] >= refused.received_at + 5.5
    attempts = [r for r in bridge.receiver.deliveries("/hooks/ep-busy") if r.event["data"]["task_id"] == second]
    assert len(attempts) == 1  # held back, not refused and retried


# --------------------------------------------------------------------------- the delivery log


def test_an_endpoints_delivery_log_is_newest_first_filtered_and_paged(
    bridge: LocalBridge, owner: httpx.Client, cleanup: list[tuple[httpx.Client, str]]
) -> None:
    endpoint = register(owner, cleanup, f"{bridge.receiver.url}/hooks/ep-logged?status=200")
    tasks = [submit(owner, bridge, run_s=0.3) for _ in range(3)]
    bridge.receiver.wait_for("/hooks/ep-logged", count=3, timeout=40)
    log = f"{ENDPOINTS}/{endpoint['id']}/deliveries"
    whole = bridge.wait_until(
        lambda: (
            (rows := owner.get(log).json()["data"])
            and all(r["status"] == "delivered" for r in rows)
            and len(rows) == 3
            and rows
        ),
        what="three delivered",
    )
    assert sorted(r["task_id"] for r in whole) == sorted(tasks)
    assert [r["created_at"] for r in whole] == sorted((r["created_at"] for r in whole), reverse=True)

    pages, cursor = [], None
    while True:
        page = owner.get(log, params={"limit": 1} | ({"cursor": cursor} if cursor else {})).json()
        pages.extend(page["data"])
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert [r["webhook_id"] for r in pages] == [r["webhook_id"] for r in whole]
    assert owner.get(log, params={"status": "dead_lettered"}).json()["data"] == []
    bad = owner.get(log, params={"status": "lost"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "status"
    other = register(owner, cleanup, f"{bridge.receiver.url}/hooks/ep-other?status=200")
    first_page = owner.get(log, params={"limit": 1}).json()
    foreign = owner.get(f"{ENDPOINTS}/{other['id']}/deliveries", params={"cursor": first_page["next_cursor"]})
    assert foreign.status_code == 400 and foreign.json()["error"]["param"] == "cursor"
