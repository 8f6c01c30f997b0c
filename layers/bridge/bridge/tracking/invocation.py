"""One poll function invocation: polls of a job for as long as the waits between them are short.

A turn of the state machine's loop (Wait, the poll Task, the Choice after it) is three state
transitions, $0.000075, as much as 36 s of this 128 MB function running. So a wait of at most
`INLINE_MAX_WAIT_S` is slept here, between two polls of the same invocation, and only a longer one
goes back to the Wait state. The waits themselves are the policy's, never under Router One's 3 s
floor; every poll's answer is recorded as it comes, so a crash loses no more than the invocation's
memory of progress readings (its retry starts again from its input).

The invocation ends at the first of: an outcome (or the job found ended: a cancel is seen at the
next poll), a wait too long to sleep here, `PollInvocationSeconds` of polling, or too little of the
function's time left for a wait and a request. A transient upstream failure of its first poll
raises (the state machine retries it with backoff); of a later one, the invocation hands back what
the last good poll decided.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bridge.errors import UpstreamTransientError
from bridge.observability import logger, metrics
from bridge.outbound import deadlines
from bridge.settings import PollingSettings, get_settings
from bridge.tracking.loop import execution_name, should_continue_in_new_execution
from bridge.tracking.poll_step import poll_once, publish_recorded
from bridge.tracking.state import LoopState, LoopStep

# The break-even wait is 36 s at 128 MB (docs/cost.md): a shorter one is cheaper slept here. Past 30 s
# the saving is small, and a sleeping invocation holds a concurrent execution (docs/limits.md).
INLINE_MAX_WAIT_S = 30
# Time a poll needs after its wait: the request (cut by the function's deadline) and the writes.
REQUEST_ROOM_S = 10.0


def run_invocation(
    raw_state: dict[str, Any],
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> LoopStep:
    """Everything one invocation does for its job; the answer is the state machine's next state."""
    start = LoopState.model_validate(raw_state)
    if start.action == "publish":
        return _end_of_turn(start, publish_recorded(start))
    budget_s = get_settings(PollingSettings).poll_invocation_seconds
    began = clock()
    state, started_sent, polls = start, False, 0
    last: LoopStep | None = None
    while True:
        try:
            step = poll_once(state, started_sent=started_sent)
        except UpstreamTransientError:
            if last is None:
                raise
            # What the last good poll decided stands; the state machine's Wait takes it from here.
            logger.info("transient failure within the invocation; handing back", extra={"task_id": start.task_id})
            return _end_of_turn(start, last)
        polls += 1
        last, started_sent = step, started_sent or step.started_sent
        if not _sleep_here(step, elapsed_s=clock() - began, budget_s=budget_s):
            metrics.add_metric(name="PollsPerInvocation", unit="Count", value=polls)
            return _end_of_turn(start, step)
        sleep(step.next_wait_s)
        state = LoopState.model_validate(step.model_dump())


def sleeps_here(wait_s: float, *, elapsed_s: float, budget_s: float) -> bool:
    """Whether a wait of `wait_s`, `elapsed_s` into an invocation allowed `budget_s` of polling, is
    slept in the function (the rule the polling benchmark replays, too)."""
    return wait_s <= INLINE_MAX_WAIT_S and elapsed_s + wait_s <= budget_s


def _sleep_here(step: LoopStep, *, elapsed_s: float, budget_s: int) -> bool:
    if step.action != "wait" or not sleeps_here(step.next_wait_s, elapsed_s=elapsed_s, budget_s=budget_s):
        return False
    left = deadlines.remaining()
    return left is None or left >= step.next_wait_s + REQUEST_ROOM_S


def _end_of_turn(start: LoopState, step: LoopStep) -> LoopStep:
    """The step as the state machine gets it: one more turn counted, rolled over past the budget."""
    turns = start.polls_in_execution + 1
    update: dict[str, Any] = {"polls_in_execution": turns}
    if step.action == "wait" and should_continue_in_new_execution(
        turns, get_settings(PollingSettings).max_polls_per_execution
    ):
        generation = start.generation + 1
        update |= {
            "action": "continue",
            "generation": generation,
            "next_execution_name": execution_name(start.task_id, generation),
        }
    return step.model_copy(update=update)
