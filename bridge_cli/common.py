"""What every `video-bridge` command shares: names and exit codes, argument types, output, the client.

Exit codes: 0 success (and a completed job under `submit --wait`), 1 a job that ended without
a video (failed, timed_out, canceled), 2 bad input or a request the bridge refused (4xx),
3 the bridge failed (5xx) or could not be reached, 130 interrupted with Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from bridge_cli.api import BridgeApi

PROG = "video-bridge"
DEFAULT_API = "http://127.0.0.1:8000"
API_ENV = "VIDEO_BRIDGE_API"
API_KEY_ENV = "VIDEO_BRIDGE_API_KEY"
EXIT_OK = 0
EXIT_JOB_UNSUCCESSFUL = 1
EXIT_INTERRUPTED = 130
OUTCOME_STATUSES = ("completed", "failed", "timed_out", "canceled")

Handler = Callable[[argparse.Namespace], int]
# Adds one command (name, handler, help) to the parser and returns its subparser for its options.
AddCommand = Callable[[str, Handler, str], argparse.ArgumentParser]


# --------------------------------------------------------------------------- argument types


def api_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"not an http(s) URL: {text!r}")
    return text.rstrip("/")


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return value


def whole_number_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least `minimum`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {minimum} or more, not {text!r}")
        return value

    return parse


positive_int = whole_number_at_least(1)


# --------------------------------------------------------------------------- output


def out(text: str = "") -> None:
    print(text, file=sys.stdout, flush=True)


def err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def print_json(value: Any) -> None:
    out(json.dumps(value, indent=2, ensure_ascii=False))


def show(args: argparse.Namespace, answer: dict[str, Any], render: Callable[[dict[str, Any]], str]) -> int:
    """The API's answer as JSON with --json, else as `render` words it."""
    if args.json:
        print_json(answer)
    else:
        out(render(answer))
    return EXIT_OK


def now() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------- the bridge


def open_api(args: argparse.Namespace) -> BridgeApi:
    return BridgeApi(args.api, args.timeout, api_key=args.api_key)


def _api_url_or_default(text: str | None) -> str:
    try:
        return api_url(text or DEFAULT_API)
    except argparse.ArgumentTypeError:
        return DEFAULT_API


def command_prefix(args: argparse.Namespace) -> str:
    """How to call this CLI again against the same bridge (for hints)."""
    env_api = _api_url_or_default(os.environ.get(API_ENV))
    return PROG if args.api == env_api else f"{PROG} --api {args.api}"
