"""The configured Router One client for this function."""

from __future__ import annotations

from functools import lru_cache

from bridge.clients import http_client
from bridge.credentials import router_one_api_key
from bridge.router_one import RouterOneClient
from bridge.settings import get_settings


@lru_cache(maxsize=1)
def router_one() -> RouterOneClient:
    return RouterOneClient(get_settings().router_one_base_url, router_one_api_key, http_client())


def router_one_as(api_key: str) -> RouterOneClient:
    """A client on a caller's own key (pass-through mode), sharing the connection pool."""
    return RouterOneClient(get_settings().router_one_base_url, lambda: api_key, http_client())
