"""Who owns what: the owner id of an API key, the caller of a request, and what a caller may touch.

Every job belongs to the API key that submitted it. The authorizer turns the key into an owner id,
`own_` + 32 hex digits of HMAC-SHA256 under a stack secret (`OwnerIdSecret`): stable for as long
as the key lives, safe to store, log and publish, and of no use for guessing the key without the
secret. API Gateway hands it to the api function as `requestContext.authorizer.owner_id`.

A caller may read and change its own jobs. Operators (owner ids listed in `OperatorOwnerIds`) may
also read and list everyone's, including rows written before owners existed, which carry none;
they may not cancel or redeliver another owner's jobs. A job the caller may not see is answered
exactly as a job that does not exist.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any

from bridge.errors import BridgeError
from bridge.settings import OperatorSettings, TenancySettings, get_settings

# The attribute on job and delivery rows, the authorizer's context key and the event field.
OWNER_FIELD = "owner_id"
# What events say for a job written before owners existed (SNS refuses an empty attribute value).
UNOWNED = "unowned"
OWNER_ID_PATTERN = re.compile(r"own_[0-9a-f]{32}")
# The secret never changes (owner ids would change with it): cached for the container's life.
_SECRET_MAX_AGE_S = 10**9


def owner_id_for(api_key: str, secret: bytes) -> str:
    return "own_" + _mac(secret, "api-key", api_key)[:32]


def owner_secret() -> bytes:
    from bridge.clients import secret_text  # deferred: the authorizer needs no HTTP client

    name = get_settings(TenancySettings).owner_id_secret
    return secret_text(name, max_age_s=_SECRET_MAX_AGE_S).encode()


def router_one_account(router_one_key: str) -> str:
    """A stable, non-secret name for a caller's Router One key (pass-through idempotency scope)."""
    return "r1_" + _mac(owner_secret(), "router-one-key", router_one_key)[:32]


def _mac(secret: bytes, purpose: str, value: str) -> str:
    # The purpose keeps one secret's uses apart: an owner id is never a Router One key's name.
    return hmac.new(secret, f"{purpose}\x00{value}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Caller:
    owner_id: str
    operator: bool = False

    def read_scope(self) -> str | None:
        """Whose jobs this caller may read and list: its own, or anyone's (None) for an operator.

        Changing a job (cancel, redeliver) always needs `owner_id` itself."""
        return None if self.operator else self.owner_id

    def account(self) -> dict[str, Any]:
        return {"object": "account", OWNER_FIELD: self.owner_id, "operator": self.operator}


def caller_of(request_context: dict[str, Any] | None) -> Caller:
    """The caller API Gateway vouched for; fails closed when the authorizer's context is missing."""
    authorizer = (request_context or {}).get("authorizer") or {}
    owner_id = authorizer.get(OWNER_FIELD) if isinstance(authorizer, dict) else None
    if not isinstance(owner_id, str) or not OWNER_ID_PATTERN.fullmatch(owner_id):
        raise BridgeError(
            "the request carries no caller identity; it must come through the API's authorizer",
            status=401,
            type="authentication_error",
            code="invalid_api_key",
        )
    return Caller(owner_id=owner_id, operator=owner_id in get_settings(OperatorSettings).operator_owner_ids)
