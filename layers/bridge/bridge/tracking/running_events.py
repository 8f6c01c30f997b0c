"""`started` and `progress` events of a job still running: which one is due, and for which channels.

Webhooks get them when the job's filter or one of its owner's endpoints asks; SNS and EventBridge when the stack enables them
(PublishRunningEvents). Either way `started` goes out once, and `progress` at most once per
interval and only when the value moved, so no receiver is flooded.

`started` belongs to the poll that first stored `processing` (its claim is on the row): if that
poll is retried (it crashed, or its answer was lost, before the event went out), the retry sends
`started` again with the same id, which receivers deduplicate; no later poll sends it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bridge.models import JobStatus
from bridge.outcomes.events import build_running_event
from bridge.settings import PollingSettings, get_settings
from bridge.store import jobs
from bridge.store.job_record import JobRecord
from bridge.tracking.state import LoopState
from bridge.webhooks import dispatch

RUNNING_DETAIL_TYPES = {"started": "Video Generation Started", "progress": "Video Generation Progress"}


@dataclass(frozen=True)
class RunningNotice:
    kind: str | None = None  # "started", "progress", or None: nothing is due
    event: dict[str, Any] | None = None  # for SNS and EventBridge
    detail_type: str | None = None
    webhook: dict[str, Any] | None = None  # the webhook queue message


def running_notice(
    previous: JobRecord,
    *,
    state: LoopState,
    status: JobStatus,
    progress: int | None,
    now: datetime,
    started_sent: bool = False,
) -> RunningNotice:
    """The running event this poll owes, if any; `started_sent`: an earlier poll of the same
    invocation sent `started` (they all make the same claim)."""
    settings = get_settings(PollingSettings)
    on_bus = settings.publish_running_events
    started_due = not started_sent and _started_due(previous, state=state, status=status)
    progress_moved = progress is not None and progress != previous.progress
    # Asked only when an event could be due: the registered endpoints are a read of their own.
    hooked = dispatch.wanted_kinds(previous) if (started_due or progress_moved) and not on_bus else set()
    kind = None
    if started_due:
        kind = "started" if on_bus or "started" in hooked else None
    if (
        kind is None
        and (on_bus or "progress" in hooked)
        and progress_moved
        and jobs.claim_progress_notification(
            state.task_id, progress=progress, now=now, min_interval_s=settings.progress_event_interval_seconds
        )
    ):
        kind = "progress"
    if kind is None:
        return RunningNotice()
    event = build_running_event(
        kind=kind,
        task_id=state.task_id,
        status=status.value,
        model=state.model,
        submitted_at=state.submitted_at,
        now=now,
        progress=progress,
        poll_count=previous.poll_count + 1,
        metadata=previous.metadata,
        owner_id=previous.owner_id,
    )
    webhook = dispatch.prepare_delivery(previous, event, now, requeue_existing=False)
    if not on_bus:
        return RunningNotice(kind=kind, webhook=webhook)
    return RunningNotice(kind=kind, event=event, detail_type=RUNNING_DETAIL_TYPES[kind], webhook=webhook)


def started_claim(state: LoopState) -> str:
    """Names this invocation: a retry of it (same execution, same input) makes the same claim."""
    return f"{state.execution_id or 'unknown'}#{state.polls_in_execution}"


def _started_due(previous: JobRecord, *, state: LoopState, status: JobStatus) -> bool:
    if status != JobStatus.PROCESSING:
        return False
    claimed = previous.started_by
    if claimed is None:
        # This poll's write made the claim, unless the row was already processing before claims
        # existed (a job in flight across the upgrade, whose `started` has gone out).
        return previous.status != JobStatus.PROCESSING
    return bool(claimed == started_claim(state))
