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
from bridge.settings import OutcomeCheckSettings, SubmitSettings, TrackingSettings, WebhookLogSettings, get_settings
from bridge.store import jobs
from bridge.store.job_record import JobRecord
from bridge.timeutil import parse_iso, utcnow
from bridge.tracking.loop import execution_arn, execution_name, next_wait_seconds
from bridge.tracking.state import LoopState
from bridge.upstream.caller_keys import CALLER_KEY_HEADER, CallerKey
from bridge.upstream.configured import router_one, router_one_as


def submit(request: GenerationRequest, owner_id: str, caller_key: CallerKey | None = None) -> SubmitAccepted:
    """Forward the job to Router One, then record it as `owner_id`'s and start tracking it."""
    settings = get_settings(SubmitSettings)
    check_webhook_fields(request)
    accepted = submit_upstream(request.upstream_body(), caller_key)
    logger.append_keys(task_id=accepted.task_id)
    record = JobRecord.accepted(
        task_id=accepted.task_id,
        owner_id=owner_id,
        model=request.model,
        request=request.upstream_body(),
        now=utcnow(),
        deadline_s=settings.job_deadline_seconds,
        retention_days=settings.job_retention_days,
        callback_url=request.callback_url,
        webhook_events=request.webhook_events() if request.callback_url else None,
        metadata=request.metadata,
        # Only ever the KMS ciphertext: this record may wait in the reconcile queue.
        caller_key_ciphertext=caller_key.ciphertext if caller_key else None,
    )
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


def record_and_track(record: JobRecord) -> None:
    """Record the accepted job (once) and start its loop (once): safe to repeat, as the reconciler does."""
    start_tracking(jobs.create_job(record))


def defer_to_reconciler(record: JobRecord) -> bool:
    """Queue an accepted job whose recording failed; False if even that is impossible."""
    queue_url = get_settings(OutcomeCheckSettings).reconcile_queue_url
    try:
        sqs().send_message(QueueUrl=queue_url, MessageBody=reconcile_message(record))
    except (aws_errors.ClientError, aws_errors.BotoCoreError):
        logger.exception("could not queue the job for the reconciler either")
        return False
    return True


def reconcile_message(record: JobRecord) -> str:
    """The record as a queue message, in UTF-8 rather than \\u escapes.

    Escaped, the largest request the API accepts made a 272 KB message (an emoji is 4 bytes, its
    escape 12), over the 256 KiB a queue made before SQS's 1 MiB limit may still have; this way it
    is about 100 KB. SQS refuses U+FFFE and U+FFFF (surrogates too, which the request model refuses
    already; JSON escapes control characters itself), so those two stay escaped.
    """
    text = json.dumps(record.item(), separators=(",", ":"), ensure_ascii=False)
    return text.replace("\ufffe", "\\ufffe").replace("\uffff", "\\uffff")


def check_webhook_fields(request: GenerationRequest) -> None:
    """Refuse a bad callback before Router One is asked (and bills) anything."""
    if request.webhook_events_filter is not None and request.callback_url is None:
        raise InvalidRequest(
            "'webhook_events_filter' needs a 'callback_url'", code="missing_required_parameter", param="callback_url"
        )
    if request.callback_url is not None:
        # The SSRF guard; every delivery attempt checks again, since DNS answers can change.
        loopback = get_settings(WebhookLogSettings).webhook_allow_loopback
        check_callback_url(request.callback_url, allow_http=loopback, allow_loopback=loopback)


def start_tracking(job: JobRecord) -> str:
    """Start the job's loop under a name derived from its task id; a second start is a no-op.

    The input comes from the stored row, so a repeated start carries the very same input and
    Step Functions answers with the first execution instead of starting another.
    """
    settings = get_settings(TrackingSettings)
    # From the row's deadline, not the clock: a restart by the reconciler must send the same input.
    first_wait = next_wait_seconds(
        settings.poll_interval_seconds, seconds_to_deadline=job.deadline_at - parse_iso(job.created_at).timestamp()
    )
    loop_input = LoopState.first(job, first_wait_s=first_wait).loop_input()
    name = execution_name(job.task_id)
    try:
        return stepfunctions().start_execution(
            stateMachineArn=settings.state_machine_arn, name=name, input=json.dumps(loop_input)
        )["executionArn"]
    except aws_errors.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists":
            raise
        logger.info("job already tracked", extra={"execution_name": name})
        return execution_arn(settings.state_machine_arn, name)
