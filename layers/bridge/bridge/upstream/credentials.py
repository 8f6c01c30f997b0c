"""The Router One API key, read from Secrets Manager and cached between invocations."""

from __future__ import annotations

import json

from bridge.clients import secret_text
from bridge.errors import ServiceUnavailable
from bridge.settings import UpstreamSettings, get_settings


def router_one_api_key() -> str:
    """The key, from a secret holding {"api_key": "sk-..."} or the bare key. Never logged."""
    settings = get_settings(UpstreamSettings)
    key = secret_text(settings.router_one_api_key_secret, max_age_s=settings.secret_max_age_seconds)
    if key.lstrip().startswith("{"):
        try:
            key = str(json.loads(key).get("api_key") or "")
        except (json.JSONDecodeError, AttributeError):
            key = ""
    if not key.strip():
        raise ServiceUnavailable(
            "the bridge has no Router One API key yet; put it in the stack's secret",
            code="api_key_not_configured",
        )
    return key.strip()
