"""The outcome event envelope, identical on every channel, and its channel-specific labels.

The state machine delivers it (SNS publish, EventBridge PutEvents) so sends are retried durably;
this module decides what the envelope says.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from bridge.models import JobStatus
from bridge.tenancy import UNOWNED
from bridge.timeutil import iso, parse_iso

EVENT_TYPES = {
    JobStatus.COMPLETED: "video.generation.completed",
    JobStatus.FAILED: "video.generation.failed",
    JobStatus.TIMED_OUT: "video.generation.timed_out",
    JobStatus.CANCELED: "video.generation.canceled",
}
DETAIL_TYPES = {
    JobStatus.COMPLETED: "Video Generation Completed",
    JobStatus.FAILED: "Video Generation Failed",
    JobStatus.TIMED_OUT: "Video Generation Timed Out",
    JobStatus.CANCELED: "Video Generation Canceled",
}
# Fixed namespace: the same task and outcome always yield the same event id, across retries.
_EVENT_NAMESPACE = uuid.UUID("6f1c2d0e-4b7a-4d4e-9a51-3c2f8e1b7d90")


def event_id(task_id: str, status: JobStatus | str) -> str:
    key = status.value if isinstance(status, JobStatus) else status
    return f"evt_{uuid.uuid5(_EVENT_NAMESPACE, f'{task_id}/{key}').hex}"


def event_kind(event: dict[str, Any]) -> str:
    """`video.generation.completed` → `completed`: the name webhook filters use."""
    return str(event.get("type", "")).rpartition(".")[2]


def build_outcome_event(
    *,
    task_id: str,
    status: JobStatus,
    model: str,
    submitted_at: str,
    finished_at: datetime,
    poll_count: int,
    url: str | None = None,
    url_ttl_s: int = 0,
    error: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    owner_id: str | None = None,
    progress: int | None = None,
) -> dict[str, Any]:
    """The one envelope for SNS, EventBridge and webhooks. Never carries credentials.

    `data.owner_id` names the job's owner, so a subscriber or a rule can take one tenant's events.
    `data.progress` is 100 for a completion, else the job's last recorded progress (as its status shows).
    """
    elapsed = (finished_at - parse_iso(submitted_at)).total_seconds()
    return {
        "id": event_id(task_id, status),
        "type": EVENT_TYPES[status],
        "time": iso(finished_at),
        "data": {
            "task_id": task_id,
            "owner_id": owner_id or UNOWNED,
            "status": status.value,
            "model": model,
            "url": url,
            "url_expires_at": iso(finished_at + timedelta(seconds=url_ttl_s)) if url else None,
            "error": error,
            "timings": {
                "submitted_at": submitted_at,
                "finished_at": iso(finished_at),
                "elapsed_s": round(max(elapsed, 0.0), 3),
            },
            "progress": 100 if status == JobStatus.COMPLETED else progress,
            "poll_count": poll_count,
            "metadata": metadata or {},
        },
    }


def build_running_event(
    *,
    kind: str,
    task_id: str,
    status: str,
    model: str,
    submitted_at: str,
    now: datetime,
    progress: int | None,
    poll_count: int,
    metadata: dict[str, Any] | None = None,
    owner_id: str | None = None,
) -> dict[str, Any]:
    """A `started` or `progress` event, in the same envelope as an outcome.

    Ids are stable per task and per progress value, so a retried poll yields the same id.
    """
    key = "started" if kind == "started" else f"progress/{progress}"
    elapsed = (now - parse_iso(submitted_at)).total_seconds()
    return {
        "id": event_id(task_id, key),
        "type": f"video.generation.{kind}",
        "time": iso(now),
        "data": {
            "task_id": task_id,
            "owner_id": owner_id or UNOWNED,
            "status": status,
            "model": model,
            "url": None,
            "url_expires_at": None,
            "error": None,
            "timings": {"submitted_at": submitted_at, "finished_at": None, "elapsed_s": round(max(elapsed, 0.0), 3)},
            "progress": progress,
            "poll_count": poll_count,
            "metadata": metadata or {},
        },
    }


def detail_type(status: JobStatus) -> str:
    return DETAIL_TYPES[status]


ENDPOINT_DISABLED = "webhook.endpoint.disabled"
ENDPOINT_DISABLED_DETAIL_TYPE = "Webhook Endpoint Disabled"


def endpoint_disabled_event_id(endpoint_id: str, disabled_at: str) -> str:
    return f"evt_{uuid.uuid5(_EVENT_NAMESPACE, f'{endpoint_id}/disabled/{disabled_at}').hex}"


def build_endpoint_disabled_event(
    *, owner_id: str, endpoint_id: str, url: str, reason: str, disabled_at: str, failing_since: str | None
) -> dict[str, Any]:
    """Tells an endpoint's owner it was disabled: it answered 410, or failed for the whole allowed period."""
    return {
        "id": endpoint_disabled_event_id(endpoint_id, disabled_at),
        "type": ENDPOINT_DISABLED,
        "time": disabled_at,
        "data": {
            "owner_id": owner_id,
            "endpoint_id": endpoint_id,
            "url": url,
            "reason": reason,
            "failing_since": failing_since,
            "disabled_at": disabled_at,
        },
    }
