"""Submit stops half-way after Router One accepted the task: the job is still recorded and tracked.

Each test injects a failure at one step of submit (the job write, the loop start, a crash between
them, and the fallback queue too) and follows the task to its outcome event.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from bridge import jobs, reconcile, submission
from bridge.timeutil import utcnow

from .conftest import LocalBridge

pytestmark = pytest.mark.integration


def failing_once(real: Callable[..., Any], error: BaseException) -> Callable[..., Any]:
    calls = {"n": 0}

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise error
        return real(*args, **kwargs)

    return wrapper


def aws_error(operation: str) -> ClientError:
    return ClientError({"Error": {"Code": "InternalServerError", "Message": "injected"}}, operation)


def test_a_failed_job_write_is_recorded_and_tracked_by_the_reconciler(
    bridge: LocalBridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs, "create_job", failing_once(jobs.create_job, aws_error("PutItem")))
    response = bridge.submit(run_s=1.0, queue_s=0.1)
    assert response.status_code == 202, response.text
    task_id = response.json()["task_id"]
    event = bridge.events.wait_for(task_id, timeout=60)["sns"][0]["event"]
    assert event["data"]["status"] == "completed"
    assert bridge.simulator.task(task_id)["submits"] == 1  # Router One was asked once
    # The owner travelled with the reconcile message: the job is still its submitter's alone.
    assert event["data"]["owner_id"] == bridge.owner_id
    assert bridge.api.get(f"/v1/videos/generations/{task_id}").json()["owner_id"] == bridge.owner_id


def test_a_failed_loop_start_is_retried_by_the_reconciler(bridge: LocalBridge, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        submission, "start_tracking", failing_once(submission.start_tracking, aws_error("StartExecution"))
    )
    response = bridge.submit(run_s=1.0, queue_s=0.1)
    assert response.status_code == 202, response.text
    task_id = response.json()["task_id"]
    assert bridge.events.wait_for(task_id, timeout=60)["sns"][0]["event"]["data"]["status"] == "completed"
    assert len([e for e in bridge.executions(task_id) if e["name"] == task_id]) == 1


def test_a_crash_between_the_job_write_and_the_loop_start_is_caught_by_the_sweep(
    bridge: LocalBridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    class ProcessDied(Exception):
        """Stands for the function being killed: nothing in submit handles it."""

    monkeypatch.setattr(submission, "start_tracking", failing_once(submission.start_tracking, ProcessDied()))
    response = bridge.submit(run_s=1.0, queue_s=0.1)
    assert response.status_code == 500  # what a dead function would leave the client with
    [job] = [
        j
        for j in bridge.api.get("/v1/videos/generations", params={"limit": 5}).json()["data"]
        if not bridge.executions(j["task_id"])
    ]
    task_id = job["task_id"]
    assert job["status"] == "pending"

    # The schedule runs the sweep every 5 minutes; here, as if the grace period had passed.
    swept = reconcile.sweep(now=utcnow() + timedelta(minutes=5))
    assert task_id in swept
    assert bridge.events.wait_for(task_id, timeout=60)["sns"][0]["event"]["data"]["status"] == "completed"
    # A second sweep over tracked jobs starts nothing new.
    reconcile.sweep(now=utcnow() + timedelta(minutes=5))
    assert len([e for e in bridge.executions(task_id) if e["name"] == task_id]) == 1


def test_when_even_the_fallback_queue_fails_the_client_is_told_which_task(
    bridge: LocalBridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs, "create_job", failing_once(jobs.create_job, aws_error("PutItem")))
    monkeypatch.setattr(submission, "defer_to_reconciler", lambda record: False)
    response = bridge.submit(run_s=1.0, queue_s=0.1)
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "tracking_unavailable"
    [task_id] = re.findall(r"v_[0-9a-f]{32}", error["message"])
    assert bridge.simulator.task(task_id)["submits"] == 1  # accepted upstream, and the client knows its id
