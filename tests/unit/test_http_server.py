"""The shared werkzeug server of the local runtime: a taken port is an error to name (never an exit),
http.server's own refusals get the app's JSON body, and only kept answers keep the connection."""

from __future__ import annotations

import errno
import json
import socket
from collections.abc import Iterator

import pytest

from bridge_local.http_server import (
    BackgroundServer,
    Environ,
    StartResponse,
    answer_keeping_connection,
    respond,
)


def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
    if environ["PATH_INFO"] == "/kept":
        answer_keeping_connection(environ, 200, [], b"kept")
    return respond(start_response, 200, [("Content-Type", "text/plain")], b"closed")


@pytest.fixture
def server() -> Iterator[BackgroundServer]:
    running = BackgroundServer(app, name="test-server", error_body=lambda status, message: b'{"refused": true}')
    yield running.start()
    running.stop()


def exchange(conn: socket.socket, path: str) -> bytes:
    """One request; the answer as far as it has come after a short wait (all of it, on loopback)."""
    conn.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    answer = conn.recv(65536)
    conn.settimeout(0.2)
    try:
        while piece := conn.recv(65536):
            answer += piece
    except TimeoutError:
        pass  # nothing more for now: the connection is still open
    conn.settimeout(5)
    return answer


def test_a_taken_port_is_an_os_error_not_an_exit() -> None:
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        with pytest.raises(OSError) as caught:
            BackgroundServer(app, port=holder.getsockname()[1], name="second").start()
    assert caught.value.errno == errno.EADDRINUSE


def test_a_malformed_request_line_gets_the_apps_json_body(server: BackgroundServer) -> None:
    with socket.create_connection(server.address, timeout=5) as conn:
        conn.sendall(b"NONSENSE\r\n\r\n")
        answer = b""
        # Head and body may come in separate segments; the server closes after an error answer.
        while chunk := conn.recv(65536):
            answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and b"Content-Type: application/json" in head
    assert json.loads(body) == {"refused": True}


def test_kept_answers_keep_the_connection_and_werkzeugs_own_close_it(server: BackgroundServer) -> None:
    with socket.create_connection(server.address, timeout=5) as conn:
        assert exchange(conn, "/kept").endswith(b"\r\n\r\nkept")
        assert exchange(conn, "/kept").endswith(b"\r\n\r\nkept")
        assert exchange(conn, "/other").endswith(b"closed")
        assert conn.recv(1) == b""  # closed after werkzeug's own answer
