"""A webhook receiver for the local run and the tests: verifies Standard Webhooks signatures,
records every request, and answers as told (to show and test retries).

How it answers, first match wins:
  1. a script queued for the path: `receiver.script("/hooks/x", [Reply(500), Reply(200)])`;
  2. query options of the callback URL itself:
       ?fail=N          the first N requests of each webhook-id get 500, later ones 200
       ?status=CODE     always CODE (410 stops the bridge's retries)
       ?retry_after=S   failures carry Retry-After: S
       ?delay=S         sleep S seconds before answering (to provoke timeouts)
  3. 200 if the signature verifies, 401 if it does not.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from standardwebhooks import Webhook, WebhookVerificationError


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    body: str = ""


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
    ) -> None:
        self._verifiers = [Webhook(secret) for secret in secrets if secret]
        self._port = port
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
        return f"http://{host}:{port}"

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length).decode("utf-8", "replace")
                reply = receiver._handle(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
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

        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
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
        failure_headers = {"Retry-After": options["retry_after"]} if "retry_after" in options else {}
        if "status" in options:
            status = int(options["status"])
            return Reply(status, failure_headers if status >= 300 else {}, delay)
        if seen <= int(options.get("fail", 0) or 0):
            return Reply(500, failure_headers, delay, "failing on purpose")
        return Reply(200 if verified else 401, {}, delay)

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
