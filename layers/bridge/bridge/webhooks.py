"""Signed webhooks: which events a job's receiver gets, and each delivery attempt with its retries.

A delivery travels as a small SQS message ({task_id, event_id, round, attempt, due_at}); the
event itself and every attempt live in the delivery log. Retries are new messages with a delay
(SQS caps one delay at 15 minutes, so a longer wait hops through the queue until it is due).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import BaseModel, ConfigDict, Field

from bridge import jobs, webhook_store
from bridge.callback_urls import check_callback_url
from bridge.clients import sqs, webhook_http_client
from bridge.errors import Conflict, InvalidRequest, ServiceUnavailable, TaskNotFound
from bridge.observability import logger, metrics
from bridge.outbound import AttemptResult, post_pinned
from bridge.publish import event_kind
from bridge.settings import Settings, get_settings
from bridge.signing import current_signing_keys, signature_headers
from bridge.timeutil import iso, utcnow
from bridge.webhook_store import DeliveryStatus

SQS_MAX_DELAY_S = 900
# A redelivery starts a new round; this many rounds per event at most (the log lives in one item).
MAX_ROUNDS = 10
USER_AGENT = "router-one-video-bridge-webhooks/1"


class DeliveryMessage(BaseModel):
    """The webhook queue's message body."""

    model_config = ConfigDict(extra="ignore")

    task_id: str = Field(min_length=1)
    event_id: str = Field(min_length=1)
    round: int = Field(default=1, ge=1)
    attempt: int = Field(default=1, ge=1)
    due_at: float | None = None  # epoch seconds; None means now


# --------------------------------------------------------------------------- what gets sent


def webhook_wanted(job: dict[str, Any], kind: str) -> bool:
    return bool(job.get("callback_url")) and kind in (job.get("webhook_events_filter") or [])


def prepare_delivery(
    job: dict[str, Any], event: dict[str, Any], now: datetime, *, requeue_existing: bool
) -> dict[str, Any] | None:
    """Log a delivery of `event` if the job's receiver wants it; return the queue message to send.

    `requeue_existing` is for outcomes: a poll retried after a crash may find the delivery logged
    but never queued, and must queue it (a duplicate message is dropped by the attempt counter).
    """
    if not webhook_wanted(job, event_kind(event)):
        return None
    created = webhook_store.create_delivery(
        task_id=job["task_id"],
        event=event,
        callback_url=job["callback_url"],
        now=now,
        expires_at=job.get("expires_at"),
    )
    if created:
        return DeliveryMessage(task_id=job["task_id"], event_id=event["id"]).model_dump(exclude_none=True)
    if not requeue_existing:
        return None
    existing = webhook_store.get_delivery(job["task_id"], event["id"])
    if existing and existing["status"] == DeliveryStatus.PENDING and not existing.get("attempt_count"):
        return DeliveryMessage(task_id=job["task_id"], event_id=event["id"], round=existing["round"]).model_dump(
            exclude_none=True
        )
    return None


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
        _enqueue(message, delay_s=message.due_at - now.timestamp())
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
        _enqueue(
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


# --------------------------------------------------------------------------- the API's side


def deliveries_of(task_id: str) -> dict[str, Any]:
    job = jobs.get_job(task_id)
    return {
        "task_id": task_id,
        "callback_url": job.get("callback_url"),
        "webhook_events_filter": job.get("webhook_events_filter"),
        "deliveries": [_public(delivery) for delivery in webhook_store.list_deliveries(task_id)],
    }


def redeliver(task_id: str, event_id: str) -> dict[str, Any]:
    """Send an event again, with the same webhook-id, from attempt 1 of a new round."""
    jobs.get_job(task_id)
    if webhook_store.get_delivery(task_id, event_id) is None:
        raise TaskNotFound(
            f"job '{task_id}' has no webhook delivery for event '{event_id}'",
            code="webhook_delivery_not_found",
            param="event_id",
        )
    round_no = webhook_store.start_round(task_id, event_id, now=utcnow(), max_rounds=MAX_ROUNDS)
    if round_no is None:
        raise Conflict(f"event '{event_id}' was already sent in {MAX_ROUNDS} rounds", code="redelivery_limit_reached")
    _enqueue(DeliveryMessage(task_id=task_id, event_id=event_id, round=round_no), delay_s=0)
    metrics.add_metric(name="WebhookRedeliveries", unit="Count", value=1)
    return {"task_id": task_id, "event_id": event_id, "status": DeliveryStatus.PENDING, "round": round_no}


# --------------------------------------------------------------------------- helpers


def _public(delivery: dict[str, Any]) -> dict[str, Any]:
    fields = ("event_id", "event_type", "status", "round", "attempt_count", "next_attempt_at", "created_at")
    return {field: delivery.get(field) for field in fields} | {
        "updated_at": delivery.get("updated_at"),
        "attempts": delivery.get("attempts") or [],
    }


def _enqueue(message: DeliveryMessage, *, delay_s: float) -> None:
    queue_url = get_settings().webhook_queue_url
    if not queue_url:
        raise ServiceUnavailable("webhooks are not configured on this bridge", code="webhooks_not_configured")
    sqs().send_message(
        QueueUrl=queue_url,
        MessageBody=message.model_dump_json(exclude_none=True),
        DelaySeconds=max(0, min(SQS_MAX_DELAY_S, math.ceil(delay_s))),
    )


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
