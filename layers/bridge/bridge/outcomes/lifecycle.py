"""What the API offers on jobs after submit: cancel one, list them.

Router One has no cancel: cancelling stops the bridge's tracking (and its events) only; the
generation itself runs on upstream and is billed there.
"""

from __future__ import annotations

import json
from typing import Any

from bridge import aws_errors
from bridge.clients import stepfunctions
from bridge.errors import Conflict, InvalidRequest
from bridge.models import JobStatus
from bridge.observability import logger, metrics
from bridge.outcomes import checks
from bridge.outcomes.ending import end_job
from bridge.settings import TrackingSettings, get_settings
from bridge.store import job_lists, jobs
from bridge.store.cursors import decode_cursor, encode_cursor, page_size
from bridge.store.job_record import JobRecord
from bridge.tenancy import Caller
from bridge.timeutil import utcnow
from bridge.tracking.loop import execution_arn, execution_name

CANCEL_OWNER = checks.CANCEL_FINALIZER


def cancel(task_id: str, caller: Caller) -> dict[str, Any]:
    """Record `canceled` (unless the job already ended), stop its loop, publish the event once.

    Only the job's owner may cancel it; to anyone else it does not exist.
    """
    machine = get_settings(TrackingSettings).state_machine_arn
    job = jobs.find_job(task_id, owner_id=caller.owner_id)
    if job.status != JobStatus.CANCELED and job.status.is_terminal:
        raise _already_ended(task_id, job.status)
    error = {"message": "canceled on request", "type": "bridge_error", "code": "canceled"}
    # Same conditional write as a poll's outcome: whichever comes first wins, the other publishes nothing.
    to_publish = end_job(job, JobStatus.CANCELED, now=utcnow(), finalizer=CANCEL_OWNER, polled=False, error=error)
    if to_publish is None:
        raise _already_ended(task_id, jobs.get_job(task_id).status)
    _stop_tracking(job, machine)
    _publish(job, machine)
    metrics.add_metric(name="JobsCanceled", unit="Count", value=1)
    return jobs.get_job(task_id).public_view()


def _already_ended(task_id: str, status: JobStatus) -> Conflict:
    return Conflict(f"job '{task_id}' already ended as {status} and cannot be canceled", code="job_already_finished")


def _stop_tracking(job: JobRecord, state_machine_arn: str) -> None:
    tracking = job.execution_id or execution_arn(state_machine_arn, execution_name(job.task_id))
    try:
        stepfunctions().stop_execution(executionArn=tracking, cause="canceled on request")
    except aws_errors.ClientError as exc:
        # Already ended (or never started): nothing to stop. A loop we missed ends at its next poll anyway,
        # since the job's outcome is recorded.
        logger.info("no running execution to stop", extra={"code": exc.response.get("Error", {}).get("Code")})


def _publish(job: JobRecord, state_machine_arn: str) -> None:
    """Publish in an execution of its own (its poll invocation sends the row's outcome, retried)."""
    publish_input = checks.publish_input(job)
    name = execution_name(job.task_id) + checks.CANCEL_PUBLISH_SUFFIX
    try:
        stepfunctions().start_execution(stateMachineArn=state_machine_arn, name=name, input=json.dumps(publish_input))
    except aws_errors.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists":
            raise


def list_jobs(caller: Caller, *, status: str | None, limit: int | None, cursor: str | None) -> dict[str, Any]:
    """The caller's jobs newest first (an operator's: everyone's), optionally of one status."""
    if status is not None and status not in {s.value for s in JobStatus}:
        allowed = ", ".join(s.value for s in JobStatus)
        raise InvalidRequest(f"'status' must be one of {allowed}", param="status")
    size = page_size(limit)
    listing = job_lists.JobList.of(owner_id=caller.read_scope(), status=status)
    items, last_key = job_lists.list_jobs(listing, limit=size, start_key=decode_cursor(cursor, listing.holds))
    return {
        "object": "list",
        "data": [item.public_view() for item in items],
        "has_more": last_key is not None,
        "next_cursor": encode_cursor(last_key) if last_key else None,
    }
