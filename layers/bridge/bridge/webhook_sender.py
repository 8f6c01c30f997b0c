"""Sending webhooks: one attempt per queue message, signed, with retries and the dead-letter end.

Only the delivery function loads this module (see `bridge.webhooks` for what gets queued).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from bridge import jobs, webhook_store
from bridge.callback_urls import check_callback_url
from bridge.clients import sqs, webhook_http_client
from bridge.errors import InvalidRequest
from bridge.observability import logger, metrics
from bridge.outbound import AttemptResult, post_pinned
from bridge.settings import Settings, get_settings
from bridge.signing import current_signing_keys, signature_headers
from bridge.timeutil import iso, utcnow
from bridge.webhook_store import DeliveryStatus
from bridge.webhooks import DeliveryMessage, enqueue

USER_AGENT = "router-one-video-bridge-webhooks/1"


# --------------------------------------------------------------------------- one attempt


def deliver(raw_message: dict[str, Any], now: datetime | None = None) -> str:
    """Handle one queue message: attempt the delivery (when due), log it, schedule what follows.

    Returns what happened, for logs and tests. Infrastructure errors propagate, so the message
    goes back to the queue (and to the dead-letter queue after repeated failures).
    """
    settings = get_settings()
    message = DeliveryMessage.model_validate(raw_message)
    now = now or utcnow()
    logger.append_keys(task_id=message.task_id, event_id=message.event_id)
    delivery = webhook_store.get_delivery(message.task_id, message.event_id)
    if delivery is None:
        logger.warning("webhook message for an unknown delivery, dropped")
        return "unknown"
    if (
        delivery["round"] != message.round
        or delivery["status"] in DeliveryStatus.FINAL
        or int(delivery.get("attempt_count") or 0) >= message.attempt
    ):
        logger.info("stale or duplicate webhook message, dropped", extra={"status": delivery["status"]})
        return "stale"
    if message.due_at and now.timestamp() < message.due_at - 1:
        enqueue(message, delay_s=message.due_at - now.timestamp())
        return "deferred"

    result = attempt_delivery(delivery, settings)
    entry = {
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
        # Queue the next attempt before logging this one: a crash in between repeats an attempt
        # (receivers dedupe on webhook-id) rather than losing the chain.
        enqueue(
            message.model_copy(update={"attempt": message.attempt + 1, "due_at": next_at.timestamp()}), delay_s=delay
        )
    elif outcome == DeliveryStatus.DEAD_LETTERED:
        _dead_letter(delivery, message, result)

    logged = webhook_store.record_attempt(
        task_id=message.task_id,
        event_id=message.event_id,
        round_no=message.round,
        attempt=message.attempt,
        entry=entry,
        status=outcome,
        next_attempt_at=next_at,
        now=now,
    )
    if logged and outcome == DeliveryStatus.DEAD_LETTERED:
        jobs.note_webhook_dead_letter(message.task_id, message.event_id)
    _count(outcome, result)
    logger.info(
        "webhook attempt",
        extra={
            "attempt": message.attempt,
            "outcome": outcome,
            "status_code": result.status_code,
            "error": result.error,
        },
    )
    return outcome


def deliver_record(record: SQSRecord) -> str:
    """Batch-processor entry point: one SQS record of the webhook queue."""
    return deliver(json.loads(record.body))


def attempt_delivery(delivery: dict[str, Any], settings: Settings) -> AttemptResult:
    """Check the URL again (DNS may have changed), sign, and POST to the checked address."""
    try:
        target = check_callback_url(
            delivery["callback_url"],
            allow_http=settings.webhook_allow_loopback,
            allow_loopback=settings.webhook_allow_loopback,
        )
    except InvalidRequest as exc:
        return AttemptResult(None, 0, f"refused: {exc.message}")
    body: str = delivery["event"]  # the exact bytes that are signed
    headers = signature_headers(
        current_signing_keys(), message_id=delivery["event_id"], timestamp=utcnow(), body=body
    ) | {"user-agent": USER_AGENT}
    return post_pinned(
        webhook_http_client(),
        target,
        body=body.encode("utf-8"),
        headers=headers,
        timeout_s=settings.webhook_timeout_seconds,
    )


def retry_delay(
    attempt: int, retry_after_s: float | None, settings: Settings, rand: Callable[[], float] = random.random
) -> int:
    """Seconds before the attempt after `attempt`: the schedule's step with jitter, or longer if asked."""
    schedule = settings.webhook_retry_schedule
    base = schedule[min(attempt, len(schedule)) - 1]
    delay = base * (1 + settings.webhook_retry_jitter * (2 * rand() - 1))
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, settings.webhook_max_retry_after_seconds))
    return max(1, math.ceil(delay))


def _dead_letter(delivery: dict[str, Any], message: DeliveryMessage, result: AttemptResult) -> None:
    queue_url = get_settings().webhook_dead_letter_queue_url
    if not queue_url:
        logger.error("no dead-letter queue configured; the delivery log keeps the event")
        return
    body = {
        "reason": "retries_exhausted",
        "task_id": message.task_id,
        "event_id": message.event_id,
        "round": message.round,
        "attempts": message.attempt,
        "last_status_code": result.status_code,
        "last_error": result.error,
        "event": json.loads(delivery["event"]),
    }
    sqs().send_message(QueueUrl=queue_url, MessageBody=json.dumps(body, separators=(",", ":")))


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
