"""The whole bridge on embedded AWS: real state machine, real handlers, the simulator over HTTP.

Assertions are on DynamoDB rows, on Step Functions executions, and on the messages that
actually arrived from the SNS topic and the EventBridge bus.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import MAX_POLLS_PER_EXECUTION, ROUTER_ONE_KEY, LocalBridge, bridge_settings

pytestmark = pytest.mark.integration


def s(item: dict[str, Any], name: str) -> str | None:
    """A string attribute of a raw DynamoDB item."""
    return (item.get(name) or {}).get("S")


def submitted_task(bridge: LocalBridge, **sim: Any) -> str:
    response = bridge.submit(**sim)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "pending"
    return body["task_id"]


def assert_one_event_per_channel(bridge: LocalBridge, task_id: str, expected_type: str) -> dict[str, Any]:
    """Both channels got exactly one event, the same envelope, with the right labels."""
    bridge.events.wait_for(task_id)
    bridge.wait_for_executions_to_end(task_id)
    seen = bridge.events.for_task(task_id)
    assert len(seen["sns"]) == 1, seen["sns"]
    assert len(seen["eventbridge"]) == 1, seen["eventbridge"]
    sns, bus = seen["sns"][0], seen["eventbridge"][0]
    assert sns["event"] == bus["event"], "the envelope differs between channels"
    event = sns["event"]
    assert event["type"] == expected_type
    assert sns["attributes"] == {
        "event_type": expected_type,
        "status": event["data"]["status"],
        "model": event["data"]["model"],
        "owner_id": bridge.owner_id,
    }
    assert event["data"]["owner_id"] == bridge.owner_id
    assert bus["source"] == bridge.stack.parameters["EventSource"]
    assert bus["detail_type"] == "Video Generation " + expected_type.rsplit(".", 1)[1].replace("_", " ").title()
    assert ROUTER_ONE_KEY not in json.dumps(seen)
    return event


def test_completed_job_is_recorded_and_published_once_on_both_channels(bridge: LocalBridge) -> None:
    task_id = submitted_task(bridge, run_s=4)

    event = assert_one_event_per_channel(bridge, task_id, "video.generation.completed")

    data = event["data"]
    assert data["task_id"] == task_id and data["status"] == "completed" and data["model"] == "video-default"
    assert data["url"].endswith(f"{task_id}.mp4")
    assert data["url_expires_at"] > data["timings"]["finished_at"]
    assert data["poll_count"] >= 1 and data["error"] is None
    row = bridge.job_row(task_id)
    assert s(row, "status") == "completed"
    assert s(row, "url") == data["url"]
    assert s(row, "event_id") == event["id"]
    assert int(row["poll_count"]["N"]) == data["poll_count"]
    assert row["request"]["M"]["prompt"]["S"] == "a fox in snow"


def test_status_endpoint_shows_progress_from_the_table_without_calling_upstream(bridge: LocalBridge) -> None:
    task_id = submitted_task(bridge, run_s=12, queue_s=0)

    def processing_with_progress() -> dict[str, Any] | None:
        body = bridge.api.get(f"/v1/videos/generations/{task_id}").json()
        return body if body["status"] == "processing" and (body["progress"] or 0) > 0 else None

    upstream_polls_before = bridge.simulator.task(task_id)["polls"]
    body = bridge.wait_until(processing_with_progress, timeout=20, what="progress reported")
    assert 0 < body["progress"] < 100
    assert body["poll_count"] >= 1 and body["model"] == "video-default"
    # Reading status many times costs Router One nothing: polls only come from the loop.
    for _ in range(5):
        assert bridge.api.get(f"/v1/videos/generations/{task_id}").status_code == 200
    assert bridge.simulator.task(task_id)["polls"] <= upstream_polls_before + body["poll_count"] + 1
    assert_one_event_per_channel(bridge, task_id, "video.generation.completed")


def test_failed_generation_publishes_failed_with_the_upstream_reason(bridge: LocalBridge) -> None:
    task_id = submitted_task(bridge, run_s=3, outcome="failed", error_code="content_policy", error_message="too spicy")

    event = assert_one_event_per_channel(bridge, task_id, "video.generation.failed")

    assert event["data"]["url"] is None
    assert event["data"]["error"]["code"] == "content_policy"
    assert "too spicy" in event["data"]["error"]["message"]
    assert s(bridge.job_row(task_id), "status") == "failed"


def test_transient_poll_errors_are_retried_then_the_job_completes(bridge: LocalBridge) -> None:
    task_id = submitted_task(bridge, run_s=3, poll_errors=[503, 429, 500])

    assert_one_event_per_channel(bridge, task_id, "video.generation.completed")

    assert bridge.simulator.task(task_id)["polls"] >= 4
    history = _history(bridge, task_id)
    failures = [e for e in history if e["type"] == "TaskFailed" or e["type"] == "LambdaFunctionFailed"]
    assert failures, "the injected errors should show up as failed attempts that were retried"
    assert any("UpstreamTransientError" in json.dumps(e, default=str) for e in failures)


def test_permanent_poll_error_ends_the_job_as_failed_with_the_upstream_error(bridge: LocalBridge) -> None:
    task_id = submitted_task(bridge, run_s=30, poll_errors=[404])

    event = assert_one_event_per_channel(bridge, task_id, "video.generation.failed")

    assert event["data"]["error"]["code"] == "task_not_found"
    assert s(bridge.job_row(task_id), "status") == "failed"


def test_job_past_its_deadline_ends_as_timed_out(bridge: LocalBridge, short_deadline: None) -> None:
    task_id = submitted_task(bridge, run_s=120)

    event = assert_one_event_per_channel(bridge, task_id, "video.generation.timed_out")

    assert event["data"]["error"]["code"] == "deadline_exceeded"
    assert s(bridge.job_row(task_id), "status") == "timed_out"


def test_long_job_rolls_over_to_new_executions_and_still_publishes_once(bridge: LocalBridge) -> None:
    # One poll per invocation, so each poll is a turn of the state machine and turns add up fast.
    with bridge_settings(POLL_INVOCATION_SECONDS="0"):
        task_id = submitted_task(bridge, run_s=14, queue_s=0)
        assert_one_event_per_channel(bridge, task_id, "video.generation.completed")

    names = sorted(e["name"] for e in bridge.executions(task_id))
    assert names[0] == task_id
    assert f"{task_id}--1" in names, f"expected a continuation after {MAX_POLLS_PER_EXECUTION} polls, got {names}"
    assert all(e["status"] == "SUCCEEDED" for e in bridge.executions(task_id))


def test_submitting_the_same_task_twice_starts_one_loop(bridge: LocalBridge) -> None:
    forced = "v_" + "d0" * 16
    first = submitted_task(bridge, run_s=4, task_id=forced)
    second = submitted_task(bridge, task_id=forced)
    assert first == second == forced

    assert_one_event_per_channel(bridge, forced, "video.generation.completed")

    generation_zero = [e for e in bridge.executions(forced) if e["name"] == forced]
    assert len(generation_zero) == 1
    assert bridge.simulator.task(forced)["submits"] == 2


@pytest.mark.parametrize(
    ("setup", "body", "status", "code"),
    [
        # The bridge's own Router One key refused: not the caller's fault, so not a 401.
        ("wrong_key", None, 502, "upstream_authentication_failed"),
        ("no_balance", None, 402, "insufficient_balance"),
        (
            None,
            {"model": "video-default", "prompt": "x", "image_url": "https://img.test/oversized.png"},
            400,
            "reference_image_invalid",
        ),
    ],
)
def test_submit_rejected_upstream_passes_the_error_through_and_records_nothing(
    bridge: LocalBridge, setup: str | None, body: dict[str, Any] | None, status: int, code: str
) -> None:
    rows_before = _row_count(bridge)
    executions_before = len(_all_executions(bridge))
    if setup == "wrong_key":
        bridge.simulator.configure(api_key="sk-some-other-key")
    if setup == "no_balance":
        bridge.simulator.configure(insufficient_balance=True)
    try:
        response = bridge.submit(body)
    finally:
        bridge.simulator.configure(api_key=ROUTER_ONE_KEY, insufficient_balance=False)

    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code
    assert set(error) >= {"message", "type", "code"}
    assert ROUTER_ONE_KEY not in response.text
    assert _row_count(bridge) == rows_before
    assert len(_all_executions(bridge)) == executions_before


def test_unreachable_upstream_is_a_502_envelope(bridge: LocalBridge) -> None:
    from bridge import settings
    from bridge.upstream import configured

    original = os.environ["ROUTER_ONE_BASE_URL"]
    os.environ["ROUTER_ONE_BASE_URL"] = "http://127.0.0.1:9"  # discard port: nothing listens
    settings.get_settings.cache_clear()
    configured.router_one.cache_clear()
    try:
        response = bridge.submit()
    finally:
        os.environ["ROUTER_ONE_BASE_URL"] = original
        settings.get_settings.cache_clear()
        configured.router_one.cache_clear()
    assert response.status_code == 502
    assert response.json()["error"] == {**response.json()["error"], "type": "api_error", "code": "upstream_error"}


def test_unknown_task_is_a_404_envelope(bridge: LocalBridge) -> None:
    response = bridge.api.get("/v1/videos/generations/v_" + "0" * 32)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "task_not_found"
    assert response.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b"[]", b'{"model": "m"}', b'{"model": "m", "prompt": "p", "duration": "5"}', b"\xff\xfe\x00garbage"],
)
def test_bad_bodies_through_the_http_front_get_400_envelopes_never_500(bridge: LocalBridge, raw: bytes) -> None:
    response = bridge.api.post("/v1/videos/generations", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert set(response.json()["error"]) >= {"message", "type", "code"}


def test_lambda_invokes_are_routed_to_the_real_poll_handler(bridge: LocalBridge) -> None:
    """If the in-process Lambda routing breaks, moto echoes the payload back instead of polling."""
    lam = bridge.aws.client("lambda")
    poll_name = bridge.stack.function_names["PollFunction"]
    task_id = submitted_task(bridge, run_s=60)
    payload = json.loads((Path(__file__).resolve().parents[2] / "events" / "poll.json").read_text())
    payload.update(
        task_id=task_id, deadline_at=4_102_444_800, submitted_at="2026-11-24T20:00:00.000Z", polls_in_execution=0
    )

    with bridge_settings(POLL_INVOCATION_SECONDS="0"):  # one poll, not the job's whole dense phase
        answer = lam.invoke(FunctionName=poll_name, Payload=json.dumps(payload).encode())

    result = json.loads(answer["Payload"].read())
    assert "FunctionError" not in answer, result
    assert result["action"] == "wait" and result["status"] in {"pending", "processing"}
    assert result["next_wait_s"] >= 3
    # A job without a row (deleted under its loop) ends the loop rather than crash every poll.
    payload["task_id"] = "not-a-task-id"
    gone = lam.invoke(FunctionName=poll_name, Payload=json.dumps(payload).encode())
    assert "FunctionError" not in gone and json.loads(gone["Payload"].read())["action"] == "finish"
    # A raised error comes back as a Lambda function error named after its class.
    del payload["task_id"]
    failed = lam.invoke(FunctionName=poll_name, Payload=json.dumps(payload).encode())
    assert failed.get("FunctionError")
    assert json.loads(failed["Payload"].read())["errorType"] == "ValidationError"


@pytest.fixture
def short_deadline(bridge: LocalBridge) -> Any:
    """Jobs submitted inside this fixture get a 5 s deadline (settings are read once per process)."""
    from bridge import settings

    original = os.environ.get("JOB_DEADLINE_SECONDS")
    os.environ["JOB_DEADLINE_SECONDS"] = "5"
    settings.get_settings.cache_clear()
    yield
    if original is None:
        os.environ.pop("JOB_DEADLINE_SECONDS", None)
    else:
        os.environ["JOB_DEADLINE_SECONDS"] = original
    settings.get_settings.cache_clear()


def _history(bridge: LocalBridge, task_id: str) -> list[dict[str, Any]]:
    sfn = bridge.aws.client("stepfunctions")
    events: list[dict[str, Any]] = []
    for execution in bridge.executions(task_id):
        events += sfn.get_execution_history(executionArn=execution["executionArn"], maxResults=1000)["events"]
    return events


def _all_executions(bridge: LocalBridge) -> list[dict[str, Any]]:
    sfn = bridge.aws.client("stepfunctions")
    return sfn.list_executions(stateMachineArn=bridge.stack.state_machine_arn, maxResults=1000)["executions"]


def _row_count(bridge: LocalBridge) -> int:
    return bridge.aws.client("dynamodb").scan(TableName=bridge.stack.table_name, Select="COUNT")["Count"]


def test_a_missing_jobs_table_defers_the_job_to_the_reconciler_instead_of_losing_it(
    bridge: LocalBridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real AWS error (not a mock): the job write fails, the reconcile queue takes the job."""
    import boto3

    from bridge.store import jobs
    from bridge.store.job_record import JobRecord

    real_create_job = jobs.create_job
    failed: list[str] = []

    def first_write_goes_to_a_missing_table(record: JobRecord) -> JobRecord:
        # Only this submit's write misses: the reconciler, which may run at the same moment in
        # this process, writes to the real table (changing the shared env would break it too).
        if not failed:
            failed.append(record.task_id)
            boto3.resource("dynamodb").Table("no-such-table").put_item(Item={"task_id": record.task_id})
        return real_create_job(record)

    monkeypatch.setattr(jobs, "create_job", first_write_goes_to_a_missing_table)
    response = bridge.submit(run_s=1.0, queue_s=0.1)
    assert response.status_code == 202, response.text
    task_id = response.json()["task_id"]
    assert failed == [task_id]  # the write really failed, with the emulator's own error
    # The reconciler records and tracks it; the outcome arrives as usual.
    assert bridge.events.wait_for(task_id, timeout=60)["sns"][0]["event"]["data"]["status"] == "completed"
