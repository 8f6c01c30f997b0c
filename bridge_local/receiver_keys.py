"""Registered webhook endpoints' keys, as the local receiver holds them, and the check of a
request's signatures against them: v1 (HMAC-SHA256 with the endpoint's `whsec_` secret) and v1a
(Ed25519 with its `whpk_` public keys, verified with PyNaCl, apart from the code that signs).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from standardwebhooks import Webhook

# As Standard Webhooks' own check: a signature more than 5 minutes off the clock does not verify.
TIMESTAMP_TOLERANCE_S = 300
V1, V1A = "v1", "v1a"


@dataclass(frozen=True)
class SchemeCheck:
    """How one signature scheme of a request checked out.

    outcome: "ok" (a signature verified with `keys`), "failed" (signatures of this scheme came and
    none verified, or the headers around them are wrong), "missing" (the receiver has keys of this
    scheme but the request carries no such signature), "no key" (signatures the receiver has no key for).
    """

    scheme: str
    outcome: str
    keys: tuple[str, ...] = ()  # which keys verified: "current", "previous", "stack secret"
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    def __str__(self) -> str:
        if self.ok:
            return f"{self.scheme} ok ({' + '.join(self.keys)})"
        if self.outcome == "failed":
            return f"{self.scheme} FAILED: {self.error}"
        return f"{self.scheme} {self.outcome}"


@dataclass(frozen=True)
class EndpointKey:
    """One generation of a registered endpoint's keys, as far as the receiver knows them."""

    label: str  # "current" or "previous"
    public_key: str | None = None  # whpk_…: base64 of the 32 raw Ed25519 public key bytes (v1a)
    secret: str | None = field(default=None, repr=False)  # whsec_… (v1)


@dataclass(frozen=True)
class RegisteredEndpoint:
    endpoint_id: str
    path: str
    keys: tuple[EndpointKey, ...]

    def summary(self) -> dict[str, Any]:
        """What the admin route shows: never a secret, only whether one is known."""
        return {
            "id": self.endpoint_id,
            "path": self.path,
            "keys": [{"label": k.label, "v1": k.secret is not None, "v1a": k.public_key} for k in self.keys],
        }


def registered_endpoint(
    endpoint_id: str,
    url_or_path: str,
    *,
    secret: str | None,
    public_keys: Iterable[str | Mapping[str, Any]],
    known: RegisteredEndpoint | None,
) -> RegisteredEndpoint:
    """The endpoint as the receiver holds it after a registration (`WebhookReceiver.register_endpoint`).

    `public_keys` as the endpoint object lists them: the one without `expires_at` is current, one
    with it the previous (during a rotation's overlap). `secret` is the current v1 secret (a
    create's or a rotation's answer). `known` is what the receiver held of this endpoint id before:
    after a rotation, the secret it held with the key that is now the previous one stays, as
    previous: both then verify. ValueError for a malformed key or none at all.
    """
    if not endpoint_id:
        raise ValueError("an endpoint id is needed")
    path = urlsplit(url_or_path).path or "/"
    if secret is not None:
        _check_secret(secret)
    given = [_public_key_entry(key) for key in public_keys]
    old_secrets = {k.public_key: k.secret for k in known.keys} if known else {}
    keys: list[EndpointKey] = []
    for key, expires_at in given:
        label = "previous" if expires_at else "current"
        held = secret if label == "current" and secret is not None else old_secrets.get(key)
        keys.append(EndpointKey(label, key, held))
    if secret is not None and not any(key.label == "current" for key in keys):
        keys.insert(0, EndpointKey("current", None, secret))  # an endpoint signing v1 only
    if not keys:
        raise ValueError("give the endpoint's secret or at least one public key")
    keys.sort(key=lambda key: key.label != "current")
    return RegisteredEndpoint(endpoint_id, path, tuple(keys))


def check_endpoint_signatures(
    body: str, headers: Mapping[str, str], endpoints: Iterable[RegisteredEndpoint], *, now: float | None = None
) -> tuple[SchemeCheck, ...]:
    """Each scheme's check of a request against registered endpoints' keys: v1 (HMAC-SHA256 of
    `{id}.{timestamp}.{body}` with the whsec_ secret) and v1a (Ed25519 over the same, with PyNaCl).
    A key verifies when any signature of its scheme in `webhook-signature` does; during a rotation's
    overlap both the current and the previous key verify. Only schemes the request carries or the
    receiver has keys for are listed."""
    headers = {name.lower(): value for name, value in headers.items()}
    found = list(endpoints)
    several = len({endpoint.endpoint_id for endpoint in found}) > 1
    keys = [(f"{e.endpoint_id} {k.label}" if several else k.label, k) for e in found for k in e.keys]
    signatures = _signatures_by_scheme(headers.get("webhook-signature", ""))
    message, problem = _signed_message(body, headers, time.time() if now is None else now)
    checks = []
    for scheme, verifies in ((V1, _v1_verifies), (V1A, _v1a_verifies)):
        held = [(label, key) for label, key in keys if (key.secret if scheme == V1 else key.public_key)]
        given = signatures.get(scheme, [])
        if not held and not given:
            continue
        if not held:
            checks.append(SchemeCheck(scheme, "no key"))
        elif not given:
            checks.append(SchemeCheck(scheme, "missing"))
        elif message is None:
            checks.append(SchemeCheck(scheme, "failed", error=problem))
        else:
            matched = tuple(label for label, key in held if any(verifies(key, message, sig) for sig in given))
            checks.append(
                SchemeCheck(scheme, "ok", matched)
                if matched
                else SchemeCheck(scheme, "failed", error="no signature matched")
            )
    return tuple(checks)


def verify_v1a(public_key: str, message: bytes, signature: bytes) -> bool:
    """One Ed25519 signature against one `whpk_` key (base64 of the 32 raw public key bytes), with PyNaCl."""
    try:
        VerifyKey(base64.b64decode(public_key.removeprefix("whpk_"), validate=True)).verify(message, signature)
    except (BadSignatureError, ValueError, TypeError):
        return False
    return True


def _v1_verifies(key: EndpointKey, message: bytes, signature: bytes) -> bool:
    secret = base64.b64decode(str(key.secret).removeprefix("whsec_") + "==")
    return hmac.compare_digest(hmac.digest(secret, message, "sha256"), signature)


def _v1a_verifies(key: EndpointKey, message: bytes, signature: bytes) -> bool:
    return verify_v1a(str(key.public_key), message, signature)


def _signatures_by_scheme(header: str) -> dict[str, list[bytes]]:
    """`v1,<b64> v1a,<b64> …` as raw signature bytes per scheme; malformed pieces are left out."""
    found: dict[str, list[bytes]] = defaultdict(list)
    for piece in header.split():
        scheme, _, encoded = piece.partition(",")
        try:
            found[scheme].append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue
    return dict(found)


def _signed_message(body: str, headers: Mapping[str, str], now: float) -> tuple[bytes | None, str | None]:
    """`{webhook-id}.{webhook-timestamp}.{body}`, or why the headers cannot be trusted."""
    message_id, stamp = headers.get("webhook-id"), headers.get("webhook-timestamp")
    if not message_id or not stamp:
        return None, "missing webhook-id or webhook-timestamp"
    try:
        seconds = int(stamp)
    except ValueError:
        return None, f"bad webhook-timestamp {stamp!r}"
    if abs(now - seconds) > TIMESTAMP_TOLERANCE_S:
        return (
            None,
            f"webhook-timestamp {seconds} is {now - seconds:+.0f} s off this clock (at most {TIMESTAMP_TOLERANCE_S})",
        )
    return f"{message_id}.{seconds}.{body}".encode(), None


def _check_secret(secret: Any) -> None:
    if not isinstance(secret, str) or not secret.startswith("whsec_"):
        raise ValueError("the v1 secret must be a whsec_… string")
    try:
        Webhook(secret)
    except Exception as exc:  # the library raises its own types for an empty or undecodable key
        raise ValueError(f"not a v1 secret: {exc}") from None


def _public_key_entry(entry: str | Mapping[str, Any]) -> tuple[str, str | None]:
    """(whpk_ key, expires_at) from a key string or a `public_keys` item of the endpoint object."""
    key, expires_at = (entry, None) if isinstance(entry, str) else (entry.get("key"), entry.get("expires_at"))
    if not isinstance(key, str) or not key.startswith("whpk_"):
        raise ValueError("a v1a public key must be a whpk_… string")
    try:
        raw = base64.b64decode(key.removeprefix("whpk_"), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"not base64: {key!r}") from None
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key has 32 bytes, not {len(raw)}")
    return key, str(expires_at) if expires_at else None
