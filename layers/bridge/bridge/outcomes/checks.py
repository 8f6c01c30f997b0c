"""No stranded outcome: every recorded outcome is published, whatever crashed after recording it.

The row says when an outcome may not be out yet: `jobs.record_outcome` sets `unpublished_since` in
the very write that records the outcome, and the state machine's MarkPublished step removes it once
the fan-out (SNS, EventBridge, webhook queue) has succeeded.

How marked rows are found: before writing an outcome, its writer (a poll, a cancel) sends a delayed
message to the reconcile queue saying "check task X". Sent before the write, it survives any crash
after it; a check for an outcome that was never written finds no mark and ends. A sparse index on
the mark would do too, but it costs a deploy step of its own (one new index per CloudFormation
update) and a query every few minutes, while the message costs one small SQS send per job and
brings the checker to exactly the rows that may need it, at the time they may need it, with no
scan. A healthy job's check finds the mark gone and ends after one read.

A check that finds the mark decides by the execution that should publish:
- the execution that recorded the outcome (a poll's; for a cancel, the api's publish execution) is
  still running: it will publish; check again later;
- it SUCCEEDED: it published (on a definition from before the mark, or MarkPublished failed): clear;
- it failed, was stopped, or never started (the api died between cancel's write and its publish):
  start a publish execution of our own with the stored event (same id), named after the task and
  the attempt. Starting a name again with the same input returns the running execution and a name
  is never reused, so two checks of one outcome never publish it twice; after a failed attempt
  the next check uses the next name.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from bridge import aws_errors
from bridge.clients import sqs, stepfunctions
from bridge.errors import BridgeError
from bridge.observability import logger, metrics
from bridge.settings import OutcomeCheckSettings, TrackingSettings, get_settings
from bridge.store import jobs
from bridge.tracking.loop import execution_arn, execution_name
from bridge.tracking.state import LoopState

if TYPE_CHECKING:
    from bridge.store.job_record import JobRecord

# The reconcile queue carries deferred submits too; a check is a body with this one key.
CHECK_KEY = "outcome_check"
# `finalized_by` of an outcome recorded by the api's cancel, and the name of the execution it starts.
CANCEL_FINALIZER = "cancel"
CANCEL_PUBLISH_SUFFIX = "--canceled"
# The reconciler's own publish executions: "<task>--outcome-<attempt>" (at most 80 characters).
PUBLISH_SUFFIX = "--outcome-"
# Each failed attempt has already retried every send for minutes: after this many, an operator looks.
MAX_ATTEMPTS = 20
STILL_RUNNING = frozenset({"RUNNING", "PENDING_REDRIVE"})


class StrandedOutcome(BridgeError):
    """Publishing this outcome failed attempt after attempt; the message ends in the dead-letter queue."""


class OutcomeCheck(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)

    task_id: str = Field(min_length=1)
    attempt: int = Field(default=1, ge=1)


def queue_check(task_id: str, *, attempt: int = 1) -> None:
    """Ask the reconciler to make sure the task's outcome gets published (call before recording it)."""
    settings = get_settings(OutcomeCheckSettings)
    body = {CHECK_KEY: OutcomeCheck(task_id=task_id, attempt=attempt).model_dump()}
    sqs().send_message(
        QueueUrl=settings.reconcile_queue_url,
        MessageBody=json.dumps(body, separators=(",", ":")),
        DelaySeconds=settings.outcome_check_delay_seconds,
    )


def check_of(body: Any) -> OutcomeCheck | None:
    """The check a reconcile-queue message carries, or None (it is a deferred submit).

    An unreadable check raises: its message goes on to the alarmed dead-letter queue.
    """
    if not isinstance(body, dict) or CHECK_KEY not in body:
        return None
    return OutcomeCheck.model_validate(body[CHECK_KEY])


def publish_input(job: JobRecord) -> dict[str, Any]:
    """The input of an execution that only publishes the job's recorded outcome (the `publish`
    action: its poll function invocation sends what the row holds)."""
    return LoopState.first(job, first_wait_s=0).loop_input("publish")


def publish_execution_name(task_id: str, attempt: int) -> str:
    return f"{execution_name(task_id)}{PUBLISH_SUFFIX}{attempt}"


def check_outcome(check: OutcomeCheck, now: datetime | None = None) -> str:
    """Publish the task's outcome if it is recorded, unpublished, and nobody is publishing it.

    Returns what it found: "published", "publishing" (checked again later) or "republished".
    """
    machine = get_settings(TrackingSettings).state_machine_arn
    job = jobs.find_row(check.task_id)
    event = job.outcome_event() if job is not None and job.unpublished_since else None
    if job is None or event is None:
        return "published"  # or never recorded: a crash before the write
    recorder = _recorder_arn(job, machine)
    status = _status(recorder) if recorder else None
    if status in STILL_RUNNING:
        queue_check(check.task_id, attempt=check.attempt)
        return "publishing"
    if status == "SUCCEEDED":
        jobs.mark_published(check.task_id, event["id"])
        return "published"

    attempt = check.attempt
    while True:
        name = publish_execution_name(check.task_id, attempt)
        own = _status(execution_arn(machine, name))
        if own is None:
            break
        if own in STILL_RUNNING:
            queue_check(check.task_id, attempt=attempt)
            return "publishing"
        if own == "SUCCEEDED":
            jobs.mark_published(check.task_id, event["id"])
            return "published"
        attempt += 1  # that attempt failed or was stopped: the next one gets a name of its own
        if attempt > MAX_ATTEMPTS:
            raise StrandedOutcome(f"the outcome of {check.task_id} could not be published in {MAX_ATTEMPTS} attempts")

    payload = publish_input(job)
    try:
        stepfunctions().start_execution(stateMachineArn=machine, name=name, input=json.dumps(payload))
    except aws_errors.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists":
            raise
        # Another check started this attempt a moment ago: look again later.
        queue_check(check.task_id, attempt=attempt)
        return "publishing"
    metrics.add_metric(name="OutcomesPublishedBySweep", unit="Count", value=1)
    logger.warning(
        "outcome left unpublished by its recorder; publishing it",
        extra={"task_id": check.task_id, "event_id": event["id"], "recorder_status": status, "execution": name},
    )
    # Followed until its publish succeeded (or failed, and the next attempt starts).
    queue_check(check.task_id, attempt=attempt)
    return "republished"


def _recorder_arn(job: JobRecord, machine: str) -> str | None:
    """The execution that must publish the recorded outcome (None: none that can be asked)."""
    finalizer = job.finalized_by
    if finalizer == CANCEL_FINALIZER:
        return execution_arn(machine, execution_name(job.task_id) + CANCEL_PUBLISH_SUFFIX)
    return finalizer if isinstance(finalizer, str) and finalizer.startswith("arn:") else None


def _status(arn: str) -> str | None:
    """The execution's status, or None if it does not exist."""
    try:
        return str(stepfunctions().describe_execution(executionArn=arn)["status"])
    except aws_errors.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("ExecutionDoesNotExist", "InvalidArn"):
            return None
        raise
