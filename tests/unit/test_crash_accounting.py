"""What the bridge does when AWS throttles a read or its own code dies: back off, count, say so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bridge import observability
from bridge.errors import ServiceUnavailable, UpstreamTransientError
from bridge.store import job_lists
from bridge_local.deployer import import_handler
from bridge_local.emulator import LambdaContext

ROOT = Path(__file__).resolve().parents[2]


def row(task_id: str) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "status": "pending",
        "model": "m",
        "created_at": "2026-11-30T12:00:00.000Z",
        "deadline_at": 1,
        "expires_at": 1,
    }


class ThrottledTable:
    """A table whose BatchGetItem leaves every key unprocessed the first `throttled` times."""

    name = "jobs-unit"

    def __init__(self, throttled: int) -> None:
        self.throttled = throttled
        self.calls = 0
        self.meta = self
        self.client = self

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # boto3 spells it so
        self.calls += 1
        keys = RequestItems[self.name]["Keys"]
        if self.calls <= self.throttled:
            return {"Responses": {self.name: []}, "UnprocessedKeys": RequestItems}
        return {"Responses": {self.name: [row(key["task_id"]) for key in keys]}}


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(job_lists.time, "sleep", slept.append)
    return slept


def test_unprocessed_keys_are_asked_again_after_a_growing_pause(
    monkeypatch: pytest.MonkeyPatch, sleeps: list[float]
) -> None:
    table = ThrottledTable(throttled=3)
    monkeypatch.setattr(job_lists, "jobs_table", lambda: table)
    monkeypatch.setattr(job_lists.random, "uniform", lambda low, high: high)  # the longest pause jitter allows

    rows = job_lists._rows_in_order(["a", "b", "c"])

    assert [row.task_id for row in rows] == ["a", "b", "c"]
    assert table.calls == 4
    assert sleeps == [0.1, 0.2, 0.4]


def test_a_table_that_stays_throttled_is_an_error_not_a_short_page(
    monkeypatch: pytest.MonkeyPatch, sleeps: list[float]
) -> None:
    table = ThrottledTable(throttled=1_000)
    monkeypatch.setattr(job_lists, "jobs_table", lambda: table)

    with pytest.raises(ServiceUnavailable):
        job_lists._rows_in_order(["a"])

    assert table.calls == job_lists.BATCH_GET_ATTEMPTS
    assert len(sleeps) == job_lists.BATCH_GET_ATTEMPTS - 1
    assert all(0 <= pause <= job_lists.BATCH_GET_BACKOFF_CAP_S for pause in sleeps)


@pytest.fixture
def poll_handler(monkeypatch: pytest.MonkeyPatch) -> Any:
    return import_handler(ROOT / "functions" / "poll", "app.handler", "fn_poll_crash_accounting")


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    names: list[str] = []
    monkeypatch.setattr(observability.metrics, "add_metric", lambda *, name, **_: names.append(name))
    return names


def context() -> LambdaContext:
    arn = "arn:aws:lambda:us-east-1:123456789012:function:poll"
    return LambdaContext("poll", "$LATEST", arn, memory_limit_in_mb=256, timeout_s=40.0)


def raising(error: Exception) -> Any:
    def poll_once(event: Any) -> Any:
        raise error

    return poll_once


def test_a_poll_crash_is_counted_and_still_raised(poll_handler: Any, counted: list[str], monkeypatch: Any) -> None:
    module = __import__(poll_handler.__module__)
    monkeypatch.setattr(module, "run_invocation", raising(KeyError("task_id")))
    with pytest.raises(KeyError):
        poll_handler({"task_id": "v_1"}, context())
    assert counted == ["PollCrashes"]


def test_an_upstream_hiccup_is_not_a_crash(poll_handler: Any, counted: list[str], monkeypatch: Any) -> None:
    module = __import__(poll_handler.__module__)
    monkeypatch.setattr(module, "run_invocation", raising(UpstreamTransientError("503")))
    with pytest.raises(UpstreamTransientError):
        poll_handler({"task_id": "v_1"}, context())
    # Counted apart, so the crash alarm can take it out of Lambda's Errors.
    assert counted == ["PollUpstreamErrorsRaised"]
