"""Pure text helpers: progress bars, key/value blocks, tables and one-line event summaries.

Nothing here does I/O; every function takes what it shows (and the current time, when it
matters) as arguments, so the output is easy to test.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

BAR_WIDTH = 20
EMPTY = "-"

# The order `status` shows a job's fields in; fields the bridge adds later follow these.
JOB_FIELDS = (
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
)
TIME_FIELDS = frozenset({"created_at", "updated_at", "finished_at", "last_polled_at", "url_expires_at"})


def parse_time(text: Any) -> datetime | None:
    """An ISO 8601 timestamp from the API as an aware datetime, or None when it is not one."""
    if not isinstance(text, str) or not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def short_time(text: Any) -> str:
    """`2026-11-24T21:20:51.189Z` as `2026-11-24 21:20:51` (UTC); anything else as it came."""
    parsed = parse_time(text)
    if parsed is None:
        return EMPTY if text in (None, "") else str(text)
    return parsed.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float) -> str:
    """A span for people: `12s`, `3m05s`, `2h04m`, `1d03h`."""
    total = max(0, int(seconds))
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def percent(progress: Any) -> int | None:
    """The job's progress as a whole percentage in 0..100, or None when it reports none."""
    if isinstance(progress, bool) or not isinstance(progress, int | float):
        return None
    return max(0, min(100, round(progress)))


def progress_bar(progress: Any, width: int = BAR_WIDTH) -> str:
    """`[#########-----------]` for 45; an unknown progress leaves the bar empty."""
    value = percent(progress)
    filled = 0 if value is None else round(width * value / 100)
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def progress_line(status: str, progress: Any, elapsed_s: float, width: int = BAR_WIDTH) -> str:
    """The line `submit --wait` shows: `[#########-----------]  45%  processing  12s`."""
    value = percent(progress)
    if value is None and status == "completed":
        value = 100
    shown = "   ?" if value is None else f"{value:3d}%"
    return f"{progress_bar(value, width)} {shown}  {status}  {duration(elapsed_s)}"


def error_text(error: Any) -> str:
    """Router One's error object as `message (code)`."""
    if isinstance(error, Mapping):
        message = error.get("message") or "unknown error"
        code = error.get("code")
        return f"{message} ({code})" if code else str(message)
    return EMPTY if error in (None, "") else str(error)


def expiry_text(expires_at: Any, now: datetime) -> str:
    """`2026-11-25 21:20:51 UTC (in 23h59m)`, or `... (expired)` once the time has passed."""
    parsed = parse_time(expires_at)
    if parsed is None:
        return short_time(expires_at)
    left = (parsed - now).total_seconds()
    when = "expired" if left <= 0 else f"in {duration(left)}"
    return f"{short_time(expires_at)} UTC ({when})"


def value_text(name: str, value: Any, now: datetime) -> str:
    """One field of a job for the key/value view."""
    if value is None or value == "" or value == [] or value == {}:
        return EMPTY
    if name == "url_expires_at":
        return expiry_text(value, now)
    if name in TIME_FIELDS:
        return short_time(value) + " UTC"
    if name == "progress":
        shown = percent(value)
        return EMPTY if shown is None else f"{shown}%"
    if name == "error":
        return error_text(value)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return ", ".join(value)
    if isinstance(value, Mapping | list):
        return json.dumps(value, separators=(", ", ": "), ensure_ascii=False)
    return str(value)


def key_values(rows: Iterable[tuple[str, str]]) -> str:
    """Aligned `key   value` lines."""
    pairs = list(rows)
    if not pairs:
        return ""
    width = max(len(key) for key, _ in pairs)
    return "\n".join(f"{key.ljust(width)}  {value}".rstrip() for key, value in pairs)


def job_block(job: Mapping[str, Any], now: datetime) -> str:
    """A job as aligned key/value lines, known fields first, in the API's order."""
    names = [name for name in JOB_FIELDS if name in job] + [name for name in job if name not in JOB_FIELDS]
    return key_values((name, value_text(name, job[name], now)) for name in names)


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A plain text table: a header line and left-aligned columns two spaces apart."""
    lines = [list(headers), *(list(row) for row in rows)]
    widths = [max(len(line[column]) for line in lines) for column in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in lines
    )


JOB_TABLE_HEADERS = ("TASK ID", "STATUS", "MODEL", "PROGRESS", "CREATED (UTC)")


def job_row(job: Mapping[str, Any]) -> tuple[str, str, str, str, str]:
    shown = percent(job.get("progress"))
    return (
        str(job.get("task_id") or EMPTY),
        str(job.get("status") or EMPTY),
        str(job.get("model") or EMPTY),
        EMPTY if shown is None else f"{shown}%",
        short_time(job.get("created_at")),
    )


def jobs_table(jobs: Iterable[Mapping[str, Any]]) -> str:
    return table(JOB_TABLE_HEADERS, (job_row(job) for job in jobs))


def outcome_lines(job: Mapping[str, Any], now: datetime) -> list[str]:
    """What `submit --wait` prints when the job ends."""
    status = str(job.get("status"))
    lines = [f"{job.get('task_id')} {status}"]
    if job.get("url"):
        lines.append(f"url:      {job['url']}")
        if job.get("url_expires_at"):
            lines.append(f"expires:  {expiry_text(job['url_expires_at'], now)}")
    video = job.get("video")
    if isinstance(video, Mapping):
        if video.get("status") == "stored":
            lines.append(f"kept:     {video.get('s3_uri')}")
        else:
            lines.append(f"not kept: {video.get('error')}")
    if job.get("error"):
        lines.append(f"error:    {error_text(job['error'])}")
    return lines


def event_line(event: Mapping[str, Any]) -> str:
    """One event on one line: time, type, task id, status, then the url or the error. An endpoint's
    event (`webhook.endpoint.disabled`) names the endpoint, why, and its url instead."""
    data = event.get("data") if isinstance(event.get("data"), Mapping) else {}
    if data.get("endpoint_id") and not data.get("task_id"):
        parts = [short_time(event.get("time")), str(event.get("type") or EMPTY), str(data["endpoint_id"])]
        return "  ".join([*parts, f"reason: {data.get('reason') or EMPTY}", str(data.get("url") or EMPTY)])
    parts = [
        short_time(event.get("time")),
        str(event.get("type") or EMPTY),
        str(data.get("task_id") or EMPTY),
        str(data.get("status") or EMPTY),
    ]
    if data.get("url"):
        parts.append(str(data["url"]))
    elif data.get("error"):
        parts.append("error: " + error_text(data["error"]))
    elif percent(data.get("progress")) is not None:
        parts.append(f"{percent(data.get('progress'))}%")
    return "  ".join(parts)


def attempt_line(attempt: Mapping[str, Any]) -> str:
    """One webhook attempt: when, which, the answer, how long it took, what went wrong."""
    code = attempt.get("status_code")
    latency = attempt.get("latency_ms")
    parts = [
        short_time(attempt.get("at")),
        f"round {attempt.get('round', '?')} attempt {attempt.get('attempt', '?')}",
        f"HTTP {code}" if code is not None else "no answer",
    ]
    if latency is not None:
        parts.append(f"{latency} ms")
    if attempt.get("error"):
        parts.append(str(attempt["error"]))
    if attempt.get("retry_in_s") is not None:
        parts.append(f"retry in {duration(float(attempt['retry_in_s']))}")
    return "  ".join(parts)


def deliveries_block(answer: Mapping[str, Any]) -> str:
    """The webhook delivery log of one job: the receiver, then each delivery and its attempts."""
    head = key_values(
        [
            ("task_id", str(answer.get("task_id") or EMPTY)),
            ("callback_url", str(answer.get("callback_url") or EMPTY)),
            ("events", ", ".join(answer.get("webhook_events_filter") or []) or EMPTY),
        ]
    )
    deliveries = answer.get("deliveries") or []
    if not answer.get("callback_url"):
        return head + "\n\nthis job has no callback_url, so it sends no webhooks"
    if not deliveries:
        return head + "\n\nno deliveries yet"
    blocks = [head]
    for delivery in deliveries:
        attempts = delivery.get("attempts") or []
        summary = "  ".join(
            [
                str(delivery.get("event_id") or EMPTY),
                str(delivery.get("event_type") or EMPTY),
                str(delivery.get("status") or EMPTY),
                f"round {delivery.get('round', '?')}",
                f"{len(attempts)} attempt{'' if len(attempts) == 1 else 's'}",
            ]
        )
        if delivery.get("next_attempt_at"):
            summary += f"  next attempt {short_time(delivery['next_attempt_at'])} UTC"
        blocks.append("\n".join([summary, *("  " + attempt_line(attempt) for attempt in attempts)]))
    return "\n\n".join(blocks)


def _listed(values: Any) -> str:
    return ", ".join(str(value) for value in values) if values else EMPTY


def _when(text: Any) -> str:
    return EMPTY if text in (None, "") else short_time(text) + " UTC"


def endpoint_block(endpoint: Mapping[str, Any]) -> str:
    """A registered webhook endpoint as aligned key/value lines; its secret last, when the answer has it."""
    if endpoint.get("enabled"):
        state = "enabled"
    else:
        state = f"disabled ({endpoint.get('disabled_reason') or 'unknown reason'})"
    keys = []
    for key in endpoint.get("public_keys") or []:
        expires = key.get("expires_at") if isinstance(key, Mapping) else None
        shown = str(key.get("key") if isinstance(key, Mapping) else key)
        keys.append(f"{shown} (until {short_time(expires)} UTC)" if expires else shown)
    rows = [
        ("id", str(endpoint.get("id") or EMPTY)),
        ("url", str(endpoint.get("url") or EMPTY)),
        ("description", str(endpoint.get("description") or EMPTY)),
        ("event_types", _listed(endpoint.get("event_types"))),
        ("signatures", _listed(endpoint.get("signature_versions"))),
        ("state", state),
    ]
    if not endpoint.get("enabled"):
        rows.append(("disabled_at", _when(endpoint.get("disabled_at"))))
    rows += [
        ("failing_since", _when(endpoint.get("failing_since"))),
        ("last_success_at", _when(endpoint.get("last_success_at"))),
        ("public_keys", keys[0] if keys else EMPTY),
        *(("", key) for key in keys[1:]),
        ("created_at", _when(endpoint.get("created_at"))),
        ("updated_at", _when(endpoint.get("updated_at"))),
    ]
    if endpoint.get("secret"):
        rows.append(("secret", str(endpoint["secret"])))
    return key_values(rows)


ENDPOINT_TABLE_HEADERS = ("ENDPOINT ID", "STATE", "EVENTS", "URL")


def endpoints_table(endpoints: Iterable[Mapping[str, Any]]) -> str:
    return table(
        ENDPOINT_TABLE_HEADERS,
        (
            (
                str(endpoint.get("id") or EMPTY),
                "enabled" if endpoint.get("enabled") else f"disabled ({endpoint.get('disabled_reason') or '?'})",
                ",".join(endpoint.get("event_types") or []) or EMPTY,
                str(endpoint.get("url") or EMPTY),
            )
            for endpoint in endpoints
        ),
    )


def recovery_text(answer: Mapping[str, Any]) -> str:
    """What `endpoints recover` says once the bridge queued the recovery."""
    rate = answer.get("rate_per_second")
    pace = f", at most {rate:g} a second" if isinstance(rate, int | float) and not isinstance(rate, bool) else ""
    return (
        f"recovery of {answer.get('endpoint_id') or EMPTY} {answer.get('status') or 'queued'}: every delivery "
        f"that failed since {short_time(answer.get('since'))} UTC is sent again{pace}"
    )


ENDPOINT_DELIVERY_HEADERS = ("CREATED (UTC)", "STATUS", "EVENT", "TASK ID", "WEBHOOK ID", "ATTEMPTS")


def endpoint_deliveries_table(deliveries: Iterable[Mapping[str, Any]]) -> str:
    """An endpoint's deliveries, one line each, in the API's order (newest first)."""
    return table(
        ENDPOINT_DELIVERY_HEADERS,
        (
            (
                short_time(delivery.get("created_at")),
                str(delivery.get("status") or EMPTY),
                str(delivery.get("event_type") or EMPTY),
                str(delivery.get("task_id") or EMPTY),
                str(delivery.get("webhook_id") or EMPTY),
                str(delivery.get("attempt_count", EMPTY)),
            )
            for delivery in deliveries
        ),
    )


def fit(line: str, columns: int) -> str:
    """Cut a line to the terminal width so a `\\r` redraw never wraps."""
    return line if len(line) < columns else line[: max(0, columns - 1)]
