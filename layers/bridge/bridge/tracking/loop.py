"""The loop's fixed rules: the 3 s floor and the deadline on every wait, execution names and ARNs, rollover."""

from __future__ import annotations

import re
from hashlib import sha256

from bridge.settings import MIN_POLL_INTERVAL_S

# Step Functions execution names: at most 80 characters of letters, digits, '-' and '_'.
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_NAME_BASE_MAX = 64


def next_wait_seconds(interval_s: int, *, seconds_to_deadline: float) -> int:
    """Seconds to wait before the next poll: the configured interval, never under Router One's floor,
    and no longer than needed to notice the deadline."""
    wait = max(int(interval_s), MIN_POLL_INTERVAL_S)
    return max(MIN_POLL_INTERVAL_S, min(wait, int(seconds_to_deadline) + 1))


def should_continue_in_new_execution(polls_in_execution: int, max_polls: int) -> bool:
    """Roll the loop over to a fresh execution before its history grows near the 25,000-event limit."""
    return polls_in_execution >= max_polls


def execution_name(task_id: str, generation: int = 0) -> str:
    """A valid, deterministic execution name for a task (and its n-th continuation).

    The same task always maps to the same name, so Step Functions itself refuses a second loop.
    """
    base = _NAME_UNSAFE.sub("_", task_id)
    if base != task_id or len(base) > _NAME_BASE_MAX:
        base = f"{base[:40]}-{sha256(task_id.encode()).hexdigest()[:16]}"
    return base if generation == 0 else f"{base}--{generation}"


def execution_arn(state_machine_arn: str, name: str) -> str:
    """The ARN an execution of this state machine gets under `name`."""
    return f"{state_machine_arn.replace(':stateMachine:', ':execution:')}:{name}"
