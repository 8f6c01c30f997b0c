"""Which events a job's receiver gets, logging and queueing each delivery, and the API's delivery log.

A delivery travels as a small SQS message ({task_id, event_id, round, attempt, due_at}); the
event itself and every attempt live in the delivery log. Retries are new messages with a delay
(SQS caps one delay at 15 minutes, so a longer wait hops through the queue until it is due).
Sending, signing and retrying are in `bridge.webhooks.sender`, which only the delivery function
loads: the poll and api functions queue deliveries without paying for the HTTP and signing code.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from bridge.clients import sqs
from bridge.errors import Conflict, ServiceUnavailable, TaskNotFound
from bridge.observability import metrics
from bridge.outcomes.events import event_kind
from bridge.settings import WebhookLogSettings, get_settings
from bridge.store import deliveries, jobs
from bridge.store.deliveries import DeliveryStatus
from bridge.tenancy import Caller
from bridge.timeutil import utcnow

if TYPE_CHECKING:
    from bridge.store.job_record import JobRecord

SQS_MAX_DELAY_S = 900
# A redelivery starts a new round; this many rounds per event at most (the log lives in one item).
MAX_ROUNDS = 10


class DeliveryMessage(BaseModel):
    """The webhook queue's message body."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    task_id: str = Field(min_length=1)
    event_id: str = Field(min_length=1)
    round: int = Field(default=1, ge=1)
    attempt: int = Field(default=1, ge=1)
    due_at: float | None = None  # epoch seconds; None means now


# --------------------------------------------------------------------------- what gets sent


def webhook_wanted(job: JobRecord, kind: str) -> bool:
    return bool(job.callback_url) and kind in (job.webhook_events_filter or [])


def prepare_delivery(
    job: JobRecord, event: dict[str, Any], now: datetime, *, requeue_existing: bool
) -> dict[str, Any] | None:
    """Log a delivery of `event` if the job's receiver wants it; return the queue message to send.

    `requeue_existing` is for outcomes: a poll retried after a crash may find the delivery logged
    but never queued, and must queue it (a duplicate message is dropped by the attempt counter).
    """
    if not job.callback_url or not webhook_wanted(job, event_kind(event)):
        return None
    created = deliveries.create_delivery(
        task_id=job.task_id,
        event=event,
        callback_url=job.callback_url,
        now=now,
        expires_at=job.expires_at,
        owner_id=job.owner_id,
    )
    if created:
        return DeliveryMessage(task_id=job.task_id, event_id=event["id"]).model_dump(exclude_none=True)
    if not requeue_existing:
        return None
    existing = deliveries.get_delivery(job.task_id, event["id"])
    if existing and existing["status"] == DeliveryStatus.PENDING and not existing.get("attempt_count"):
        return DeliveryMessage(task_id=job.task_id, event_id=event["id"], round=existing["round"]).model_dump(
            exclude_none=True
        )
    return None


# --------------------------------------------------------------------------- the API's side


def deliveries_of(task_id: str, caller: Caller) -> dict[str, Any]:
    """The job's delivery log, for its owner (or an operator); to anyone else the job does not exist."""
    job = jobs.find_job(task_id, owner_id=caller.read_scope())
    return {
        "task_id": task_id,
        "callback_url": job.callback_url,
        "webhook_events_filter": job.webhook_events_filter,
        "deliveries": [_public(delivery) for delivery in deliveries.list_deliveries(task_id)],
    }


def redeliver(task_id: str, event_id: str, caller: Caller) -> dict[str, Any]:
    """Send an event again, with the same webhook-id, from attempt 1 of a new round (owner only)."""
    jobs.find_job(task_id, owner_id=caller.owner_id)
    if deliveries.get_delivery(task_id, event_id) is None:
        raise TaskNotFound(
            f"job '{task_id}' has no webhook delivery for event '{event_id}'",
            code="webhook_delivery_not_found",
            param="event_id",
        )
    round_no = deliveries.start_round(task_id, event_id, now=utcnow(), max_rounds=MAX_ROUNDS)
    if round_no is None:
        raise Conflict(f"event '{event_id}' was already sent in {MAX_ROUNDS} rounds", code="redelivery_limit_reached")
    enqueue(DeliveryMessage(task_id=task_id, event_id=event_id, round=round_no), delay_s=0)
    metrics.add_metric(name="WebhookRedeliveries", unit="Count", value=1)
    return {"task_id": task_id, "event_id": event_id, "status": DeliveryStatus.PENDING, "round": round_no}


# --------------------------------------------------------------------------- helpers


def _public(delivery: dict[str, Any]) -> dict[str, Any]:
    fields = ("event_id", "event_type", "status", "round", "attempt_count", "next_attempt_at", "created_at")
    return {field: delivery.get(field) for field in fields} | {
        "dead_letter_reason": delivery.get("dead_letter_reason"),
        "updated_at": delivery.get("updated_at"),
        "attempts": delivery.get("attempts") or [],
    }


def enqueue(message: DeliveryMessage, *, delay_s: float) -> None:
    queue_url = get_settings(WebhookLogSettings).webhook_queue_url
    if not queue_url:
        raise ServiceUnavailable("webhooks are not configured on this bridge", code="webhooks_not_configured")
    sqs().send_message(
        QueueUrl=queue_url,
        MessageBody=message.model_dump_json(exclude_none=True),
        DelaySeconds=max(0, min(SQS_MAX_DELAY_S, math.ceil(delay_s))),
    )
