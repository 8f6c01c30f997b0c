"""Cancel, list and idempotent submit, through the HTTP front on embedded AWS with the simulator."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import LocalBridge, bridge_settings
from .test_webhooks import submit_with_callback

pytestmark = pytest.mark.integration


def test_cancel_stops_the_loop_and_publishes_canceled_everywhere(bridge: LocalBridge) -> None:
    task_id = submit_with_callback(bridge, "/hooks/cancel")
    # A long job: it would run for a minute if nobody canceled it.
    bridge.simulator.task(task_id)
    answer = bridge.api.post(f"/v1/videos/generations/{task_id}/cancel")
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "canceled"

    events = bridge.events.wait_for(task_id)
    for channel in ("sns", "eventbridge"):
        [event] = events[channel]
        assert event["event"]["type"] == "video.generation.canceled"
        assert event["event"]["data"]["status"] == "canceled"
    assert events["eventbridge"][0]["detail_type"] == "Video Generation Canceled"
    [webhook] = bridge.receiver.wait_for("/hooks/cancel")
    assert webhook.event["type"] == "video.generation.canceled" and webhook.verified

    ended = bridge.wait_for_executions_to_end(task_id)
    tracking = [e for e in ended if not e["name"].endswith("--canceled")]
    assert tracking and all(e["status"] == "ABORTED" for e in tracking)
    assert bridge.api.get(f"/v1/videos/generations/{task_id}").json()["status"] == "canceled"

    # Again: a clear conflict, nothing published twice.
    again = bridge.api.post(f"/v1/videos/generations/{task_id}/cancel")
    assert again.status_code in (200, 409)


def test_a_cancel_stops_an_invocation_that_is_polling_at_its_next_poll(bridge: LocalBridge) -> None:
    # A minute-long job polled every 3 s: its invocation is in the middle of sleeping and polling.
    task_id = bridge.submit(run_s=60.0, queue_s=0.2).json()["task_id"]
    bridge.wait_until(lambda: bridge.simulator.task(task_id)["polls"] >= 2, timeout=30, what="two polls")
    answer = bridge.api.post(f"/v1/videos/generations/{task_id}/cancel")
    assert answer.status_code == 200, answer.text
    polls_at_cancel = bridge.simulator.task(task_id)["polls"]
    recorded_at_cancel = int(bridge.job_row(task_id)["poll_count"]["N"])

    events = bridge.events.wait_for(task_id)
    time.sleep(2 * 3 + 1)  # two poll intervals: the invocation would have polled twice more
    # At most the one poll it was sleeping towards, which found the job ended: nothing recorded or sent.
    assert bridge.simulator.task(task_id)["polls"] <= polls_at_cancel + 1
    assert int(bridge.job_row(task_id)["poll_count"]["N"]) == recorded_at_cancel
    later = bridge.events.for_task(task_id)
    assert (
        [e["event"]["type"] for e in later["sns"]]
        == ["video.generation.canceled"]
        == [e["event"]["type"] for e in events["sns"]]
    )


def test_cancelling_a_finished_job_is_a_409_envelope(bridge: LocalBridge) -> None:
    response = bridge.submit(run_s=0.5, queue_s=0.1)
    task_id = response.json()["task_id"]
    bridge.events.wait_for(task_id)
    answer = bridge.api.post(f"/v1/videos/generations/{task_id}/cancel")
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "job_already_finished"
    assert bridge.api.post("/v1/videos/generations/v_unknown/cancel").status_code == 404


def test_list_is_newest_first_filtered_and_paginated(bridge: LocalBridge) -> None:
    ids = [bridge.submit(run_s=60, queue_s=60).json()["task_id"] for _ in range(3)]
    page = bridge.api.get("/v1/videos/generations", params={"limit": 2}).json()
    assert page["object"] == "list" and len(page["data"]) == 2 and page["has_more"]
    assert [job["task_id"] for job in page["data"]] == ids[::-1][:2]
    rest = bridge.api.get("/v1/videos/generations", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert rest["data"][0]["task_id"] == ids[0]
    created = [job["created_at"] for job in page["data"] + rest["data"]]
    assert created == sorted(created, reverse=True)

    pending = bridge.api.get("/v1/videos/generations", params={"status": "pending", "limit": 100}).json()
    assert set(ids) <= {job["task_id"] for job in pending["data"]}
    assert all(job["status"] == "pending" for job in pending["data"])
    for task_id in ids:
        bridge.api.post(f"/v1/videos/generations/{task_id}/cancel")


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"status": "done"}, "status"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"cursor": "garbage!"}, "cursor"),
        ({"cursor": "eyJmb28iOiAiYmFyIn0"}, "cursor"),  # {"foo": "bar"}: JSON, but not a key of ours
    ],
)
def test_bad_list_parameters_are_400s_naming_them(bridge: LocalBridge, params: dict[str, str], param: str) -> None:
    response = bridge.api.get("/v1/videos/generations", params=params)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


def test_idempotent_submit_returns_the_first_answer_without_a_second_upstream_call(bridge: LocalBridge) -> None:
    key = f"order-{uuid.uuid4()}"
    body = {"model": "video-default", "prompt": "a fox in snow [sim duration=60]"}
    before = bridge.simulator.task_count()
    first = bridge.api.post("/v1/videos/generations", json=body, headers={"Idempotency-Key": key})
    second = bridge.api.post("/v1/videos/generations", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    assert bridge.simulator.task_count() == before + 1

    other = bridge.api.post(
        "/v1/videos/generations", json=body | {"prompt": "a different fox"}, headers={"Idempotency-Key": key}
    )
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert bridge.simulator.task_count() == before + 1
    bridge.api.post(f"/v1/videos/generations/{first.json()['task_id']}/cancel")


def test_a_failed_submit_is_not_remembered_under_its_key(bridge: LocalBridge) -> None:
    key = f"order-{uuid.uuid4()}"
    bridge.simulator.configure(insufficient_balance=True)
    try:
        refused = bridge.api.post(
            "/v1/videos/generations", json={"model": "video-default", "prompt": "x"}, headers={"Idempotency-Key": key}
        )
    finally:
        bridge.simulator.configure(insufficient_balance=False)
    assert refused.status_code == 402
    retried = bridge.api.post(
        "/v1/videos/generations",
        json={"model": "video-default", "prompt": "x [sim duration=1]"},
        headers={"Idempotency-Key": key},
    )
    # The body differs only because a refused request left no record to compare with.
    assert retried.status_code == 202, retried.text


@pytest.fixture
def eta_policy() -> Iterator[None]:
    with bridge_settings(POLLING_POLICY="eta"):
        yield


def test_eta_policy_drives_the_real_loop_and_feeds_the_models_history(bridge: LocalBridge, eta_policy: Any) -> None:
    model = f"video-eta-{uuid.uuid4().hex[:6]}"
    response = bridge.submit({"model": model, "prompt": "a fox in snow"}, run_s=10.0, queue_s=0.2)
    assert response.status_code == 202, response.text
    task_id = response.json()["task_id"]
    event = bridge.events.wait_for(task_id, timeout=60)["sns"][0]["event"]
    assert event["data"]["status"] == "completed"

    sfn = bridge.aws.client("stepfunctions")
    waits = []
    for execution in bridge.wait_for_executions_to_end(task_id):
        history = sfn.get_execution_history(executionArn=execution["executionArn"], maxResults=1000)["events"]
        for entry in history:
            details = entry.get("stateEnteredEventDetails") or {}
            if details.get("name") == "WaitBeforePoll":
                state = json.loads(details["input"])
                waits.append(state["next_wait_s"])
                assert "poll_memory" in state
    assert waits and min(waits) >= 3
    stats = bridge.aws.client("dynamodb").get_item(
        TableName=bridge.stack.table_name, Key={"task_id": {"S": f"#model#{model}"}}
    )["Item"]
    assert int(stats["samples"]["N"]) == 1 and 5 <= int(stats["d0"]["N"]) <= 20
    # Statistics rows are not jobs.
    assert bridge.api.get(f"/v1/videos/generations/%23model%23{model}").status_code == 404


@pytest.fixture
def running_events_on_bus() -> Iterator[None]:
    with bridge_settings(PUBLISH_RUNNING_EVENTS="true"):
        yield


def test_started_and_progress_reach_sns_and_eventbridge_when_enabled(
    bridge: LocalBridge, running_events_on_bus: Any
) -> None:
    task_id = bridge.submit(run_s=14.0, queue_s=0.2).json()["task_id"]

    def completed_everywhere() -> dict[str, list[dict[str, Any]]] | None:
        seen = bridge.events.for_task(task_id)
        done = all(
            any(e["event"]["type"] == "video.generation.completed" for e in seen.get(channel, []))
            for channel in ("sns", "eventbridge")
        )
        return seen if done else None

    seen = bridge.wait_until(completed_everywhere, timeout=60, what="completion on both channels")
    for channel in ("sns", "eventbridge"):
        types = [e["event"]["type"].rpartition(".")[2] for e in sorted(seen[channel], key=lambda e: e["event"]["time"])]
        assert types[0] == "started" and types[-1] == "completed", types
        assert types.count("started") == 1 and "progress" in types
    detail_types = {e["detail_type"] for e in seen["eventbridge"]}
    assert {"Video Generation Started", "Video Generation Progress", "Video Generation Completed"} <= detail_types
    attributes = [e["attributes"]["event_type"] for e in seen["sns"]]
    assert "video.generation.progress" in attributes
    # Throttled like webhooks: one progress event per configured interval (5 s here), polls every 3 s.
    progress_times = sorted(e["event"]["time"] for e in seen["sns"] if e["event"]["type"].endswith("progress"))
    polls = int(bridge.job_row(task_id)["poll_count"]["N"])
    assert len(progress_times) < polls - 1


def test_running_events_stay_off_the_bus_by_default(bridge: LocalBridge) -> None:
    task_id = bridge.submit(run_s=7.0, queue_s=0.2).json()["task_id"]
    bridge.events.wait_for(task_id)
    bridge.wait_for_executions_to_end(task_id)
    seen = bridge.events.for_task(task_id)
    assert [e["event"]["type"] for e in seen["sns"]] == ["video.generation.completed"]
    assert [e["event"]["type"] for e in seen["eventbridge"]] == ["video.generation.completed"]


def test_the_benchmarks_transition_count_matches_a_real_execution(
    bridge: LocalBridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    from benchmarks.polling_benchmark import state_transitions
    from bridge.settings import get_settings

    # The benchmark models the default stack (no video copy step); a short invocation budget makes
    # a short job take two turns of a few polls each.
    monkeypatch.setenv("KEEP_VIDEOS", "false")
    monkeypatch.setenv("POLL_INVOCATION_SECONDS", "5")
    get_settings.cache_clear()

    task_id = bridge.submit(run_s=9.0, queue_s=0.2).json()["task_id"]
    bridge.events.wait_for(task_id)
    [execution] = bridge.wait_for_executions_to_end(task_id)
    history = bridge.aws.client("stepfunctions").get_execution_history(
        executionArn=execution["executionArn"], maxResults=1000
    )["events"]
    entered = [e["stateEnteredEventDetails"]["name"] for e in history if e["type"].endswith("StateEntered")]
    polls = int(bridge.job_row(task_id)["poll_count"]["N"])
    monkeypatch.undo()
    get_settings.cache_clear()
    turns = entered.count("PollUpstream")
    assert turns >= 2 and polls > turns  # several polls in an invocation, and more than one invocation
    assert len(entered) == state_transitions(turns)
    assert entered == ["WaitBeforePoll", "PollUpstream", "RouteOnPollResult"] * turns + ["Done"]
