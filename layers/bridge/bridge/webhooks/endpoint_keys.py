"""A registered endpoint's signing keys: made, sealed with KMS, rotated, and used to sign.

Each endpoint has an HMAC secret (Standard Webhooks v1, `whsec_…`) and an Ed25519 key pair (v1a:
`whsk_…` private, `whpk_…` public, each the base64 of its 32 raw bytes). Both are sealed together
as one KMS ciphertext in the endpoint's row, under an encryption context naming the owner and the
endpoint, so a ciphertext copied into another row does not open. After a rotation the previous
keys stay in the sealed document until `expires_at`; until then every delivery carries both
signatures. The sender opens a ciphertext once per key version and container.
"""

from __future__ import annotations

import base64
import json
import secrets
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from pydantic import BaseModel

from bridge import aws_errors
from bridge.clients import kms
from bridge.errors import ServiceUnavailable
from bridge.settings import EndpointKeySettings, get_settings
from bridge.store.endpoints import Endpoint, PublicKey
from bridge.timeutil import iso, parse_iso

V1, V1A = "v1", "v1a"
SIGNATURE_VERSIONS = (V1, V1A)
DEFAULT_OVERLAP_S = 24 * 3600
MAX_OVERLAP_S = 7 * 86_400


class KeySet(BaseModel):
    """One generation of an endpoint's keys (secret material: never logged, never returned after creation)."""

    v1: str  # whsec_…
    v1a: str  # whsk_… (the Ed25519 private key's 32 bytes)
    expires_at: str | None = None  # only on the previous set

    def __repr__(self) -> str:
        return "KeySet(<redacted>)"

    def public_key(self) -> str:
        return public_key_of(self.v1a)


class SealedKeys(BaseModel):
    current: KeySet
    previous: KeySet | None = None

    def __repr__(self) -> str:
        return "SealedKeys(<redacted>)"

    def active(self, now: datetime) -> list[KeySet]:
        """The keys that sign now: the current set, and the previous one during its overlap."""
        previous = self.previous
        if previous and previous.expires_at and parse_iso(previous.expires_at) > now:
            return [self.current, previous]
        return [self.current]

    def public_keys(self, now: datetime) -> list[PublicKey]:
        return [PublicKey(key=keys.public_key(), expires_at=keys.expires_at) for keys in self.active(now)]


def new_key_set() -> KeySet:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # only where keys are made
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    private = Ed25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return KeySet(
        v1="whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
        v1a="whsk_" + base64.b64encode(private).decode(),
    )


def rotated(keys: SealedKeys, *, overlap_s: int, now: datetime) -> SealedKeys:
    """New current keys; the old ones sign beside them for `overlap_s` (0: they stop at once)."""
    previous = keys.current.model_copy(update={"expires_at": iso(now + timedelta(seconds=overlap_s))})
    return SealedKeys(current=new_key_set(), previous=previous if overlap_s > 0 else None)


def public_key_of(private: str) -> str:
    return "whpk_" + base64.b64encode(_private_key(private).public_key().public_bytes_raw()).decode()


# --------------------------------------------------------------------------- sealing (KMS)


def _context(owner_id: str, endpoint_id: str) -> dict[str, str]:
    return {"purpose": "webhook-endpoint-keys", "owner_id": owner_id, "endpoint_id": endpoint_id}


def seal(keys: SealedKeys, *, owner_id: str, endpoint_id: str) -> str:
    plaintext = keys.model_dump_json(exclude_none=True).encode()
    try:
        blob = kms().encrypt(
            KeyId=get_settings(EndpointKeySettings).webhook_endpoint_key_id,
            Plaintext=plaintext,
            EncryptionContext=_context(owner_id, endpoint_id),
        )["CiphertextBlob"]
    except aws_errors.ClientError:
        raise ServiceUnavailable(
            "could not seal the endpoint's signing keys; retry", code="key_service_unavailable"
        ) from None
    return base64.b64encode(blob).decode()


def unseal(endpoint: Endpoint) -> SealedKeys:
    return _unseal(endpoint.owner_id, endpoint.endpoint_id, endpoint.keys_version, endpoint.keys_sealed)


@lru_cache(maxsize=256)
def _unseal(owner_id: str, endpoint_id: str, version: int, sealed: str) -> SealedKeys:
    # Cached by key version: a rotation makes a new entry, so no stale key ever signs.
    plaintext = kms().decrypt(
        CiphertextBlob=base64.b64decode(sealed),
        KeyId=get_settings(EndpointKeySettings).webhook_endpoint_key_id,
        EncryptionContext=_context(owner_id, endpoint_id),
    )["Plaintext"]
    return SealedKeys.model_validate(json.loads(plaintext))


# --------------------------------------------------------------------------- signing


def signatures(keys: list[KeySet], versions: list[str], *, message_id: str, timestamp: datetime, body: str) -> str:
    """The `webhook-signature` value: each active key's signature in each asked-for version."""
    from standardwebhooks import Webhook  # only the delivery function signs: the api never loads it

    found: list[str] = []
    for key_set in keys:
        if V1 in versions:
            found.append(Webhook(key_set.v1).sign(message_id, timestamp, body))
        if V1A in versions:
            signed = f"{message_id}.{int(timestamp.timestamp())}.{body}".encode()
            found.append("v1a," + base64.b64encode(_private_key(key_set.v1a).sign(signed)).decode())
    return " ".join(found)


def _private_key(private: str) -> Any:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.from_private_bytes(base64.b64decode(private.removeprefix("whsk_")))
