"""An ETA-guided wait policy for a job's poll loop: pure, deterministic, small enough for loop state.

A fixed loop asks Router One every few seconds for the whole life of a job, yet only the first poll
after the job ends matters. Here each wait is picked from what the loop has seen, so polls are sparse
while the end is far off and at Router One's 3 s floor (or one well-aimed poll) when it is near:

* progress rising at a steady rate pins the end down: wait half the earliest time left, and once
  the end is known within ``LAND_SPREAD_S``, poll once just after it;
* uneven progress (jumps, stalls) is a rough guide only: wait a small share of the time it suggests;
* no progress at all: the model's recent run times say when the job could plausibly end, so waits
  are sparse before that, at the floor while most jobs end, and grow slowly past the late ones;
* none of that (a model's first jobs): the floor, since the end could come at any poll.

The lag budget bounds the tail: wherever the job could already have ended, no wait is longer than
``Tuning.lag_budget_s`` less the loop's own overhead (the poll's request and the state machine's
turn), so no job is noticed more than the budget after it ended, however far past its model's usual
time it runs. Only a steady rate, which proves the end is still ahead, may wait longer.

No I/O, clock or randomness: the same inputs always give the same wait, and what the loop carries
between polls (``PollMemory.to_dict()``) is a couple of hundred bytes of JSON.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Literal

from bridge.settings import MIN_POLL_INTERVAL_S

MIN_WAIT_S: int = MIN_POLL_INTERVAL_S
DEFAULT_MAX_WAIT_S = 60

# Samples the memory keeps: the oldest one (a long baseline makes the rate precise) and the latest
# few (so jumps and stalls show). Three or more are needed before a rate is called steady.
MAX_SAMPLES = 4
STEADY_MIN_SAMPLES = 3
# Readings are whole points, so each rate is known within a band; steady means one rate fits every
# band, give or take this factor for jitter.
STEADY_SLACK = 1.1
# Steady progress: wait this share of the earliest possible time left, so the estimate is checked
# again well before the end...
ETA_FRACTION = 0.7
# ...and once the end is pinned down to within this many seconds, poll once, just after it.
LAND_SPREAD_S = 2.0
# Either way, never wait longer than this multiple of the time span the rate was measured over:
# a few early readings can line up by chance.
MAX_EXTRAPOLATION = 1.0

# Uneven progress (jumps, stalls): its average rate since the start is a rough guide only, so wait
# a small share of the time left it suggests.
UNSTEADY_FRACTION = 0.2

# Past run times: fewer than MIN_HISTORY say too little about a model's spread. The quantiles (in
# percent) stand for "earliest plausible finish", "typical" and "late".
MIN_HISTORY = 5
HISTORY_QUANTILES = (15, 50, 90)
# Before the earliest plausible finish: close in on it by this share of the gap.
APPROACH_FRACTION = 0.7
# Past the late quantile or an estimated end: grow the wait by this share of the overrun.
OVERRUN_GROWTH = 0.1

# No usable progress and no history (a model's first jobs): nothing says when the job ends, so it is
# polled at the floor; only a model's first few no-progress jobs pay for it.

Status = Literal["pending", "processing"]

# What the lag holds besides the wait: the poll's own request, the state machine's turn and the
# rounding of waits to whole seconds. The budget less this is the longest wait where the job may
# already have ended.
LOOP_OVERHEAD_S = 4.0


@dataclass(frozen=True)
class Tuning:
    """The policy's two trade-offs between polls and lag, as one value (benchmarks sweep it).

    ``lag_budget_s``: no job is noticed later than this after it ended. ``dense_quantiles``: the share
    of a model's past run times (low and high percent) whose ends are polled at the floor when the
    job reports no usable progress; a wider band lowers the lag of jobs without progress and costs polls.
    """

    lag_budget_s: float = 10.0
    dense_quantiles: tuple[int, int] = (5, 97)

    @property
    def max_due_wait_s(self) -> float:
        return max(float(MIN_WAIT_S), self.lag_budget_s - LOOP_OVERHEAD_S)


DEFAULT_TUNING = Tuning()


@dataclass(frozen=True)
class PollMemory:
    """What the loop remembers between polls; travels in the Step Functions state as ``to_dict()``.

    ``processing_since_s``: seconds from submit to the first poll that saw ``processing`` (None while
    pending). ``samples``: ``(elapsed_s, progress)`` readings seen while processing, oldest first: the
    first one kept as a baseline plus the latest few, at most ``MAX_SAMPLES`` in all.
    """

    processing_since_s: float | None = None
    samples: tuple[tuple[float, int], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "processing_since_s": self.processing_since_s,
            "samples": [[elapsed, progress] for elapsed, progress in self.samples],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> PollMemory:
        """Rebuild the memory from ``to_dict()`` output; None or an empty dict is a fresh memory."""
        if not data:
            return cls()
        since = data.get("processing_since_s")
        samples = tuple((float(elapsed), int(progress)) for elapsed, progress in data.get("samples") or ())
        return cls(
            processing_since_s=None if since is None else float(since),
            samples=samples if len(samples) <= MAX_SAMPLES else (samples[0], *samples[1 - MAX_SAMPLES :]),
        )


def remember(memory: PollMemory, *, elapsed_s: float, status: Status, progress: int | None) -> PollMemory:
    """The memory after one non-terminal poll that saw ``status`` (and ``progress``) ``elapsed_s`` after submit.

    Times are kept to a tenth of a second so the JSON stays short and round-trips exactly. A progress
    value lower than the last one (an upstream restart) drops the older samples: their rate is stale.
    """
    if status not in ("pending", "processing"):
        raise ValueError(f"only pending or processing polls are remembered, got {status!r}")
    if status == "pending":
        return memory
    elapsed = round(float(elapsed_s), 1)
    since = memory.processing_since_s if memory.processing_since_s is not None else elapsed
    samples = memory.samples
    if progress is not None:
        value = max(0, min(100, int(progress)))
        if samples and value < samples[-1][1]:
            samples = ()
        if len(samples) >= 2 and samples[-2][1] == samples[-1][1] == value:
            # A stall is kept as its first and latest sighting, so it does not push the rise out.
            samples = samples[:-1]
        samples = (*samples, (elapsed, value))
        if len(samples) > MAX_SAMPLES:
            samples = (samples[0], *samples[1 - MAX_SAMPLES :])
    return PollMemory(processing_since_s=since, samples=samples)


@dataclass(frozen=True)
class ModelDurations:
    """How long recent jobs of one model spent processing: low, median and high quantiles in seconds."""

    low_s: float
    median_s: float
    high_s: float
    count: int

    @classmethod
    def from_durations(cls, durations: Iterable[float], tuning: Tuning = DEFAULT_TUNING) -> ModelDurations | None:
        """Summarise past run times; None (no history) when there are too few usable ones to trust."""
        values = sorted(float(d) for d in durations if math.isfinite(d) and d >= 0)
        if len(values) < MIN_HISTORY:
            return None
        low_q, high_q = tuning.dense_quantiles
        low, median, high = (_quantile(values, q / 100) for q in (low_q, HISTORY_QUANTILES[1], high_q))
        return cls(low_s=low, median_s=median, high_s=high, count=len(values))


def _quantile(ordered: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), on a sorted, non-empty list."""
    position = q * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def next_wait(
    *,
    elapsed_s: float,
    memory: PollMemory,
    history: ModelDurations | None,
    seconds_to_deadline: float,
    min_wait_s: int = MIN_WAIT_S,
    max_wait_s: int = DEFAULT_MAX_WAIT_S,
    tuning: Tuning = DEFAULT_TUNING,
) -> int:
    """Whole seconds to wait before the next poll of a job that is still pending or processing.

    Always at least Router One's 3 s floor (``min_wait_s`` can only raise it), at most ``max_wait_s``,
    and never longer than needed to notice the deadline.
    """
    floor = max(MIN_WAIT_S, int(min_wait_s))
    cap = max(floor, int(max_wait_s))
    to_deadline = float(seconds_to_deadline)
    if math.isnan(to_deadline) or to_deadline == -math.inf:
        cap = floor
    elif to_deadline != math.inf:
        cap = min(cap, math.ceil(to_deadline) + 1)
    wanted = _wanted_wait(float(elapsed_s), memory, history, floor, tuning.max_due_wait_s)
    wait = math.ceil(wanted) if math.isfinite(wanted) else floor
    return max(floor, min(wait, cap))


def _wanted_wait(
    elapsed: float, memory: PollMemory, history: ModelDurations | None, floor: int, due_cap: float
) -> float:
    """The wait before clamping: the first rule whose evidence is available decides.

    Every rule but a steady rate's look-ahead is held to ``due_cap``: the job may end at any time.
    """
    since = memory.processing_since_s
    if since is None:
        # Pending: queues are short, and an accurate start anchors every later estimate.
        return float(floor)
    running = max(0.0, elapsed - since)
    samples = memory.samples
    ago = elapsed - samples[-1][0] if samples else 0.0

    steady = _steady_remaining(samples)
    if steady is not None:
        earliest, latest = steady[0] - ago, steady[1] - ago
        if latest <= 0:
            return min(due_cap, _overrun_wait(-latest, floor))
        # A rate is not extrapolated further ahead than the span it was measured over.
        horizon = max(float(floor), MAX_EXTRAPOLATION * (samples[-1][0] - samples[0][0]))
        if latest - earliest <= LAND_SPREAD_S:
            # The end is pinned down: the next poll lands just after the latest moment it can come.
            return min(latest, horizon)
        return min(max(float(floor), ETA_FRACTION * earliest), horizon)

    from_history = _history_wait(running, history, floor)
    rough = _rough_remaining(samples, since)
    if rough is not None:
        rough -= ago
        if rough <= 0:
            return min(due_cap, _overrun_wait(-rough, floor))
        # Rising progress, even uneven, says the end is still ahead: a small share of the time it suggests.
        wait = max(float(floor), UNSTEADY_FRACTION * rough)
        if history is not None and running < history.low_s and from_history is not None:
            # Even rising progress is no reason to skip past the model's earliest plausible finish.
            wait = min(wait, from_history)
        return wait
    if from_history is not None:
        return min(due_cap, from_history)
    return float(floor)


def _steady_remaining(samples: tuple[tuple[float, int], ...]) -> tuple[float, float] | None:
    """(earliest, latest) seconds left after the last sample, if progress rises at one steady rate.

    A whole-point reading ``p`` means the truth lies in [p, p+1), so between two samples the rate is
    only known within a band; progress is steady when one rate fits every band (within
    ``STEADY_SLACK``), which linear progress always does and jumps or stalls do not.
    """
    if len(samples) < STEADY_MIN_SAMPLES:
        return None
    (first_t, first_p), (last_t, last_p) = samples[0], samples[-1]
    if last_p - first_p < 2 or last_t <= first_t:
        return None
    low = (last_p - first_p - 1) / (last_t - first_t)
    high = (last_p - first_p + 1) / (last_t - first_t)
    for (t0, p0), (t1, p1) in pairwise(samples):
        if t1 <= t0:
            return None
        low = max(low, (p1 - p0 - 1) / (t1 - t0))
        high = min(high, (p1 - p0 + 1) / (t1 - t0))
    if low <= 0 or low > high * STEADY_SLACK:
        return None
    low, high = min(low, high), max(low, high)
    return (100 - last_p - 1) / high, (100 - last_p) / low


def _rough_remaining(samples: tuple[tuple[float, int], ...], since: float) -> float | None:
    """A cautious time left (after the last sample) from uneven progress, or None without any.

    The sooner of two guesses: the average rate since the job was first seen processing, and the
    rate across the kept samples, both read one point in the job's favour.
    """
    if not samples:
        return None
    last_t, last_p = samples[-1]
    guesses = []
    if last_p > 0 and last_t > since:
        guesses.append((last_t - since) * (100 - last_p - 1) / (last_p + 1))
    first_t, first_p = samples[0]
    if last_p > first_p and last_t > first_t:
        guesses.append((last_t - first_t) * (100 - last_p - 1) / (last_p - first_p + 1))
    return min(guesses) if guesses else None


def _overrun_wait(overrun: float, floor: int) -> float:
    """Past the expected end: the floor, growing slowly if the job keeps running well beyond it."""
    return max(float(floor), OVERRUN_GROWTH * overrun)


def _history_wait(running: float, history: ModelDurations | None, floor: int) -> float | None:
    """Sparse before the model's earliest plausible finish, the floor while most of its jobs end, then growing."""
    if history is None:
        return None
    if running < history.low_s:
        return max(float(floor), APPROACH_FRACTION * (history.low_s - running))
    if running <= history.high_s:
        return float(floor)
    return _overrun_wait(running - history.high_s, floor)
