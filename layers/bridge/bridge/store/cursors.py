"""Paging: the page size, and cursors: a query's start key handed to the caller as opaque text, and checked on its way back.

A cursor of another list (another owner's, another status, another endpoint's) is a 400: it would
start the query in a partition the caller did not ask for, and DynamoDB refuses keys of another
shape outright.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any

from bridge.errors import InvalidRequest

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


def page_size(limit: int | None) -> int:
    """The page size a list asked for (`limit`), or the default; a 400 outside 1 to MAX_PAGE_SIZE."""
    size = DEFAULT_PAGE_SIZE if limit is None else limit
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise InvalidRequest(f"'limit' must be between 1 and {MAX_PAGE_SIZE}", param="limit")
    return size


def encode_cursor(key: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, belongs: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
    """The start key inside `cursor`, if `belongs` says it is a position in the list asked for."""
    if not cursor:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        key = None
    if (
        not isinstance(key, dict)
        or not all(isinstance(v, str) and 0 < len(v) <= 1024 for v in key.values())
        or not belongs(key)
    ):
        raise InvalidRequest("'cursor' is not a cursor this API returned for this list", param="cursor")
    return key
