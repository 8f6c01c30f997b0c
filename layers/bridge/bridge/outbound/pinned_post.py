"""One webhook POST to an address the SSRF guard already checked, never to a fresh DNS answer."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from bridge.outbound import deadlines
from bridge.outbound.retry_after import retry_after_seconds
from bridge.outbound.ssrf_guard import CallbackTarget

# Enough of a receiver's error body to explain a failure in the delivery log.
MAX_LOGGED_BODY = 200


@dataclass(frozen=True)
class AttemptResult:
    status_code: int | None
    latency_ms: int
    error: str | None = None
    retry_after_s: float | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def pinned_url(target: CallbackTarget, address: str) -> str:
    """The callback URL with its host replaced by one checked address (port, path, query kept)."""
    parts = urlsplit(target.url)
    host = f"[{address}]" if ":" in address else address
    return urlunsplit((parts.scheme, f"{host}:{target.port}", parts.path or "/", parts.query, ""))


def post_pinned(
    client: httpx.Client,
    target: CallbackTarget,
    *,
    body: bytes,
    headers: dict[str, str],
    timeout_s: float,
    now: datetime | None = None,
) -> AttemptResult:
    """POST `body` to the first checked address that accepts a connection; redirects are not followed.

    The whole attempt, every address tried and the head of an error body included, ends within
    `timeout_s` (bridge.outbound.deadlines), however slowly the receiver answers or however long it sends.
    """
    # Host header and TLS server name stay the client's host: virtual hosting and certificates work.
    host_header = target.host_header or urlsplit(target.url).netloc
    extensions: dict[str, Any] = {"sni_hostname": target.host} if target.scheme == "https" else {}
    started = time.monotonic()
    error = "no address to connect to"
    with deadlines.within(timeout_s):
        for address in target.addresses:
            try:
                # Streamed: only the head of the body is read, however much a receiver sends.
                with client.stream(
                    "POST",
                    pinned_url(target, address),
                    content=body,
                    headers={**headers, "host": host_header, "content-type": "application/json"},
                    timeout=timeout_s,
                    extensions=extensions,
                    follow_redirects=False,
                ) as response:
                    return _result(response, _head(response), started, now)
            except httpx.ConnectError as exc:
                error = f"connection failed: {_short(exc)}"
                continue  # another checked address of the same host may answer, if time is left
            except httpx.TimeoutException:
                return AttemptResult(None, _elapsed_ms(started), f"timed out after {timeout_s:g}s")
            except httpx.HTTPError as exc:
                return AttemptResult(None, _elapsed_ms(started), f"request failed: {_short(exc)}")
    return AttemptResult(None, _elapsed_ms(started), error)


def _head(response: httpx.Response) -> str:
    """The start of an error body; what arrived by the deadline if the receiver sends it slowly."""
    if 200 <= response.status_code < 400:
        return ""
    chunk, cut = b"", ""
    try:
        for data in response.iter_bytes():
            chunk += data
            if len(chunk) >= MAX_LOGGED_BODY:
                break
    except httpx.TimeoutException:
        cut = " [body cut short: timed out]"
    except httpx.HTTPError:
        cut = " [body cut short]"
    return chunk[:MAX_LOGGED_BODY].decode("utf-8", "replace").strip() + cut


def _result(response: httpx.Response, snippet: str, started: float, now: datetime | None) -> AttemptResult:
    latency = _elapsed_ms(started)
    code = response.status_code
    if 200 <= code < 300:
        return AttemptResult(code, latency)
    if 300 <= code < 400:
        where = response.headers.get("location", "")
        error = f"redirect ({code}) to {where[:MAX_LOGGED_BODY]!r} not followed" if where else f"redirect ({code})"
    else:
        error = f"HTTP {code}" + (f": {snippet}" if snippet else "")
    return AttemptResult(code, latency, error, retry_after_seconds(response.headers.get("retry-after"), now))


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _short(exc: Exception) -> str:
    return (str(exc) or type(exc).__name__).splitlines()[0][:MAX_LOGGED_BODY]
