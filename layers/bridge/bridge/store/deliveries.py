"""The webhook delivery log (DynamoDB): one item per job and event, every attempt inside it.

Writes are conditional on the delivery's round and attempt counter, so a duplicate queue
message or a stale chain from before a redelivery can neither log twice nor fork the retries.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from bridge import aws_errors
from bridge.clients import deliveries_table
from bridge.store.dynamo import is_conditional_failure, plain, storable
from bridge.tenancy import OWNER_FIELD
from bridge.timeutil import iso


class DeliveryStatus:
    PENDING = "pending"  # queued, no attempt yet in this round
    RETRYING = "retrying"  # failed at least once, another attempt is scheduled
    DELIVERED = "delivered"  # a 2xx answer
    GONE = "gone"  # the receiver answered 410: no further attempts
    DEAD_LETTERED = "dead_lettered"  # retries ran out (dead_letter_reason); a copy sits in the dead-letter queue

    FINAL = frozenset({DELIVERED, GONE, DEAD_LETTERED})


# A delivery's row outlives the longest retry schedule the settings allow to be reasonable (the
# default spans 99.7 hours at most 119.6 with jitter) and the dead-letter queue's 14 days.
MIN_DELIVERY_LIFETIME_S = 14 * 86_400


def create_delivery(
    *,
    task_id: str,
    event: dict[str, Any],
    callback_url: str,
    now: datetime,
    expires_at: int | None,
    owner_id: str | None = None,
) -> bool:
    """Log a new delivery in round 1; False if this job already has one for this event."""
    item: dict[str, Any] = {
        "task_id": task_id,
        "event_id": event["id"],
        "event_type": event["type"],
        "event": json.dumps(event, separators=(",", ":")),
        "callback_url": callback_url,
        "status": DeliveryStatus.PENDING,
        "round": 1,
        "attempt_count": 0,
        "attempts": [],
        "created_at": iso(now),
        "updated_at": iso(now),
    }
    if expires_at:
        # Never before the retries could end: a job kept one day may still be retried for four.
        item["expires_at"] = max(expires_at, int(now.timestamp()) + MIN_DELIVERY_LIFETIME_S)
    if owner_id:
        item[OWNER_FIELD] = owner_id
    try:
        deliveries_table().put_item(Item=item, ConditionExpression="attribute_not_exists(event_id)")
    except aws_errors.ClientError as exc:
        if not is_conditional_failure(exc):
            raise
        return False
    return True


def get_delivery(task_id: str, event_id: str) -> dict[str, Any] | None:
    item = deliveries_table().get_item(Key={"task_id": task_id, "event_id": event_id}, ConsistentRead=True).get("Item")
    return plain(item) if item else None


def list_deliveries(task_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    query: dict[str, Any] = {
        "KeyConditionExpression": "task_id = :task_id",
        "ExpressionAttributeValues": {":task_id": task_id},
        "ConsistentRead": True,
    }
    while True:
        page = deliveries_table().query(**query)
        items.extend(plain(item) for item in page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return sorted(items, key=lambda item: item.get("created_at", ""))
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def record_attempt(
    *,
    task_id: str,
    event_id: str,
    round_no: int,
    attempt: int,
    entry: dict[str, Any],
    status: str,
    next_attempt_at: datetime | None,
    now: datetime,
    dead_letter_reason: str | None = None,
) -> bool:
    """Append one attempt and set the delivery's status; False if this attempt was already logged.

    A retrying or dead-lettered delivery is marked `hand_on_pending` (with this attempt's number)
    until `handed_on` says the next attempt or the dead letter was queued: a message that comes
    back before then knows its hand-on is still owed.
    """
    values: dict[str, Any] = {
        ":entry": [storable(entry)],
        ":attempt": attempt,
        ":status": status,
        ":next": iso(next_attempt_at) if next_attempt_at else None,
        ":now": iso(now),
        ":round": round_no,
    }
    update = (
        "SET attempts = list_append(attempts, :entry), attempt_count = :attempt, #status = :status, "
        "next_attempt_at = :next, updated_at = :now"
    )
    if status in (DeliveryStatus.RETRYING, DeliveryStatus.DEAD_LETTERED):
        update += ", hand_on_pending = :attempt"
    if dead_letter_reason:
        update += ", dead_letter_reason = :reason"
        values[":reason"] = dead_letter_reason
    if status not in (DeliveryStatus.RETRYING, DeliveryStatus.DEAD_LETTERED):
        update += " REMOVE hand_on_pending"
    try:
        deliveries_table().update_item(
            Key={"task_id": task_id, "event_id": event_id},
            UpdateExpression=update,
            ConditionExpression="#round = :round AND attempt_count < :attempt",
            ExpressionAttributeNames={"#status": "status", "#round": "round"},
            ExpressionAttributeValues=values,
        )
    except aws_errors.ClientError as exc:
        if not is_conditional_failure(exc):
            raise
        return False
    return True


def handed_on(task_id: str, event_id: str, *, round_no: int, attempt: int) -> None:
    """Clear the hand-on mark of this attempt (the next attempt or the dead letter is queued)."""
    try:
        deliveries_table().update_item(
            Key={"task_id": task_id, "event_id": event_id},
            UpdateExpression="REMOVE hand_on_pending",
            ConditionExpression="#round = :round AND hand_on_pending = :attempt",
            ExpressionAttributeNames={"#round": "round"},
            ExpressionAttributeValues={":round": round_no, ":attempt": attempt},
        )
    except aws_errors.ClientError as exc:
        if not is_conditional_failure(exc):
            raise


def start_round(task_id: str, event_id: str, *, now: datetime, max_rounds: int) -> int | None:
    """Begin a redelivery: the next round, from attempt 1. None once `max_rounds` were used."""
    try:
        updated = deliveries_table().update_item(
            Key={"task_id": task_id, "event_id": event_id},
            UpdateExpression=(
                "SET #round = #round + :one, attempt_count = :zero, #status = :pending, "
                "next_attempt_at = :null, updated_at = :now REMOVE hand_on_pending, dead_letter_reason"
            ),
            ConditionExpression="attribute_exists(event_id) AND #round < :max",
            ExpressionAttributeNames={"#round": "round", "#status": "status"},
            ExpressionAttributeValues={
                ":one": 1,
                ":zero": 0,
                ":pending": DeliveryStatus.PENDING,
                ":null": None,
                ":now": iso(now),
                ":max": max_rounds,
            },
            ReturnValues="UPDATED_NEW",
        )
    except aws_errors.ClientError as exc:
        if not is_conditional_failure(exc):
            raise
        return None
    return int(updated["Attributes"]["round"])


def replace_event(task_id: str, event: dict[str, Any]) -> None:
    """Swap in an enriched copy of a delivery's event, as long as nothing was sent yet."""
    try:
        deliveries_table().update_item(
            Key={"task_id": task_id, "event_id": event["id"]},
            UpdateExpression="SET event = :event",
            ConditionExpression="attempt_count = :zero AND #round = :one",
            ExpressionAttributeNames={"#round": "round"},
            ExpressionAttributeValues={
                ":event": json.dumps(event, separators=(",", ":")),
                ":zero": 0,
                ":one": 1,
            },
        )
    except aws_errors.ClientError as exc:
        if not is_conditional_failure(exc):
            raise
