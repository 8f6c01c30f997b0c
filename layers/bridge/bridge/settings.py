"""Environment read once, validated and typed."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

# Router One asks clients never to poll a task more often than this.
MIN_POLL_INTERVAL_S = 3
# Retry delays (seconds) after each failed webhook attempt: 11 retries over about 40 hours
# (at least 31.8 with the jitter), so a receiver down for a whole day still gets its events.
DEFAULT_WEBHOOK_RETRY_SCHEDULE = (5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 43200, 43200)


class SettingsError(RuntimeError):
    """The function's environment is incomplete or invalid: a deployment problem, not a request one."""


class Settings(BaseModel):
    # Validators are built when the environment is first read, not at import (as for every model).
    model_config = ConfigDict(defer_build=True)

    stage: str = "dev"
    router_one_base_url: str = "https://api.router.one"
    router_one_api_key_secret: str = Field(min_length=1)
    jobs_table_name: str = Field(min_length=1)
    state_machine_arn: str | None = None
    poll_interval_seconds: int = Field(default=5, ge=MIN_POLL_INTERVAL_S, le=300)
    # "eta" picks each wait from the job's progress rate or its model's history; "fixed" waits the interval.
    polling_policy: Literal["eta", "fixed"] = "eta"
    poll_max_wait_seconds: int = Field(default=60, ge=MIN_POLL_INTERVAL_S, le=900)
    job_deadline_seconds: int = Field(default=7200, ge=1)
    job_retention_days: int = Field(default=30, ge=1)
    # Each loop iteration costs about ten history events; a fresh execution long before 25,000.
    max_polls_per_execution: int = Field(default=500, ge=1, le=2000)
    # Total deadline of one Router One status request (connect to last byte); the poll function
    # cuts it further to its own remaining time.
    upstream_timeout_seconds: float = Field(default=30.0, gt=0, le=30.0)
    # Total deadline of the submit to Router One: API Gateway gives up at 29 s, and the job must
    # still be recorded and its loop started (or handed to the reconciler) after the answer.
    upstream_submit_timeout_seconds: float = Field(default=20.0, gt=0, le=25.0)
    secret_max_age_seconds: int = Field(default=300, ge=0)
    # Router One says its video links usually live about 24 hours.
    video_url_ttl_seconds: int = Field(default=86_400, ge=0)

    # Keeping finished videos in the stack's bucket (Router One's links expire after about a day).
    keep_videos: bool = False
    video_bucket_name: str | None = None
    max_video_bytes: int = Field(default=2 * 1024**3, ge=1)
    presigned_url_seconds: int = Field(default=21_600, ge=60, le=604_800)

    # Pass-through mode: callers may send their own Router One key, sealed with this KMS key.
    caller_key_kms_key_id: str | None = None

    # Tenancy: the HMAC key that turns an API key into its owner id (authorizer; api for pass-through
    # idempotency), and the owners whose keys may read and list every owner's jobs.
    owner_id_secret: str | None = None
    operator_owner_ids: frozenset[str] = frozenset()

    # Accepted jobs whose recording failed wait here for the reconciler.
    reconcile_queue_url: str | None = None
    # The reconciler's sweep restarts tracking of pending jobs older than this with no loop.
    reconcile_grace_seconds: int = Field(default=120, ge=10)
    # A recorded outcome is checked this long after (and rechecked as often while its publisher runs):
    # longer than the api function may live, so a cancel that has not started its publish by then died.
    outcome_check_delay_seconds: int = Field(default=120, ge=0, le=900)

    # Idempotency-Key on submit: where first answers are kept, and for how long.
    idempotency_table_name: str | None = None
    idempotency_ttl_seconds: int = Field(default=86_400, ge=60)

    # Webhooks: where deliveries are logged and queued, how they are signed and retried.
    webhook_deliveries_table_name: str | None = None
    webhook_queue_url: str | None = None
    webhook_dead_letter_queue_url: str | None = None
    webhook_signing_secret: str | None = None
    webhook_retry_schedule: tuple[int, ...] = Field(default=DEFAULT_WEBHOOK_RETRY_SCHEDULE, min_length=1)
    webhook_retry_jitter: float = Field(default=0.2, ge=0, lt=1)
    # Total deadline of one webhook attempt, whatever the receiver does.
    webhook_timeout_seconds: float = Field(default=15.0, gt=0, le=30)
    webhook_max_retry_after_seconds: int = Field(default=21_600, ge=0)
    progress_event_interval_seconds: int = Field(default=30, ge=1)
    # started/progress events on SNS and EventBridge too (webhooks get them when their filter asks).
    publish_running_events: bool = False
    # Loopback and plain http callbacks: for the local run and tests only, never in a deployed stack.
    webhook_allow_loopback: bool = False

    @field_validator("router_one_base_url")
    @classmethod
    def _http_base_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("webhook_retry_schedule", mode="before")
    @classmethod
    def _schedule_from_text(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return tuple(int(part) for part in value.replace(" ", "").split(",") if part)
            except ValueError:
                raise ValueError("must be comma-separated whole seconds, e.g. 5,30,120") from None
        return value

    @field_validator("operator_owner_ids", mode="before")
    @classmethod
    def _owner_ids_from_text(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _sane_delays(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(delay < 1 or delay > 86_400 for delay in value):
            raise ValueError("each delay must be between 1 and 86400 seconds")
        return value

    @property
    def webhook_max_attempts(self) -> int:
        return len(self.webhook_retry_schedule) + 1


def _from_environment() -> Settings:
    fields = Settings.model_fields
    raw = {name: os.environ[name.upper()] for name in fields if os.environ.get(name.upper())}
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        raise SettingsError(f"invalid bridge settings: {problems}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return _from_environment()
