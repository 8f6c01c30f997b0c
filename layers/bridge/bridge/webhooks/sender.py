"""Sending webhooks: one attempt per queue message, signed, with retries and the dead-letter end.

Only the delivery function loads this module (see `bridge.webhooks.dispatch` for what gets queued).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from bridge.clients import sqs, webhook_http_client
from bridge.errors import BridgeError, InvalidRequest
from bridge.observability import logger, metrics
from bridge.outbound import deadlines
from bridge.outbound.pinned_post import MAX_LOGGED_BODY, AttemptResult, post_pinned
from bridge.outbound.ssrf_guard import check_callback_url
from bridge.settings import DeliverySettings, get_settings
from bridge.store import deliveries, endpoints, jobs
from bridge.store.deliveries import DeliveryStatus
from bridge.store.endpoints import Endpoint
from bridge.timeutil import iso, parse_iso, utcnow
from bridge.webhooks import endpoint_health, endpoint_keys, recovery
from bridge.webhooks.dispatch import DeliveryMessage, FanOutMessage, RecoveryMessage, enqueue, parse_message
from bridge.webhooks.signing import current_signing_keys, signature_headers, standard_headers

USER_AGENT = "router-one-video-bridge-webhooks/1"
# Of a message that is no delivery, this much goes into the dead-letter queue.
MAX_KEPT_BODY = 4096


# What a record needs besides its HTTP attempt: reading the delivery, logging the attempt, queueing what
# follows. A record is taken only when the function has the attempt's timeout plus this much left.
RECORD_OVERHEAD_S = 5.0
DEAD_LETTER_REASON = "retries_exhausted"
# Deliveries held back by an endpoint's Retry-After resume over this many seconds, not all at once.
THROTTLE_SPREAD_S = 5.0
HANDED_ON = "handed_on"


class OutOfTime(Exception):
    """Too little of the invocation is left for another attempt: the record goes back unprocessed."""


# --------------------------------------------------------------------------- one record


def deliver_record(record: SQSRecord, lambda_context: deadlines.RemainingTime | None = None) -> str:
    """Batch-processor entry point: one SQS record of the webhook queue.

    Raises only when the record must come back: the function is nearly out of time (the attempt is
    not made, so the schedule is untouched), or the delivery log or queue could not be written.
    Whatever goes wrong inside an attempt is that attempt's logged failure instead (`attempt_delivery`).
    """
    needed_s = get_settings(DeliverySettings).webhook_timeout_seconds + RECORD_OVERHEAD_S
    if lambda_context is not None and lambda_context.get_remaining_time_in_millis() < needed_s * 1000:
        _count_failure()
        _hand_back_now(record)
        raise OutOfTime(f"less than {needed_s:g} s left in this invocation; the message goes back unprocessed")
    try:
        message = parse_message(record.body)
    except ValueError as exc:  # pydantic's ValidationError is one, for bad JSON too
        _count_failure()
        _dead_letter_unreadable(record.body, exc)
        return "unreadable"
    try:
        if isinstance(message, FanOutMessage):
            for delivery in message.deliveries():
                enqueue(delivery, delay_s=0)
            return "fanned_out"
        if isinstance(message, RecoveryMessage):
            return recovery.resend_page(message.recover)
        # However the attempt goes, it must leave time to log it before the function is stopped.
        with deadlines.lambda_budget(lambda_context, reserve_s=RECORD_OVERHEAD_S):
            return deliver(message)
    except Exception:
        _count_failure()
        logger.exception("webhook message not processed; it comes back after the queue's visibility timeout")
        raise


def deliver(raw_message: dict[str, Any] | DeliveryMessage, now: datetime | None = None) -> str:
    """Handle one queue message: attempt the delivery (when due), log it, then hand on what follows.

    Returns what happened, for logs and tests. The attempt is logged before the next one (or the
    dead letter) is queued; a message that comes back after its attempt was logged (the hand-on
    failed, or the function stopped) hands on again instead of attempting again. Errors writing
    the log or the queue propagate, so the message comes back.
    """
    settings = get_settings(DeliverySettings)
    message = raw_message if isinstance(raw_message, DeliveryMessage) else DeliveryMessage.model_validate(raw_message)
    now = now or utcnow()
    logger.append_keys(task_id=message.task_id, event_id=message.event_id)
    delivery = deliveries.get_delivery(message.task_id, message.event_id)
    if delivery is None:
        logger.warning("webhook message for an unknown delivery, dropped")
        return "unknown"
    logged = int(delivery.get("attempt_count") or 0)
    status = delivery["status"]
    if delivery["round"] == message.round and delivery.get("hand_on_pending") == message.attempt:
        last = (delivery.get("attempts") or [{}])[-1]
        next_at = parse_iso(delivery["next_attempt_at"]) if delivery.get("next_attempt_at") else None
        _hand_on(delivery, message, status, next_at, last, now)
        logger.info("webhook attempt already logged; handed on again", extra={"status": status})
        return HANDED_ON
    endpoint = _endpoint_of(delivery)
    if endpoint is not None and endpoint.disable_notice:
        endpoint_health.send_notice(endpoint)  # owed by a sender that stopped after disabling it
    if delivery["round"] != message.round or status in DeliveryStatus.FINAL or logged >= message.attempt:
        logger.info("stale or duplicate webhook message, dropped", extra={"status": status})
        return "stale"
    if message.due_at and now.timestamp() < message.due_at - 1:
        enqueue(message, delay_s=message.due_at - now.timestamp())
        return "deferred"
    if delivery.get("endpoint_id"):
        if endpoint is None or not endpoint.enabled:
            reason = "endpoint_deleted" if endpoint is None else "endpoint_disabled"
            deliveries.stop_delivery(message.task_id, message.event_id, round_no=message.round, reason=reason, now=now)
            logger.info("webhook delivery stopped", extra={"reason": reason})
            return DeliveryStatus.STOPPED
        if endpoint.throttled_until and now.timestamp() < endpoint.throttled_until:
            # The endpoint asked every sender to wait; spread the waiting ones over a few seconds.
            due = endpoint.throttled_until + random.uniform(0, THROTTLE_SPREAD_S)
            enqueue(message.model_copy(update={"due_at": due}), delay_s=due - now.timestamp())
            return "throttled"

    result = attempt_delivery(delivery, settings, endpoint)
    entry: dict[str, Any] = {
        "round": message.round,
        "attempt": message.attempt,
        "at": iso(now),
        "status_code": result.status_code,
        "latency_ms": result.latency_ms,
        "error": result.error,
    }
    if result.delivered:
        outcome = DeliveryStatus.DELIVERED
    elif result.status_code == 410:
        outcome = DeliveryStatus.GONE
    elif message.attempt >= settings.webhook_max_attempts:
        outcome = DeliveryStatus.DEAD_LETTERED
    else:
        outcome = DeliveryStatus.RETRYING

    next_at = None
    if outcome == DeliveryStatus.RETRYING:
        delay = retry_delay(message.attempt, result.retry_after_s, settings)
        next_at = now + timedelta(seconds=delay)
        entry["retry_in_s"] = delay
    recorded = deliveries.record_attempt(
        task_id=message.task_id,
        event_id=message.event_id,
        round_no=message.round,
        attempt=message.attempt,
        entry=entry,
        status=outcome,
        next_attempt_at=next_at,
        dead_letter_reason=DEAD_LETTER_REASON if outcome == DeliveryStatus.DEAD_LETTERED else None,
        now=now,
    )
    if not recorded:
        # A copy of this message logged the same attempt first; that copy hands on.
        logger.info("webhook attempt logged by a duplicate message", extra={"attempt": message.attempt})
        return "stale"
    _count(outcome, result)
    if endpoint is not None:
        endpoint_health.after_attempt(endpoint, result, now)
    logger.info(
        "webhook attempt",
        extra={
            "attempt": message.attempt,
            "outcome": outcome,
            "status_code": result.status_code,
            "latency_ms": result.latency_ms,
            "error": result.error,
        },
    )
    _hand_on(delivery, message, outcome, next_at, entry, now)
    return outcome


def _hand_on(
    delivery: dict[str, Any],
    message: DeliveryMessage,
    status: str,
    next_at: datetime | None,
    last: dict[str, Any],
    now: datetime,
) -> None:
    """What follows a logged attempt: the next attempt queued, or the dead letter sent and noted on the job.

    Safe to repeat after a failure part-way: a second copy of the next attempt is dropped by the
    attempt counter (or, at worst, sends the same webhook-id twice), and the job notes each dead
    letter once.
    """
    if status == DeliveryStatus.RETRYING:
        due = next_at or now
        follow = message.model_copy(update={"attempt": message.attempt + 1, "due_at": due.timestamp()})
        enqueue(follow, delay_s=max(0.0, (due - now).total_seconds()))
    elif status == DeliveryStatus.DEAD_LETTERED:
        _dead_letter(delivery, message, last)
        jobs.note_webhook_dead_letter(message.task_id, message.event_id)
    else:
        return
    deliveries.handed_on(message.task_id, message.event_id, round_no=message.round, attempt=message.attempt)


def attempt_delivery(
    delivery: dict[str, Any], settings: DeliverySettings, endpoint: Endpoint | None = None
) -> AttemptResult:
    """One attempt; never raises. Whatever goes wrong, in the request or before it (the URL check,
    the signing secret, a bug), is this attempt's failure, logged and retried on the schedule."""
    started = time.monotonic()
    try:
        return _attempt(delivery, settings, endpoint)
    except Exception as exc:
        logger.exception("webhook attempt failed outside the request")
        return AttemptResult(None, int((time.monotonic() - started) * 1000), f"could not attempt: {_describe(exc)}")


def _attempt(delivery: dict[str, Any], settings: DeliverySettings, endpoint: Endpoint | None) -> AttemptResult:
    """Check the URL again (DNS may have changed), sign, and POST to the checked address.

    An endpoint's delivery goes to the endpoint's URL as it is now, signed with its own keys; a
    callback delivery to the job's URL, signed with the stack's secret.
    """
    try:
        target = check_callback_url(
            endpoint.url if endpoint else delivery["callback_url"],
            allow_http=settings.webhook_allow_loopback,
            allow_loopback=settings.webhook_allow_loopback,
        )
    except InvalidRequest as exc:
        return AttemptResult(None, 0, f"refused: {exc.message}")
    body: str = delivery["event"]  # the exact bytes that are signed
    message_id, timestamp = delivery["event_id"], utcnow()
    if endpoint is None:
        signed = signature_headers(current_signing_keys(), message_id=message_id, timestamp=timestamp, body=body)
    else:
        keys = endpoint_keys.unseal(endpoint).active(timestamp)
        signature = endpoint_keys.signatures(
            keys, endpoint.signature_versions, message_id=message_id, timestamp=timestamp, body=body
        )
        signed = standard_headers(message_id=message_id, timestamp=timestamp, signature=signature)
    headers = signed | {"user-agent": USER_AGENT}
    return post_pinned(
        webhook_http_client(),
        target,
        body=body.encode("utf-8"),
        headers=headers,
        timeout_s=settings.webhook_timeout_seconds,
    )


def _endpoint_of(delivery: dict[str, Any]) -> Endpoint | None:
    endpoint_id, owner_id = delivery.get("endpoint_id"), delivery.get("owner_id")
    if not endpoint_id or not owner_id:
        return None
    return endpoints.get_endpoint(owner_id, endpoint_id)


def _describe(exc: Exception) -> str:
    """An exception for the delivery log: our own errors by their message, others by type and first line."""
    if isinstance(exc, BridgeError):
        return exc.message
    first = (str(exc).splitlines() or [""])[0][:MAX_LOGGED_BODY]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def retry_delay(
    attempt: int, retry_after_s: float | None, settings: DeliverySettings, rand: Callable[[], float] = random.random
) -> int:
    """Seconds before the attempt after `attempt`: the schedule's step with jitter, or longer if asked."""
    schedule = settings.webhook_retry_schedule
    base = schedule[min(attempt, len(schedule)) - 1]
    delay = base * (1 + settings.webhook_retry_jitter * (2 * rand() - 1))
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, settings.webhook_max_retry_after_seconds))
    return max(1, math.ceil(delay))


def _dead_letter(delivery: dict[str, Any], message: DeliveryMessage, last: dict[str, Any]) -> None:
    queue_url = get_settings(DeliverySettings).webhook_dead_letter_queue_url
    body = {
        "reason": DEAD_LETTER_REASON,
        "task_id": message.task_id,
        "event_id": message.event_id,
        "round": message.round,
        "attempts": message.attempt,
        "last_status_code": last.get("status_code"),
        "last_error": last.get("error"),
        "event": json.loads(delivery["event"]),
    }
    sqs().send_message(QueueUrl=queue_url, MessageBody=json.dumps(body, separators=(",", ":")))


def _dead_letter_unreadable(body: str, error: Exception) -> None:
    """A message that is no delivery at all (not ours, or damaged): kept in the dead-letter queue, not retried."""
    queue_url = get_settings(DeliverySettings).webhook_dead_letter_queue_url
    logger.error("unreadable webhook message", extra={"error": _describe(error)})
    document = {"reason": "unreadable_message", "error": _describe(error), "body": body[:MAX_KEPT_BODY]}
    sqs().send_message(QueueUrl=queue_url, MessageBody=json.dumps(document, separators=(",", ":")))


def _hand_back_now(record: SQSRecord) -> None:
    """Make an unprocessed message visible again at once rather than after the visibility timeout."""
    queue_url = get_settings(DeliverySettings).webhook_queue_url
    try:
        sqs().change_message_visibility(QueueUrl=queue_url, ReceiptHandle=record.receipt_handle, VisibilityTimeout=0)
    except Exception:  # it comes back after the visibility timeout instead
        logger.warning("could not hand an unprocessed webhook message back early", exc_info=True)


def _count_failure() -> None:
    # The delivery function's own trouble (not a receiver's): records it could not process.
    metrics.add_metric(name="WebhookDeliveryFailures", unit="Count", value=1)


def _count(outcome: str, result: AttemptResult) -> None:
    names = {
        DeliveryStatus.DELIVERED: "WebhooksDelivered",
        DeliveryStatus.GONE: "WebhooksGone",
        DeliveryStatus.DEAD_LETTERED: "WebhooksDeadLettered",
    }
    if not result.delivered:
        metrics.add_metric(name="WebhookAttemptsFailed", unit="Count", value=1)
    if outcome in names:
        metrics.add_metric(name=names[outcome], unit="Count", value=1)
