"""A webhook receiver for the local run and the tests: verifies Standard Webhooks signatures,
records every request, and answers as told (to show and test retries).

How it answers, first match wins:
  1. a script queued for the path: `receiver.script("/hooks/x", [Reply(500), Reply(200)])`;
  2. query options of the callback URL itself:
       ?fail=N          the first N requests of each webhook-id get 500, later ones 200
       ?status=CODE     always CODE (410 stops the bridge's retries)
       ?retry_after=S   failures carry Retry-After: S
       ?delay=S         sleep S seconds before answering (to provoke timeouts)
       ?mode=M          how the answer goes out (see `Reply.mode`): drip, hang or endless;
       ?drip_s=S        with drip and endless, seconds between two bytes (default 0.5)
  3. 200 if the signature verifies, 401 if it does not.

With an `ssl_context` (see `bridge_local.tls`) it serves https, so tests can point several host
names at it and see which certificate each connection checks.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import select
import socket
import ssl
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from standardwebhooks import Webhook, WebhookVerificationError

# How an answer goes out. "whole": at once. "drip": status line, headers and body one byte every
# `drip_s`. "hang": nothing at all, the connection held open until the sender leaves. "endless": the
# status line and headers, then a body without a length that never ends, one byte every `drip_s`.
MODES = ("whole", "drip", "hang", "endless")
# A misbehaving answer stops after this long even if the sender never leaves.
HOLD_LIMIT_S = 600.0


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    body: str = ""
    mode: str = "whole"
    drip_s: float = 0.5

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        if not 0 < self.drip_s <= 60:
            raise ValueError("drip_s must be more than 0 and at most 60 seconds")


@dataclass
class ReceivedWebhook:
    path: str
    query: str
    headers: dict[str, str]
    body: str
    verified: bool
    verify_error: str | None
    answered: int
    received_at: float

    @property
    def webhook_id(self) -> str | None:
        return self.headers.get("webhook-id")

    @property
    def event(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class WebhookReceiver:
    def __init__(
        self,
        secrets: Iterable[str] = (),
        *,
        port: int = 0,
        on_delivery: Callable[[ReceivedWebhook], None] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._verifiers = [Webhook(secret) for secret in secrets if secret]
        self._port = port
        self._ssl_context = ssl_context
        self._stopping = threading.Event()
        self._on_delivery = on_delivery
        self._scripts: dict[str, deque[Reply]] = defaultdict(deque)
        self._seen_per_id: dict[str, int] = defaultdict(int)
        self.received: list[ReceivedWebhook] = []
        self._changed = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("receiver not started")
        host, port = self._server.server_address[:2]
        return f"{'https' if self._ssl_context else 'http'}://{host}:{port}"

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("receiver not started")
        return int(self._server.server_address[1])

    def start(self) -> WebhookReceiver:
        receiver = self
        self._stopping.clear()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length).decode("utf-8", "replace")
                reply = receiver._handle(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                if reply.mode != "whole":
                    self.close_connection = True
                    receiver._misbehave(self, reply)
                    return
                payload = reply.body.encode("utf-8")
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the bridge gave up waiting (timeout): exactly what a slow receiver causes

            def log_message(self, format: str, *args: Any) -> None:
                pass

        context = self._ssl_context

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def finish_request(self, request: Any, client_address: Any) -> None:
                # The handshake runs in the request's own thread: a client that never finishes it
                # holds that thread only, never the accept loop.
                if context is None:
                    super().finish_request(request, client_address)
                    return
                request.settimeout(10)
                with context.wrap_socket(request, server_side=True) as tls:
                    tls.settimeout(None)
                    super().finish_request(tls, client_address)

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # refused handshakes and senders that hang up are what the tests provoke

        self._server = Server(("127.0.0.1", self._port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # ends answers still dripping or hanging
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ behaviour

    def script(self, path: str, replies: Iterable[Reply]) -> None:
        """Answer the next requests to `path` with these replies, in order, then as usual."""
        with self._changed:
            self._scripts[path].extend(replies)

    def _handle(self, raw_path: str, headers: dict[str, str], body: str) -> Reply:
        parts = urlsplit(raw_path)
        verified, error = self._verify(body, headers)
        options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        webhook_id = headers.get("webhook-id", "")
        with self._changed:
            self._seen_per_id[webhook_id] += 1
            seen = self._seen_per_id[webhook_id]
            scripted = self._scripts[parts.path].popleft() if self._scripts[parts.path] else None
        reply = scripted or self._reply_from_options(options, seen, verified)
        record = ReceivedWebhook(
            path=parts.path,
            query=parts.query,
            headers=headers,
            body=body,
            verified=verified,
            verify_error=error,
            answered=reply.status,
            received_at=time.time(),
        )
        with self._changed:
            self.received.append(record)
            self._changed.notify_all()
        if self._on_delivery is not None:
            self._on_delivery(record)
        return reply

    @staticmethod
    def _reply_from_options(options: dict[str, str], seen: int, verified: bool) -> Reply:
        delay = float(options.get("delay", 0) or 0)
        shape = {"mode": options.get("mode", "whole"), "drip_s": float(options.get("drip_s", 0.5) or 0.5)}
        failure_headers = {"Retry-After": options["retry_after"]} if "retry_after" in options else {}
        if "status" in options:
            status = int(options["status"])
            return Reply(status, failure_headers if status >= 300 else {}, delay, **shape)
        if seen <= int(options.get("fail", 0) or 0):
            return Reply(500, failure_headers, delay, "failing on purpose", **shape)
        return Reply(200 if verified else 401, {}, delay, **shape)

    def _misbehave(self, handler: BaseHTTPRequestHandler, reply: Reply) -> None:
        """Answer in one of the slow modes, until the sender leaves, the receiver stops or HOLD_LIMIT_S."""
        conn: socket.socket = handler.connection
        ends = time.monotonic() + HOLD_LIMIT_S
        if reply.mode == "hang":
            while not self._stopping.is_set() and time.monotonic() < ends:
                if _peer_left(conn, wait_s=0.2):
                    return
            return
        head = f"HTTP/1.1 {reply.status} {_reason(reply.status)}\r\n"
        for name, value in reply.headers.items():
            head += f"{name}: {value}\r\n"
        if reply.mode == "drip":
            body = reply.body.encode("utf-8")
            head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            data: Iterable[int] = head.encode("latin-1") + body
        else:  # endless: no length, so the body lasts until the connection closes, which it never does
            head += "Content-Type: text/plain\r\n\r\n"
            with contextlib.suppress(OSError):
                handler.wfile.write(head.encode("latin-1"))
            data = itertools.cycle(b"still going ")
        for byte in data:
            if self._stopping.is_set() or time.monotonic() >= ends:
                return
            try:
                handler.wfile.write(bytes([byte]))
            except OSError:
                return  # the sender gave up: what a deadline is for
            if self._stopping.wait(reply.drip_s):
                return

    def _verify(self, body: str, headers: dict[str, str]) -> tuple[bool, str | None]:
        if not self._verifiers:
            return False, "no secret to verify with"
        error = "no verifier"
        for verifier in self._verifiers:
            try:
                verifier.verify(body, headers)
                return True, None
            except WebhookVerificationError as exc:
                error = str(exc)
        return False, error

    # ------------------------------------------------------------------ what arrived

    def deliveries(self, path: str | None = None, webhook_id: str | None = None) -> list[ReceivedWebhook]:
        with self._changed:
            return [
                r
                for r in self.received
                if (path is None or r.path == path) and (webhook_id is None or r.webhook_id == webhook_id)
            ]

    def wait_for(self, path: str, count: int = 1, timeout: float = 30.0) -> list[ReceivedWebhook]:
        """Block until `count` requests reached `path`; return them."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [r for r in self.received if r.path == path]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(found)} of {count} webhooks reached {path} after {timeout}s")
                self._changed.wait(left)


def _peer_left(conn: socket.socket, *, wait_s: float) -> bool:
    """True once the other end closed the connection (or broke it)."""
    try:
        readable, _, _ = select.select([conn], [], [], wait_s)
        if not readable:
            return False
        return conn.recv(1024) == b""
    except (OSError, ValueError):
        return True


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Status"


def format_delivery(record: ReceivedWebhook) -> str:
    event = record.event if isinstance(record.event, dict) else {}
    data = event.get("data") or {}
    check = "signature ok" if record.verified else f"SIGNATURE REJECTED ({record.verify_error})"
    lines = [
        f"[webhook {record.path}] {event.get('type', '?')} task={data.get('task_id')} "
        f"id={record.webhook_id} → answered {record.answered}; {check}"
    ]
    if data.get("url"):
        lines.append(f"  url: {data['url']}")
    if data.get("progress") is not None and data.get("status") not in ("completed",):
        lines.append(f"  progress: {data['progress']}")
    if data.get("error"):
        lines.append(f"  error: {json.dumps(data['error'])}")
    return "\n".join(lines)
