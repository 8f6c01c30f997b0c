"""Submitting a job: forward it to Router One, record it, start its tracking loop."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from bridge import jobs
from bridge.callback_urls import check_callback_url
from bridge.clients import sqs, stepfunctions
from bridge.errors import InvalidRequest, ServiceUnavailable
from bridge.models import GenerationRequest, SubmitAccepted
from bridge.observability import logger, metrics
from bridge.polling import execution_name, next_wait_seconds
from bridge.settings import Settings, get_settings
from bridge.timeutil import iso, parse_iso, utcnow
from bridge.upstream import router_one


def submit(request: GenerationRequest) -> SubmitAccepted:
    settings = get_settings()
    check_webhook_fields(request, settings)
    accepted = router_one().submit(request.upstream_body())
    now = utcnow()
    logger.append_keys(task_id=accepted.task_id)
    record = {
        "task_id": accepted.task_id,
        "model": request.model,
        "request": request.upstream_body(),
        "created_at": iso(now),
        "deadline_at": int(now.timestamp()) + settings.job_deadline_seconds,
        "retention_days": settings.job_retention_days,
        "callback_url": request.callback_url,
        "webhook_events": request.webhook_events() if request.callback_url else None,
        "metadata": request.metadata,
    }
    try:
        record_and_track(record)
    except (ClientError, BotoCoreError):
        # Router One already has (and bills) the task: hand it to the reconciler rather than lose it.
        logger.exception("accepted upstream but not tracked; deferring to the reconciler")
        if not defer_to_reconciler(record):
            raise ServiceUnavailable(
                f"Router One accepted task {accepted.task_id} but the bridge could not start tracking it; "
                "do not resubmit, poll Router One for this task_id",
                code="tracking_unavailable",
            ) from None
        metrics.add_metric(name="SubmitsDeferred", unit="Count", value=1)
    metrics.add_metric(name="JobsSubmitted", unit="Count", value=1)
    return SubmitAccepted(task_id=accepted.task_id, status="pending")


def record_and_track(record: dict[str, Any]) -> None:
    """Record the accepted job (once) and start its loop (once): safe to repeat, as the reconciler does."""
    job = jobs.create_job(
        task_id=record["task_id"],
        model=record["model"],
        request=record["request"],
        now=parse_iso(record["created_at"]),
        deadline_at=int(record["deadline_at"]),
        retention_days=int(record["retention_days"]),
        callback_url=record.get("callback_url"),
        webhook_events=record.get("webhook_events"),
        metadata=record.get("metadata"),
    )
    start_tracking(job)


def defer_to_reconciler(record: dict[str, Any]) -> bool:
    """Queue an accepted job whose recording failed; False if even that is impossible."""
    queue_url = get_settings().reconcile_queue_url
    if not queue_url:
        return False
    try:
        sqs().send_message(QueueUrl=queue_url, MessageBody=json.dumps(record, separators=(",", ":")))
    except (ClientError, BotoCoreError):
        logger.exception("could not queue the job for the reconciler either")
        return False
    return True


def check_webhook_fields(request: GenerationRequest, settings: Settings) -> None:
    """Refuse a bad callback before Router One is asked (and bills) anything."""
    if request.webhook_events_filter is not None and request.callback_url is None:
        raise InvalidRequest(
            "'webhook_events_filter' needs a 'callback_url'", code="missing_required_parameter", param="callback_url"
        )
    if request.callback_url is not None:
        # The SSRF guard; every delivery attempt checks again, since DNS answers can change.
        check_callback_url(
            request.callback_url,
            allow_http=settings.webhook_allow_loopback,
            allow_loopback=settings.webhook_allow_loopback,
        )


def start_tracking(job: dict[str, Any]) -> str:
    """Start the job's loop under a name derived from its task id; a second start is a no-op.

    The input comes from the stored row, so a repeated start carries the very same input and
    Step Functions answers with the first execution instead of starting another.
    """
    settings = get_settings()
    if not settings.state_machine_arn:
        raise ServiceUnavailable("the bridge has no state machine configured", code="tracking_unavailable")
    loop_input = {
        "task_id": job["task_id"],
        "model": job["model"],
        "submitted_at": job["created_at"],
        "deadline_at": int(job["deadline_at"]),
        "next_wait_s": next_wait_seconds(
            settings.poll_interval_seconds, seconds_to_deadline=settings.job_deadline_seconds
        ),
        "generation": 0,
        "polls_in_execution": 0,
        "poll_memory": {},
        "action": "track",
    }
    name = execution_name(job["task_id"])
    try:
        return stepfunctions().start_execution(
            stateMachineArn=settings.state_machine_arn, name=name, input=json.dumps(loop_input)
        )["executionArn"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists":
            raise
        logger.info("job already tracked", extra={"execution_name": name})
        return f"{settings.state_machine_arn.replace(':stateMachine:', ':execution:')}:{name}"
