"""Standard Webhooks signatures of callback URLs, with the stack's signing secret (Secrets Manager).

Registered endpoints have keys of their own (`bridge.webhooks.endpoint_keys`).

The secret holds {"current": "whsec_…", "previous": "whsec_…"}. During a rotation both are
set and every delivery carries two signatures, so receivers can switch secrets at their pace.
"""

from __future__ import annotations

import binascii
import json
from datetime import datetime

from standardwebhooks import Webhook
from standardwebhooks.webhooks import EmptyWebhookSecretError

from bridge.clients import secret_text
from bridge.errors import ServiceUnavailable
from bridge.settings import WebhookSendingSettings, get_settings

SIGNATURE_VERSION = "v1"


def signing_keys(raw: str) -> list[Webhook]:
    """Parse the secret's value: the JSON document above, or one bare secret."""
    try:
        document = json.loads(raw) if raw.lstrip().startswith("{") else {"current": raw}
    except json.JSONDecodeError:
        raise _unusable("is not valid JSON") from None
    if not isinstance(document, dict):
        raise _unusable("must be a JSON object")
    secrets = [str(document.get(name) or "").strip() for name in ("current", "previous")]
    keys: list[Webhook] = []
    for secret in filter(None, secrets):
        try:
            keys.append(Webhook(secret))
        except (binascii.Error, ValueError, RuntimeError, EmptyWebhookSecretError):
            raise _unusable("holds a secret that is not base64 (whsec_…)") from None
    if not keys:
        raise _unusable("has no 'current' secret")
    return keys


def current_signing_keys() -> list[Webhook]:
    settings = get_settings(WebhookSendingSettings)
    return signing_keys(secret_text(settings.webhook_signing_secret, max_age_s=settings.secret_max_age_seconds))


def signature_headers(keys: list[Webhook], *, message_id: str, timestamp: datetime, body: str) -> dict[str, str]:
    """The three Standard Webhooks headers; one space-separated signature per active key."""
    return standard_headers(
        message_id=message_id,
        timestamp=timestamp,
        signature=" ".join(key.sign(message_id, timestamp, body) for key in keys),
    )


def standard_headers(*, message_id: str, timestamp: datetime, signature: str) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature,
    }


def _unusable(problem: str) -> ServiceUnavailable:
    return ServiceUnavailable(f"the webhook signing secret {problem}", code="webhook_secret_unusable")
