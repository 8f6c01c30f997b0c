"""Submitting a job: forward it to Router One, record it, start its tracking loop."""

from __future__ import annotations

import json
from typing import Any

from bridge import aws_errors
from bridge.clients import sqs, stepfunctions
from bridge.errors import InvalidRequest, ServiceUnavailable, UpstreamRejected, UpstreamUnavailable
from bridge.models import GenerationRequest, SubmitAccepted
from bridge.observability import logger, metrics
from bridge.outbound.ssrf_guard import check_callback_url
from bridge.settings import Settings, get_settings
from bridge.store import jobs
from bridge.tenancy import OWNER_FIELD
from bridge.timeutil import iso, parse_iso, utcnow
from bridge.tracking.loop import execution_arn, execution_name, next_wait_seconds
from bridge.upstream import router_one
from bridge.upstream.caller_keys import CALLER_KEY_FLAG, CALLER_KEY_HEADER, CallerKey
from bridge.upstream.configured import router_one_as


def submit(request: GenerationRequest, owner_id: str, caller_key: CallerKey | None = None) -> SubmitAccepted:
    """Forward the job to Router One, then record it as `owner_id`'s and start tracking it."""
    settings = get_settings()
    check_webhook_fields(request, settings)
    accepted = submit_upstream(request.upstream_body(), caller_key)
    now = utcnow()
    logger.append_keys(task_id=accepted.task_id)
    record = {
        "task_id": accepted.task_id,
        OWNER_FIELD: owner_id,
        "model": request.model,
        "request": request.upstream_body(),
        "created_at": iso(now),
        "deadline_at": int(now.timestamp()) + settings.job_deadline_seconds,
        "retention_days": settings.job_retention_days,
        "callback_url": request.callback_url,
        "webhook_events": request.webhook_events() if request.callback_url else None,
        "metadata": request.metadata,
        # Only ever the KMS ciphertext: this record may wait in the reconcile queue.
        jobs.CALLER_KEY_FIELD: caller_key.ciphertext if caller_key else None,
    }
    try:
        record_and_track(record)
    except (aws_errors.ClientError, aws_errors.BotoCoreError):
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


# Router One's refusals a caller can act on, passed through with their status; Router One may answer
# others ("other codes are possible"), which become the nearest status the API documents.
PASSED_THROUGH_STATUSES = frozenset({400, 402, 403, 409, 413, 422, 429})


def submit_upstream(body: dict[str, Any], caller_key: CallerKey | None = None) -> SubmitAccepted:
    client = router_one_as(caller_key.plaintext) if caller_key else router_one()
    try:
        return client.submit(body)
    except UpstreamRejected as exc:
        if exc.status == 401 and caller_key:
            raise UpstreamRejected(
                f"Router One refused the key in {CALLER_KEY_HEADER}",
                status=401,
                type="authentication_error",
                code="invalid_router_one_key",
                param=CALLER_KEY_HEADER,
            ) from None
        if exc.status == 401:
            # The bridge's own key was refused: the operator's problem, not the caller's key.
            raise UpstreamUnavailable(
                "Router One refused the bridge's API key; the stack's Router One secret needs a valid key",
                code="upstream_authentication_failed",
            ) from None
        if exc.status not in PASSED_THROUGH_STATUSES:
            exc.status = 502 if exc.status >= 500 else 400
        raise


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
        caller_key_ciphertext=record.get(jobs.CALLER_KEY_FIELD),
        # A message queued before owners existed has none: its job is visible to operators only.
        owner_id=record.get(OWNER_FIELD),
    )
    start_tracking(job)


def defer_to_reconciler(record: dict[str, Any]) -> bool:
    """Queue an accepted job whose recording failed; False if even that is impossible."""
    queue_url = get_settings().reconcile_queue_url
    if not queue_url:
        return False
    try:
        sqs().send_message(QueueUrl=queue_url, MessageBody=reconcile_message(record))
    except (aws_errors.ClientError, aws_errors.BotoCoreError):
        logger.exception("could not queue the job for the reconciler either")
        return False
    return True


def reconcile_message(record: dict[str, Any]) -> str:
    """The record as a queue message, in UTF-8 rather than \\u escapes.

    Escaped, the largest request the API accepts made a 272 KB message (an emoji is 4 bytes, its
    escape 12), over the 256 KiB a queue made before SQS's 1 MiB limit may still have; this way it
    is about 100 KB. SQS refuses U+FFFE and U+FFFF (surrogates too, which the request model refuses
    already; JSON escapes control characters itself), so those two stay escaped.
    """
    text = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
    return text.replace("\ufffe", "\\ufffe").replace("\uffff", "\\uffff")


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


def _carried(job: dict[str, Any]) -> dict[str, Any]:
    """What the loop keeps for the job's life (see `tracking.CARRIED_KEYS`): its owner and, for a
    pass-through job, a flag only; each poll reads the sealed key from the row, never from here."""
    memory: dict[str, Any] = {}
    if job.get(jobs.CALLER_KEY_FIELD):
        memory[CALLER_KEY_FLAG] = True
    if job.get(OWNER_FIELD):
        memory[OWNER_FIELD] = job[OWNER_FIELD]
    return memory


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
        "poll_memory": _carried(job),
        "action": "track",
    }
    name = execution_name(job["task_id"])
    try:
        return stepfunctions().start_execution(
            stateMachineArn=settings.state_machine_arn, name=name, input=json.dumps(loop_input)
        )["executionArn"]
    except aws_errors.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists":
            raise
        logger.info("job already tracked", extra={"execution_name": name})
        return execution_arn(settings.state_machine_arn, name)
