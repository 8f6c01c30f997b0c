"""Register the local run's built-in webhook receiver as a webhook endpoint: `./dev receiver-endpoint`.

With `./dev up` running, it creates an endpoint over HTTP, as any caller would, with the caller's
API key (`--api-key`, else $VIDEO_BRIDGE_API_KEY, as the CLI): all event types, signatures v1 and
v1a, pointing at a path of the receiver's own (`/hooks/endpoint`). The answer's secret and public
key go to the receiver's loopback-only admin route (`bridge_local.receiver.ENDPOINT_KEYS_PATH`),
so the receiver verifies that endpoint's deliveries with them and `./dev up` prints
`signature ok: v1 ok (current), v1a ok (current)` for the next job of that API key.

`--rotate ep_…` rotates an endpoint's keys instead and hands the new ones over; during the
overlap each delivery carries both keys' signatures and the receiver shows `current + previous`.
The secret is printed masked only. Exit codes as the CLI's: 2 refused or bad input, 3 unreachable.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from bridge.models import WebhookEvent
from bridge_cli.api import EXIT_REFUSED, EXIT_UNAVAILABLE, error_from_response
from bridge_cli.common import API_ENV, API_KEY_ENV, DEFAULT_API
from bridge_local.receiver import ENDPOINT_KEYS_PATH

PROG = "./dev receiver-endpoint"
DEFAULT_RECEIVER = "http://127.0.0.1:8001"  # `./dev up`'s --receiver-port default
DEFAULT_PATH = "/hooks/endpoint"
ENDPOINTS = "/v1/webhook-endpoints"
SIGNATURE_VERSIONS = ["v1", "v1a"]
DESCRIPTION = "the local run's built-in receiver"


class RegistrationError(Exception):
    """A one-line reason for stderr and the exit code to end with."""

    def __init__(self, message: str, exit_code: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def mask(secret: str) -> str:
    """`whsec_AbCd…` : enough to tell two secrets apart, not enough to sign."""
    prefix, _, rest = secret.rpartition("_")
    return f"{prefix}_{rest[:4]}…" if prefix else f"{secret[:4]}…"


def all_event_types() -> list[str]:
    return [str(kind) for kind in WebhookEvent]


# --------------------------------------------------------------------------- the two services


def check_receiver(receiver: httpx.Client) -> None:
    """The receiver of a running `./dev up` answers its admin route; else a clear error, before
    any endpoint is created."""
    try:
        answer = receiver.get(ENDPOINT_KEYS_PATH)
    except httpx.HTTPError as exc:
        raise RegistrationError(
            f"no webhook receiver at {receiver.base_url} ({exc.__class__.__name__}): start the local run with "
            "`./dev up` (its receiver listens on port 8001; --receiver for another address)",
            EXIT_UNAVAILABLE,
        ) from None
    if answer.status_code != 200:
        raise RegistrationError(
            f"{receiver.base_url} is not the local run's webhook receiver "
            f"({ENDPOINT_KEYS_PATH} answered {answer.status_code})",
            EXIT_UNAVAILABLE,
        )


def _call(api: httpx.Client, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    try:
        answer = api.request(method, path, json=body)
    except httpx.HTTPError as exc:
        raise RegistrationError(
            f"cannot reach the local API at {api.base_url} ({exc.__class__.__name__}): is `./dev up` running?",
            EXIT_UNAVAILABLE,
        ) from None
    if answer.status_code in (401, 403):
        raise RegistrationError(
            f"the API refused the key (HTTP {answer.status_code}): use one the `./dev up` banner printed "
            f"(${API_KEY_ENV} or --api-key)"
        )
    if answer.status_code == 404 and path == ENDPOINTS:
        raise RegistrationError(f"the API at {api.base_url} has no {ENDPOINTS} route (an older bridge?)")
    if answer.status_code >= 300:
        failure = error_from_response(answer)
        raise RegistrationError(f"{method} {path}: {failure}", failure.exit_code)
    try:
        document = answer.json()
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise RegistrationError(f"{method} {path}: the API answered {answer.status_code} without a JSON object")
    return document


def _hand_over(receiver: httpx.Client, endpoint: dict[str, Any]) -> None:
    """The endpoint object with its secret, as the API answered it, to the receiver's admin route."""
    if not endpoint.get("id") or not endpoint.get("secret"):
        raise RegistrationError("the API's answer has no endpoint id or no secret")
    try:
        answer = receiver.post(ENDPOINT_KEYS_PATH, json=endpoint)
    except httpx.HTTPError as exc:
        raise RegistrationError(f"the receiver went away ({exc.__class__.__name__})", EXIT_UNAVAILABLE) from None
    if answer.status_code != 200:
        raise RegistrationError(f"the receiver refused the keys ({answer.status_code}: {answer.text[:200]})")


# --------------------------------------------------------------------------- what the command does


def register(api: httpx.Client, receiver: httpx.Client, *, path: str = DEFAULT_PATH) -> dict[str, Any]:
    """Create the endpoint pointing at the receiver and give the receiver its keys; the API's answer.

    If the receiver cannot take the keys, the new endpoint is deleted again: an endpoint nobody
    can verify would only fill the log with rejected deliveries."""
    check_receiver(receiver)
    url = str(receiver.base_url).rstrip("/") + "/" + path.lstrip("/")
    created = _call(
        api,
        "POST",
        ENDPOINTS,
        {
            "url": url,
            "event_types": all_event_types(),
            "description": DESCRIPTION,
            "signature_versions": SIGNATURE_VERSIONS,
        },
    )
    try:
        _hand_over(receiver, created)
    except RegistrationError:
        if created.get("id"):
            with contextlib.suppress(httpx.HTTPError):
                api.delete(f"{ENDPOINTS}/{quote(str(created['id']), safe='')}")
        raise
    return created


def rotate(api: httpx.Client, receiver: httpx.Client, endpoint_id: str, *, overlap_seconds: int) -> dict[str, Any]:
    """New keys for the endpoint; the receiver gets them and keeps the previous ones for the overlap."""
    check_receiver(receiver)
    rotated = _call(
        api, "POST", f"{ENDPOINTS}/{quote(endpoint_id, safe='')}/rotate", {"overlap_seconds": overlap_seconds}
    )
    _hand_over(receiver, rotated)
    return rotated


def report(endpoint: dict[str, Any], *, rotated: bool = False) -> str:
    """What was done, for people: never the whole secret."""
    path = urlsplit(str(endpoint.get("url", ""))).path
    keys = endpoint.get("public_keys") or []
    key_lines = [
        f"  public key: {key.get('key')}  ({'previous, until ' + key['expires_at'] if key.get('expires_at') else 'current'})"
        for key in keys
        if isinstance(key, dict)
    ]
    expected = ", ".join(
        f"{version} ok ({'current + previous' if len(key_lines) > 1 else 'current'})"
        for version in endpoint.get("signature_versions") or SIGNATURE_VERSIONS
    )
    return "\n".join(
        [
            f"{'Rotated the keys of' if rotated else 'Registered the built-in receiver as'} webhook endpoint "
            f"{endpoint.get('id')}",
            f"  url:        {endpoint.get('url')}",
            f"  events:     {', '.join(endpoint.get('event_types') or [])}",
            f"  signatures: {', '.join(endpoint.get('signature_versions') or [])}",
            *key_lines,
            f"  secret:     {mask(str(endpoint.get('secret', '')))} (masked; handed to the receiver)",
            f"The receiver now verifies deliveries to {path} with these keys: the next job of this API key",
            f"prints `[webhook {path}] … signature ok: {expected}` in the ./dev up log.",
        ]
    )


# --------------------------------------------------------------------------- the command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--api", help=f"the local API (default: ${API_ENV}, else {DEFAULT_API})")
    parser.add_argument("--api-key", help=f"the caller's API key (default: ${API_KEY_ENV}; prefer the env)")
    parser.add_argument("--receiver", default=DEFAULT_RECEIVER, help=f"the receiver (default {DEFAULT_RECEIVER})")
    parser.add_argument("--path", default=DEFAULT_PATH, help=f"the endpoint's path on it (default {DEFAULT_PATH})")
    parser.add_argument("--rotate", metavar="ENDPOINT_ID", help="rotate this endpoint's keys instead of creating one")
    parser.add_argument(
        "--overlap-seconds",
        type=int,
        default=3600,
        help="with --rotate: how long the previous keys keep signing (default 3600)",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per HTTP call (default 30)")
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: dict[str, str] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> int:
    args = _parser().parse_args(argv)
    env = os.environ if environ is None else environ
    api_url = (args.api or env.get(API_ENV) or DEFAULT_API).rstrip("/")
    api_key = args.api_key or env.get(API_KEY_ENV)
    if not api_key:
        print(
            f"error: no API key: set {API_KEY_ENV} to one the `./dev up` banner printed (or give --api-key)",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    headers = {"Authorization": f"Bearer {api_key}", "User-Agent": "video-bridge-local"}
    try:
        with (
            httpx.Client(base_url=api_url, headers=headers, timeout=args.timeout, transport=transport) as api,
            httpx.Client(base_url=args.receiver.rstrip("/"), timeout=args.timeout, transport=transport) as receiver,
        ):
            if args.rotate:
                endpoint = rotate(api, receiver, args.rotate, overlap_seconds=args.overlap_seconds)
            else:
                endpoint = register(api, receiver, path=args.path)
    except RegistrationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(report(endpoint, rotated=bool(args.rotate)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
