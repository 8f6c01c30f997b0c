"""Listing jobs: one keys-only index partition per list, read newest first; the sweep's cursors."""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bridge import aws_errors
from bridge.clients import jobs_table
from bridge.errors import ServiceUnavailable
from bridge.store.dynamo import plain
from bridge.store.job_record import JOB_KIND, JobRecord
from bridge.store.jobs import OWNER_STATUS_FIELD, status_fields
from bridge.tenancy import OWNER_FIELD
from bridge.timeutil import iso

LIST_INDEX = "jobs_by_created"
STATUS_INDEX = "jobs_by_status"
# An owner's jobs newest first, and an owner's jobs of one status ("<owner_id>#<status>").
OWNER_INDEX = "jobs_by_owner"
OWNER_STATUS_INDEX = "jobs_by_owner_status"
# Where the reconciler's sweeps resume: small items keyed outside the task-id space (like the
# model statistics), without `kind`, so no list index holds them.
SWEEP_CURSOR_PREFIX = "#sweep#"
# BatchGetItem's unprocessed keys: tried this many times with full-jitter backoff, as AWS advises.
BATCH_GET_ATTEMPTS = 8
BATCH_GET_BACKOFF_S = 0.05
BATCH_GET_BACKOFF_CAP_S = 2.0


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
) -> tuple[list[JobRecord], dict[str, Any] | None]:
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


def _rows_in_order(task_ids: list[str]) -> list[JobRecord]:
    """The rows behind a page of index keys, in the page's order.

    The list indexes project keys only: a poll's update (progress, timestamps) then writes the
    table alone, not two indexes whose few partition keys ("job", a status) would take every
    write of every running job (see docs/limits.md). A page costs one BatchGetItem instead.
    """
    if not task_ids:
        return []
    table = jobs_table()
    found: dict[str, JobRecord] = {}
    request: dict[str, Any] = {table.name: {"Keys": [{"task_id": task_id} for task_id in task_ids]}}
    for attempt in range(BATCH_GET_ATTEMPTS):
        if attempt:
            # Unprocessed keys mean the table is throttling: back off (full jitter) before asking again.
            time.sleep(random.uniform(0, min(BATCH_GET_BACKOFF_CAP_S, BATCH_GET_BACKOFF_S * 2**attempt)))
        answer = table.meta.client.batch_get_item(RequestItems=request)
        for item in answer.get("Responses", {}).get(table.name, []):
            found[item["task_id"]] = JobRecord.model_validate(plain(item))
        request = answer.get("UnprocessedKeys") or {}
        if not request:
            break
    else:
        # A page with rows silently missing would mislead a caller and make the sweep skip jobs.
        raise ServiceUnavailable("the job table is busy; retry in a few seconds", code="list_unavailable")
    # A row may have expired (TTL) between the query and the read: it is simply not listed.
    return [found[task_id] for task_id in task_ids if task_id in found]
