"""The DynamoDB job store: the only module that knows the table and its conditional writes."""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bridge import aws_errors
from bridge.clients import jobs_table
from bridge.errors import ServiceUnavailable, TaskNotFound
from bridge.models import JobStatus
from bridge.store.dynamo import is_conditional_failure, plain, storable
from bridge.tenancy import OWNER_FIELD, UNOWNED
from bridge.timeutil import iso

# Every job row carries this constant: the key of the index that lists all jobs newest first.
JOB_KIND = "job"
LIST_INDEX = "jobs_by_created"
STATUS_INDEX = "jobs_by_status"
# An owner's jobs newest first, and an owner's jobs of one status ("<owner_id>#<status>").
OWNER_INDEX = "jobs_by_owner"
OWNER_STATUS_INDEX = "jobs_by_owner_status"
OWNER_STATUS_FIELD = "owner_status"

# Pass-through jobs: the caller's Router One key, KMS-encrypted, until the job ends.
CALLER_KEY_FIELD = "caller_key_ciphertext"
# Set with the outcome, in the same write; removed once its fan-out succeeded (the state machine's
# MarkPublished step, or the outcome check). While it is there the event may not be out yet.
UNPUBLISHED_FIELD = "unpublished_since"
# Which poll first stored `processing` ("<execution>#<poll>"): a retry of that very poll sends
# `started` again (same id), any later poll does not.
STARTED_BY_FIELD = "started_by"
# Where the reconciler's sweeps resume: small items keyed outside the task-id space (like the
# model statistics), without `kind`, so no list index holds them.
SWEEP_CURSOR_PREFIX = "#sweep#"
# BatchGetItem's unprocessed keys: tried this many times with full-jitter backoff, as AWS advises.
BATCH_GET_ATTEMPTS = 8
BATCH_GET_BACKOFF_S = 0.05
BATCH_GET_BACKOFF_CAP_S = 2.0

# Fields of a row that the status endpoint shows, in this order.
PUBLIC_FIELDS = (
    "task_id",
    OWNER_FIELD,
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
    owner_id: str | None = None,
) -> dict[str, Any]:
    """Record a newly accepted job; a second create of the same task returns the first row."""
    item: dict[str, Any] = {
        "task_id": task_id,
        "kind": JOB_KIND,
        **status_fields(JobStatus.PENDING, owner_id),
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
    if owner_id:
        item[OWNER_FIELD] = owner_id
    try:
        jobs_table().put_item(Item=item, ConditionExpression="attribute_not_exists(task_id)")
    except aws_errors.ClientError as exc:
        if not is_conditional_failure(exc):
            raise
        return get_job(task_id)
    return plain(item)


def status_fields(status: str, owner_id: str | None) -> dict[str, str]:
    """The row's status and, for an owned job, the key that files it under its owner's status."""
    fields = {"status": str(status)}
    if owner_id:
        fields[OWNER_STATUS_FIELD] = f"{owner_id}#{status}"
    return fields


def get_job(task_id: str) -> dict[str, Any]:
    item = jobs_table().get_item(Key={"task_id": task_id}, ConsistentRead=True).get("Item")
    # The table also holds per-model statistics, which are not jobs.
    if item is None or item.get("kind") != JOB_KIND:
        raise _not_found(task_id)
    return plain(item)


def find_job(task_id: str, *, owner_id: str | None) -> dict[str, Any]:
    """The job if it belongs to `owner_id` (None: to anyone); else the very answer an unknown id gets.

    One query whose filter holds the owner: another owner's job and a missing one both come back
    as an empty page of the same size, after the same single read.
    """
    names = {"#kind": "kind"}
    values: dict[str, Any] = {":task_id": task_id, ":kind": JOB_KIND}
    condition = "#kind = :kind"
    if owner_id is not None:
        names["#owner"] = OWNER_FIELD
        values[":owner"] = owner_id
        condition += " AND #owner = :owner"
    page = jobs_table().query(
        KeyConditionExpression="task_id = :task_id",
        FilterExpression=condition,
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values,
        ConsistentRead=True,
    )
    items = page.get("Items") or []
    if not items:
        raise _not_found(task_id)
    return plain(items[0])


def _not_found(task_id: str) -> TaskNotFound:
    return TaskNotFound(f"no video generation with task_id '{task_id}'")


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
    owner_id: str | None = None,
    started_by: str | None = None,
) -> dict[str, Any] | None:
    """Store what the latest poll saw, unless the job already reached its end.

    Returns the row as it was before this write (webhook decisions compare old and new),
    or None when the job had already ended. The list indexes hold keys only and their keys
    change only with the status, so a poll that sees no new status writes the table alone.
    `started_by` claims the first `processing` for this poll, unless an earlier poll holds it.
    """
    stamp = iso(now)
    statuses = status_fields(status, owner_id)
    values: dict[str, Any] = {
        **{f":{name}": value for name, value in statuses.items()},
        ":progress": progress,
        ":upstream": upstream_status,
        ":now": stamp,
        ":one": 1,
        ":execution": execution_id,
    }
    claim = ""
    if started_by is not None:
        claim = f", {STARTED_BY_FIELD} = if_not_exists({STARTED_BY_FIELD}, :started_by)"
        values[":started_by"] = started_by
    try:
        previous = jobs_table().update_item(
            Key={"task_id": task_id},
            UpdateExpression=(
                "SET "
                + "".join(f"#{name} = :{name}, " for name in statuses)
                + "progress = :progress, upstream_status = :upstream, "
                f"updated_at = :now, last_polled_at = :now, execution_id = :execution{claim} ADD poll_count :one"
            ),
            ConditionExpression="attribute_exists(task_id) AND attribute_not_exists(event_id)",
            ExpressionAttributeNames={f"#{name}": name for name in statuses},
            ExpressionAttributeValues=values,
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
    execution gets None: the outcome was recorded and published elsewhere. The same write marks the
    outcome unpublished (`UNPUBLISHED_FIELD`) until its fan-out has succeeded.
    """
    finalizer = execution_id or "unknown"
    names = {f"#{name}": name for name in fields}
    values = {f":{name}": storable(value) for name, value in fields.items()}
    assignments = ", ".join(f"#{name} = :{name}" for name in fields)
    try:
        jobs_table().update_item(
            Key={"task_id": task_id},
            # The end of the job is the end of a caller's sealed key: gone in the same write.
            UpdateExpression=(
                f"SET {assignments}, event_id = :event_id, event = :event, finalized_by = :finalizer, "
                f"{UNPUBLISHED_FIELD} = :recorded REMOVE {CALLER_KEY_FIELD}"
            ),
            ConditionExpression="attribute_exists(task_id) AND attribute_not_exists(event_id)",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={
                **values,
                ":event_id": event["id"],
                ":event": json.dumps(event, separators=(",", ":")),
                ":finalizer": finalizer,
                ":recorded": event["time"],
            },
        )
    except aws_errors.ClientError as exc:
        if not is_conditional_failure(exc):
            raise
        stored = get_job(task_id)
        if stored.get("finalized_by") == finalizer and stored.get("event"):
            return stored_event(stored)
        return None
    return event


def stored_event(job: dict[str, Any]) -> dict[str, Any]:
    """The outcome event recorded on the row, as the state machine publishes it."""
    event: dict[str, Any] = json.loads(job["event"])
    # Stored before owners existed: the state machine now sends data.owner_id as an SNS attribute.
    event["data"].setdefault(OWNER_FIELD, UNOWNED)
    return event


def unpublished_outcome(task_id: str, execution_id: str | None) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(row, event) if `execution_id` recorded the job's outcome and it is still marked unpublished.

    A poll retried after its execution's earlier attempt recorded the outcome and died may find the
    job ended by itself: it must publish what it recorded, not stop.
    """
    job = find_row(task_id)
    if job is None or job.get("finalized_by") != (execution_id or "unknown"):
        return None
    if not job.get(UNPUBLISHED_FIELD) or not job.get("event"):
        return None
    return job, stored_event(job)


def find_row(task_id: str) -> dict[str, Any] | None:
    """The job's row, or None if it is gone (expired) or not a job."""
    try:
        return get_job(task_id)
    except TaskNotFound:
        return None


def mark_published(task_id: str, event_id: str) -> None:
    """Clear the unpublished mark of this outcome (what the state machine's MarkPublished step does)."""
    try:
        jobs_table().update_item(
            Key={"task_id": task_id},
            UpdateExpression=f"REMOVE {UNPUBLISHED_FIELD}",
            ConditionExpression="event_id = :id",
            ExpressionAttributeValues={":id": event_id},
        )
    except aws_errors.ClientError as exc:
        if not is_conditional_failure(exc):
            raise


def sweep_cursor(name: str) -> dict[str, Any] | None:
    """Where the sweep called `name` stopped last time (a list's start key), or None: from the top."""
    item = jobs_table().get_item(Key={"task_id": SWEEP_CURSOR_PREFIX + name}, ConsistentRead=True).get("Item")
    cursor = (item or {}).get("cursor")
    return json.loads(cursor) if isinstance(cursor, str) and cursor else None


def save_sweep_cursor(name: str, start_key: dict[str, Any] | None, *, now: datetime) -> None:
    """Remember where to resume; None: the pass is complete, the next one starts from the top."""
    jobs_table().put_item(
        Item={
            "task_id": SWEEP_CURSOR_PREFIX + name,
            "cursor": json.dumps(plain(start_key), separators=(",", ":")) if start_key else "",
            "updated_at": iso(now),
        }
    )


@dataclass(frozen=True)
class JobList:
    """Which jobs a list shows: one partition of one keys-only index, read newest first."""

    index: str
    key: str  # the index's partition key attribute
    value: str

    @classmethod
    def of(cls, *, owner_id: str | None, status: str | None) -> JobList:
        """An owner's jobs (of one status, or all); with no owner, every job (operators, the sweep)."""
        if owner_id is None:
            return cls(STATUS_INDEX, "status", status) if status else cls(LIST_INDEX, "kind", JOB_KIND)
        if status:
            return cls(OWNER_STATUS_INDEX, OWNER_STATUS_FIELD, status_fields(status, owner_id)[OWNER_STATUS_FIELD])
        return cls(OWNER_INDEX, OWNER_FIELD, owner_id)

    def holds(self, start_key: dict[str, Any]) -> bool:
        """Whether a start key (a page's LastEvaluatedKey) is a position in this very list."""
        return set(start_key) == {"task_id", self.key, "created_at"} and start_key[self.key] == self.value


def list_jobs(
    listing: JobList, *, limit: int, start_key: dict[str, Any] | None
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """One page of the list, newest first, and the key to continue from.

    Every row of the partition belongs in the list, so a page is never cut short by rows the
    caller may not see: there is no filter after the read.
    """
    query: dict[str, Any] = {
        "IndexName": listing.index,
        "KeyConditionExpression": "#key = :value",
        "ExpressionAttributeNames": {"#key": listing.key},
        "ExpressionAttributeValues": {":value": listing.value},
        "ScanIndexForward": False,
        "Limit": limit,
    }
    if start_key:
        query["ExclusiveStartKey"] = start_key
    try:
        page = jobs_table().query(**query)
    except aws_errors.ClientError as exc:
        if not _index_not_ready(exc):
            raise
        raise ServiceUnavailable(
            "this list's index is still being built (an upgrade adds it); retry in a few minutes",
            code="list_unavailable",
        ) from None
    keys = [item["task_id"] for item in page.get("Items", [])]
    return _rows_in_order(keys), page.get("LastEvaluatedKey")


def _index_not_ready(exc: Any) -> bool:
    # An index added to an existing table answers this until it is built (or before its deploy step).
    error = exc.response.get("Error", {})
    message = str(error.get("Message", "")).lower()
    return error.get("Code") == "ValidationException" and ("backfilling" in message or "specified index" in message)


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
    for attempt in range(BATCH_GET_ATTEMPTS):
        if attempt:
            # Unprocessed keys mean the table is throttling: back off (full jitter) before asking again.
            time.sleep(random.uniform(0, min(BATCH_GET_BACKOFF_CAP_S, BATCH_GET_BACKOFF_S * 2**attempt)))
        answer = table.meta.client.batch_get_item(RequestItems=request)
        for item in answer.get("Responses", {}).get(table.name, []):
            found[item["task_id"]] = plain(item)
        request = answer.get("UnprocessedKeys") or {}
        if not request:
            break
    else:
        # A page with rows silently missing would mislead a caller and make the sweep skip jobs.
        raise ServiceUnavailable("the job table is busy; retry in a few seconds", code="list_unavailable")
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
