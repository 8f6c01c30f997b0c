"""No stranded outcome: whatever dies after an outcome is recorded, its event still goes out on every
channel, once, with the same id, without any redrive.

Deaths are injected where they hurt: the poll function killed right after its outcome write (as
AWS reports a timeout, running out of memory, or an unknown error), its execution stopped before it
could publish, the api dying between cancel's write and its publish. The state machine is the real
definition; the reconciler's outcome checks run from the real reconcile queue.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bridge.outcomes import checks, lifecycle
from bridge.store import jobs
from bridge_local.emulator import LambdaFault
from bridge_local.iam import running_as

from .conftest import LocalBridge, bridge_settings
from .test_webhooks import submit_with_callback

pytestmark = pytest.mark.integration

CHANNELS = ("sns", "eventbridge")


@pytest.fixture
def quick_checks() -> Iterator[None]:
    # Outcome checks a second after each outcome write (120 s deployed): they run while the
    # execution that recorded the outcome is still retrying, so a check that cannot tell "about to
    # publish" from "died" would publish a second time here.
    with bridge_settings(OUTCOME_CHECK_DELAY_SECONDS="1"):
        yield


def die_once_after(
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    doomed: set[str],
    fault: Callable[[dict[str, Any]], None],
    when: Callable[[dict[str, Any]], bool] = lambda _: True,
    times: int = 1,
) -> list[str]:
    """Wrap `jobs.<name>`: for a task in `doomed`, run the real write, then `fault` (`times` times per
    task, from the first write `when` accepts). Returns the tasks it hit, once per hit."""
    real = getattr(jobs, name)
    died: list[str] = []

    def wrapper(task_id: str, **kwargs: Any) -> Any:
        result = real(task_id, **kwargs)
        if task_id in doomed and died.count(task_id) < times and when(kwargs):
            died.append(task_id)
            fault(kwargs)
        return result

    monkeypatch.setattr(jobs, name, wrapper)
    return died


def published_once(bridge: LocalBridge, task_id: str) -> dict[str, Any]:
    """The job's one terminal event: exactly one on every channel (not once more from the check, not
    zero), the same event id on each."""
    seen = bridge.events.for_task(task_id)
    ids = {channel: [e["event"]["id"] for e in seen.get(channel, [])] for channel in CHANNELS}
    for channel in CHANNELS:
        assert len(ids[channel]) == 1, ids
    assert len({channel_ids[0] for channel_ids in ids.values()}) == 1, ids
    return seen["sns"][0]["event"]


def settle(bridge: LocalBridge, task_id: str) -> None:
    """Wait until nothing is left to publish, then past one more outcome check, for late duplicates."""
    bridge.events.wait_for(task_id, timeout=60)
    bridge.wait_until(lambda: "unpublished_since" not in (bridge.job_row(task_id) or {}), 60, "the mark cleared")
    bridge.wait_for_executions_to_end(task_id, timeout=60)
    time.sleep(3.0)  # a check due a second after the last write, and the queue's poll


@pytest.mark.parametrize("fault", [LambdaFault.timed_out, LambdaFault.out_of_memory, LambdaFault.unknown])
def test_a_poll_killed_after_recording_the_outcome_still_publishes_it_once(
    bridge: LocalBridge, monkeypatch: pytest.MonkeyPatch, quick_checks: None, fault: Callable[[], LambdaFault]
) -> None:
    doomed: set[str] = set()

    def kill(_: dict[str, Any]) -> None:
        raise fault()

    died = die_once_after(monkeypatch, "record_outcome", doomed, kill)
    task_id = submit_with_callback(bridge, "/hooks/killed-poll")
    doomed.add(task_id)
    settle(bridge, task_id)

    assert died == [task_id]
    event = published_once(bridge, task_id)
    [webhook] = [r for r in bridge.receiver.deliveries("/hooks/killed-poll") if r.event["data"]["task_id"] == task_id]
    assert webhook.event["id"] == event["id"]
    assert webhook.event["data"]["status"] == "completed"

    # The same execution carried on: its poll failed as AWS reports the death, then was retried.
    [execution] = [e for e in bridge.executions(task_id) if "--" not in e["name"]]
    assert execution["status"] == "SUCCEEDED"
    history = bridge.aws.client("stepfunctions").get_execution_history(
        executionArn=execution["executionArn"], maxResults=1000
    )
    errors = [e["taskFailedEventDetails"]["error"] for e in history["events"] if e["type"] == "TaskFailed"]
    assert errors == [fault().error_type]
    assert not [e for e in bridge.executions(task_id) if "--outcome-" in e["name"]]  # the check had nothing to do


def test_a_poll_dying_past_its_retries_waits_and_the_same_execution_publishes(
    bridge: LocalBridge, monkeypatch: pytest.MonkeyPatch, quick_checks: None
) -> None:
    doomed: set[str] = set()

    def kill(_: dict[str, Any]) -> None:
        raise LambdaFault.timed_out()

    # The first try and both retries die: the Catch sends the loop back to its wait, and the
    # next poll (same execution) finds the outcome recorded by itself and publishes it.
    died = die_once_after(monkeypatch, "record_outcome", doomed, kill, times=3)
    task_id = submit_with_callback(bridge, "/hooks/caught-poll")
    doomed.add(task_id)
    settle(bridge, task_id)

    assert died == [task_id] * 3
    event = published_once(bridge, task_id)
    hooks = [r for r in bridge.receiver.deliveries("/hooks/caught-poll") if r.event["data"]["task_id"] == task_id]
    assert [h.event["id"] for h in hooks] == [event["id"]]
    [execution] = bridge.executions(task_id)
    assert execution["status"] == "SUCCEEDED"
    history = bridge.aws.client("stepfunctions").get_execution_history(
        executionArn=execution["executionArn"], maxResults=1000
    )["events"]
    assert len([e for e in history if e["type"] == "TaskFailed"]) == 3
    # The last wait was entered from the Catch, carrying the error it caught.
    waits = [json.loads(e["stateEnteredEventDetails"]["input"]) for e in history if e["type"] == "WaitStateEntered"]
    assert waits[-1]["last_error"]["Error"] == "Sandbox.Timedout"


def test_a_retried_poll_that_finds_its_own_outcome_recorded_publishes_it_whatever_upstream_says(
    bridge: LocalBridge, monkeypatch: pytest.MonkeyPatch, quick_checks: None
) -> None:
    doomed: set[str] = set()

    def kill(_: dict[str, Any]) -> None:
        raise LambdaFault.timed_out()

    died = die_once_after(monkeypatch, "record_outcome", doomed, kill)
    # The first poll is refused for good (404: the job fails), then the poll dies; its retry hears
    # "processing". The job has ended by this execution's own write: the retry must publish it,
    # not stop as if another execution had (which would also make the check take it as published).
    task_id = bridge.submit(run_s=30.0, queue_s=0.2, poll_errors=[404]).json()["task_id"]
    doomed.add(task_id)
    settle(bridge, task_id)

    assert died == [task_id]
    assert published_once(bridge, task_id)["data"]["status"] == "failed"
    [execution] = bridge.executions(task_id)
    assert execution["status"] == "SUCCEEDED"


def test_an_outcome_whose_execution_died_before_publishing_is_published_by_the_check(
    bridge: LocalBridge, monkeypatch: pytest.MonkeyPatch, quick_checks: None
) -> None:
    doomed: set[str] = set()

    def stop_and_die(kwargs: dict[str, Any]) -> None:
        # Stopped for good (the same as a failed execution for what follows): nobody retries this poll.
        bridge.aws.client("stepfunctions").stop_execution(executionArn=kwargs["execution_id"], cause="injected")
        raise LambdaFault.timed_out()

    died = die_once_after(monkeypatch, "record_outcome", doomed, stop_and_die)
    task_id = submit_with_callback(bridge, "/hooks/dead-execution")
    doomed.add(task_id)
    settle(bridge, task_id)

    assert died == [task_id]
    event = published_once(bridge, task_id)
    hooks = [r for r in bridge.receiver.deliveries("/hooks/dead-execution") if r.event["data"]["task_id"] == task_id]
    assert [h.event["id"] for h in hooks] == [event["id"]]
    assert event["data"]["status"] == "completed"
    by_name = {e["name"]: e["status"] for e in bridge.executions(task_id)}
    # The loop ended without publishing (moto calls a stop during a failing task FAILED, AWS ABORTED);
    # the check published in an execution of its own.
    assert by_name.pop(task_id) in ("ABORTED", "FAILED")
    assert by_name == {f"{task_id}--outcome-1": "SUCCEEDED"}


def test_an_api_crash_between_cancel_and_its_publish_is_published_by_the_check(
    bridge: LocalBridge, monkeypatch: pytest.MonkeyPatch, quick_checks: None
) -> None:
    class ProcessDied(Exception):
        """Stands for the api function being killed after the cancel was recorded."""

    def die(*args: Any) -> None:
        raise ProcessDied

    task_id = submit_with_callback(bridge, "/hooks/cancel-crash")
    monkeypatch.setattr(lifecycle, "_publish", die)
    answer = bridge.api.post(f"/v1/videos/generations/{task_id}/cancel")
    assert answer.status_code == 500  # what a dead function leaves the client with
    monkeypatch.undo()
    assert bridge.api.get(f"/v1/videos/generations/{task_id}").json()["status"] == "canceled"
    settle(bridge, task_id)

    event = published_once(bridge, task_id)
    assert event["type"] == "video.generation.canceled"
    [webhook] = bridge.receiver.wait_for("/hooks/cancel-crash")
    assert webhook.event["id"] == event["id"] and webhook.verified
    by_name = {e["name"]: e["status"] for e in bridge.executions(task_id)}
    assert by_name == {task_id: "ABORTED", f"{task_id}--outcome-1": "SUCCEEDED"}


def test_a_retried_poll_still_sends_started(bridge: LocalBridge, monkeypatch: pytest.MonkeyPatch) -> None:
    doomed: set[str] = set()

    def kill(_: dict[str, Any]) -> None:
        raise LambdaFault.timed_out()

    # The poll that first stores `processing` dies after its write, before `started` goes out.
    died = die_once_after(monkeypatch, "record_progress", doomed, kill, when=lambda kw: kw["status"] == "processing")
    with bridge_settings(PUBLISH_RUNNING_EVENTS="true"):
        task_id = bridge.submit(run_s=9.0, queue_s=3.5).json()["task_id"]
        doomed.add(task_id)
        bridge.events.wait_for(task_id, timeout=60)
        bridge.wait_for_executions_to_end(task_id, timeout=60)

    assert died == [task_id]
    seen = bridge.events.for_task(task_id)
    for channel in CHANNELS:
        kinds = [e["event"]["type"].rpartition(".")[2] for e in seen[channel]]
        assert kinds.count("started") == 1, kinds
        assert kinds.count("completed") == 1, kinds


def test_a_failed_event_carries_the_last_progress_like_the_status_answer(bridge: LocalBridge) -> None:
    task_id = bridge.submit(run_s=8.0, queue_s=0.2, outcome="failed").json()["task_id"]
    event = bridge.events.wait_for(task_id)["sns"][0]["event"]
    status = bridge.api.get(f"/v1/videos/generations/{task_id}").json()
    assert event["data"]["status"] == status["status"] == "failed"
    assert event["data"]["progress"] == status["progress"]
    assert isinstance(status["progress"], int) and 0 < status["progress"] < 100


def test_an_outcome_published_by_an_execution_without_the_mark_step_is_not_published_again(
    bridge: LocalBridge,
) -> None:
    # During an upgrade, executions in flight run the old definition (no MarkPublished) while the
    # poll function already marks outcomes: their rows stay marked after a publish that happened.
    task_id = bridge.submit(run_s=1.0, queue_s=0.1).json()["task_id"]
    bridge.events.wait_for(task_id)
    bridge.wait_for_executions_to_end(task_id)
    bridge.aws.client("dynamodb").update_item(
        TableName=bridge.stack.table_name,
        Key={"task_id": {"S": task_id}},
        UpdateExpression="SET unpublished_since = :t",
        ExpressionAttributeValues={":t": {"S": "2026-01-01T00:00:00.000Z"}},
    )

    # With the reconcile function's role, as the check runs on Lambda: clearing the mark is its to make.
    with running_as(bridge.stack.roles["ReconcileFunctionRole"]):
        assert checks.check_outcome(checks.OutcomeCheck(task_id=task_id)) == "published"

    assert "unpublished_since" not in (bridge.job_row(task_id) or {})
    assert [e["status"] for e in bridge.executions(task_id)] == ["SUCCEEDED"]  # nothing started again
    published_once(bridge, task_id)
