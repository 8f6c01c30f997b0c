"""The ETA-guided wait policy: its bounds, its three sources of evidence, and the memory it carries."""

from __future__ import annotations

import json
import math
import random

import pytest

from bridge.settings import MIN_POLL_INTERVAL_S
from bridge.tracking.eta_policy import (
    DEFAULT_MAX_WAIT_S,
    DEFAULT_TUNING,
    LOOP_OVERHEAD_S,
    MAX_SAMPLES,
    MIN_HISTORY,
    MIN_WAIT_S,
    ModelDurations,
    PollMemory,
    Tuning,
    next_wait,
    remember,
)
from bridge_local.simulator import _progress

FAR_DEADLINE = 7200.0


def history(low: float, high: float) -> ModelDurations:
    return ModelDurations(low_s=low, median_s=(low + high) / 2, high_s=high, count=50)


def memory_of(*readings: tuple[float, int | None], since: float | None = None) -> PollMemory:
    """The memory after processing polls with these (elapsed_s, progress) readings."""
    memory = PollMemory()
    for elapsed, progress in readings:
        memory = remember(memory, elapsed_s=elapsed, status="processing", progress=progress)
    if since is not None:
        memory = PollMemory(processing_since_s=since, samples=memory.samples)
    return memory


def wait_for(
    memory: PollMemory,
    elapsed: float,
    durations: ModelDurations | None = None,
    *,
    seconds_to_deadline: float = FAR_DEADLINE,
    min_wait_s: int = MIN_WAIT_S,
    max_wait_s: int = DEFAULT_MAX_WAIT_S,
) -> int:
    return next_wait(
        elapsed_s=elapsed,
        memory=memory,
        history=durations,
        seconds_to_deadline=seconds_to_deadline,
        min_wait_s=min_wait_s,
        max_wait_s=max_wait_s,
    )


def replay(run_s: float, mode: str, durations: ModelDurations | None = None, queue_s: float = 0.5) -> list[float]:
    """Poll one simulated job (simulator's progress curve) with the policy; the poll times, last one terminal."""
    elapsed, memory, polls = float(MIN_WAIT_S), PollMemory(), []
    while True:
        polls.append(elapsed)
        if elapsed >= queue_s + run_s:
            return polls
        if elapsed < queue_s:
            memory = remember(memory, elapsed_s=elapsed, status="pending", progress=None)
        else:
            progress = None if mode == "none" else _progress(mode, (elapsed - queue_s) / run_s)
            memory = remember(memory, elapsed_s=elapsed, status="processing", progress=progress)
        elapsed += wait_for(memory, elapsed, durations)


# Bounds


def test_floor_is_router_ones_rule() -> None:
    assert MIN_WAIT_S == MIN_POLL_INTERVAL_S == 3


def test_wait_stays_within_floor_cap_and_deadline_for_any_input() -> None:
    rng = random.Random(20261124)
    for _ in range(3000):
        memory = PollMemory()
        elapsed = rng.uniform(0, 5)
        progress = rng.randint(0, 30)
        for _ in range(rng.randint(0, 12)):
            elapsed += rng.uniform(0, 40)
            status = rng.choice(["pending", "processing", "processing"])
            reading = rng.choice([None, progress, min(100, progress + rng.randint(0, 40)), rng.randint(0, 100)])
            progress = reading if reading is not None else progress
            memory = remember(memory, elapsed_s=elapsed, status=status, progress=reading)  # type: ignore[arg-type]
        low = rng.uniform(0, 200)
        durations = rng.choice([None, ModelDurations(low, low + 1, low + rng.uniform(0, 300), 10)])
        to_deadline = rng.choice([rng.uniform(-100, 100), rng.uniform(0, 10_000), math.inf, -math.inf, math.nan])
        min_wait = rng.choice([0, 1, 3, 5, 10])
        max_wait = rng.choice([1, 3, 30, DEFAULT_MAX_WAIT_S, 300])
        now = elapsed + rng.uniform(0, 30)

        wait = next_wait(
            elapsed_s=now,
            memory=memory,
            history=durations,
            seconds_to_deadline=to_deadline,
            min_wait_s=min_wait,
            max_wait_s=max_wait,
        )

        floor = max(MIN_WAIT_S, min_wait)
        assert isinstance(wait, int)
        assert wait >= floor
        assert wait <= max(floor, max_wait)
        if math.isfinite(to_deadline):
            assert wait <= max(floor, math.ceil(to_deadline) + 1)


# A steady 0.25 points a second, 10 % done after 40 s: the end is at least 300 s away.
SLOW_AND_STEADY = ((3.0, 1), (23.0, 6), (43.0, 11))


def test_deadline_shortens_a_long_wait_but_never_below_the_floor() -> None:
    memory = memory_of(*SLOW_AND_STEADY)
    far = wait_for(memory, 43.0)
    assert far > 20
    assert wait_for(memory, 43.0, seconds_to_deadline=9.2) == 11
    assert wait_for(memory, 43.0, seconds_to_deadline=0.5) == MIN_WAIT_S
    assert wait_for(memory, 43.0, seconds_to_deadline=-60) == MIN_WAIT_S


def test_a_lower_min_wait_cannot_break_the_floor_and_a_higher_one_is_honoured() -> None:
    pending = PollMemory()
    assert wait_for(pending, 1.0, min_wait_s=1) == MIN_WAIT_S
    assert wait_for(pending, 1.0, min_wait_s=7) == 7


def test_max_wait_caps_sparse_polling() -> None:
    memory = memory_of((3.0, 1), (103.0, 2), (203.0, 3))  # a point every 100 s: hours to go
    assert wait_for(memory, 203.0) == DEFAULT_MAX_WAIT_S
    assert wait_for(memory, 203.0, max_wait_s=20) == 20


# Steady (linear) progress


def test_linear_progress_far_from_the_end_polls_sparsely() -> None:
    # 300 s job, 1 point every 3 s, seen at 3, 30 and 60 s: about 240 s to go.
    memory = memory_of((3.0, 1), (30.0, 10), (60.0, 20))
    assert wait_for(memory, 60.0) >= 30


def test_linear_progress_near_the_end_lands_one_poll_just_after_it() -> None:
    # 100 s job (1 point a second) seen at 3, 40, 70 and 85 s; it ends at 100 s.
    memory = memory_of((3.0, 3), (40.0, 40), (70.0, 70), (85.0, 85))
    wait = wait_for(memory, 85.0)
    assert 100 <= 85 + wait <= 103


def test_slow_linear_progress_near_the_end_polls_before_it_can_come() -> None:
    # 300 s job: one point is 3 s, too coarse to aim one poll at the end, so the last polls come
    # before the earliest moment it can (97 % at 291 s: 2 more points take at least 5.8 s).
    memory = memory_of((3.0, 1), (150.0, 50), (240.0, 80), (291.0, 97))
    assert MIN_WAIT_S <= wait_for(memory, 291.0) < 5.8
    memory = memory_of((3.0, 1), (150.0, 50), (240.0, 80), (297.0, 99))
    assert wait_for(memory, 297.0) == MIN_WAIT_S


# Simulated jobs from 25 s to 5 minutes, queued for half a second to five seconds.
SWEEP = [(queue_s, 25.0 + 2.3 * step) for queue_s in (0.5, 2.0, 5.0) for step in range(121)]


def test_linear_jobs_are_noticed_within_three_seconds_with_a_fraction_of_the_fixed_polls() -> None:
    for queue_s, run_s in SWEEP:
        polls = replay(run_s, "linear", queue_s=queue_s)
        end = queue_s + run_s
        fixed_polls = math.ceil(end / 3)
        assert polls[-2] < end <= polls[-1] <= end + 3, (queue_s, run_s)
        assert len(polls) <= max(7, fixed_polls / 3), (queue_s, run_s)


# Uneven and stalled progress


def test_stepped_progress_is_not_trusted_like_a_steady_rate() -> None:
    # The simulator's stepped curve jumps and stalls; a few early readings can even line up. Followed
    # naively it carries polls far past the end; without any history the policy stays close to it.
    lags = []
    for queue_s, run_s in SWEEP:
        polls = replay(run_s, "stepped", queue_s=queue_s)
        end = queue_s + run_s
        assert len(polls) < math.ceil(end / 3), (queue_s, run_s)
        lags.append(polls[-1] - end)
    assert max(lags) <= 5
    assert sum(lag <= 3 for lag in lags) >= 0.98 * len(lags)


def test_a_stall_is_remembered_as_its_first_and_latest_sighting() -> None:
    memory = memory_of((3.0, 10), (10.0, 20), (20.0, 20), (30.0, 20), (40.0, 20))
    assert memory.samples == ((3.0, 10), (10.0, 20), (40.0, 20))


def test_stalled_progress_gets_shorter_waits_than_the_same_progress_still_rising() -> None:
    rising = memory_of((3.0, 10), (20.0, 30), (40.0, 50), (60.0, 70))
    stalled = memory_of((3.0, 10), (20.0, 30), (40.0, 50), (60.0, 50))
    assert wait_for(stalled, 60.0) < wait_for(rising, 60.0)


def test_progress_stalled_near_the_top_keeps_polling_at_the_floor() -> None:
    memory = memory_of((3.0, 0), (30.0, 71), (60.0, 95), (70.0, 95), (80.0, 95))
    assert wait_for(memory, 80.0) == MIN_WAIT_S
    assert wait_for(memory, 80.0, history(300, 600)) == MIN_WAIT_S


def test_uneven_progress_does_not_skip_past_the_models_earliest_finish() -> None:
    # A big early jump suggests a quick end; history says not before 120 s, and the wait may not jump past it.
    memory = memory_of((3.0, 0), (9.0, 40))
    wait = wait_for(memory, 9.0, history(120, 200), max_wait_s=600)
    assert 9.0 + wait <= 3.0 + 120


# No progress: the model's history, or the default


def test_without_progress_no_wait_exceeds_the_lag_budget() -> None:
    """A job that says nothing of its progress may end at any time: even long before the model's
    earliest plausible finish, or far past its late ones, the wait leaves the lag within the budget."""
    memory = memory_of((3.0, None))
    budget = DEFAULT_TUNING.lag_budget_s - LOOP_OVERHEAD_S
    for running in (10.0, 50.0, 99.0, 250.0, 1000.0, 5000.0):
        assert MIN_WAIT_S <= wait_for(memory, 3.0 + running, history(100, 200), max_wait_s=600) <= budget
    assert wait_for(memory, 13.0, None, max_wait_s=600) <= budget
    # A wider budget lets the approach be sparser.
    wide = next_wait(
        elapsed_s=13.0,
        memory=memory,
        history=history(100, 200),
        seconds_to_deadline=FAR_DEADLINE,
        max_wait_s=600,
        tuning=Tuning(lag_budget_s=60.0),
    )
    assert wide > 20 and 13.0 + wide <= 3.0 + 100


def test_without_progress_history_makes_polls_dense_while_jobs_usually_end() -> None:
    memory = memory_of((3.0, None))
    for running in (100.0, 150.0, 200.0):
        assert wait_for(memory, 3.0 + running, history(100, 200)) == MIN_WAIT_S


def test_without_progress_waits_grow_slowly_once_past_the_late_quantile() -> None:
    memory = memory_of((3.0, None))
    just_past = wait_for(memory, 3.0 + 210, history(100, 200))
    long_past = wait_for(memory, 3.0 + 600, history(100, 200))
    assert MIN_WAIT_S <= just_past <= long_past <= DEFAULT_MAX_WAIT_S
    assert long_past > MIN_WAIT_S


@pytest.mark.parametrize("durations", [[], [40.0] * (MIN_HISTORY - 1), [math.nan, -1.0, math.inf]])
def test_too_little_history_is_no_history(durations: list[float]) -> None:
    assert ModelDurations.from_durations(durations) is None


def test_with_no_history_and_no_progress_the_floor_whatever_the_age() -> None:
    # Nothing says when such a job ends, so every poll could be the first to see it.
    memory = memory_of((3.0, None))
    assert [wait_for(memory, 3.0 + age) for age in (3.0, 100.0, 1000.0)] == [MIN_WAIT_S] * 3


def test_pending_jobs_poll_at_the_floor() -> None:
    memory = remember(PollMemory(), elapsed_s=30.0, status="pending", progress=None)
    assert memory == PollMemory()
    assert wait_for(memory, 30.0, history(100, 200)) == MIN_WAIT_S


def test_model_durations_quantiles_are_ordered_and_ignore_junk() -> None:
    summary = ModelDurations.from_durations([*range(1, 101), math.nan, -5.0])
    assert summary is not None
    assert summary.count == 100
    assert 1 <= summary.low_s < summary.median_s < summary.high_s <= 100
    assert summary.median_s == pytest.approx(50.5)


# The memory


def test_memory_round_trips_through_json_and_stays_small() -> None:
    memory = memory_of((3.04, 1), (31.26, 10), (61.0, 20), (90.55, 30), (121.0, 40))
    text = json.dumps(memory.to_dict())
    assert PollMemory.from_dict(json.loads(text)) == memory
    assert len(text) < 300
    assert PollMemory.from_dict(json.loads(json.dumps(PollMemory().to_dict()))) == PollMemory()
    assert PollMemory.from_dict(None) == PollMemory()


def test_memory_keeps_at_most_max_samples_the_first_and_the_latest() -> None:
    memory = PollMemory()
    for step in range(20):
        memory = remember(memory, elapsed_s=3.0 + 5 * step, status="processing", progress=4 * step)
    assert len(memory.samples) == MAX_SAMPLES
    assert memory.samples[0] == (3.0, 0)
    assert memory.samples[-1] == (98.0, 76)
    assert [t for t, _ in memory.samples] == sorted(t for t, _ in memory.samples)


def test_memory_from_a_longer_list_is_trimmed_the_same_way() -> None:
    data = {"processing_since_s": 3.0, "samples": [[3.0 + i, i] for i in range(10)]}
    assert len(PollMemory.from_dict(data).samples) == MAX_SAMPLES


def test_processing_start_is_the_first_processing_poll_and_never_moves() -> None:
    memory = remember(PollMemory(), elapsed_s=3.0, status="pending", progress=None)
    memory = remember(memory, elapsed_s=6.04, status="processing", progress=None)
    memory = remember(memory, elapsed_s=9.0, status="processing", progress=5)
    assert memory.processing_since_s == 6.0
    assert memory.samples == ((9.0, 5),)


def test_progress_going_backwards_starts_the_samples_afresh() -> None:
    memory = memory_of((3.0, 10), (6.0, 20), (9.0, 30), (12.0, 5))
    assert memory.samples == ((12.0, 5),)


def test_terminal_statuses_are_not_remembered() -> None:
    with pytest.raises(ValueError, match="pending or processing"):
        remember(PollMemory(), elapsed_s=3.0, status="completed", progress=None)  # type: ignore[arg-type]


def test_a_job_far_past_its_estimate_is_polled_within_the_lag_budget_in_every_progress_mode() -> None:
    budget = DEFAULT_TUNING.lag_budget_s - LOOP_OVERHEAD_S
    steady = memory_of((3.0, 10), (13.0, 20), (23.0, 30), (33.0, 40))  # 1 point a second: done by ~93 s
    stalled = memory_of((3.0, 5), (30.0, 60), (60.0, 95), (90.0, 95))  # uneven, then stuck near the end
    silent = memory_of((3.0, None))
    for late in (200.0, 1000.0, 6000.0):
        assert wait_for(steady, late, history(60, 90)) <= budget
        assert wait_for(stalled, late, history(60, 90)) <= budget
        assert wait_for(silent, late, history(60, 90)) <= budget
        assert wait_for(silent, late) <= budget
