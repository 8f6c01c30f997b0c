"""Crash consistency of submit: no job Router One accepted is left untracked.

Two paths, for the two ways a submit can stop half-way after Router One accepted the task:
- the job record or the loop start failed (an AWS error): submit queues the accepted job and
  the reconciler records and starts it from the queue (retried, dead-lettered if it keeps failing);
- the process died after recording the job and before starting its loop: a scheduled sweep
  starts the loop of every pending job older than a grace period. Starting is idempotent (the
  execution is named after the task), so sweeping a job that is already tracked costs nothing.

The remaining window, a crash between Router One's answer and the first write, cannot be closed
from this side: Router One offers no way to list tasks. It lasts one DynamoDB write.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from bridge import jobs
from bridge.models import JobStatus
from bridge.observability import logger, metrics
from bridge.settings import get_settings
from bridge.submission import record_and_track, start_tracking
from bridge.timeutil import iso, utcnow

SWEEP_PAGE = 100


def reconcile_record(record: SQSRecord) -> str:
    """Batch-processor entry point: one deferred job from the reconcile queue."""
    body: dict[str, Any] = json.loads(record.body)
    record_and_track(body)
    metrics.add_metric(name="JobsReconciled", unit="Count", value=1)
    logger.info("deferred job recorded and tracked", extra={"task_id": body.get("task_id")})
    return str(body.get("task_id"))


def sweep(now: datetime | None = None) -> list[str]:
    """(Re)start the loop of pending jobs older than the grace period; return their task ids."""
    now = now or utcnow()
    cutoff = iso(now - timedelta(seconds=get_settings().reconcile_grace_seconds))
    started: list[str] = []
    # Every owner's pending jobs, and those from before owners existed.
    pending = jobs.JobList.of(owner_id=None, status=JobStatus.PENDING.value)
    cursor = None
    while True:
        page, cursor = jobs.list_jobs(pending, limit=SWEEP_PAGE, start_key=cursor)
        for job in page:
            if job["created_at"] <= cutoff:
                start_tracking(job)
                started.append(job["task_id"])
        if cursor is None:
            break
    if started:
        metrics.add_metric(name="PendingJobsSwept", unit="Count", value=len(started))
    return started
