"""Who may call the API: a REQUEST authorizer that hands the caller's Bearer key to API Gateway.

The API uses API keys with a usage plan (per-key throttling and quota, keys managed in API
Gateway) and takes them the way Router One does, `Authorization: Bearer <key>`: this authorizer
moves the key from that header into `usageIdentifierKey`, and API Gateway itself checks it
against the usage plan's keys (ApiKeySourceType AUTHORIZER); an unknown key is refused there.
It also names the key's owner (`bridge.tenancy`), which reaches the api function in the
authorizer context; API Gateway caches the whole answer per key for `ReauthorizeEvery`.
"""

from __future__ import annotations

from typing import Any

from bridge.tenancy import OWNER_FIELD, owner_id_for, owner_secret


class Unauthorized(Exception):
    """API Gateway answers 401 when an authorizer fails with exactly this message."""

    def __init__(self) -> None:
        super().__init__("Unauthorized")


def bearer_key(headers: dict[str, str] | None) -> str | None:
    for name, value in (headers or {}).items():
        if name.lower() == "authorization" and isinstance(value, str):
            scheme, _, token = value.strip().partition(" ")
            token = token.strip()
            if scheme.lower() == "bearer" and token and len(token) <= 256 and " " not in token:
                return token
    return None


def authorize(event: dict[str, Any]) -> dict[str, Any]:
    key = bearer_key(event.get("headers"))
    if key is None:
        raise Unauthorized
    # The answer is cached per key for a few minutes: allow the whole stage, not just this route.
    api_arn, _, rest = str(event["methodArn"]).partition("/")
    stage = rest.split("/", 1)[0]
    owner_id = owner_id_for(key, owner_secret())
    return {
        "principalId": owner_id,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": f"{api_arn}/{stage}/*"}],
        },
        "usageIdentifierKey": key,
        "context": {OWNER_FIELD: owner_id},
    }
