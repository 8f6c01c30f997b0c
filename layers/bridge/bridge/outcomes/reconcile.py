"""Crash consistency: no job Router One accepted is left untracked, no recorded outcome unpublished.

Two paths, for the two ways a submit can stop half-way after Router One accepted the task:
- the job record or the loop start failed (an AWS error): submit queues the accepted job and
  the reconciler records and starts it from the queue (retried, dead-lettered if it keeps failing);
- the process died after recording the job and before starting its loop: a scheduled sweep
  starts the loop of every pending job older than a grace period that no poll has seen yet.
  Starting is idempotent (the execution is named after the task), so sweeping a job that is
  already tracked costs one call and changes nothing.

The sweep pages through the pending jobs newest first and stops while its invocation still has
time left, saving where it stopped (a small item in the jobs table); the next run resumes there,
and a pass that reaches the end starts again from the top. Any number of pending jobs is covered,
a few hundred StartExecution calls per run (see docs/limits.md).

The same queue brings outcome checks (`bridge.outcomes.checks`): a recorded outcome whose
publisher died is published from here.

The remaining window, a crash between Router One's answer and the first write, cannot be closed
from this side: Router One offers no way to list tasks. It lasts one DynamoDB write.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from bridge.models import JobStatus
from bridge.observability import logger, metrics
from bridge.outcomes import checks
from bridge.settings import SweepSettings, get_settings
from bridge.store import job_lists
from bridge.store.job_record import JobRecord
from bridge.submit.submission import record_and_track, start_tracking
from bridge.timeutil import iso, utcnow

SWEEP_PAGE = 100
SWEEP_CURSOR = "pending"
# Stop sweeping with this much of the invocation left: the call in flight and the cursor's save
# must fit in it (a StartExecution takes tens of milliseconds, a slow one a few seconds).
SWEEP_RESERVE_MS = 8_000


def reconcile_record(record: SQSRecord) -> str:
    """Batch-processor entry point: one deferred job, or one outcome check, from the reconcile queue."""
    body: dict[str, Any] = json.loads(record.body)
    check = checks.check_of(body)
    if check is not None:
        found = checks.check_outcome(check)
        return f"{check.task_id}: {found}"
    # A deferred submit: the job record as submit made it (older messages name two fields differently).
    job = JobRecord.model_validate(body)
    record_and_track(job)
    metrics.add_metric(name="JobsReconciled", unit="Count", value=1)
    logger.info("deferred job recorded and tracked", extra={"task_id": job.task_id})
    return job.task_id


def sweep(
    now: datetime | None = None,
    *,
    remaining_ms: Callable[[], int] | None = None,
    page_size: int = SWEEP_PAGE,
) -> list[str]:
    """(Re)start the loop of pending jobs past the grace period that no poll has seen; return their ids.

    With `remaining_ms` (the Lambda context's clock) the sweep stops in time and resumes next run.
    """
    now = now or utcnow()
    cutoff = iso(now - timedelta(seconds=get_settings(SweepSettings).reconcile_grace_seconds))
    started: list[str] = []
    # Every owner's pending jobs, and those from before owners existed.
    pending = job_lists.JobList.of(owner_id=None, status=JobStatus.PENDING.value)
    cursor = job_lists.sweep_cursor(SWEEP_CURSOR)
    finished = False
    try:
        while True:
            page, next_cursor = job_lists.list_jobs(pending, limit=page_size, start_key=cursor)
            for job in page:
                if remaining_ms is not None and remaining_ms() < SWEEP_RESERVE_MS:
                    return started
                # A row some poll has written has (or had) its loop: starting it again is a no-op.
                if job.created_at <= cutoff and not job.execution_id:
                    start_tracking(job)
                    started.append(job.task_id)
                # Resume after this job: its key in the index (the status is the partition).
                cursor = {"task_id": job.task_id, "status": JobStatus.PENDING.value, "created_at": job.created_at}
            cursor = next_cursor
            if cursor is None:
                finished = True
                return started
    finally:
        # Saved even when a call fails: the next run resumes after the jobs handled so far.
        job_lists.save_sweep_cursor(SWEEP_CURSOR, None if finished else cursor, now=now)
        if started:
            metrics.add_metric(name="PendingJobsSwept", unit="Count", value=len(started))
        logger.info("pending jobs swept", extra={"started": len(started), "complete": finished})
