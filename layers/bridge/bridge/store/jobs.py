"""The DynamoDB job store: the only module that knows the job table's writes and reads.

Rows go in and come out as `JobRecord`s; listing and the sweep's cursors are in `job_lists`.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from bridge import aws_errors
from bridge.clients import jobs_table
from bridge.errors import TaskNotFound
from bridge.store.dynamo import is_conditional_failure, plain, storable
from bridge.store.job_record import JOB_KIND, JobRecord
from bridge.tenancy import OWNER_FIELD
from bridge.timeutil import iso

OWNER_STATUS_FIELD = "owner_status"
CALLER_KEY_FIELD = "caller_key_ciphertext"
# Set with the outcome, in the same write; removed once its fan-out succeeded (the state machine's
# MarkPublished step, or the outcome check). While it is there the event may not be out yet.
UNPUBLISHED_FIELD = "unpublished_since"
STARTED_BY_FIELD = "started_by"


def create_job(record: JobRecord) -> JobRecord:
    """Store a newly accepted job; a second create of the same task returns the first row."""
    item = storable(record.item() | status_fields(record.status, record.owner_id))
    try:
        jobs_table().put_item(Item=item, ConditionExpression="attribute_not_exists(task_id)")
    except aws_errors.ClientError as exc:
        if not is_conditional_failure(exc):
            raise
        return get_job(record.task_id)
    return record


def status_fields(status: str, owner_id: str | None) -> dict[str, str]:
    """The row's status and, for an owned job, the key that files it under its owner's status."""
    fields = {"status": str(status)}
    if owner_id:
        fields[OWNER_STATUS_FIELD] = f"{owner_id}#{status}"
    return fields


def get_job(task_id: str) -> JobRecord:
    item = jobs_table().get_item(Key={"task_id": task_id}, ConsistentRead=True).get("Item")
    # The table also holds per-model statistics, which are not jobs.
    if item is None or item.get("kind") != JOB_KIND:
        raise _not_found(task_id)
    return JobRecord.model_validate(plain(item))


def find_job(task_id: str, *, owner_id: str | None) -> JobRecord:
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
    return JobRecord.model_validate(plain(items[0]))


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
) -> JobRecord | None:
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
    return JobRecord.model_validate(plain(previous["Attributes"]))


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
        return stored.outcome_event() if stored.finalized_by == finalizer else None
    return event


def unpublished_outcome(task_id: str, execution_id: str | None) -> tuple[JobRecord, dict[str, Any]] | None:
    """(row, event) if `execution_id` recorded the job's outcome and it is still marked unpublished.

    A poll retried after its execution's earlier attempt recorded the outcome and died may find the
    job ended by itself: it must publish what it recorded, not stop.
    """
    job = find_row(task_id)
    if job is None or job.finalized_by != (execution_id or "unknown") or not job.unpublished_since:
        return None
    event = job.outcome_event()
    return None if event is None else (job, event)


def find_row(task_id: str) -> JobRecord | None:
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
