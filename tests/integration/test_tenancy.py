"""Callers are tenants: with two keys on one stack, B can neither see nor change A's jobs, while A can.

Every route that names a job answers B exactly as it answers an id that does not exist (same
status, same wording, the same single read of the table); lists and their cursors are per owner;
an `Idempotency-Key` is per owner (and per Router One key in pass-through mode); an SNS filter on
the owner attribute takes one tenant's events; operator keys read and list everyone's jobs,
including rows from before owners, but change none of them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from bridge.clients import jobs_table
from bridge.store import jobs
from bridge.store.job_record import JobRecord
from bridge.timeutil import iso, utcnow
from bridge_local.iam import current_role

from .conftest import OPERATOR_API_KEY, TENANT_B_API_KEY, LocalBridge, bridge_settings

pytestmark = pytest.mark.integration

GENERATIONS = "/v1/videos/generations"
FOX = {"model": "video-default", "prompt": "a fox in snow"}


@pytest.fixture(scope="module")
def tenant_b(bridge: LocalBridge) -> Iterator[httpx.Client]:
    with bridge.client_for(TENANT_B_API_KEY) as client:
        yield client


@pytest.fixture(scope="module")
def operator(bridge: LocalBridge) -> Iterator[httpx.Client]:
    with bridge.client_for(OPERATOR_API_KEY) as client:
        owner_id = client.get("/v1/account").json()["owner_id"]
        with bridge_settings(OPERATOR_OWNER_IDS=owner_id):
            yield client


def owner_of(client: httpx.Client) -> str:
    return str(client.get("/v1/account").json()["owner_id"])


def submit(client: httpx.Client, bridge: LocalBridge, body: dict[str, Any] | None = None, **sim: Any) -> str:
    if sim:
        bridge.simulator.queue_next(**sim)
    response = client.post(GENERATIONS, json=body or FOX)
    assert response.status_code == 202, response.text
    return str(response.json()["task_id"])


def with_callback(bridge: LocalBridge, path: str) -> dict[str, Any]:
    return FOX | {"callback_url": f"{bridge.receiver.url}{path}"}


def job_routes(task_id: str, event_id: str) -> list[tuple[str, str]]:
    return [
        ("GET", f"{GENERATIONS}/{task_id}"),
        ("POST", f"{GENERATIONS}/{task_id}/cancel"),
        ("GET", f"{GENERATIONS}/{task_id}/webhooks"),
        ("POST", f"{GENERATIONS}/{task_id}/webhooks/{event_id}/redeliver"),
    ]


class DynamoCalls:
    """Counts the api function's DynamoDB requests by operation while in use (the polls of running
    jobs share the client in this process; they run with their own role and are not counted)."""

    def __init__(self, bridge: LocalBridge) -> None:
        self.role = bridge.stack.roles["ApiFunctionRole"]
        self.operations: list[str] = []

    def __call__(self, model: Any, **_: Any) -> None:
        if current_role() == self.role:
            self.operations.append(model.name)

    def __enter__(self) -> DynamoCalls:
        jobs_table().meta.client.meta.events.register("before-call.dynamodb", self)
        return self

    def __exit__(self, *exc: object) -> None:
        jobs_table().meta.client.meta.events.unregister("before-call.dynamodb", self)


def answer_without_ids(response: httpx.Response, *ids: str) -> tuple[int, str, str]:
    """Status, content type and body with the requested ids blanked: what tells two answers apart."""
    text = response.text
    for value in ids:
        text = text.replace(value, "<id>")
    return response.status_code, response.headers.get("content-type", ""), text


def test_each_key_has_its_own_owner_id(bridge: LocalBridge, tenant_b: httpx.Client) -> None:
    a, b = bridge.api.get("/v1/account").json(), tenant_b.get("/v1/account").json()
    assert a == {"object": "account", "owner_id": bridge.owner_id, "operator": False}
    assert b["owner_id"] != a["owner_id"] and b["owner_id"].startswith("own_")
    assert owner_of(tenant_b) == b["owner_id"]  # stable across requests


def test_b_gets_a_404_for_as_job_on_every_route_exactly_as_for_an_unknown_one(
    bridge: LocalBridge, tenant_b: httpx.Client
) -> None:
    task_id = submit(bridge.api, bridge, with_callback(bridge, "/hooks/tenancy-a"), run_s=60, queue_s=1)
    # A's job has a delivery to redeliver: its cancel event.
    assert bridge.api.post(f"{GENERATIONS}/{task_id}/cancel").status_code == 200
    event_id = bridge.wait_for_delivery_status(task_id, "delivered")["event_id"]
    unknown = f"v_{uuid.uuid4().hex}"

    for (method, path), (_, unknown_path) in zip(
        job_routes(task_id, event_id), job_routes(unknown, event_id), strict=True
    ):
        with DynamoCalls(bridge) as theirs:
            for_a_job = tenant_b.request(method, path)
        with DynamoCalls(bridge) as nobodys:
            for_no_job = tenant_b.request(method, unknown_path)
        assert for_a_job.status_code == 404, (method, path, for_a_job.text)
        assert for_a_job.json()["error"]["code"] == "task_not_found"
        assert answer_without_ids(for_a_job, task_id) == answer_without_ids(for_no_job, unknown)
        assert task_id not in for_a_job.text.replace(f"'{task_id}'", "")  # nothing but the id asked for
        # The same single read of the table, whether the job is someone else's or nobody's.
        assert theirs.operations == nobodys.operations == ["Query"], (method, path)

    # B's attempts changed nothing: A still sees the job as it was, and its delivery kept its rounds.
    job = bridge.api.get(f"{GENERATIONS}/{task_id}").json()
    assert job["status"] == "canceled" and job["owner_id"] == bridge.owner_id
    [delivery] = bridge.delivery_rows(task_id)
    assert delivery["round"] == 1
    # The delivery row itself names the owner too.
    row = bridge.aws.client("dynamodb").get_item(
        TableName=bridge.stack.resources["WebhookDeliveriesTable"],
        Key={"task_id": {"S": task_id}, "event_id": {"S": event_id}},
    )["Item"]
    assert row["owner_id"] == {"S": bridge.owner_id}
    assert bridge.api.post(f"{GENERATIONS}/{task_id}/webhooks/{event_id}/redeliver").status_code == 202


def test_b_cannot_cancel_a_running_job_of_a(bridge: LocalBridge, tenant_b: httpx.Client) -> None:
    task_id = submit(bridge.api, bridge, run_s=60, queue_s=1)
    assert tenant_b.post(f"{GENERATIONS}/{task_id}/cancel").status_code == 404
    assert bridge.api.get(f"{GENERATIONS}/{task_id}").json()["status"] in ("pending", "processing")
    assert not bridge.events.for_task(task_id)  # nothing was published
    assert bridge.api.post(f"{GENERATIONS}/{task_id}/cancel").json()["status"] == "canceled"


def test_lists_hold_only_the_callers_jobs_and_cursors_stay_with_their_list(
    bridge: LocalBridge, tenant_b: httpx.Client
) -> None:
    theirs = [submit(tenant_b, bridge, run_s=60, queue_s=60) for _ in range(3)]
    mine = [submit(bridge.api, bridge, run_s=60, queue_s=60) for _ in range(2)]

    page = tenant_b.get(GENERATIONS, params={"limit": 100}).json()
    listed = [job["task_id"] for job in page["data"]]
    assert set(theirs) <= set(listed) and not set(mine) & set(listed)
    assert {job["owner_id"] for job in page["data"]} == {owner_of(tenant_b)}

    # Paging B's list one job at a time: full pages, newest first, and only B's jobs.
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 1} | ({"cursor": cursor} if cursor else {})
        page = tenant_b.get(GENERATIONS, params=params).json()
        assert len(page["data"]) == 1, page  # never short: no other owner's rows were dropped
        seen.append(page["data"][0]["task_id"])
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert seen == listed

    # The status filter reads the owner's own partition of that status.
    pending = tenant_b.get(GENERATIONS, params={"status": "pending", "limit": 100}).json()["data"]
    assert {job["task_id"] for job in pending} >= set(theirs) and not {job["task_id"] for job in pending} & set(mine)
    assert all(job["status"] == "pending" for job in pending)

    # A cursor belongs to its list: another owner's, or another status's, is a 400.
    a_cursor = bridge.api.get(GENERATIONS, params={"limit": 1}).json()["next_cursor"]
    b_cursor = tenant_b.get(GENERATIONS, params={"limit": 1}).json()["next_cursor"]
    assert a_cursor and b_cursor
    for client, cursor, params in (
        (tenant_b, a_cursor, {}),
        (bridge.api, b_cursor, {}),
        (tenant_b, b_cursor, {"status": "pending"}),
    ):
        refused = client.get(GENERATIONS, params={"limit": 1, "cursor": cursor} | params)
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["param"] == "cursor"
    for task_id in theirs:
        assert tenant_b.post(f"{GENERATIONS}/{task_id}/cancel").status_code == 200
    for task_id in mine:
        assert bridge.api.post(f"{GENERATIONS}/{task_id}/cancel").status_code == 200


def test_a_new_tenant_sees_an_empty_list(bridge: LocalBridge) -> None:
    with bridge.client_for(OPERATOR_API_KEY) as newcomer:  # not an operator unless the settings say so
        assert newcomer.get(GENERATIONS).json() == {
            "object": "list",
            "data": [],
            "has_more": False,
            "next_cursor": None,
        }


def test_an_idempotency_key_is_per_owner(bridge: LocalBridge, tenant_b: httpx.Client) -> None:
    headers = {"Idempotency-Key": f"order-{uuid.uuid4().hex[:8]}"}
    bridge.simulator.queue_next(run_s=60, queue_s=60)
    first = bridge.api.post(GENERATIONS, json=FOX, headers=headers)
    bridge.simulator.queue_next(run_s=60, queue_s=60)
    other = tenant_b.post(GENERATIONS, json=FOX, headers=headers)
    replay = bridge.api.post(GENERATIONS, json=FOX, headers=headers)
    assert first.status_code == other.status_code == replay.status_code == 202
    # B's submit under A's key is a fresh task of B's, and A's replay still finds A's own.
    assert other.json()["task_id"] != first.json()["task_id"]
    assert replay.json() == first.json()
    assert tenant_b.get(f"{GENERATIONS}/{other.json()['task_id']}").status_code == 200
    assert tenant_b.get(f"{GENERATIONS}/{first.json()['task_id']}").status_code == 404
    for client, answer in ((bridge.api, first), (tenant_b, other)):
        client.post(f"{GENERATIONS}/{answer.json()['task_id']}/cancel")


def test_in_pass_through_mode_an_idempotency_key_is_per_router_one_key(bridge: LocalBridge) -> None:
    keys = ["sk-tenant-account-one-51c2", "sk-tenant-account-two-8e07"]
    bridge.simulator.configure(account_keys=keys)
    try:
        headers = {"Idempotency-Key": f"order-{uuid.uuid4().hex[:8]}"}
        answers = []
        for key, reaches_router_one in ((keys[0], True), (keys[1], True), (keys[0], False)):
            if reaches_router_one:
                bridge.simulator.queue_next(run_s=60, queue_s=60)
            response = bridge.api.post(GENERATIONS, json=FOX, headers=headers | {"X-Router-One-Key": key})
            assert response.status_code == 202, response.text
            answers.append(response.json()["task_id"])
        # The same key and body on another Router One account is another job; on the first, a replay.
        assert answers[0] != answers[1] and answers[2] == answers[0]
        for task_id in set(answers):
            bridge.api.post(f"{GENERATIONS}/{task_id}/cancel")
    finally:
        bridge.simulator.configure(account_keys=[])


def test_an_sns_filter_on_the_owner_takes_only_that_tenants_events(bridge: LocalBridge, tenant_b: httpx.Client) -> None:
    sqs, sns = bridge.aws.client("sqs"), bridge.aws.client("sns")
    queue_url = sqs.create_queue(QueueName=f"tenant-b-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    b_owner = owner_of(tenant_b)
    subscription = sns.subscribe(
        TopicArn=bridge.stack.topic_arn,
        Protocol="sqs",
        Endpoint=queue_arn,
        Attributes={"FilterPolicy": json.dumps({"owner_id": [b_owner]})},
    )["SubscriptionArn"]
    try:
        a_task = submit(bridge.api, bridge, run_s=0.5, queue_s=0.1)
        b_task = submit(tenant_b, bridge, run_s=0.5, queue_s=0.1)
        bridge.events.wait_for(a_task)
        bridge.events.wait_for(b_task)
        received = drain(sqs, queue_url, until=lambda events: b_task in {e["data"]["task_id"] for e in events})
        assert {event["data"]["task_id"] for event in received} == {b_task}
        assert {event["data"]["owner_id"] for event in received} == {b_owner}
        # And the EventBridge copy carries the owner in its detail, for a rule's pattern.
        [bus_event] = bridge.events.for_task(b_task)["eventbridge"]
        assert bus_event["event"]["data"]["owner_id"] == b_owner
    finally:
        sns.unsubscribe(SubscriptionArn=subscription)
        sqs.delete_queue(QueueUrl=queue_url)


def drain(sqs: Any, queue_url: str, *, until: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
    """Every event that reached the queue, read until `until` holds and the queue is then empty."""
    events: list[dict[str, Any]] = []
    for _ in range(30):
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        )
        events += [json.loads(json.loads(m["Body"])["Message"]) for m in messages]
        if not messages and until(events):
            return events
    raise AssertionError(f"the filtered queue got {events}")


def test_operators_read_and_list_everyones_jobs_but_change_none(
    bridge: LocalBridge, tenant_b: httpx.Client, operator: httpx.Client
) -> None:
    assert operator.get("/v1/account").json()["operator"] is True
    a_task = submit(bridge.api, bridge, with_callback(bridge, "/hooks/tenancy-op"), run_s=60, queue_s=60)
    b_task = submit(tenant_b, bridge, run_s=60, queue_s=60)
    # A row written before owners existed: no owner_id. Operators see it; tenants do not.
    legacy = f"v_legacy_{uuid.uuid4().hex[:8]}"
    now = utcnow()
    jobs.create_job(
        JobRecord(
            task_id=legacy,
            model="video-default",
            request=FOX,
            created_at=iso(now),
            deadline_at=2**31,
            expires_at=int(now.timestamp()) + 86_400,
        )
    )

    for task_id in (a_task, b_task, legacy):
        assert operator.get(f"{GENERATIONS}/{task_id}").status_code == 200
    assert operator.get(f"{GENERATIONS}/{a_task}/webhooks").status_code == 200
    assert bridge.api.get(f"{GENERATIONS}/{legacy}").status_code == 404
    assert tenant_b.get(f"{GENERATIONS}/{legacy}").status_code == 404

    everyone = operator.get(GENERATIONS, params={"limit": 100}).json()["data"]
    assert {a_task, b_task, legacy} <= {job["task_id"] for job in everyone}
    pending = operator.get(GENERATIONS, params={"status": "pending", "limit": 100}).json()["data"]
    assert {a_task, b_task, legacy} <= {job["task_id"] for job in pending}

    # Reading is all: cancel and redeliver are the owner's alone.
    assert operator.post(f"{GENERATIONS}/{a_task}/cancel").status_code == 404
    assert operator.post(f"{GENERATIONS}/{legacy}/cancel").status_code == 404
    assert bridge.api.get(f"{GENERATIONS}/{a_task}").json()["status"] == "pending"
    assert bridge.api.post(f"{GENERATIONS}/{a_task}/cancel").status_code == 200
    assert tenant_b.post(f"{GENERATIONS}/{b_task}/cancel").status_code == 200
    event_id = bridge.wait_for_delivery_status(a_task, "delivered")["event_id"]
    assert operator.post(f"{GENERATIONS}/{a_task}/webhooks/{event_id}/redeliver").status_code == 404
