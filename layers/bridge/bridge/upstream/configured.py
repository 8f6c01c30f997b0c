"""The configured Router One client for this function."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from bridge.clients import http_client
from bridge.settings import UpstreamSettings, get_settings
from bridge.upstream.credentials import router_one_api_key
from bridge.upstream.router_one import RouterOneClient


@lru_cache(maxsize=1)
def router_one() -> RouterOneClient:
    return _client(router_one_api_key)


def router_one_as(api_key: str) -> RouterOneClient:
    """A client on a caller's own key (pass-through mode), sharing the connection pool."""
    return _client(lambda: api_key)


def _client(api_key: Callable[[], str]) -> RouterOneClient:
    settings = get_settings(UpstreamSettings)
    return RouterOneClient(
        settings.router_one_base_url,
        api_key,
        http_client(),
        submit_deadline_s=settings.upstream_submit_timeout_seconds,
        status_deadline_s=settings.upstream_timeout_seconds,
    )
