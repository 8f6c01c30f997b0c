"""One deadline for a whole outbound HTTP exchange: connect, TLS, send, headers and body.

httpx's timeouts bound each phase, and each socket read within it, separately: a peer that
sends one byte a second never trips a 15 s read timeout and can hold a request for minutes.
Here a deadline is a point in time (monotonic clock) held in a context variable; the clients in
`bridge.clients` use `DeadlineTransport`, whose network streams give every connect, TLS
handshake, read and write at most the time left until it. When none is left the operation
fails with httpcore's own timeout error, which httpx turns into `httpx.TimeoutException`, so
callers classify it as they classify any timeout.

Deadlines nest: the tighter one wins. A handler sets its function's budget
(`lambda_budget`), a client sets its own cap per request (`within`), and a request made inside
both ends at the earlier of the two.

Not covered: the name lookup before a connect (the resolver applies its own timeouts). Webhooks
connect to addresses checked in advance, so only Router One's host name is ever looked up.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

import httpcore
import httpx

_deadline: ContextVar[float | None] = ContextVar("bridge_http_deadline", default=None)


class RemainingTime(Protocol):
    """The part of a Lambda context this module reads."""

    def get_remaining_time_in_millis(self) -> int: ...


def current() -> float | None:
    """The deadline in force here (time.monotonic() value), or None."""
    return _deadline.get()


def remaining() -> float | None:
    """Seconds left until the deadline in force (never negative), or None when there is none."""
    deadline = _deadline.get()
    return None if deadline is None else max(0.0, deadline - time.monotonic())


@contextmanager
def until(deadline: float) -> Iterator[float]:
    """Inside the block, outbound exchanges end by `deadline` (monotonic) or by an earlier one in force."""
    outer = _deadline.get()
    effective = deadline if outer is None else min(outer, deadline)
    token = _deadline.set(effective)
    try:
        yield effective
    finally:
        _deadline.reset(token)


@contextmanager
def within(seconds: float) -> Iterator[float]:
    """Inside the block, outbound exchanges end `seconds` from now (or earlier, if a tighter deadline holds)."""
    with until(time.monotonic() + max(0.0, seconds)) as effective:
        yield effective


@contextmanager
def lambda_budget(context: RemainingTime | None, *, reserve_s: float) -> Iterator[float | None]:
    """Outbound exchanges end `reserve_s` before the function would be stopped, leaving time to record them.

    Without a context (a direct call in a test or a script) nothing is bounded here.
    """
    if context is None:
        yield _deadline.get()
        return
    with within(context.get_remaining_time_in_millis() / 1000 - reserve_s) as effective:
        yield effective


def _bounded(timeout: float | None, error: type[Exception]) -> float | None:
    """The timeout for one network operation: the phase's own, cut to what is left; raise if nothing is."""
    left = remaining()
    if left is None:
        return timeout
    if left <= 0:
        raise error("the request's deadline has passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every operation ends by the deadline in force when it is called.

    The deadline is read per call, not stored: a pooled connection serves requests with different ends.
    """

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        # One recv: it returns as soon as any byte arrives, so each wait is bounded by what is left.
        return self._inner.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        sock = self._inner.get_extra_info("socket")
        if not isinstance(sock, socket.socket):
            self._inner.write(buffer, _bounded(timeout, httpcore.WriteTimeout))
            return
        # httpcore's write gives every partial send the whole timeout again, so a peer that reads a
        # byte at a time could stretch it without end; here each send gets only what is left.
        view = memoryview(buffer)
        while view:
            limit = _bounded(timeout, httpcore.WriteTimeout)
            try:
                sock.settimeout(limit)
                sent = sock.send(view)
            except TimeoutError as exc:
                raise httpcore.WriteTimeout(exc) from exc
            except OSError as exc:
                raise httpcore.WriteError(exc) from exc
            view = view[sent:]

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        # Python bounds a whole handshake by the socket timeout (not each of its reads).
        upgraded = self._inner.start_tls(ssl_context, server_hostname, _bounded(timeout, httpcore.ConnectTimeout))
        return _DeadlineStream(upgraded)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's network backend with every connection bounded by the deadline in force."""

    def __init__(self, inner: httpcore.NetworkBackend | None = None) -> None:
        self._inner = inner or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        # Addresses one by one, each with the time then left: the standard library's loop gives
        # every address of a name the whole timeout again.
        try:
            addresses = list(
                dict.fromkeys(info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
            )
        except OSError as exc:
            raise httpcore.ConnectError(exc) from exc
        failure: Exception = httpcore.ConnectError(f"no address for {host}")
        for address in addresses:
            limit = _bounded(timeout, httpcore.ConnectTimeout)
            try:
                stream = self._inner.connect_tcp(str(address), port, limit, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc  # the next address, if any time is left for it
                continue
            return _DeadlineStream(stream)
        raise failure

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None
    ) -> httpcore.NetworkStream:
        limit = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.connect_unix_socket(path, limit, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class DeadlineTransport(httpx.HTTPTransport):
    """httpx's own transport, its connection pool on a `DeadlineBackend`.

    httpx does not take a network backend, so the pool it builds is replaced by one with the same
    settings and that backend; requests, responses and error mapping stay httpx's.
    """

    def __init__(self, *, verify: ssl.SSLContext | bool = True, limits: httpx.Limits | None = None) -> None:
        limits = limits or httpx.Limits()
        # One SSL context for both pools: building one loads the CA bundle.
        ssl_context = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify=verify)
        super().__init__(verify=ssl_context, limits=limits, trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=DeadlineBackend(),
        )
