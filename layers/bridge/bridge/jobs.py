"""The DynamoDB job store: the only module that knows the table and its conditional writes."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from bridge import aws_errors
from bridge.clients import jobs_table
from bridge.dynamo import is_conditional_failure, plain, storable
from bridge.errors import TaskNotFound
from bridge.models import JobStatus
from bridge.timeutil import iso

# Fields of a row that the status endpoint shows, in this order.
# Every job row carries this constant: the key of the index that lists all jobs newest first.
JOB_KIND = "job"
LIST_INDEX = "jobs_by_created"
STATUS_INDEX = "jobs_by_status"

# Pass-through jobs: the caller's Router One key, KMS-encrypted, until the job ends.
CALLER_KEY_FIELD = "caller_key_ciphertext"

PUBLIC_FIELDS = (
    "task_id",
    "status",
    "model",
    "progress",
    "url",
    "url_expires_at",
    "error",
    "created_at",
    "updated_at",
    "finished_at",
    "last_polled_at",
    "poll_count",
    "metadata",
    "callback_url",
    "webhook_events_filter",
    "webhook_dead_letters",
    "video",
)


def create_job(
    *,
    task_id: str,
    model: str,
    request: dict[str, Any],
    now: datetime,
    deadline_at: int,
    retention_days: int,
    callback_url: str | None = None,
    webhook_events: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
    caller_key_ciphertext: str | None = None,
) -> dict[str, Any]:
    """Record a newly accepted job; a second create of the same task returns the first row."""
    item: dict[str, Any] = {
        "task_id": task_id,
        "kind": JOB_KIND,
        "status": JobStatus.PENDING.value,
        "model": model,
        "request": storable(request),
        "created_at": iso(now),
        "updated_at": iso(now),
        "deadline_at": deadline_at,
        "poll_count": 0,
        "expires_at": int((now + timedelta(days=retention_days)).timestamp()),
    }
    if metadata is not None:
        item["metadata"] = storable(metadata)
    if callback_url:
        item["callback_url"] = callback_url
        item["webhook_events_filter"] = webhook_events or []
    if caller_key_ciphertext:
        item[CALLER_KEY_FIELD] = caller_key_ciphertext
    try:
        jobs_table().put_item(Item=item, ConditionExpression="attribute_not_exists(task_id)")
    except aws_errors.ClientError as exc:
        if not is_conditional_failure(exc):
            raise
        return get_job(task_id)
    return plain(item)


def get_job(task_id: str) -> dict[str, Any]:
    item = jobs_table().get_item(Key={"task_id": task_id}, ConsistentRead=True).get("Item")
    # The table also holds per-model statistics, which are not jobs.
    if item is None or item.get("kind") != JOB_KIND:
        raise TaskNotFound(f"no video generation with task_id '{task_id}'")
    return plain(item)


def sealed_caller_key(task_id: str) -> str | None:
    """The job's sealed caller key, or None (not a pass-through job, or it has ended)."""
    item = (
        jobs_table()
        .get_item(Key={"task_id": task_id}, ProjectionExpression=CALLER_KEY_FIELD, ConsistentRead=True)
        .get("Item")
    )
    return str(item[CALLER_KEY_FIELD]) if item and item.get(CALLER_KEY_FIELD) else None


def public_view(job: dict[str, Any]) -> dict[str, Any]:
    return {field: job.get(field) for field in PUBLIC_FIELDS}


def record_progress(
    task_id: str,
    *,
    status: str,
    progress: int | None,
    upstream_status: str,
    now: datetime,
    execution_id: str | None = None,
) -> dict[str, Any] | None:
    """Store what the latest poll saw, unless the job already reached its end.

    Returns the row as it was before this write (webhook decisions compare old and new),
    or None when the job had already ended.
    """
    stamp = iso(now)
    try:
        previous = jobs_table().update_item(
            Key={"task_id": task_id},
            UpdateExpression=(
                "SET #status = :status, progress = :progress, upstream_status = :upstream, "
                "updated_at = :now, last_polled_at = :now, execution_id = :execution ADD poll_count :one"
            ),
            ConditionExpression="attribute_exists(task_id) AND attribute_not_exists(event_id)",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":status": status,
                ":progress": progress,
                ":upstream": upstream_status,
                ":now": stamp,
                ":one": 1,
                ":execution": execution_id,
            },
            ReturnValues="ALL_OLD",
        )
    except aws_errors.ClientError as exc:
        if not is_conditional_failure(exc):
            raise
        return None
    return plain(previous.get("Attributes") or {})


def claim_progress_notification(task_id: str, *, progress: int, now: datetime, min_interval_s: int) -> bool:
    """Throttle progress webhooks: True for at most one caller per interval, and only for a new value."""
    try:
        jobs_table().update_item(
            Key={"task_id": task_id},
            UpdateExpression="SET progress_notified_at = :now, progress_notified = :progress",
            ConditionExpression=(
                "attribute_exists(task_id) AND (attribute_not_exists(progress_notified_at) OR "
                "(progress_notified_at <= :cutoff AND progress_notified <> :progress))"
            ),
            ExpressionAttributeValues={
                ":now": int(now.timestamp()),
                ":cutoff": int(now.timestamp()) - min_interval_s,
                ":progress": progress,
            },
        )
    except aws_errors.ClientError as exc:
        if not is_conditional_failure(exc):
            raise
        return False
    return True


def note_webhook_dead_letter(task_id: str, event_id: str) -> None:
    """Say on the job itself that one of its webhooks could not be delivered (once per event)."""
    try:
        jobs_table().update_item(
            Key={"task_id": task_id},
            UpdateExpression=(
                "SET webhook_dead_letters = list_append(if_not_exists(webhook_dead_letters, :empty), :ids)"
            ),
            ConditionExpression="attribute_exists(task_id) AND NOT contains(webhook_dead_letters, :id)",
            ExpressionAttributeValues={":empty": [], ":ids": [event_id], ":id": event_id},
        )
    except aws_errors.ClientError as exc:
        if not is_conditional_failure(exc):
            raise


def record_outcome(
    task_id: str, *, fields: dict[str, Any], event: dict[str, Any], execution_id: str | None
) -> dict[str, Any] | None:
    """Write the terminal state exactly once and say which event, if any, this caller must publish.

    The first writer stores `event` and gets it back. The same execution coming back (its poll was
    retried after a crash) gets the stored event again, so a retry publishes the same id. Any other
    execution gets None: the outcome was recorded and published elsewhere.
    """
    owner = execution_id or "unknown"
    names = {f"#{name}": name for name in fields}
    values = {f":{name}": storable(value) for name, value in fields.items()}
    assignments = ", ".join(f"#{name} = :{name}" for name in fields)
    try:
        jobs_table().update_item(
            Key={"task_id": task_id},
            # The end of the job is the end of a caller's sealed key: gone in the same write.
            UpdateExpression=(
                f"SET {assignments}, event_id = :event_id, event = :event, finalized_by = :owner "
                f"REMOVE {CALLER_KEY_FIELD}"
            ),
            ConditionExpression="attribute_exists(task_id) AND attribute_not_exists(event_id)",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={
                **values,
                ":event_id": event["id"],
                ":event": json.dumps(event, separators=(",", ":")),
                ":owner": owner,
            },
        )
    except aws_errors.ClientError as exc:
        if not is_conditional_failure(exc):
            raise
        stored = get_job(task_id)
        if stored.get("finalized_by") == owner and stored.get("event"):
            return json.loads(stored["event"])
        return None
    return event


def list_jobs(*, status: str | None, limit: int, start_key: dict[str, Any] | None) -> tuple[list[dict[str, Any]], Any]:
    """One page of jobs, newest first (optionally of one status), and the key to continue from."""
    if status:
        index, key, value = STATUS_INDEX, "status", status
    else:
        index, key, value = LIST_INDEX, "kind", JOB_KIND
    query: dict[str, Any] = {
        "IndexName": index,
        "KeyConditionExpression": "#key = :value",
        "ExpressionAttributeNames": {"#key": key},
        "ExpressionAttributeValues": {":value": value},
        "ScanIndexForward": False,
        "Limit": limit,
    }
    if start_key:
        query["ExclusiveStartKey"] = start_key
    page = jobs_table().query(**query)
    keys = [item["task_id"] for item in page.get("Items", [])]
    return _rows_in_order(keys), page.get("LastEvaluatedKey")


def _rows_in_order(task_ids: list[str]) -> list[dict[str, Any]]:
    """The rows behind a page of index keys, in the page's order.

    The list indexes project keys only: a poll's update (progress, timestamps) then writes the
    table alone, not two indexes whose few partition keys ("job", a status) would take every
    write of every running job (see docs/limits.md). A page costs one BatchGetItem instead.
    """
    if not task_ids:
        return []
    table = jobs_table()
    found: dict[str, dict[str, Any]] = {}
    request: dict[str, Any] = {table.name: {"Keys": [{"task_id": task_id} for task_id in task_ids]}}
    for _ in range(10):  # unprocessed keys are retried a few times, as the SDK advises
        answer = table.meta.client.batch_get_item(RequestItems=request)
        for item in answer.get("Responses", {}).get(table.name, []):
            found[item["task_id"]] = plain(item)
        request = answer.get("UnprocessedKeys") or {}
        if not request:
            break
    # A row may have expired (TTL) between the query and the read: it is simply not listed.
    return [found[task_id] for task_id in task_ids if task_id in found]


def replace_event(task_id: str, event: dict[str, Any], *, video: dict[str, Any]) -> None:
    """Store the outcome event again, enriched (where the video was kept), keeping its id."""
    jobs_table().update_item(
        Key={"task_id": task_id},
        UpdateExpression="SET event = :event, video = :video",
        ConditionExpression="event_id = :id",
        ExpressionAttributeValues={
            ":event": json.dumps(event, separators=(",", ":")),
            ":video": storable(video),
            ":id": event["id"],
        },
    )
