"""The endpoints API's logic: register, list, read, change, delete, rotate keys, recover, and the
delivery log of one endpoint. Every call is scoped to the caller's own endpoints; another owner's
endpoint is answered exactly as one that does not exist (404 `webhook_endpoint_not_found`).

The signing secret (`whsec_…`) is in the answer of a create and of a rotation only; the row keeps
it sealed (`bridge.webhooks.endpoint_keys`). URLs pass the callback URLs' SSRF check here, and
again before every attempt.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from bridge.errors import BridgeError, Conflict, InvalidRequest
from bridge.models import DEFAULT_WEBHOOK_EVENTS, WebhookEvent
from bridge.outbound.ssrf_guard import check_callback_url
from bridge.settings import WebhookLogSettings, get_settings
from bridge.store import deliveries, endpoints
from bridge.store.cursors import decode_cursor, encode_cursor, page_size
from bridge.store.deliveries import MIN_DELIVERY_LIFETIME_S, DeliveryStatus
from bridge.store.endpoints import MAX_ENDPOINTS_PER_OWNER, Endpoint
from bridge.tenancy import Caller
from bridge.timeutil import iso, utcnow
from bridge.webhooks import endpoint_keys, recovery
from bridge.webhooks.dispatch import public_delivery
from bridge.webhooks.endpoint_keys import DEFAULT_OVERLAP_S, MAX_OVERLAP_S, SealedKeys

MAX_DESCRIPTION_LENGTH = 512

Description = Annotated[str, StringConstraints(max_length=MAX_DESCRIPTION_LENGTH)]
EventTypes = Annotated[list[WebhookEvent], Field(min_length=1, max_length=len(WebhookEvent))]
SignatureVersions = Annotated[list[Literal["v1", "v1a"]], Field(min_length=1, max_length=2)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


class EndpointCreate(_Body):
    url: str = Field(description="https URL that receives the signed POSTs; public addresses only")
    event_types: EventTypes = Field(
        default_factory=lambda: list(DEFAULT_WEBHOOK_EVENTS),
        description="Events to send: completed, failed, timed_out, canceled by default; started, progress on request",
    )
    description: Description = ""
    signature_versions: SignatureVersions = Field(
        default_factory=lambda: ["v1"], description="v1 (HMAC-SHA256), v1a (Ed25519), or both"
    )

    @field_validator("event_types", "signature_versions")
    @classmethod
    def _once_each(cls, value: list[Any]) -> list[Any]:
        return list(dict.fromkeys(value))


class EndpointUpdate(_Body):
    url: str | None = None
    event_types: EventTypes | None = None
    description: Description | None = None
    signature_versions: SignatureVersions | None = None
    enabled: bool | None = Field(default=None, description="true re-enables a disabled endpoint")

    @field_validator("event_types", "signature_versions")
    @classmethod
    def _once_each(cls, value: list[Any] | None) -> list[Any] | None:
        return list(dict.fromkeys(value)) if value is not None else None


class KeyRotation(_Body):
    overlap_seconds: int = Field(
        default=DEFAULT_OVERLAP_S,
        ge=0,
        le=MAX_OVERLAP_S,
        description="How long the previous keys keep signing beside the new ones (default 24 h, at most 7 days)",
    )


class RecoveryRequest(_Body):
    since: datetime = Field(description="Send again every delivery that failed since this time (ISO 8601)")


def _not_found() -> BridgeError:
    return BridgeError(
        "no webhook endpoint with that id", status=404, type="invalid_request_error", code="webhook_endpoint_not_found"
    )


def _check_url(url: str) -> str:
    loopback = get_settings(WebhookLogSettings).webhook_allow_loopback
    try:
        check_callback_url(url, allow_http=loopback, allow_loopback=loopback)
    except InvalidRequest as exc:
        raise InvalidRequest(
            exc.message.replace("callback_url", "url"), code="invalid_endpoint_url", param="url"
        ) from None
    return url


def _owned(caller: Caller, endpoint_id: str) -> Endpoint:
    found = endpoints.get_endpoint(caller.owner_id, endpoint_id) if endpoint_id.startswith("ep_") else None
    if found is None:
        raise _not_found()
    return found


# --------------------------------------------------------------------------- the endpoint itself


def create(caller: Caller, request: EndpointCreate) -> dict[str, Any]:
    url = _check_url(request.url)
    if len(endpoints.endpoints_of(caller.owner_id)) >= MAX_ENDPOINTS_PER_OWNER:
        raise Conflict(
            f"an API key may register at most {MAX_ENDPOINTS_PER_OWNER} webhook endpoints",
            code="endpoint_limit_reached",
        )
    endpoint_id = "ep_" + secrets.token_hex(16)
    keys = SealedKeys(current=endpoint_keys.new_key_set())
    now = iso(utcnow())
    endpoint = Endpoint(
        owner_id=caller.owner_id,
        endpoint_id=endpoint_id,
        url=url,
        description=request.description,
        event_types=[str(kind) for kind in request.event_types],
        signature_versions=list(request.signature_versions),
        keys_sealed=endpoint_keys.seal(keys, owner_id=caller.owner_id, endpoint_id=endpoint_id),
        public_keys=keys.public_keys(utcnow()),
        created_at=now,
        updated_at=now,
    )
    endpoints.put_new(endpoint)
    return endpoint.public_view() | {"secret": keys.current.v1}


def list_endpoints(caller: Caller) -> dict[str, Any]:
    found = endpoints.endpoints_of(caller.owner_id)
    return {"object": "list", "data": [endpoint.public_view() for endpoint in found], "has_more": False}


def get(caller: Caller, endpoint_id: str) -> dict[str, Any]:
    return _owned(caller, endpoint_id).public_view()


def update(caller: Caller, endpoint_id: str, request: EndpointUpdate) -> dict[str, Any]:
    _owned(caller, endpoint_id)
    changes: dict[str, Any] = {"updated_at": iso(utcnow())}
    remove: tuple[str, ...] = ()
    if request.url is not None:
        changes["url"] = _check_url(request.url)
    if request.event_types is not None:
        changes["event_types"] = [str(kind) for kind in request.event_types]
    if request.description is not None:
        changes["description"] = request.description
    if request.signature_versions is not None:
        changes["signature_versions"] = list(request.signature_versions)
    if request.enabled is not None:
        changes["enabled"] = request.enabled
        if request.enabled:
            # A fresh start: its failing period and any pause begin again from its next delivery.
            remove = ("disabled_reason", "disabled_at", "failing_since", "throttled_until", "disable_notice")
        else:
            changes["disabled_reason"] = "disabled_by_owner"
            changes["disabled_at"] = changes["updated_at"]
    updated = endpoints.update_endpoint(caller.owner_id, endpoint_id, changes, remove=remove)
    if updated is None:
        raise _not_found()
    return updated.public_view()


def delete(caller: Caller, endpoint_id: str) -> dict[str, Any]:
    _owned(caller, endpoint_id)
    if not endpoints.delete_endpoint(caller.owner_id, endpoint_id):
        raise _not_found()
    return {"object": "webhook_endpoint", "id": endpoint_id, "deleted": True}


def rotate_keys(caller: Caller, endpoint_id: str, request: KeyRotation) -> dict[str, Any]:
    """New keys at once; the previous ones keep signing beside them for the overlap."""
    endpoint = _owned(caller, endpoint_id)
    now = utcnow()
    keys = endpoint_keys.rotated(endpoint_keys.unseal(endpoint), overlap_s=request.overlap_seconds, now=now)
    sealed = endpoint_keys.seal(keys, owner_id=endpoint.owner_id, endpoint_id=endpoint.endpoint_id)
    updated = endpoints.replace_keys(endpoint, sealed=sealed, public_keys=keys.public_keys(now), now=now)
    if updated is None:
        raise Conflict("the endpoint's keys were rotated meanwhile; read it and retry", code="rotation_conflict")
    return updated.public_view() | {"secret": keys.current.v1}


# --------------------------------------------------------------------------- its deliveries


def recover(caller: Caller, endpoint_id: str, request: RecoveryRequest) -> dict[str, Any]:
    """Queue the recovery of every failed delivery since `since`; the endpoint must be enabled."""
    endpoint = _owned(caller, endpoint_id)
    if not endpoint.enabled:
        raise Conflict("enable the endpoint before recovering its deliveries", code="endpoint_disabled")
    since = request.since if request.since.tzinfo else request.since.replace(tzinfo=utcnow().tzinfo)
    oldest = utcnow() - timedelta(seconds=MIN_DELIVERY_LIFETIME_S)
    if since < oldest:
        raise InvalidRequest(
            f"'since' may be at most {MIN_DELIVERY_LIFETIME_S // 86_400} days ago: older deliveries are not kept",
            param="since",
        )
    recovery.start(owner_id=caller.owner_id, endpoint_id=endpoint_id, since=iso(since))
    return {
        "object": "webhook_endpoint_recovery",
        "endpoint_id": endpoint_id,
        "since": iso(since),
        "status": "queued",
        "rate_per_second": recovery.RATE_PER_S,
    }


def list_deliveries(
    caller: Caller, endpoint_id: str, *, status: str | None, limit: int | None, cursor: str | None
) -> dict[str, Any]:
    """The endpoint's deliveries across jobs, newest first, optionally of one status."""
    _owned(caller, endpoint_id)
    statuses = _STATUSES
    if status is not None and status not in statuses:
        raise InvalidRequest(f"'status' must be one of {', '.join(sorted(statuses))}", param="status")
    size = page_size(limit)
    rows, last_key = deliveries.endpoint_deliveries(
        endpoint_id,
        limit=size,
        start_key=decode_cursor(cursor, _in_log_of(endpoint_id)),
        statuses=frozenset({status}) if status else None,
    )
    return {
        "object": "list",
        "data": [public_delivery(row, with_attempts=False) for row in rows],
        "has_more": last_key is not None,
        "next_cursor": encode_cursor(last_key) if last_key else None,
    }


_STATUSES = frozenset(
    {
        DeliveryStatus.PENDING,
        DeliveryStatus.RETRYING,
        DeliveryStatus.DELIVERED,
        DeliveryStatus.GONE,
        DeliveryStatus.DEAD_LETTERED,
        DeliveryStatus.STOPPED,
    }
)
_CURSOR_KEYS = {"task_id", "event_id", "endpoint_id", "created_at"}


def _in_log_of(endpoint_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda key: set(key) == _CURSOR_KEYS and key["endpoint_id"] == endpoint_id
