"""Who gets an event, logging and queueing each delivery, and the API's view of a job's deliveries.

An event goes to the job's `callback_url` (if its filter wants it) and to every enabled endpoint
its owner registered for that event type: one delivery each, with its own row, attempts and
webhook-id. A delivery travels as a small SQS message ({task_id, event_id, round, attempt,
due_at}, `event_id` being the delivery's webhook-id); an event with several destinations is
queued as one fan-out message the delivery function splits. The event itself and every attempt
live in the delivery log. Retries are new messages with a delay
(SQS caps one delay at 15 minutes, so a longer wait hops through the queue until it is due).
Sending, signing and retrying are in `bridge.webhooks.sender`, which only the delivery function
loads: the poll and api functions queue deliveries without paying for the HTTP and signing code.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from bridge.clients import sqs
from bridge.errors import Conflict, ServiceUnavailable, TaskNotFound
from bridge.observability import metrics
from bridge.outcomes.events import event_kind
from bridge.settings import WebhookLogSettings, get_settings
from bridge.store import deliveries, endpoints, jobs
from bridge.store.deliveries import DeliveryStatus
from bridge.store.endpoints import MAX_ENDPOINTS_PER_OWNER
from bridge.tenancy import Caller
from bridge.timeutil import utcnow

if TYPE_CHECKING:
    from bridge.store.job_record import JobRecord

SQS_MAX_DELAY_S = 900
# A redelivery starts a new round; this many rounds per event at most (the log lives in one item).
MAX_ROUNDS = 10


class DeliveryMessage(BaseModel):
    """The webhook queue's message body: one attempt of one delivery."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    task_id: str = Field(min_length=1)
    event_id: str = Field(min_length=1)  # the delivery's webhook-id (the log's sort key)
    round: int = Field(default=1, ge=1)
    attempt: int = Field(default=1, ge=1)
    due_at: float | None = None  # epoch seconds; None means now


class FanOutEntry(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)

    event_id: str = Field(min_length=1)
    round: int = Field(default=1, ge=1)


class FanOutMessage(BaseModel):
    """One event's deliveries to several destinations, queued in one message (the state machine sends one)."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    task_id: str = Field(min_length=1)
    fan_out: list[FanOutEntry] = Field(min_length=1, max_length=1 + MAX_ENDPOINTS_PER_OWNER * 2)

    def deliveries(self) -> list[DeliveryMessage]:
        return [DeliveryMessage(task_id=self.task_id, event_id=e.event_id, round=e.round) for e in self.fan_out]


class Recovery(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)

    owner_id: str = Field(min_length=1)
    endpoint_id: str = Field(min_length=1)
    since: str = Field(min_length=1)
    start_key: dict[str, Any] | None = None
    resent: int = Field(default=0, ge=0)


class RecoveryMessage(BaseModel):
    """One page of an endpoint's recovery: its failed deliveries since a time, sent again at a bounded rate."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    recover: Recovery


QueueMessage = DeliveryMessage | FanOutMessage | RecoveryMessage


def parse_message(body: str) -> QueueMessage:
    """The webhook queue's message of any kind; raises ValueError for anything else."""
    document = json.loads(body)
    if isinstance(document, dict) and "recover" in document:
        return RecoveryMessage.model_validate(document)
    if isinstance(document, dict) and "fan_out" in document:
        return FanOutMessage.model_validate(document)
    return DeliveryMessage.model_validate(document)


# --------------------------------------------------------------------------- what gets sent


def callback_wants(job: JobRecord, kind: str) -> bool:
    return bool(job.callback_url) and kind in (job.webhook_events_filter or [])


def endpoints_for(job: JobRecord, kind: str) -> list[str]:
    """The ids of the owner's enabled endpoints registered for this kind of event."""
    if not job.owner_id:
        return []
    return [e.endpoint_id for e in endpoints.endpoints_of(job.owner_id) if e.enabled and kind in e.event_types]


def wanted_kinds(job: JobRecord) -> set[str]:
    """Every kind of event some destination of this job wants (the callback's filter, the endpoints')."""
    kinds = set(job.webhook_events_filter or []) if job.callback_url else set()
    if job.owner_id:
        kinds.update(kind for e in endpoints.endpoints_of(job.owner_id) if e.enabled for kind in e.event_types)
    return kinds


def prepare_delivery(
    job: JobRecord, event: dict[str, Any], now: datetime, *, requeue_existing: bool
) -> dict[str, Any] | None:
    """Log a delivery of `event` to each destination that wants it; return the queue message to send.

    `requeue_existing` is for outcomes: a poll retried after a crash may find deliveries logged
    but never queued, and must queue them (a duplicate message is dropped by the attempt counter).
    """
    kind = event_kind(event)
    destinations: list[str | None] = [None] if callback_wants(job, kind) else []
    destinations += endpoints_for(job, kind)
    queued: list[FanOutEntry] = []
    for endpoint_id in destinations:
        created = deliveries.create_delivery(
            task_id=job.task_id,
            event=event,
            callback_url=job.callback_url,
            endpoint_id=endpoint_id,
            now=now,
            expires_at=job.expires_at,
            owner_id=job.owner_id,
        )
        delivery_id = deliveries.delivery_id_for(event["id"], endpoint_id)
        if created:
            queued.append(FanOutEntry(event_id=delivery_id))
        elif requeue_existing:
            existing = deliveries.get_delivery(job.task_id, delivery_id)
            if existing and existing["status"] == DeliveryStatus.PENDING and not existing.get("attempt_count"):
                queued.append(FanOutEntry(event_id=delivery_id, round=existing["round"]))
    if not queued:
        return None
    if len(queued) == 1:
        return DeliveryMessage(task_id=job.task_id, **queued[0].model_dump()).model_dump(exclude_none=True)
    return FanOutMessage(task_id=job.task_id, fan_out=queued).model_dump(exclude_none=True)


# --------------------------------------------------------------------------- the API's side


def deliveries_of(task_id: str, caller: Caller) -> dict[str, Any]:
    """The job's delivery log, for its owner (or an operator); to anyone else the job does not exist."""
    job = jobs.find_job(task_id, owner_id=caller.read_scope())
    return {
        "task_id": task_id,
        "callback_url": job.callback_url,
        "webhook_events_filter": job.webhook_events_filter,
        "deliveries": [public_delivery(delivery) for delivery in deliveries.list_deliveries(task_id)],
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


def public_delivery(delivery: dict[str, Any], *, with_attempts: bool = True) -> dict[str, Any]:
    """A delivery as the API shows it: its webhook-id, event, destination, status and attempts."""
    fields = ("event_type", "status", "round", "attempt_count", "next_attempt_at", "created_at")
    endpoint_id = delivery.get("endpoint_id")
    view = {
        "webhook_id": delivery["event_id"],
        "event_id": deliveries.event_id_of(delivery["event_id"]),
        "task_id": delivery["task_id"],
        "destination": {"type": "endpoint", "endpoint_id": endpoint_id} if endpoint_id else {"type": "callback_url"},
    }
    view |= {field: delivery.get(field) for field in fields} | {
        "dead_letter_reason": delivery.get("dead_letter_reason"),
        "stopped_reason": delivery.get("stopped_reason"),
        "updated_at": delivery.get("updated_at"),
    }
    if with_attempts:
        view["attempts"] = delivery.get("attempts") or []
    return view


def enqueue(message: DeliveryMessage, *, delay_s: float) -> None:
    queue_url = get_settings(WebhookLogSettings).webhook_queue_url
    if not queue_url:
        raise ServiceUnavailable("webhooks are not configured on this bridge", code="webhooks_not_configured")
    sqs().send_message(
        QueueUrl=queue_url,
        MessageBody=message.model_dump_json(exclude_none=True),
        DelaySeconds=max(0, min(SQS_MAX_DELAY_S, math.ceil(delay_s))),
    )
