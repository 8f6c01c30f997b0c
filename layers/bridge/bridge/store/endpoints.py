"""Registered webhook endpoints (DynamoDB): one item per owner and endpoint, with its health.

The item holds the endpoint's settings, its public keys, its signing keys sealed with KMS (only
`bridge.webhooks.endpoint_keys` opens them), and what the sender learns about it: since when its
deliveries all fail, until when it asked to be left alone (Retry-After), and whether it is disabled.
Keyed by owner first, so no call can reach another owner's endpoint.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bridge import aws_errors
from bridge.clients import endpoints_table
from bridge.store.dynamo import is_conditional_failure, plain
from bridge.timeutil import iso

# Registration is cheap to abuse: each endpoint multiplies every event of its owner.
MAX_ENDPOINTS_PER_OWNER = 20


class PublicKey(BaseModel):
    """An Ed25519 public key (Standard Webhooks `whpk_…`) and, for the previous one, when it stops."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    key: str
    expires_at: str | None = None


class Endpoint(BaseModel):
    """One registered endpoint, as stored."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    owner_id: str
    endpoint_id: str
    url: str
    description: str = ""
    event_types: list[str]
    signature_versions: list[str] = Field(default_factory=lambda: ["v1"])
    enabled: bool = True
    disabled_reason: str | None = None
    disabled_at: str | None = None
    # Set with the disable, cleared once the `webhook.endpoint.disabled` event is out: a sender that
    # stopped in between finds it and publishes (the event's id is fixed, so twice is harmless).
    disable_notice: str | None = None
    failing_since: str | None = None
    last_success_at: str | None = None
    throttled_until: float | None = None
    keys_sealed: str = Field(repr=False)
    keys_version: int = 1
    public_keys: list[PublicKey] = Field(default_factory=list)
    created_at: str
    updated_at: str

    def public_view(self) -> dict[str, Any]:
        """What the API shows: never the sealed keys."""
        return {
            "object": "webhook_endpoint",
            "id": self.endpoint_id,
            "url": self.url,
            "description": self.description,
            "event_types": self.event_types,
            "signature_versions": self.signature_versions,
            "enabled": self.enabled,
            "disabled_reason": self.disabled_reason,
            "disabled_at": self.disabled_at,
            "failing_since": self.failing_since,
            "last_success_at": self.last_success_at,
            "public_keys": [key.model_dump() for key in self.public_keys],
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def _key(owner_id: str, endpoint_id: str) -> dict[str, str]:
    return {"owner_id": owner_id, "endpoint_id": endpoint_id}


def _stored(item: dict[str, Any] | None) -> Endpoint | None:
    return Endpoint.model_validate(plain(item)) if item else None


def put_new(endpoint: Endpoint) -> None:
    item = endpoint.model_dump(exclude_none=True)
    endpoints_table().put_item(Item=item, ConditionExpression="attribute_not_exists(endpoint_id)")


def get_endpoint(owner_id: str, endpoint_id: str) -> Endpoint | None:
    return _stored(endpoints_table().get_item(Key=_key(owner_id, endpoint_id), ConsistentRead=True).get("Item"))


def endpoints_of(owner_id: str) -> list[Endpoint]:
    """Every endpoint of one owner, oldest first (at most MAX_ENDPOINTS_PER_OWNER, plus a race's few)."""
    found: list[Endpoint] = []
    query: dict[str, Any] = {
        "KeyConditionExpression": "owner_id = :owner",
        "ExpressionAttributeValues": {":owner": owner_id},
        "ConsistentRead": True,
    }
    while True:
        page = endpoints_table().query(**query)
        found.extend(Endpoint.model_validate(plain(item)) for item in page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return sorted(found, key=lambda endpoint: endpoint.created_at)
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def update_endpoint(
    owner_id: str, endpoint_id: str, changes: dict[str, Any], *, remove: tuple[str, ...] = ()
) -> Endpoint | None:
    """Set `changes` (and drop `remove`) on an existing endpoint; None if there is none."""
    names = {f"#f{i}": name for i, name in enumerate(changes)}
    values = {f":v{i}": value for i, value in enumerate(changes.values())}
    update = "SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(changes)))
    if remove:
        names |= {f"#r{i}": name for i, name in enumerate(remove)}
        update += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(remove)))
    return _conditional_update(
        owner_id,
        endpoint_id,
        UpdateExpression=update,
        ConditionExpression="attribute_exists(endpoint_id)",
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values,
    )


def replace_keys(endpoint: Endpoint, *, sealed: str, public_keys: list[PublicKey], now: datetime) -> Endpoint | None:
    """Store rotated keys, unless someone rotated first (None then: the caller retries or says so)."""
    return _conditional_update(
        endpoint.owner_id,
        endpoint.endpoint_id,
        UpdateExpression="SET keys_sealed = :sealed, public_keys = :public, keys_version = :next, updated_at = :now",
        ConditionExpression="keys_version = :current",
        ExpressionAttributeValues={
            ":sealed": sealed,
            ":public": [key.model_dump() for key in public_keys],
            ":next": endpoint.keys_version + 1,
            ":current": endpoint.keys_version,
            ":now": iso(now),
        },
    )


def delete_endpoint(owner_id: str, endpoint_id: str) -> bool:
    try:
        endpoints_table().delete_item(
            Key=_key(owner_id, endpoint_id), ConditionExpression="attribute_exists(endpoint_id)"
        )
    except aws_errors.ClientError as exc:
        if not is_conditional_failure(exc):
            raise
        return False
    return True


# --------------------------------------------------------------------------- health, from the sender


def note_success(endpoint: Endpoint, now: datetime) -> None:
    """A delivery got through: the endpoint is no longer failing (written only if it was)."""
    if endpoint.failing_since is None:
        return
    endpoints_table().update_item(
        Key=_key(endpoint.owner_id, endpoint.endpoint_id),
        UpdateExpression="SET last_success_at = :now REMOVE failing_since",
        ConditionExpression="attribute_exists(endpoint_id)",
        ExpressionAttributeValues={":now": iso(now)},
    )


def note_failure(endpoint: Endpoint, now: datetime) -> Endpoint | None:
    """A delivery failed: the endpoint is failing since now unless it already was. The new row."""
    return _conditional_update(
        endpoint.owner_id,
        endpoint.endpoint_id,
        UpdateExpression="SET failing_since = if_not_exists(failing_since, :now)",
        ConditionExpression="attribute_exists(endpoint_id)",
        ExpressionAttributeValues={":now": iso(now)},
    )


def disable(endpoint: Endpoint, *, reason: str, notice_id: str, now: datetime) -> Endpoint | None:
    """Disable an enabled endpoint and owe its notice; None if it was disabled (or deleted) already."""
    return _conditional_update(
        endpoint.owner_id,
        endpoint.endpoint_id,
        UpdateExpression=(
            "SET enabled = :false, disabled_reason = :reason, disabled_at = :now, disable_notice = :notice, "
            "updated_at = :now"
        ),
        ConditionExpression="enabled = :true",
        ExpressionAttributeValues={
            ":false": False,
            ":true": True,
            ":reason": reason,
            ":now": iso(now),
            ":notice": notice_id,
        },
    )


def notice_sent(endpoint: Endpoint, notice_id: str) -> None:
    _conditional_update(
        endpoint.owner_id,
        endpoint.endpoint_id,
        UpdateExpression="REMOVE disable_notice",
        ConditionExpression="disable_notice = :notice",
        ExpressionAttributeValues={":notice": notice_id},
    )


def throttle(endpoint: Endpoint, until: float) -> None:
    """The endpoint asked for a pause (429 or 503 with Retry-After): no delivery to it before `until`."""
    _conditional_update(
        endpoint.owner_id,
        endpoint.endpoint_id,
        UpdateExpression="SET throttled_until = :until",
        ConditionExpression="attribute_exists(endpoint_id) AND (attribute_not_exists(throttled_until) OR throttled_until < :until)",
        ExpressionAttributeValues={":until": int(until) + 1},
    )


def _conditional_update(owner_id: str, endpoint_id: str, **update: Any) -> Endpoint | None:
    try:
        answer = endpoints_table().update_item(Key=_key(owner_id, endpoint_id), ReturnValues="ALL_NEW", **update)
    except aws_errors.ClientError as exc:
        if not is_conditional_failure(exc):
            raise
        return None
    return _stored(answer.get("Attributes"))
