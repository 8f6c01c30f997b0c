"""What the HTTP API answers, as models, and the error responses each route declares.

The OpenAPI document is generated from these and the routes in `bridge.api.routes`; the handlers
return plain dicts, and the API tests and the fuzz run check those against this document, so
the two cannot drift apart unnoticed. Every model refuses unknown fields, so the document says
exactly which keys an answer has.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bridge.models import JobStatus, WebhookEvent

# Where the document keeps its models: every `$ref` to one starts with this.
SCHEMA_REF = "#/components/schemas/"


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(_Answer):
    message: str = Field(description="What went wrong, for a person")
    type: str = Field(description="Error family: invalid_request_error, authentication_error, api_error, ...")
    code: str = Field(description="Stable machine-readable code, e.g. missing_required_parameter")
    param: str | None = Field(default=None, description="The field, header or parameter at fault, when there is one")


class ErrorEnvelope(_Answer):
    """Router One's error shape; every 4xx and 5xx of this API has it."""

    error: ErrorDetail


class GenerationAccepted(_Answer):
    task_id: str = Field(description="Router One's task id; the bridge's job id too")
    status: Literal["pending"]


class Job(_Answer):
    """A job as the bridge knows it: Router One's status plus what the bridge added."""

    task_id: str
    owner_id: str | None = Field(description="Who submitted the job: the owner id of its API key (null: before owners)")
    status: JobStatus
    model: str | None
    progress: int | float | None = Field(description="0-100, never decreasing")
    url: str | None = Field(description="The video, once completed (Router One's link expires)")
    url_expires_at: str | None
    error: dict[str, Any] | None = Field(description="Why the job failed, timed out or was canceled")
    created_at: str | None
    updated_at: str | None
    finished_at: str | None
    last_polled_at: str | None
    poll_count: int | None
    metadata: dict[str, Any] | None
    callback_url: str | None
    webhook_events_filter: list[WebhookEvent] | None
    webhook_dead_letters: list[str] | None = Field(description="Events whose webhook deliveries ran out of attempts")
    video: dict[str, Any] | None = Field(description="The bridge's own copy of the video, when KeepVideos is on")


class Account(_Answer):
    """Who the API key in this request is, as the bridge sees it."""

    object: Literal["account"]
    owner_id: str = Field(
        description="This key's owner id: on its jobs, in `data.owner_id` of their events and in the SNS "
        "`owner_id` attribute, for filter policies and rules"
    )
    operator: bool = Field(description="Whether this key may read and list every owner's jobs (OperatorOwnerIds)")


class JobPage(_Answer):
    object: Literal["list"]
    data: list[Job]
    has_more: bool
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last")


class WebhookDeliveryDestination(_Answer):
    type: Literal["callback_url", "endpoint"] = Field(
        description="The job's callback_url, or one of the owner's registered webhook endpoints"
    )
    endpoint_id: str | None = Field(default=None, description="The endpoint's id; only for type `endpoint`")


class WebhookDeliverySummary(_Answer):
    """One delivery of one event to one destination, without its attempts."""

    webhook_id: str = Field(
        description="The delivery's webhook-id header: the event id, followed by `_` and the endpoint id "
        "for an endpoint's delivery"
    )
    event_id: str = Field(description="The event delivered (the same for every destination of one event)")
    task_id: str
    destination: WebhookDeliveryDestination
    event_type: str
    status: str = Field(
        description="pending, retrying, delivered, gone (the receiver answered 410), dead_lettered, or stopped "
        "(its endpoint was disabled or deleted before it got through)"
    )
    round: int
    attempt_count: int
    next_attempt_at: str | None
    created_at: str | None
    dead_letter_reason: str | None = Field(
        description="Why a dead-lettered delivery is in the dead-letter queue (retries_exhausted); null otherwise"
    )
    stopped_reason: str | None = Field(
        description="Why a stopped delivery stopped (endpoint_disabled, endpoint_deleted); null otherwise"
    )
    updated_at: str | None


class WebhookDelivery(WebhookDeliverySummary):
    """One delivery and every attempt of it."""

    attempts: list[dict[str, Any]]


class WebhookDeliveries(_Answer):
    task_id: str
    callback_url: str | None
    webhook_events_filter: list[WebhookEvent] | None
    deliveries: list[WebhookDelivery]


class Redelivery(_Answer):
    task_id: str
    event_id: str
    status: Literal["pending"]
    round: int


class WebhookEndpointPublicKey(_Answer):
    key: str = Field(description="Ed25519 public key (`whpk_…`) that verifies v1a signatures")
    expires_at: str | None = Field(description="When a previous key stops signing after a rotation; null: current")


class WebhookEndpoint(_Answer):
    """A registered webhook endpoint: it gets its owner's events of the types it names, from every job."""

    object: Literal["webhook_endpoint"]
    id: str = Field(description="The endpoint's id (`ep_…`)")
    url: str
    description: str
    event_types: list[WebhookEvent]
    signature_versions: list[Literal["v1", "v1a"]] = Field(
        description="v1 (HMAC-SHA256 with the secret), v1a (Ed25519, verified with public_keys), or both"
    )
    enabled: bool
    disabled_reason: str | None = Field(
        description="Why it is disabled: gone (it answered 410), failing (every delivery failed for the "
        "allowed period) or disabled_by_owner; null while enabled"
    )
    disabled_at: str | None
    failing_since: str | None = Field(description="Since when every delivery to it has failed; null when healthy")
    last_success_at: str | None
    public_keys: list[WebhookEndpointPublicKey]
    created_at: str
    updated_at: str


class WebhookEndpointWithSecret(WebhookEndpoint):
    """The endpoint after a create or a key rotation: the only answers that hold its signing secret."""

    secret: str = Field(description="The v1 signing secret (`whsec_…`); shown only in this answer, keep it safe")


class WebhookEndpointList(_Answer):
    object: Literal["list"]
    data: list[WebhookEndpoint] = Field(description="Every endpoint of this API key, oldest first")
    has_more: bool


class WebhookEndpointDeleted(_Answer):
    object: Literal["webhook_endpoint"]
    id: str
    deleted: Literal[True]


class WebhookEndpointRecovery(_Answer):
    object: Literal["webhook_endpoint_recovery"]
    endpoint_id: str
    since: str = Field(description="Every delivery to the endpoint that failed since then is sent again")
    status: Literal["queued"]
    rate_per_second: float = Field(description="At most this many recovered deliveries start a second")


class WebhookEndpointDeliveries(_Answer):
    object: Literal["list"]
    data: list[WebhookDeliverySummary] = Field(description="The endpoint's deliveries, from every job, newest first")
    has_more: bool = Field(
        description="Whether a next page may hold more; with a status filter a page may be short, or empty, "
        "and still have more"
    )
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last")


# --------------------------------------------------------------------------- request bodies


def request_body(model_name: str, *, required: bool = True) -> dict[str, Any]:
    """A route's documented JSON body (routes read their bodies themselves; see `bridge.api.request_body`).
    `model_name` is a request model that `bridge.api.openapi` adds to the document's components."""
    return {
        "required": required,
        "content": {"application/json": {"schema": {"$ref": f"{SCHEMA_REF}{model_name}"}}},
    }


# --------------------------------------------------------------------------- declared responses

# What any route can answer before or around the handler: API Gateway's authorizer, usage plan and
# integration (the template maps each of these gateway responses to the envelope), and our own 500.
_ANY_ROUTE = {
    401: "No API key, or one this API does not know (`invalid_api_key`)",
    403: "The API key is not allowed here (`access_denied`)",
    429: "Too many requests for this API key's usage plan (`throttled`, `quota_exceeded`)",
    500: "The bridge failed (`internal_error`); nothing about the request was wrong",
    502: "The bridge's function failed or Router One answered something unreadable",
    503: "A part of the bridge is not configured or not available (`service_unavailable`)",
    504: "The bridge's function did not answer in time",
}


def responses(success_status: int, success_model: type[BaseModel], description: str, **errors: str) -> dict[int, Any]:
    """A route's `responses=`: its success shape, the errors it adds (as `e400="why"`), and the common ones."""
    declared: dict[int, Any] = {
        success_status: {"description": description, "content": {"application/json": {"model": success_model}}}
    }
    route_errors = {int(name.removeprefix("e")): why for name, why in errors.items()}
    for status, why in sorted((_ANY_ROUTE | route_errors).items()):
        declared[status] = {"description": why, "content": {"application/json": {"model": ErrorEnvelope}}}
    return declared
