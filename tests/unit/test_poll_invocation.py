"""One poll function invocation: which waits it sleeps itself, when it hands back to the state
machine, and what the state machine then gets (its turn counted, a rollover past the budget)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bridge import settings
from bridge.errors import UpstreamTransientError
from bridge.tracking import invocation
from bridge.tracking.state import LoopState, LoopStep

STATE: dict[str, Any] = {
    "task_id": "v_" + "a" * 32,
    "model": "video-default",
    "submitted_at": "2026-11-24T20:00:00.000Z",
    "deadline_at": 1_900_000_000,
    "next_wait_s": 3,
    "polls_in_execution": 4,
    "execution_id": "arn:aws:states:us-east-1:123456789012:execution:m:v",
}


class Script:
    """Stands in for `poll_once`: answers each poll with the next scripted wait (a number), an
    outcome ("finish") or an exception, and keeps the virtual clock the invocation reads."""

    def __init__(self, *answers: int | str | Exception) -> None:
        self.answers = list(answers)
        self.now = 0.0
        self.slept: list[float] = []
        self.seen: list[LoopState] = []
        self.started_flags: list[bool] = []

    def poll(self, state: LoopState, *, started_sent: bool = False) -> LoopStep:
        self.seen.append(state)
        self.started_flags.append(started_sent)
        self.now += 0.2  # the request and the writes
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        base = state.model_dump() | {"status": "processing"}
        if answer == "finish":
            return LoopStep.model_validate(base | {"action": "finish", "status": "completed"})
        if answer == "started":
            return LoopStep.model_validate(base | {"action": "wait", "next_wait_s": 3, "started_sent": True})
        return LoopStep.model_validate(base | {"action": "wait", "next_wait_s": int(answer)})

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture(autouse=True)
def _settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("POLL_INVOCATION_SECONDS", "90")
    monkeypatch.setenv("MAX_POLLS_PER_EXECUTION", "500")
    settings.get_settings.cache_clear()
    yield
    settings.get_settings.cache_clear()


def run(monkeypatch: pytest.MonkeyPatch, script: Script, state: dict[str, Any] | None = None) -> LoopStep:
    monkeypatch.setattr(invocation, "poll_once", script.poll)
    return invocation.run_invocation(state or STATE, sleep=script.sleep, clock=lambda: script.now)


def test_waits_up_to_thirty_seconds_are_slept_here_and_a_longer_one_goes_back(monkeypatch: pytest.MonkeyPatch) -> None:
    script = Script(3, 30, 6, 31)
    step = run(monkeypatch, script)
    assert script.slept == [3, 30, 6]
    assert step.action == "wait" and step.next_wait_s == 31  # the Wait state's
    assert step.polls_in_execution == 5  # one turn, however many polls it made


def test_an_outcome_ends_the_invocation_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    script = Script(3, 3, "finish", 3)
    step = run(monkeypatch, script)
    assert step.action == "finish" and script.slept == [3, 3] and len(script.answers) == 1


def test_the_invocation_budget_ends_the_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLL_INVOCATION_SECONDS", "10")
    settings.get_settings.cache_clear()
    script = Script(3, 3, 3, 3, 3)
    step = run(monkeypatch, script)
    # Polls end at 0.2, 3.4, 6.6 and 9.8 s: after the fourth, another 3 s wait would pass 10 s.
    assert script.slept == [3, 3, 3] and len(script.seen) == 4 and step.action == "wait" and step.next_wait_s == 3


def test_a_zero_budget_polls_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLL_INVOCATION_SECONDS", "0")
    settings.get_settings.cache_clear()
    script = Script(3, 3)
    step = run(monkeypatch, script)
    assert script.slept == [] and step.action == "wait" and len(script.seen) == 1


def test_too_little_of_the_functions_time_left_hands_the_wait_back(monkeypatch: pytest.MonkeyPatch) -> None:
    script = Script(3, 3, 3)
    monkeypatch.setattr(invocation.deadlines, "remaining", lambda: 12.0)
    step = run(monkeypatch, script)
    assert script.slept == [] and step.next_wait_s == 3  # 3 s + 10 s of room do not fit in 12 s


def test_a_transient_failure_raises_on_the_first_poll_and_hands_back_on_a_later_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(UpstreamTransientError):
        run(monkeypatch, Script(UpstreamTransientError("503")))
    script = Script(3, 5, UpstreamTransientError("reset"))
    step = run(monkeypatch, script)
    assert step.action == "wait" and step.next_wait_s == 5  # what the last good poll decided
    assert step.polls_in_execution == 5


def test_each_poll_starts_from_the_last_ones_state(monkeypatch: pytest.MonkeyPatch) -> None:
    script = Script("started", 3, 35)
    run(monkeypatch, script)
    # `started` went out on the first poll: the later polls of the same invocation must not send it again.
    assert script.started_flags == [False, True, True]
    assert [s.polls_in_execution for s in script.seen] == [4, 4, 4]  # one claim for the whole invocation


def test_past_the_turn_budget_the_loop_continues_in_a_fresh_execution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_POLLS_PER_EXECUTION", "5")
    settings.get_settings.cache_clear()
    step = run(monkeypatch, Script(3, 40))
    assert step.action == "continue" and step.generation == 1
    assert step.next_execution_name == f"{STATE['task_id']}--1" and step.next_wait_s == 40


def test_the_publish_action_sends_the_recorded_outcome_without_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    published: list[str] = []

    def publish(state: LoopState) -> LoopStep:
        published.append(state.task_id)
        return LoopStep.model_validate(state.model_dump() | {"action": "finish", "status": "canceled"})

    monkeypatch.setattr(invocation, "publish_recorded", publish)
    script = Script()
    step = run(monkeypatch, script, STATE | {"action": "publish", "next_wait_s": 0})
    assert published == [STATE["task_id"]] and script.seen == [] and step.action == "finish"


@pytest.mark.parametrize(
    ("wait", "elapsed", "budget", "here"), [(30, 0, 90, True), (31, 0, 90, False), (3, 88, 90, False)]
)
def test_the_rule_the_benchmark_replays(wait: int, elapsed: float, budget: int, here: bool) -> None:
    assert invocation.sleeps_here(wait, elapsed_s=elapsed, budget_s=budget) is here
