"""Each function's environment as a typed model, read and validated once, at cold start.

Settings come in groups, one per concern (the job table, Router One, tracking, webhooks, ...).
Domain code asks for the group it needs, `get_settings(TrackingSettings)`, and gets every field
of it set and valid. Each function's model is the union of the groups its code uses
(`ApiSettings`, `PollSettings`, ...); its handler loads that model at import, so a missing or
invalid variable fails the function's first invocation, naming the variable, never a request
later on. A test checks every function's model against the template's environment.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

# Router One asks clients never to poll a task more often than this.
MIN_POLL_INTERVAL_S = 3
# Retry delays (seconds) after each failed webhook attempt: backoff from 5 s to 12 h, then every
# 12 h. 16 retries over 99.7 hours, at least 79.8 with the jitter (20 % shorter at most), so a
# receiver down for three days, a long weekend, still gets its events.
DEFAULT_WEBHOOK_RETRY_SCHEDULE = (5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, *(43200,) * 7)
# What the default schedule must span at its shortest: the delivery services' usual 72 hours.
MIN_RETRY_WINDOW_S = 72 * 3600

Required = Annotated[str, Field(min_length=1)]
PollInterval = Annotated[int, Field(ge=MIN_POLL_INTERVAL_S, le=300)]
SecretMaxAge = Annotated[int, Field(ge=0)]


class SettingsError(RuntimeError):
    """The function's environment is incomplete or invalid: a deployment problem, not a request one."""


class _Group(BaseModel):
    # Validators are built when the environment is first read, not at import (as for every model).
    model_config = ConfigDict(defer_build=True, extra="ignore")


class JobTableSettings(_Group):
    jobs_table_name: Required


class UpstreamSettings(_Group):
    router_one_base_url: str = "https://api.router.one"
    router_one_api_key_secret: Required
    # Total deadline of one Router One status request (connect to last byte); the poll function
    # cuts it further to its own remaining time.
    upstream_timeout_seconds: float = Field(default=30.0, gt=0, le=30.0)
    # Total deadline of the submit to Router One: API Gateway gives up at 29 s, and the job must
    # still be recorded and its loop started (or handed to the reconciler) after the answer.
    upstream_submit_timeout_seconds: float = Field(default=20.0, gt=0, le=25.0)
    secret_max_age_seconds: SecretMaxAge = 300
    # Pass-through mode: callers may send their own Router One key, sealed with this KMS key
    # (empty: the mode is off, and such a request is refused).
    caller_key_kms_key_id: str | None = None

    @field_validator("router_one_base_url")
    @classmethod
    def _http_base_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")


class TenancySettings(_Group):
    # The HMAC key that turns an API key into its owner id.
    owner_id_secret: Required


class OperatorSettings(_Group):
    # The owners whose keys may read and list every owner's jobs.
    operator_owner_ids: frozenset[str] = frozenset()

    @field_validator("operator_owner_ids", mode="before")
    @classmethod
    def _owner_ids_from_text(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(part.strip() for part in value.split(",") if part.strip())
        return value


class SubmitSettings(_Group):
    job_deadline_seconds: int = Field(default=7200, ge=1)
    job_retention_days: int = Field(default=30, ge=1)


class TrackingSettings(_Group):
    state_machine_arn: Required
    poll_interval_seconds: PollInterval = 5


class OutcomeCheckSettings(_Group):
    # Accepted jobs whose recording failed, and the delayed checks of recorded outcomes, wait here.
    reconcile_queue_url: Required
    # A recorded outcome is checked this long after (and rechecked as often while its publisher runs):
    # longer than the api function may live, so a cancel that has not started its publish by then died.
    outcome_check_delay_seconds: int = Field(default=120, ge=0, le=900)


class SweepSettings(_Group):
    # The reconciler's sweep restarts tracking of pending jobs older than this with no loop.
    reconcile_grace_seconds: int = Field(default=120, ge=10)


class PollingSettings(_Group):
    poll_interval_seconds: PollInterval = 5
    # "eta" picks each wait from the job's progress rate or its model's history; "fixed" waits the interval.
    polling_policy: Literal["eta", "fixed"] = "eta"
    poll_max_wait_seconds: int = Field(default=60, ge=MIN_POLL_INTERVAL_S, le=900)
    # Each loop iteration costs about ten history events; a fresh execution long before 25,000.
    max_polls_per_execution: int = Field(default=500, ge=1, le=2000)
    # How long one poll invocation may go on polling while the waits are short (docs/cost.md): the
    # function's timeout (120 s) holds this plus a last request and its recording. 0: one poll each.
    poll_invocation_seconds: int = Field(default=90, ge=0, le=100)
    progress_event_interval_seconds: int = Field(default=30, ge=1)
    # started/progress events on SNS and EventBridge too (webhooks get them when their filter asks).
    publish_running_events: bool = False
    # Copy finished videos to the stack's bucket (Router One's links expire after about a day).
    keep_videos: bool = False
    # Router One says its video links usually live about 24 hours.
    video_url_ttl_seconds: int = Field(default=86_400, ge=0)


class WebhookLogSettings(_Group):
    # Where deliveries are logged and queued.
    webhook_deliveries_table_name: Required
    # Registered endpoints: read by everything that queues events, to fan each out to its owner's.
    webhook_endpoints_table_name: Required
    webhook_queue_url: Required
    # Loopback and plain http callbacks: for the local run and tests only, never in a deployed stack.
    webhook_allow_loopback: bool = False


class WebhookSendingSettings(_Group):
    webhook_signing_secret: Required
    webhook_dead_letter_queue_url: Required
    webhook_retry_schedule: tuple[int, ...] = Field(default=DEFAULT_WEBHOOK_RETRY_SCHEDULE, min_length=1)
    webhook_retry_jitter: float = Field(default=0.2, ge=0, lt=1)
    # Total deadline of one webhook attempt, whatever the receiver does.
    webhook_timeout_seconds: float = Field(default=15.0, gt=0, le=30)
    webhook_max_retry_after_seconds: int = Field(default=21_600, ge=0)
    secret_max_age_seconds: SecretMaxAge = 300

    @field_validator("webhook_retry_schedule", mode="before")
    @classmethod
    def _schedule_from_text(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return tuple(int(part) for part in value.replace(" ", "").split(",") if part)
            except ValueError:
                raise ValueError("must be comma-separated whole seconds, e.g. 5,30,120") from None
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


class EndpointKeySettings(_Group):
    # Seals each registered endpoint's signing keys (a KMS-encrypted attribute of its row).
    webhook_endpoint_key_id: Required


class EventChannelSettings(_Group):
    # The stack's topic and bus: every job event, and an endpoint's disabled notice, goes to both.
    event_topic_arn: Required
    event_bus_name: Required
    event_source: str = Field(default="router-one.video-bridge", min_length=1)


class EndpointHealthSettings(EventChannelSettings):
    # An endpoint whose deliveries have all failed for this long is disabled (Svix's 5 days); its
    # owner hears of it on the event channels.
    endpoint_disable_after_seconds: int = Field(default=5 * 86_400, ge=1)


class IdempotencySettings(_Group):
    # Idempotency-Key on submit: where first answers are kept, and for how long.
    idempotency_table_name: Required
    idempotency_ttl_seconds: int = Field(default=86_400, ge=60)


class VideoSettings(_Group):
    video_bucket_name: Required
    max_video_bytes: int = Field(default=2 * 1024**3, ge=1)
    presigned_url_seconds: int = Field(default=21_600, ge=60, le=604_800)


# ------------------------------------------------------------------ one model per function


class AuthorizerSettings(TenancySettings):
    pass


class ApiSettings(
    JobTableSettings,
    UpstreamSettings,
    TenancySettings,
    OperatorSettings,
    SubmitSettings,
    TrackingSettings,
    OutcomeCheckSettings,
    WebhookLogSettings,
    EndpointKeySettings,
    IdempotencySettings,
):
    pass


class PollSettings(
    JobTableSettings, UpstreamSettings, PollingSettings, OutcomeCheckSettings, WebhookLogSettings, EventChannelSettings
):
    pass


class DeliverySettings(
    JobTableSettings, WebhookLogSettings, WebhookSendingSettings, EndpointKeySettings, EndpointHealthSettings
):
    pass


class ReconcileSettings(JobTableSettings, TrackingSettings, OutcomeCheckSettings, SweepSettings):
    pass


class KeepVideoSettings(JobTableSettings, VideoSettings):
    pass


FUNCTION_SETTINGS: dict[str, type[_Group]] = {
    "authorizer": AuthorizerSettings,
    "api": ApiSettings,
    "poll": PollSettings,
    "webhook_delivery": DeliverySettings,
    "reconcile": ReconcileSettings,
    "keep_video": KeepVideoSettings,
}

S = TypeVar("S", bound=BaseModel)


def _from_environment(kind: type[S]) -> S:
    raw: dict[str, Any] = {name: os.environ[name.upper()] for name in kind.model_fields if os.environ.get(name.upper())}
    try:
        return kind.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        raise SettingsError(f"invalid bridge settings ({kind.__name__}): {problems}") from None


class _Loaded:
    """Each settings model read once per process (a Lambda instance keeps it between invocations)."""

    def __init__(self) -> None:
        self._by_kind: dict[type[BaseModel], BaseModel] = {}

    def __call__(self, kind: type[S]) -> S:
        found = self._by_kind.get(kind)
        if found is None:
            # A group the function's model (loaded at cold start) holds is that very object: no
            # second read of the environment, no second model to build.
            holder = next((loaded for loaded in self._by_kind.values() if isinstance(loaded, kind)), None)
            found = self._by_kind[kind] = holder if holder is not None else _from_environment(kind)
        return cast(S, found)

    def cache_clear(self) -> None:
        """Read the environment afresh at the next call (tests, and a new local stack)."""
        self._by_kind.clear()


get_settings = _Loaded()
