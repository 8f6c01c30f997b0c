"""Submit stops half-way after Router One accepted the task: the job is still recorded and tracked.

Each test injects a failure at one step of submit (the job write, the loop start, a crash between
them, and the fallback queue too) and follows the task to its outcome event.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from bridge.outcomes import reconcile
from bridge.store import job_lists, jobs
from bridge.submit import submission
from bridge.timeutil import utcnow
from bridge_local.emulator import DUMMY_ROLE_ARN
from bridge_local.iam import running_as
from bridge_local.testing import pending_job_row

from .conftest import LocalBridge, bridge_settings

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

    # The schedule runs the sweep every 5 minutes; here, as if the grace period had passed (with the
    # reconcile function's role, as its scheduled run would have).
    with running_as(bridge.stack.roles["ReconcileFunctionRole"]):
        swept = reconcile.sweep(now=utcnow() + timedelta(minutes=5))
    assert task_id in swept
    assert bridge.events.wait_for(task_id, timeout=60)["sns"][0]["event"]["data"]["status"] == "completed"
    # A second sweep over tracked jobs starts nothing new.
    with running_as(bridge.stack.roles["ReconcileFunctionRole"]):
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


class Budget:
    """A Lambda clock for the sweep: plenty of time for `jobs` more looks, then none."""

    def __init__(self, jobs: int) -> None:
        self.left = jobs

    def __call__(self) -> int:
        self.left -= 1
        return reconcile.SWEEP_RESERVE_MS + 1 if self.left >= 0 else 0


def test_the_sweep_covers_any_number_of_pending_jobs_across_runs(bridge: LocalBridge) -> None:
    count, per_run, page = 1000, 137, 50
    prefix = f"v_sweep{uuid.uuid4().hex[:8]}_"
    created = utcnow() - timedelta(hours=1)
    ids = [f"{prefix}{i:04d}" for i in range(count)]
    table = boto3.session.Session().resource("dynamodb").Table(bridge.stack.table_name)
    sfn = bridge.aws.client("stepfunctions")
    # Starting executions is what is being counted here; a machine that ends at once keeps 1,000
    # of them from loading the simulator with tasks it never accepted.
    target = sfn.create_state_machine(
        name=f"sweep-target-{prefix.rstrip('_')}",
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
        roleArn=DUMMY_ROLE_ARN,
    )["stateMachineArn"]
    with table.batch_writer() as batch:
        for i, task_id in enumerate(ids):
            batch.put_item(Item=pending_job_row(task_id, created + timedelta(milliseconds=i)))
    try:
        runs: list[list[str]] = []
        with bridge_settings(STATE_MACHINE_ARN=target):
            while not runs or job_lists.sweep_cursor(reconcile.SWEEP_CURSOR) is not None:
                assert len(runs) < 50, "the sweep never finished its pass"
                swept = reconcile.sweep(remaining_ms=Budget(per_run), page_size=page)
                runs.append([task_id for task_id in swept if task_id.startswith(prefix)])
        started = [task_id for run in runs for task_id in run]
        assert sorted(started) == ids  # every one, each once
        assert len(runs) >= count // per_run  # no run went past its time
        assert all(len(run) <= per_run for run in runs)
        names = set()
        for listing in sfn.get_paginator("list_executions").paginate(stateMachineArn=target):
            names.update(e["name"] for e in listing["executions"])
        assert set(ids) <= names
    finally:
        with table.batch_writer() as batch:
            for task_id in ids:
                batch.delete_item(Key={"task_id": task_id})
