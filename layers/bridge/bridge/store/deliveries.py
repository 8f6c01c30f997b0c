"""The webhook delivery log (DynamoDB): one item per job, event and destination, every attempt inside it.

A destination is the job's own `callback_url` or one of its owner's registered endpoints. The
item's sort key (named `event_id` from before endpoints existed) is the delivery's `webhook-id`:
the event's id for the callback URL, `<event id>_<endpoint id>` for an endpoint, so every
delivery of one event starts with the event's id. Endpoint deliveries are also indexed by
endpoint, newest first (the endpoint's delivery log and its recovery read that index).

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
    STOPPED = "stopped"  # its endpoint was disabled or deleted before it got through (stopped_reason)

    FINAL = frozenset({DELIVERED, GONE, DEAD_LETTERED, STOPPED})
    # What an endpoint's recovery sends again.
    FAILED = frozenset({GONE, DEAD_LETTERED, STOPPED})


ENDPOINT_INDEX = "EndpointIndex"
_ENDPOINT_SEPARATOR = "_"


def delivery_id_for(event_id: str, endpoint_id: str | None) -> str:
    """The webhook-id of one event's delivery to one destination (None: the job's callback URL)."""
    return f"{event_id}{_ENDPOINT_SEPARATOR}{endpoint_id}" if endpoint_id else event_id


def event_id_of(delivery_id: str) -> str:
    """The event a delivery carries: event ids are `evt_` and 32 hex digits."""
    return delivery_id[: len("evt_") + 32] if delivery_id.startswith("evt_") else delivery_id


# A delivery's row outlives the longest retry schedule the settings allow to be reasonable (the
# default spans 99.7 hours at most 119.6 with jitter) and the dead-letter queue's 14 days.
MIN_DELIVERY_LIFETIME_S = 14 * 86_400


def create_delivery(
    *,
    task_id: str,
    event: dict[str, Any],
    now: datetime,
    expires_at: int | None,
    callback_url: str | None = None,
    endpoint_id: str | None = None,
    owner_id: str | None = None,
) -> bool:
    """Log a new delivery to one destination in round 1; False if it is logged already."""
    item: dict[str, Any] = {
        "task_id": task_id,
        "event_id": delivery_id_for(event["id"], endpoint_id),
        "event_type": event["type"],
        "event": json.dumps(event, separators=(",", ":")),
        "status": DeliveryStatus.PENDING,
        "round": 1,
        "attempt_count": 0,
        "attempts": [],
        "created_at": iso(now),
        "updated_at": iso(now),
    }
    if endpoint_id:
        item["endpoint_id"] = endpoint_id
    else:
        item["callback_url"] = callback_url
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


def start_round(
    task_id: str, event_id: str, *, now: datetime, max_rounds: int, only_statuses: frozenset[str] | None = None
) -> int | None:
    """Begin a redelivery: the next round, from attempt 1. None once `max_rounds` were used, or
    when `only_statuses` is given and the delivery is in none of them."""
    condition = "attribute_exists(event_id) AND #round < :max"
    extra: dict[str, Any] = {}
    if only_statuses:
        extra = {f":only{i}": status for i, status in enumerate(sorted(only_statuses))}
        condition += f" AND #status IN ({', '.join(extra)})"
    try:
        updated = deliveries_table().update_item(
            Key={"task_id": task_id, "event_id": event_id},
            UpdateExpression=(
                "SET #round = #round + :one, attempt_count = :zero, #status = :pending, "
                "next_attempt_at = :null, updated_at = :now REMOVE hand_on_pending, dead_letter_reason, stopped_reason"
            ),
            ConditionExpression=condition,
            ExpressionAttributeNames={"#round": "round", "#status": "status"},
            ExpressionAttributeValues={
                ":one": 1,
                ":zero": 0,
                ":pending": DeliveryStatus.PENDING,
                ":null": None,
                ":now": iso(now),
                ":max": max_rounds,
            }
            | extra,
            ReturnValues="UPDATED_NEW",
        )
    except aws_errors.ClientError as exc:
        if not is_conditional_failure(exc):
            raise
        return None
    return int(updated["Attributes"]["round"])


def stop_delivery(task_id: str, delivery_id: str, *, round_no: int, reason: str, now: datetime) -> bool:
    """End an unfinished delivery without an attempt (its endpoint is disabled or gone)."""
    try:
        deliveries_table().update_item(
            Key={"task_id": task_id, "event_id": delivery_id},
            UpdateExpression=(
                "SET #status = :stopped, stopped_reason = :reason, next_attempt_at = :null, updated_at = :now "
                "REMOVE hand_on_pending"
            ),
            ConditionExpression="#round = :round AND NOT (#status IN (:delivered, :gone, :dead, :stopped))",
            ExpressionAttributeNames={"#round": "round", "#status": "status"},
            ExpressionAttributeValues={
                ":stopped": DeliveryStatus.STOPPED,
                ":reason": reason,
                ":null": None,
                ":now": iso(now),
                ":round": round_no,
                ":delivered": DeliveryStatus.DELIVERED,
                ":gone": DeliveryStatus.GONE,
                ":dead": DeliveryStatus.DEAD_LETTERED,
            },
        )
    except aws_errors.ClientError as exc:
        if not is_conditional_failure(exc):
            raise
        return False
    return True


def endpoint_deliveries(
    endpoint_id: str,
    *,
    limit: int,
    start_key: dict[str, Any] | None,
    statuses: frozenset[str] | None = None,
    since: str | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """One page of an endpoint's deliveries, newest first; `statuses` filters, `since` bounds by creation.

    The status filter applies after the read, so a page may hold fewer than `limit` rows (or none)
    and still have more after it: each page reads at most `limit` rows.
    """
    condition = "endpoint_id = :endpoint"
    values: dict[str, Any] = {":endpoint": endpoint_id}
    if since:
        condition += " AND created_at >= :since"
        values[":since"] = since
    query: dict[str, Any] = {
        "IndexName": ENDPOINT_INDEX,
        "KeyConditionExpression": condition,
        "ExpressionAttributeValues": values,
        "ScanIndexForward": False,
        "Limit": limit,
    }
    if statuses:
        names = {f":s{i}": status for i, status in enumerate(sorted(statuses))}
        query["FilterExpression"] = f"#status IN ({', '.join(names)})"
        query["ExpressionAttributeNames"] = {"#status": "status"}
        values |= names
    if start_key:
        query["ExclusiveStartKey"] = start_key
    page = deliveries_table().query(**query)
    return [plain(item) for item in page.get("Items", [])], page.get("LastEvaluatedKey")
