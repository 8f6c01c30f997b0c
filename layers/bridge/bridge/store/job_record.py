"""A job as the jobs table holds it: one typed record from submit to outcome.

Submit makes it (`JobRecord.accepted`), the reconcile queue carries it when recording failed, the
store writes and reads it, polls and the outcome fill in the rest. Field names are the table's
attribute names, so rows written before this model existed read unchanged.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from bridge.models import JobStatus
from bridge.tenancy import UNOWNED
from bridge.timeutil import iso, parse_iso

# Every job row carries this constant: the key of the index that lists all jobs newest first.
JOB_KIND = "job"

# Fields of a row that the status endpoint shows, in this order.
PUBLIC_FIELDS = (
    "task_id",
    "owner_id",
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


class JobRecord(BaseModel):
    """One job's row. Unknown attributes (bookkeeping of other modules) are ignored when read."""

    model_config = ConfigDict(extra="ignore", defer_build=True, populate_by_name=True)

    task_id: str = Field(min_length=1)
    kind: str = JOB_KIND
    status: JobStatus = JobStatus.PENDING
    # None: a job from before owners existed, visible to operators only.
    owner_id: str | None = None
    model: str
    # Router One's body as forwarded (the bridge's own fields removed).
    request: dict[str, Any] = Field(default_factory=dict)
    created_at: str
    updated_at: str | None = None
    deadline_at: int
    # DynamoDB's TTL attribute. A queued record from before this model carries `retention_days` instead.
    expires_at: int | None = None
    poll_count: int = 0
    metadata: dict[str, Any] | None = None
    callback_url: str | None = None
    # Queued records name it `webhook_events`.
    webhook_events_filter: list[str] | None = Field(
        default=None, validation_alias=AliasChoices("webhook_events_filter", "webhook_events")
    )
    # Pass-through jobs: the caller's Router One key, KMS-encrypted, until the job ends.
    caller_key_ciphertext: str | None = None

    # Written by polls.
    progress: int | None = None
    upstream_status: str | None = None
    last_polled_at: str | None = None
    execution_id: str | None = None
    # Which poll first stored `processing` ("<execution>#<poll>"): only its retries send `started` again.
    started_by: str | None = None
    progress_notified_at: int | None = None
    progress_notified: int | None = None

    # Written with the outcome, in one conditional write.
    url: str | None = None
    url_expires_at: str | None = None
    error: dict[str, Any] | None = None
    finished_at: str | None = None
    event_id: str | None = None
    # The outcome event as compact JSON text (see `outcome_event`).
    event: str | None = None
    # The execution ARN that recorded the outcome, or "cancel".
    finalized_by: str | None = None
    # Set with the outcome; removed once its fan-out succeeded.
    unpublished_since: str | None = None
    webhook_dead_letters: list[str] | None = None
    # Where the kept video is (KeepVideos).
    video: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _expiry_from_retention(cls, data: Any) -> Any:
        # Records queued for the reconciler before this model say how long to keep the row, not until when.
        if isinstance(data, dict) and "expires_at" not in data and "retention_days" in data:
            created = parse_iso(str(data["created_at"]))
            data = data | {"expires_at": int((created + timedelta(days=int(data["retention_days"]))).timestamp())}
        return data

    @classmethod
    def accepted(
        cls,
        *,
        task_id: str,
        owner_id: str,
        model: str,
        request: dict[str, Any],
        now: datetime,
        deadline_s: int,
        retention_days: int,
        callback_url: str | None,
        webhook_events: list[str] | None,
        metadata: dict[str, Any] | None,
        caller_key_ciphertext: str | None,
    ) -> JobRecord:
        """The record of a job Router One just accepted, before it is stored."""
        return cls(
            task_id=task_id,
            owner_id=owner_id,
            model=model,
            request=request,
            created_at=iso(now),
            updated_at=iso(now),
            deadline_at=int(now.timestamp()) + deadline_s,
            expires_at=int((now + timedelta(days=retention_days)).timestamp()),
            callback_url=callback_url,
            webhook_events_filter=(webhook_events or []) if callback_url else None,
            metadata=metadata,
            caller_key_ciphertext=caller_key_ciphertext,
        )

    def item(self) -> dict[str, Any]:
        """The row's attributes, unset ones left out (DynamoDB stores no nulls for us)."""
        return self.model_dump(mode="json", exclude_none=True)

    def public_view(self) -> dict[str, Any]:
        """What the status endpoint shows."""
        shown = self.model_dump(mode="json", include=set(PUBLIC_FIELDS))
        return {name: shown.get(name) for name in PUBLIC_FIELDS}

    def outcome_event(self) -> dict[str, Any] | None:
        """The outcome event recorded on the row, as the state machine publishes it."""
        if not self.event:
            return None
        event: dict[str, Any] = json.loads(self.event)
        # Stored before owners existed: the state machine now sends data.owner_id as an SNS attribute.
        event["data"].setdefault("owner_id", UNOWNED)
        return event
