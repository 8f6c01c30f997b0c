"""How the bridge rides out a misbehaving Router One (docs/upstream-faults.md), end to end.

Each test scripts one fault into the simulated job (``bridge_local.simulator``), lets the real
state machine poll it every 3 s (the session's "fixed" policy), and checks the one outcome on
each channel, the job record, and how often Router One was asked.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import ROUTER_ONE_KEY, LocalBridge

pytestmark = pytest.mark.integration

TERMINAL = {"completed", "failed", "timed_out", "canceled"}


def submitted_task(bridge: LocalBridge, **sim: Any) -> str:
    response = bridge.submit(**sim)
    assert response.status_code == 202, response.text
    return response.json()["task_id"]


def outcome(bridge: LocalBridge, task_id: str, status: str) -> dict[str, Any]:
    """Exactly one event on SNS and one on EventBridge, the same envelope, with `status`."""
    bridge.events.wait_for(task_id)
    bridge.wait_for_executions_to_end(task_id)
    seen = bridge.events.for_task(task_id)
    assert len(seen["sns"]) == 1, seen["sns"]
    assert len(seen["eventbridge"]) == 1, seen["eventbridge"]
    event = seen["sns"][0]["event"]
    assert seen["eventbridge"][0]["event"] == event
    assert event["type"] == f"video.generation.{status}"
    assert event["data"]["status"] == status
    assert ROUTER_ONE_KEY not in json.dumps(seen)
    return event


def job(bridge: LocalBridge, task_id: str) -> dict[str, Any]:
    response = bridge.api.get(f"/v1/videos/generations/{task_id}")
    assert response.status_code == 200, response.text
    return response.json()


def polls(bridge: LocalBridge, task_id: str) -> list[dict[str, Any]]:
    """Every status poll the simulator got for the task: age, fault served, delay, answer."""
    return bridge.simulator.task(task_id)["poll_log"]


def retried_failures(bridge: LocalBridge, task_id: str) -> list[str]:
    """Causes of the poll attempts that failed with UpstreamTransientError (retried by Step Functions)."""
    sfn = bridge.aws.client("stepfunctions")
    causes = []
    for execution in bridge.executions(task_id):
        history = sfn.get_execution_history(executionArn=execution["executionArn"], maxResults=1000)["events"]
        for event in history:
            details = event.get("taskFailedEventDetails") or event.get("lambdaFunctionFailedEventDetails") or {}
            if "UpstreamTransientError" in json.dumps(details):
                causes.append(str(details.get("cause")))
    return causes


class ProgressSampler:
    """Reads the job through the bridge's API every 0.25 s until it ends, keeping each progress seen."""

    def __init__(self, bridge: LocalBridge, task_id: str) -> None:
        self._http = httpx.Client(base_url=bridge.api.base_url, headers=bridge.api.headers, timeout=10)
        self._task_id = task_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.values: list[int] = []
        self.statuses: list[str] = []
        self.upstream_statuses: list[str] = []

    def _run(self) -> None:
        while not self._stop.is_set():
            body = self._http.get(f"/v1/videos/generations/{self._task_id}").json()
            self.statuses.append(body["status"])
            if body.get("progress") is not None:
                self.values.append(body["progress"])
            if body["status"] in TERMINAL:
                return
            self._stop.wait(0.25)

    def __enter__(self) -> ProgressSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._http.close()


@pytest.fixture
def short_upstream_timeout(bridge: LocalBridge, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A 1 s budget per Router One request (settings and clients are cached per process)."""
    from bridge import clients, settings
    from bridge.upstream import configured

    def forget() -> None:
        settings.get_settings.cache_clear()
        clients.reset()
        configured.router_one.cache_clear()

    monkeypatch.setenv("UPSTREAM_TIMEOUT_SECONDS", "1")
    forget()
    yield
    monkeypatch.undo()
    forget()


@pytest.fixture
def short_deadline(bridge: LocalBridge, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Jobs submitted meanwhile get a 5 s deadline."""
    from bridge import settings

    monkeypatch.setenv("JOB_DEADLINE_SECONDS", "5")
    settings.get_settings.cache_clear()
    yield
    monkeypatch.undo()
    settings.get_settings.cache_clear()


# --- transient faults: retried, the job ends normally -----------------------------------------


def test_5xx_is_retried_by_the_state_machine_then_the_job_completes(bridge: LocalBridge) -> None:
    task_id = submitted_task(bridge, run_s=2, poll_errors=[502])

    event = outcome(bridge, task_id, "completed")

    assert event["data"]["url"].endswith(f"{task_id}.mp4")
    assert [p["fault"] for p in polls(bridge, task_id)] == [502, None]
    assert any("502" in cause for cause in retried_failures(bridge, task_id))


def test_429_without_retry_after_backs_off_in_the_state_machine(bridge: LocalBridge) -> None:
    task_id = submitted_task(bridge, run_s=2, poll_errors=["429:retry-after=none"])

    outcome(bridge, task_id, "completed")

    first, second = polls(bridge, task_id)
    assert first["fault"] == "429:retry-after=none" and second["status"] == "completed"
    assert second["age_s"] - first["age_s"] >= 3  # the Retry's first interval
    assert any("429" in cause for cause in retried_failures(bridge, task_id))


def test_429_with_retry_after_waits_as_long_as_asked(bridge: LocalBridge) -> None:
    task_id = submitted_task(bridge, run_s=2, poll_errors=["429:retry-after=5"])

    outcome(bridge, task_id, "completed")

    first, second = polls(bridge, task_id)
    assert first["fault"] == "429:retry-after=5" and second["status"] == "completed"
    assert 5 <= second["age_s"] - first["age_s"] < 8  # not the state machine's 3 s retry
    assert retried_failures(bridge, task_id) == []  # a planned wait, not a failed attempt


def test_answers_slower_than_the_per_request_timeout_are_retried(
    bridge: LocalBridge, short_upstream_timeout: None
) -> None:
    task_id = submitted_task(bridge, run_s=2, slow_s=2, slow_polls=1)

    outcome(bridge, task_id, "completed")

    log = polls(bridge, task_id)
    assert [p["delay_s"] for p in log] == [2.0, 0.0]
    assert any("in time" in cause for cause in retried_failures(bridge, task_id))


def test_a_status_answer_dripped_past_the_deadline_is_retried(
    bridge: LocalBridge, short_upstream_timeout: None
) -> None:
    """One byte every 0.5 s never trips a per-read timeout; the 1 s total deadline ends the poll."""
    task_id = submitted_task(bridge, run_s=2, drip_s=0.5, drip_polls=1)

    outcome(bridge, task_id, "completed")

    assert [p["drip_s"] for p in polls(bridge, task_id)] == [0.5, 0.0]
    assert any("in time" in cause for cause in retried_failures(bridge, task_id))


def test_a_poll_ends_where_the_function_has_only_room_left_to_record_it(bridge: LocalBridge) -> None:
    """The poll function cuts Router One's 30 s to its own remaining time less the room to record."""
    from bridge.errors import UpstreamTransientError
    from bridge_local.emulator import LambdaContext

    poll_handler = bridge.stack.handlers["PollFunction"]
    reserve_s = sys.modules[poll_handler.__module__].RESERVE_S
    # Its first poll hangs (longer than this test waits, shorter than the loop's own 30 s).
    task_id = submitted_task(bridge, run_s=2, slow_s=5, slow_polls=1)
    state = json.loads((Path(__file__).resolve().parents[2] / "events" / "poll.json").read_text())
    state.update(task_id=task_id, deadline_at=4_102_444_800, submitted_at="2026-11-24T20:00:00.000Z")
    state.update(polls_in_execution=0, execution_id=None)
    context = LambdaContext(
        function_name="poll-test",
        function_version="$LATEST",
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:poll-test",
        memory_limit_in_mb=256,
        timeout_s=reserve_s + 1.5,
    )

    started = time.monotonic()
    with pytest.raises(UpstreamTransientError, match="in time"):
        poll_handler(state, context)
    assert time.monotonic() - started < 1.5 + 1.0
    assert polls(bridge, task_id)[0]["delay_s"] == 5.0  # it was the hanging poll that ended early
    outcome(bridge, task_id, "completed")


@pytest.fixture
def short_submit_deadline(bridge: LocalBridge, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from bridge import clients, settings
    from bridge.upstream import configured

    def forget() -> None:
        settings.get_settings.cache_clear()
        clients.reset()
        configured.router_one.cache_clear()

    monkeypatch.setenv("UPSTREAM_SUBMIT_TIMEOUT_SECONDS", "1")
    forget()
    yield
    monkeypatch.undo()
    forget()


def test_a_dripped_submit_answer_ends_at_the_submit_deadline_as_a_502(
    bridge: LocalBridge, short_submit_deadline: None
) -> None:
    started = time.monotonic()
    response = bridge.submit(run_s=1, drip_s=0.5, drip_submit=True)
    took = time.monotonic() - started

    assert response.status_code == 502, response.text
    assert response.json()["error"]["code"] == "upstream_error"
    assert "in time" in response.json()["error"]["message"]
    assert took < 1.0 + 1.5  # the deadline plus the API front's own work


def test_connection_resets_are_retried(bridge: LocalBridge) -> None:
    task_id = submitted_task(bridge, run_s=2, reset=1)

    outcome(bridge, task_id, "completed")

    assert [p["fault"] for p in polls(bridge, task_id)] == ["reset", None]
    assert any("could not be reached" in cause for cause in retried_failures(bridge, task_id))


def test_malformed_and_truncated_answers_are_retried(bridge: LocalBridge) -> None:
    task_id = submitted_task(bridge, run_s=2, malformed=2)

    outcome(bridge, task_id, "completed")

    assert [p["fault"] for p in polls(bridge, task_id)] == ["truncated", "not_json", None]
    assert sum("unreadable status" in cause for cause in retried_failures(bridge, task_id)) == 2


def test_transient_faults_until_the_deadline_end_as_timed_out(bridge: LocalBridge, short_deadline: None) -> None:
    task_id = submitted_task(bridge, run_s=2, poll_errors=[503] * 20)

    event = outcome(bridge, task_id, "timed_out")

    assert event["data"]["error"]["code"] == "deadline_exceeded"
    assert "503" in event["data"]["error"]["message"]  # the reason: what the last poll got
    assert len(polls(bridge, task_id)) == 2  # one at 3 s, its retry 3 s later is past the 5 s deadline
    assert job(bridge, task_id)["status"] == "timed_out"


# --- answers the contract does not foresee ---------------------------------------------------


def test_unknown_status_is_treated_as_still_running(bridge: LocalBridge) -> None:
    task_id = submitted_task(bridge, queue_s=0, run_s=5, unknown_status="upscaling", unknown_after=0)

    with ProgressSampler(bridge, task_id) as sampler:
        event = outcome(bridge, task_id, "completed")

    log = polls(bridge, task_id)
    assert [p["status"] for p in log] == ["upscaling", "completed"]
    assert "processing" in sampler.statuses and "upscaling" not in sampler.statuses
    assert event["data"]["poll_count"] == 2


def test_progress_in_the_job_record_never_goes_down(bridge: LocalBridge) -> None:
    # A restart upstream: 60 % into the 9 s run the progress falls to 20 and climbs at the same pace.
    task_id = submitted_task(bridge, queue_s=0.5, run_s=9, progress_backwards=True)

    with ProgressSampler(bridge, task_id) as sampler:
        outcome(bridge, task_id, "completed")

    reported = [p["progress"] for p in polls(bridge, task_id) if p["progress"] is not None]
    assert any(b < a for a, b in pairwise(reported)), f"the simulator should have gone backwards: {reported}"
    assert sampler.values, "the sampler saw no progress"
    assert sampler.values == sorted(sampler.values), sampler.values
    assert max(reported) in sampler.values  # the highest value was recorded and kept
    assert job(bridge, task_id)["progress"] == 100


def test_completed_without_url_is_asked_again_then_fails_with_missing_video_url(bridge: LocalBridge) -> None:
    task_id = submitted_task(bridge, queue_s=0.5, run_s=1, missing_url=True)

    event = outcome(bridge, task_id, "failed")

    assert event["data"]["url"] is None
    assert event["data"]["error"]["code"] == "missing_video_url"
    log = polls(bridge, task_id)
    assert [p["status"] for p in log] == ["completed"] * 3  # the first answer and two more tries
    assert all(b["age_s"] - a["age_s"] >= 3 for a, b in pairwise(log))
    record = job(bridge, task_id)
    assert record["status"] == "failed" and record["error"]["code"] == "missing_video_url"


def test_a_url_that_lags_its_status_still_completes(bridge: LocalBridge) -> None:
    task_id = submitted_task(bridge, queue_s=0.5, run_s=1, missing_url=True, missing_url_polls=1)

    event = outcome(bridge, task_id, "completed")

    assert event["data"]["url"].endswith(f"{task_id}.mp4")
    assert [p["status"] for p in polls(bridge, task_id)] == ["completed", "completed"]
    assert os.path.basename(job(bridge, task_id)["url"]) == f"{task_id}.mp4"
