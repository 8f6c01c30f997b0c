"""The Router One API key, read from Secrets Manager and cached between invocations."""

from __future__ import annotations

import json

from aws_lambda_powertools.utilities import parameters

from bridge.errors import ServiceUnavailable
from bridge.settings import get_settings


def router_one_api_key() -> str:
    """The key, from a secret holding {"api_key": "sk-..."} or the bare key. Never logged."""
    settings = get_settings()
    raw = parameters.get_secret(settings.router_one_api_key_secret, max_age=settings.secret_max_age_seconds)
    key = raw if isinstance(raw, str) else raw.decode()
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
