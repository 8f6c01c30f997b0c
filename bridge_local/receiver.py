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

What verifies: a Standard Webhooks v1 signature (HMAC) with one of the secrets it was given (the
stack's), or, on a path where a registered webhook endpoint delivers (`register_endpoint`, or a
POST to the loopback-only admin route ENDPOINT_KEYS_PATH, as `python -m bridge_local.receiver_endpoint`
does), that endpoint's own v1 and v1a keys, held and checked by `bridge_local.receiver_keys`. Each
request records each scheme's check (`ReceivedWebhook.checks`: `v1 ok (current), v1a ok (current)`);
an endpoint's delivery verifies when at least one scheme verified and none failed.

With an `ssl_context` (see `bridge_local.tls`) it serves https, so tests can point several host
names at it and see which certificate each connection checks.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import socket
import ssl
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from standardwebhooks import Webhook, WebhookVerificationError
from werkzeug.wrappers import Request

from bridge_local.http_server import (
    RAW_HEADERS,
    BackgroundServer,
    DropConnection,
    Environ,
    Service,
    StartResponse,
    answer_keeping_connection,
    connection_of,
    hold_open,
    respond,
    send_slowly,
    status_head,
)
from bridge_local.receiver_keys import (
    V1,
    RegisteredEndpoint,
    SchemeCheck,
    check_endpoint_signatures,
    registered_endpoint,
)

# How an answer goes out. "whole": at once. "drip": status line, headers and body one byte every
# `drip_s`. "hang": nothing at all, the connection held open until the sender leaves. "endless": the
# status line and headers, then a body without a length that never ends, one byte every `drip_s`.
MODES = ("whole", "drip", "hang", "endless")
# A misbehaving answer stops after this long even if the sender never leaves.
HOLD_LIMIT_S = 600.0
# The admin route (loopback callers only) where a registered endpoint's keys are handed over:
# POST the endpoint object as the API answers it, with its `secret`; GET lists what is known.
ENDPOINT_KEYS_PATH = "/_receiver/endpoint-keys"


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
    checks: tuple[SchemeCheck, ...] = ()  # each scheme's check (see SchemeCheck)
    endpoint_ids: tuple[str, ...] = ()  # the registered endpoints whose keys the request was checked with

    @property
    def signatures(self) -> str:
        """Which schemes verified, with which key: `v1 ok (current), v1a ok (current)`."""
        return ", ".join(str(check) for check in self.checks)

    @property
    def webhook_id(self) -> str | None:
        return self.headers.get("webhook-id")

    @property
    def event(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class WebhookReceiver(Service):
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
        self._endpoints: dict[str, RegisteredEndpoint] = {}
        self._seen_per_id: dict[str, int] = defaultdict(int)
        self.received: list[ReceivedWebhook] = []
        self._changed = threading.Condition()
        self._server: BackgroundServer | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        host, port = self._address()
        return f"{'https' if self._ssl_context else 'http'}://{host}:{port}"

    @property
    def port(self) -> int:
        return self._address()[1]

    def _address(self) -> tuple[str, int]:
        if self._server is None:
            raise RuntimeError("receiver not started")
        return self._server.address

    def start(self) -> WebhookReceiver:
        self._stopping.clear()
        self._server = BackgroundServer(self._app, port=self._port, name="webhook-receiver", tls=self._ssl_context)
        self._server.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # ends answers still dripping or hanging
        if self._server is not None:
            self._server.stop()
            self._server = None

    def _app(self, environ: Environ, start_response: StartResponse) -> list[bytes]:
        request = Request(environ)
        if request.path == ENDPOINT_KEYS_PATH:
            return self._admin(environ, request, start_response)
        if request.method != "POST":
            return respond(start_response, 501, [], b"webhooks are POSTed")
        headers = {name.lower(): value for name, value in environ[RAW_HEADERS]}
        body = request.get_data().decode("utf-8", "replace")
        # The target as sent, not percent-decoded: paths and queries are recorded as they came.
        reply = self._handle(environ.get("REQUEST_URI", "/"), headers, body)
        if reply.delay_s:
            time.sleep(reply.delay_s)
        if reply.mode != "whole":
            self._misbehave(connection_of(environ), reply)
            raise DropConnection
        # Kept open after the answer, as webhook endpoints do: tests show what a pooled sender does with that.
        answer_keeping_connection(environ, reply.status, reply.headers.items(), reply.body.encode("utf-8"))

    # ------------------------------------------------------------------ behaviour

    def script(self, path: str, replies: Iterable[Reply]) -> None:
        """Answer the next requests to `path` with these replies, in order, then as usual."""
        with self._changed:
            self._scripts[path].extend(replies)

    def _handle(self, raw_path: str, headers: dict[str, str], body: str) -> Reply:
        parts = urlsplit(raw_path)
        verified, error, checks, endpoint_ids = self._check(parts.path, body, headers)
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
            checks=checks,
            endpoint_ids=endpoint_ids,
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

    def _misbehave(self, connection: socket.socket, reply: Reply) -> None:
        """Answer in one of the slow modes, until the sender leaves, the receiver stops or HOLD_LIMIT_S."""
        timing = {"stopping": self._stopping, "ends": time.monotonic() + HOLD_LIMIT_S}
        if reply.mode == "hang":
            hold_open(connection, **timing)
        elif reply.mode == "drip":
            body = reply.body.encode("utf-8")
            fields = [*reply.headers.items(), ("Content-Length", str(len(body))), ("Connection", "close")]
            data = status_head("HTTP/1.1", reply.status, fields) + body
            send_slowly(connection, _bytes_of(data), pause_s=reply.drip_s, **timing)
        else:  # endless: no length, so the body lasts until the connection closes, which it never does
            head = status_head("HTTP/1.1", reply.status, [*reply.headers.items(), ("Content-Type", "text/plain")])
            if send_slowly(connection, [head], pause_s=0, **timing):
                send_slowly(connection, _bytes_of(itertools.cycle(b"still going ")), pause_s=reply.drip_s, **timing)

    def _check(
        self, path: str, body: str, headers: dict[str, str]
    ) -> tuple[bool, str | None, tuple[SchemeCheck, ...], tuple[str, ...]]:
        """The stack secret's check, or on a registered endpoint's path that endpoint's keys' (the
        stack secret still verifies there: a job's own callback_url may point at the same path)."""
        with self._changed:
            registered = [endpoint for endpoint in self._endpoints.values() if endpoint.path == path]
        ids = tuple(endpoint.endpoint_id for endpoint in registered)
        if registered:
            checks = check_endpoint_signatures(body, headers, registered)
            if any(check.ok for check in checks) and not any(check.outcome == "failed" for check in checks):
                return True, None, checks, ids
            if self._verifiers and self._verify(body, headers)[0]:
                return True, None, (SchemeCheck(V1, "ok", ("stack secret",)),), ids
            summary = ", ".join(str(check) for check in checks) or "no signature"
            return False, summary, checks, ids
        verified, error = self._verify(body, headers)
        stack = SchemeCheck(V1, "ok", ("stack secret",)) if verified else SchemeCheck(V1, "failed", error=error)
        return verified, error, (stack,), ()

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

    # ------------------------------------------------------------------ registered endpoints

    def register_endpoint(
        self,
        endpoint_id: str,
        url_or_path: str,
        *,
        secret: str | None = None,
        public_keys: Iterable[str | Mapping[str, Any]] = (),
    ) -> RegisteredEndpoint:
        """Verify deliveries to this path with this endpoint's keys from now on (which key is which:
        see `registered_endpoint`). Registering an endpoint id again replaces what was known of it;
        ValueError for a malformed key."""
        with self._changed:
            registered = registered_endpoint(
                endpoint_id, url_or_path, secret=secret, public_keys=public_keys, known=self._endpoints.get(endpoint_id)
            )
            self._endpoints[endpoint_id] = registered
        return registered

    def forget_endpoint(self, endpoint_id: str) -> bool:
        with self._changed:
            return self._endpoints.pop(endpoint_id, None) is not None

    def registered_endpoints(self) -> list[RegisteredEndpoint]:
        with self._changed:
            return list(self._endpoints.values())

    def _admin(self, environ: Environ, request: Request, start_response: StartResponse) -> list[bytes]:
        """Hand over a registered endpoint's keys (POST), or list the known ones (GET); never recorded
        as a webhook. Loopback callers only, and never a request signed like a webhook."""

        def answer(status: int, document: dict[str, Any]) -> list[bytes]:
            body = json.dumps(document).encode()
            return respond(start_response, status, [("Content-Type", "application/json")], body)

        if not _is_loopback(environ.get("REMOTE_ADDR", "")):
            return answer(403, {"error": "the admin route answers loopback callers only"})
        if "webhook-id" in request.headers:
            return answer(400, {"error": "a webhook, not a key registration: this path is the receiver's admin route"})
        if request.method == "GET":
            return answer(200, {"endpoints": [endpoint.summary() for endpoint in self.registered_endpoints()]})
        if request.method != "POST":
            return answer(405, {"error": "GET or POST"})
        try:
            document = json.loads(request.get_data())
            if not isinstance(document, dict):
                raise ValueError("a JSON object is needed")
            registered = self.register_endpoint(
                str(document.get("id") or ""),
                str(document.get("url") or document.get("path") or ""),
                secret=document.get("secret"),
                public_keys=document.get("public_keys") or (),
            )
        except (ValueError, TypeError, AttributeError) as exc:
            return answer(400, {"error": str(exc)})
        return answer(200, registered.summary())

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


def _bytes_of(data: Iterable[int]) -> Iterator[bytes]:
    """One byte at a time."""
    return (bytes([byte]) for byte in data)


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


def format_delivery(record: ReceivedWebhook) -> str:
    event = record.event if isinstance(record.event, dict) else {}
    data = event.get("data") or {}
    if not record.endpoint_ids:
        check = "signature ok" if record.verified else f"SIGNATURE REJECTED ({record.verify_error})"
    elif record.verified:
        check = f"signature ok: {record.signatures}"
    else:
        check = f"SIGNATURE REJECTED ({record.signatures or record.verify_error})"
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
