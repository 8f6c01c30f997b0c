"""The one way a job ends, whoever ends it (a poll's outcome, a cancel): event built, check queued,
outcome recorded once.

The first writer wins the conditional write and gets the event to publish; everyone else gets None.
How the event then goes out differs by caller: a poll hands it to its own execution's fan-out, a
cancel starts a publish execution of its own.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from bridge.models import JobStatus
from bridge.outcomes import checks
from bridge.outcomes.events import build_outcome_event
from bridge.store import jobs
from bridge.store.job_record import JobRecord
from bridge.timeutil import iso

# An outcome's error is Router One's own, copied into the job's row (twice: its field and the
# event's) and into the event every channel carries. Unbounded, a long one went over DynamoDB's
# 400 KB item or SNS's and Step Functions' 256 KiB, and the outcome could be neither recorded nor
# published. Real errors are a few hundred bytes; a longer one keeps its type, code and message head.
MAX_ERROR_BYTES = 8192
MAX_ERROR_MESSAGE_BYTES = 4096


def end_job(
    job: JobRecord,
    status: JobStatus,
    *,
    now: datetime,
    finalizer: str | None,
    polled: bool,
    url: str | None = None,
    url_ttl_s: int = 0,
    error: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Record `status` as the job's outcome unless it already has one; return the event to publish.

    `polled`: the outcome comes from a poll's answer (counted, with its url); `finalizer` names the
    writer (its execution ARN, or the cancel's), so a retry of the same writer gets its event back.
    """
    error = bounded_error(error)
    poll_count = job.poll_count + 1 if polled else job.poll_count
    event = build_outcome_event(
        task_id=job.task_id,
        status=status,
        model=job.model,
        submitted_at=job.created_at,
        finished_at=now,
        poll_count=poll_count,
        url=url,
        url_ttl_s=url_ttl_s,
        error=error,
        metadata=job.metadata,
        owner_id=job.owner_id,
        progress=job.progress,
    )
    fields: dict[str, Any] = {
        **jobs.status_fields(status, job.owner_id),
        "error": error,
        "finished_at": iso(now),
        "updated_at": iso(now),
    }
    if polled:
        fields |= {
            "url": url,
            "url_expires_at": event["data"]["url_expires_at"],
            "last_polled_at": iso(now),
            "poll_count": poll_count,
        }
    if status == JobStatus.COMPLETED:
        fields["progress"] = 100
    # Sent before the write, so no crash after it can lose the check (see bridge.outcomes.checks).
    checks.queue_check(job.task_id)
    return jobs.record_outcome(job.task_id, fields=fields, event=event, execution_id=finalizer)


def bounded_error(error: dict[str, Any] | None) -> dict[str, Any] | None:
    """The error as it came if it is at most MAX_ERROR_BYTES as JSON; else its type and code and the
    head of its message, marked `truncated` (see MAX_ERROR_BYTES for why)."""
    if error is None or len(json.dumps(error, separators=(",", ":"), default=str).encode()) <= MAX_ERROR_BYTES:
        return error

    def head(value: Any, limit: int) -> str:
        return str(value).encode()[:limit].decode(errors="ignore")

    short = {name: head(error[name], 256) for name in ("type", "code") if error.get(name) is not None}
    return short | {"message": head(error.get("message") or "", MAX_ERROR_MESSAGE_BYTES), "truncated": True}
