"""How long recent jobs of each model ran: the poll policy's fallback when a job reports no progress.

One small item per model in the jobs table (key `#model#<model>`, not a job: it has no `kind`),
holding the last SLOTS processing durations in a ring. Reads are cached in the function's
memory for a few minutes; history only needs to be roughly current.
"""

from __future__ import annotations

import time
from typing import Any

from bridge.clients import jobs_table
from bridge.store.dynamo import plain

SLOTS = 50
CACHE_SECONDS = 300
KEY_PREFIX = "#model#"

_cache: dict[str, tuple[float, list[float]]] = {}


def stats_key(model: str) -> str:
    return f"{KEY_PREFIX}{model}"


def record_duration(model: str, seconds: float) -> None:
    """Add one finished job's processing time to the model's ring of recent durations."""
    table = jobs_table()
    counted = table.update_item(
        Key={"task_id": stats_key(model)},
        UpdateExpression="ADD samples :one",
        ExpressionAttributeValues={":one": 1},
        ReturnValues="UPDATED_NEW",
    )
    slot = (int(counted["Attributes"]["samples"]) - 1) % SLOTS
    table.update_item(
        Key={"task_id": stats_key(model)},
        UpdateExpression="SET #slot = :seconds",
        ExpressionAttributeNames={"#slot": f"d{slot}"},
        ExpressionAttributeValues={":seconds": round(seconds)},
    )


def recent_durations(model: str, now: float | None = None) -> list[float]:
    now = time.monotonic() if now is None else now
    cached = _cache.get(model)
    if cached and now - cached[0] < CACHE_SECONDS:
        return cached[1]
    item: dict[str, Any] = plain(jobs_table().get_item(Key={"task_id": stats_key(model)}).get("Item") or {})
    durations = [float(item[f"d{i}"]) for i in range(SLOTS) if f"d{i}" in item]
    _cache[model] = (now, durations)
    return durations


def forget_cache() -> None:
    _cache.clear()
