"""Threaded werkzeug servers for the local runtime, and the raw answers its fakes misbehave with.

The Router One simulator, the webhook receiver and the API front are WSGI apps; `BackgroundServer`
serves one with werkzeug's threaded server in a daemon thread. It binds the port itself, so a taken
port is an OSError the caller names (werkzeug alone would print and exit the process), runs each
TLS handshake in its connection's own thread (a client that never finishes one holds that thread,
never the accept loop), answers what http.server refuses before any app runs (a malformed request
line, an over-long URI or header) with the app's own JSON error body, and keeps werkzeug's access
log quiet: each app logs its own lines.

Some answers are broken on purpose: dripped a byte at a time from the status line on, held open
with nothing sent, or reset. An app writes those straight to the connection (`connection_of`,
`send_slowly`, `hold_open`, `reset_connection`) and then raises `DropConnection`, so werkzeug sends
nothing. An app whose clients pool connections answers with `answer_keeping_connection`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import select
import socket
import ssl
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any, NoReturn, Self

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WsgiApp = Callable[[Environ, StartResponse], Iterable[bytes]]
# The body of an answer http.server gives itself (status, message); always sent as application/json.
ErrorBody = Callable[[int, str], bytes]
OnConnectionError = Callable[[BaseException], None]

# The request's header fields as they came (names' case, repeats, and names with "_" that WSGI drops).
RAW_HEADERS = "bridge_local.raw_headers"

_logger = logging.getLogger(__name__)


class Service:
    """A local piece with `start()` and `stop()`, usable as `with piece:` (started on entry)."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class DropConnection(ConnectionAbortedError):
    """Raised by an app that answered on the raw connection itself, or wants it to end unanswered.

    A ConnectionError, so werkzeug treats it as a client gone: no answer of its own, no traceback."""


class KeepConnection(ConnectionAbortedError):
    """Raised by `answer_keeping_connection`: the answer went out whole, the connection serves the
    next request (werkzeug closes every connection after answers of its own)."""


def reason(status: int) -> str:
    """The standard reason phrase of a status ("Status" for codes without one)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Status"


def respond(
    start_response: StartResponse,
    status: int,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    *,
    head_only: bool = False,
) -> list[bytes]:
    """A whole answer with its Content-Length (kept for HEAD, whose body is left out)."""
    start_response(f"{status} {reason(status)}", [*headers, ("Content-Length", str(len(body)))])
    return [] if head_only else [body]


def status_head(protocol: str, status: int, headers: Iterable[tuple[str, str]]) -> bytes:
    """Status line and header fields, written by hand for answers sent on the raw connection."""
    lines = [f"{protocol} {status} {reason(status)}", *(f"{name}: {value}" for name, value in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def connection_of(environ: Environ) -> socket.socket:
    return environ["werkzeug.socket"]


def answer_keeping_connection(
    environ: Environ, status: int, headers: Iterable[tuple[str, str]], body: bytes
) -> NoReturn:
    """Send a whole HTTP/1.1 answer and keep the connection open for the client's next request,
    as servers that clients pool connections to do (werkzeug's own answers always close it)."""
    head = status_head("HTTP/1.1", status, [*headers, ("Content-Length", str(len(body)))])
    try:
        connection_of(environ).sendall(head + body)
    except OSError:
        raise DropConnection from None
    raise KeepConnection


def send_slowly(
    connection: socket.socket,
    pieces: Iterable[bytes],
    *,
    pause_s: float,
    stopping: threading.Event,
    ends: float,
) -> bool:
    """Send each piece, then wait `pause_s`; False once the peer leaves, `stopping` is set or the
    monotonic time `ends` passes."""
    try:
        for piece in pieces:
            connection.sendall(piece)
            if stopping.wait(pause_s) or time.monotonic() >= ends:
                return False
    except OSError:
        return False  # the client gave up: what a deadline is for
    return True


def hold_open(connection: socket.socket, *, stopping: threading.Event, ends: float) -> None:
    """Send nothing until the peer hangs up, `stopping` is set or the monotonic time `ends` passes."""
    while not stopping.is_set() and time.monotonic() < ends:
        try:
            readable, _, _ = select.select([connection], [], [], 0.2)
            if readable and connection.recv(1024) == b"":
                return
        except (OSError, ValueError):
            return


def reset_connection(connection: socket.socket) -> None:
    """Drop the connection with a TCP reset (linger 0) and no HTTP answer."""
    with contextlib.suppress(OSError):
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    connection.close()


def plain_error_body(status: int, message: str) -> bytes:
    return json.dumps({"message": message}).encode()


class _Handler(WSGIRequestHandler):
    server: _Server

    def version_string(self) -> str:
        return self.server.software

    def make_environ(self) -> Environ:
        environ = super().make_environ()
        environ[RAW_HEADERS] = list(self.headers.items())
        return environ

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # http.server's own refusals get the app's JSON error body, not an HTML page.
        self.close_connection = True
        if self.request_version == "HTTP/0.9":
            # An unparsable request line leaves http.server assuming HTTP/0.9, which has no status
            # line or headers; nobody speaks 0.9, so answer as 1.0.
            self.request_version = "HTTP/1.0"
        body = self.server.error_body(code, message or reason(code))
        self.send_response(code, message)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(body)

    def connection_dropped(self, error: BaseException, environ: Environ | None = None) -> None:
        if not isinstance(error, KeepConnection):
            self.close_connection = True
        # else: as the request asked (HTTP/1.1 keeps it unless it said "Connection: close")

    def log(self, type: str, message: str, *args: Any) -> None:
        return  # werkzeug's access log; every app logs its own lines


class _Server(ThreadedWSGIServer):
    def __init__(
        self,
        listener: socket.socket,
        app: WsgiApp,
        handler: type[_Handler],
        *,
        tls: ssl.SSLContext | None,
        software: str,
        error_body: ErrorBody,
        on_connection_error: OnConnectionError | None,
    ) -> None:
        host, port = listener.getsockname()[:2]
        # A socket already bound: werkzeug's own bind would exit the process on a taken port.
        super().__init__(host, port, app, handler, fd=listener.fileno())
        self.tls = tls
        self.ssl_context = tls  # environ's url_scheme
        self.software = software
        self.error_body = error_body
        self.on_connection_error = on_connection_error

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        # The handshake runs in the request's own thread, bounded, never in the accept loop.
        request.settimeout(10)
        with self.tls.wrap_socket(request, server_side=True) as secured:
            secured.settimeout(None)
            super().finish_request(secured, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Refused handshakes and clients hanging up are routine here: no traceback dump.
        error = sys.exc_info()[1]
        if self.on_connection_error is not None and error is not None:
            self.on_connection_error(error)

    def log(self, type: str, message: str, *args: Any) -> None:
        if type == "error":  # an app crashed past its own handling: a bug worth a traceback
            _logger.error(message, *args)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        # As http.server binds (and ports.check_free probes): a port in TIME_WAIT is reusable.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(128)
    except OSError:
        listener.close()
        raise
    return listener


class BackgroundServer:
    """One WSGI app on `host:port` (0: a free port), served by threads until `stop`."""

    def __init__(
        self,
        app: WsgiApp,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        name: str,
        tls: ssl.SSLContext | None = None,
        protocol: str = "HTTP/1.1",
        software: str | None = None,
        error_body: ErrorBody = plain_error_body,
        on_connection_error: OnConnectionError | None = None,
    ) -> None:
        self.app = app
        self.host = host
        self.requested_port = port
        self.name = name
        self.tls = tls
        self.software = software or name  # the Server header
        self.error_body = error_body
        self.on_connection_error = on_connection_error
        # The status line's version; werkzeug closes every connection after its answer either way.
        self._handler = type(f"{name}-handler", (_Handler,), {"protocol_version": protocol})
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def address(self) -> tuple[str, int]:
        if self._server is None:
            raise RuntimeError(f"{self.name} is not started")
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> Self:
        """Bind and serve; an OSError (e.g. the port is taken) reaches the caller at once."""
        if self._server is not None:
            raise RuntimeError(f"{self.name} already started")
        listener = _listen(self.host, self.requested_port)
        try:
            server = _Server(
                listener,
                self.app,
                self._handler,
                tls=self.tls,
                software=self.software,
                error_body=self.error_body,
                on_connection_error=self.on_connection_error,
            )
        finally:
            listener.close()  # werkzeug serves a duplicate of it
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=self.name, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None
