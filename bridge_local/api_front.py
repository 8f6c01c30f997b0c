"""A local API Gateway (REST, v1 proxy integration) in front of the api handler.

moto does not run API Gateway → Lambda proxy integrations, so this does the job
`sam local start-api` does: HTTP request → proxy event → handler → HTTP response.

What API Gateway answers itself is answered here the same way, from the API's own gateway
responses (the translated template's `x-amazon-apigateway-gateway-responses`, see
`gateway_responses`): a path or method the API does not declare is MISSING_AUTHENTICATION_TOKEN
(403) before any authorizer or key check; a function that has not answered after the integration
timeout (29 s) is INTEGRATION_TIMEOUT (504) while it keeps running; the authorizer's and key
check's refusals (`gateway_auth`) and an event too large for Lambda are rendered the same way.
A body over the 10 MiB payload limit is refused before all that with AWS's own 413 text, which no
gateway response changes. Unreadable framing (400: a bad or conflicting Content-Length, a broken
chunked body; 501 for other transfer codings) and whatever http.server itself rejects (a
malformed request line, an over-long URI or header) get Router One's error envelope. Bodies may
come with Content-Length or chunked; the handler sees the decoded bytes as one body.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from bridge_local.emulator import ACCOUNT_ID, LambdaContext
from bridge_local.gateway_responses import (
    GatewayAnswer,
    GatewayRefusal,
    GatewayRequest,
    GatewayResponses,
    missing_token_message,
)

Handler = Callable[[Any, Any], Any]

INTERNAL_ERROR = {"error": {"message": "internal error", "type": "api_error", "code": "internal_error"}}
# API Gateway REST's payload limit: larger requests never reach the function.
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
# What API Gateway's front end answers past that limit, before any gateway response applies (seen
# from deployed REST APIs: plain text, and a REQUEST_TOO_LARGE response does not change it).
TOO_LONG_STATUS = 413
TOO_LONG_HEADERS = [("Content-Type", "text; charset=utf-8")]
TOO_LONG_BODY = f"HTTP content length exceeded {MAX_PAYLOAD_BYTES} bytes.".encode()
# REST API's default integration timeout. Only tests shorten it (ApiFront's integration_timeout_s);
# the local run keeps AWS's.
INTEGRATION_TIMEOUT_S = 29.0
# Past the limit the body is still read (and dropped) up to this much, so the client, which sends
# its whole body before it reads, gets the 413 instead of a reset connection; beyond it we hang up.
MAX_DRAIN_BYTES = 64 * 1024 * 1024
_CHUNK_SIZE_LINE = re.compile(rb"[0-9A-Fa-f]{1,16}")
_TRANSPORT_CODES = {
    400: "bad_request",
    413: "request_too_large",
    414: "uri_too_long",
    431: "headers_too_large",
    501: "not_implemented",
    505: "http_version_not_supported",
}


@dataclass(frozen=True)
class ApiRoute:
    """One Api event of the template: a method ("ANY" matches all) on a resource path."""

    method: str
    resource: str
    handler: Handler | None = None  # overrides ApiFront's handler for this route

    def pattern(self) -> re.Pattern[str]:
        parts = []
        for segment in self.resource.strip("/").split("/"):
            greedy = re.fullmatch(r"\{(\w+)\+\}", segment)
            param = re.fullmatch(r"\{(\w+)\}", segment)
            if greedy:
                parts.append(f"(?P<{greedy.group(1)}>.+)")
            elif param:
                parts.append(f"(?P<{param.group(1)}>[^/]+)")
            else:
                parts.append(re.escape(segment))
        return re.compile("/" + "/".join(parts) if parts != [""] else "/")

    def specificity(self) -> tuple[int, int]:
        # API Gateway prefers literal segments over {params}, and {params} over {greedy+}.
        segments = self.resource.strip("/").split("/")
        return (-sum("{" not in s for s in segments), sum(s.endswith("+}") for s in segments))


@dataclass(frozen=True)
class _Match:
    route: ApiRoute
    path_parameters: dict[str, str]


def _match(routes: Sequence[ApiRoute], method: str, path: str) -> _Match | None:
    """The route for (method, path): the most specific resource matching the path, then the method
    on that resource (API Gateway does not try a less specific resource for a missing method)."""
    for route in sorted(routes, key=ApiRoute.specificity):
        found = route.pattern().fullmatch(path.rstrip("/") or "/")
        if found is None:
            continue
        same_resource = [r for r in routes if r.resource == route.resource]
        chosen = next((r for r in same_resource if r.method == method), None)
        chosen = chosen or next((r for r in same_resource if r.method == "ANY"), None)
        if chosen is None:
            return None
        return _Match(chosen, {k: unquote(v) for k, v in found.groupdict().items()})
    return None


def _transport_error(status: int, message: str) -> bytes:
    kind = "api_error" if status >= 500 else "invalid_request_error"
    code = _TRANSPORT_CODES.get(status, "internal_error" if status >= 500 else "bad_request")
    return json.dumps({"error": {"message": message, "type": kind, "code": code}}).encode()


class IntegrationTimeout(Exception):
    """The handler did not answer within the integration timeout."""


class TransportError(Exception):
    """The request itself is unreadable or too large: answered by the front, as API Gateway would."""

    def __init__(self, status: int, message: str, *, keep_alive: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.keep_alive = keep_alive  # the whole request was read: the connection can serve another


def read_body(request: BaseHTTPRequestHandler, limit: int = MAX_PAYLOAD_BYTES) -> bytes:
    """The request body by Content-Length or chunked framing, at most `limit` bytes."""
    encoding = request.headers.get("Transfer-Encoding")
    if encoding is not None:
        if encoding.strip().lower() != "chunked":
            raise TransportError(501, f"Transfer-Encoding {encoding[:40]!r} is not supported")
        return _read_chunked(request, limit)
    lengths = {value.strip() for value in request.headers.get_all("Content-Length") or []}
    if not lengths:
        return b""
    if len(lengths) > 1 or not all(value.isascii() and value.isdigit() for value in lengths):
        raise TransportError(400, "Content-Length is not a single non-negative number")
    length = int(lengths.pop())
    if length > limit:
        drained = _discard(request, length) if length <= MAX_DRAIN_BYTES else 0
        raise TransportError(413, f"the request body is larger than {limit} bytes", keep_alive=drained == length)
    body = request.rfile.read(length)
    if len(body) < length:
        raise TransportError(400, "the request body is shorter than its Content-Length")
    return body


def _discard(request: BaseHTTPRequestHandler, length: int) -> int:
    done = 0
    while done < length:
        piece = request.rfile.read(min(65536, length - done))
        if not piece:
            break
        done += len(piece)
    return done


def _read_chunked(request: BaseHTTPRequestHandler, limit: int) -> bytes:
    body = bytearray()
    seen = 0
    while True:
        line = request.rfile.readline(1024)
        size_text = line.split(b";", 1)[0].strip()
        if not line.endswith(b"\n") or not _CHUNK_SIZE_LINE.fullmatch(size_text):
            raise TransportError(400, "malformed chunked request body")
        size = int(size_text, 16)
        if size == 0:
            break
        seen += size
        if seen > MAX_DRAIN_BYTES:
            raise TransportError(413, f"the request body is larger than {limit} bytes")
        if seen > limit:
            if _discard(request, size) < size:
                raise TransportError(400, "the request body ended inside a chunk")
        else:
            chunk = request.rfile.read(size)
            if len(chunk) < size:
                raise TransportError(400, "the request body ended inside a chunk")
            body += chunk
        if request.rfile.readline(3) not in (b"\r\n", b"\n"):
            raise TransportError(400, "malformed chunked request body")
    for _ in range(100):  # trailer fields, up to the blank line
        if request.rfile.readline(8192) in (b"\r\n", b"\n", b""):
            break
    else:
        raise TransportError(400, "too many trailer fields")
    if seen > limit:
        raise TransportError(413, f"the request body is larger than {limit} bytes", keep_alive=True)
    return bytes(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # One line, not socketserver's traceback dump (e.g. a client hanging up mid-reply).
        print(f"[api] connection from {client_address[0]} failed: {sys.exc_info()[1]!r}", file=sys.stderr)


class ApiFront:
    """ThreadingHTTPServer that serves `routes` through `handler` as API Gateway would."""

    def __init__(
        self,
        handler: Handler | None,
        routes: Sequence[ApiRoute],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        stage: str = "dev",
        function_name: str = "api",
        region: str = "us-east-1",
        gateway_responses: GatewayResponses | None = None,
        integration_timeout_s: float = INTEGRATION_TIMEOUT_S,
    ) -> None:
        self.handler = handler
        self.routes = list(routes)
        self.stage = stage
        self.function_name = function_name
        self.region = region
        # None: an API that declares no gateway response, so AWS's own answers.
        self.gateway_responses = gateway_responses or GatewayResponses()
        self.integration_timeout_s = integration_timeout_s
        self._host = host
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("ApiFront is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> ApiFront:
        front = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle_any(self) -> None:
                status, headers, body = front.dispatch(self)
                self.send_response(status)
                for name, value in headers:
                    # The body is re-framed here; the handler's own framing would lie.
                    if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                if self.close_connection:
                    self.send_header("Connection", "close")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = handle_any

            def __getattr__(self, name: str) -> Any:
                # Any other method (TRACE, QUERY, made-up ones) is a route miss answered with the
                # envelope, not http.server's 501: no route declares it.
                if name.startswith("do_"):
                    return self.handle_any
                raise AttributeError(name)

            def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
                # http.server's own refusals (bad request line, 414, 431, unknown method) get the
                # JSON envelope too, not its HTML page.
                self.close_connection = True
                if self.request_version == "HTTP/0.9":
                    self.request_version = "HTTP/1.0"  # an unparsable request line: still answer with headers
                body = _transport_error(code, message or HTTPStatus(code).phrase)
                self.send_response(code, message)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                if self.command != "HEAD" and code >= 200 and code not in (204, 304):
                    self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the local run prints events, not access logs

        server = _Server((self._host, self._port), RequestHandler)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="api-front", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> ApiFront:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ----------------------------------------------------------------- request → event → response

    def dispatch(self, request: BaseHTTPRequestHandler) -> tuple[int, list[tuple[str, str]], bytes]:
        split = urlsplit(request.path)
        path = unquote(split.path) or "/"
        method = request.command.upper()
        request_id = str(uuid.uuid4())
        try:
            raw_body = read_body(request)
        except TransportError as exc:
            request.close_connection = request.close_connection or not exc.keep_alive
            if exc.status == TOO_LONG_STATUS:
                return TOO_LONG_STATUS, [*TOO_LONG_HEADERS, ("x-amzn-RequestId", request_id)], TOO_LONG_BODY
            headers = [("Content-Type", "application/json"), ("x-amzn-RequestId", request_id)]
            return exc.status, headers, _transport_error(exc.status, exc.message)

        found = _match(self.routes, method, path)
        handler = (found.route.handler or self.handler) if found else None
        if found is None or handler is None:
            # No such resource or method: API Gateway answers before any authorizer or key check.
            headers = dict(request.headers.items())
            message = missing_token_message(headers)
            return self.gateway_answer("MISSING_AUTHENTICATION_TOKEN", message, request, split.query, {}, request_id)

        event = self.build_event(request, found, method, path, split.query, raw_body, request_id)
        context = LambdaContext(
            function_name=self.function_name,
            function_version="$LATEST",
            invoked_function_arn=f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{self.function_name}",
            memory_limit_in_mb=256,
            timeout_s=29.0,  # API Gateway's integration timeout
        )
        params = found.path_parameters
        try:
            result = self.integrate(handler, event, context, f"{method} {path}")
            status, headers, body = self.render(result)
        except GatewayRefusal as refusal:
            return self.gateway_answer(refusal.response_type, refusal.message, request, split.query, params, request_id)
        except IntegrationTimeout:
            return self.gateway_answer("INTEGRATION_TIMEOUT", None, request, split.query, params, request_id)
        except Exception as exc:  # any crash is a 500 envelope, never a trace
            print(f"[api] {method} {path}: {type(exc).__name__}: {exc}", file=sys.stderr)
            status, headers = 500, [("Content-Type", "application/json")]
            body = json.dumps(INTERNAL_ERROR).encode()
        return status, [*headers, ("x-amzn-RequestId", request_id)], body

    def integrate(self, handler: Handler, event: dict[str, Any], context: Any, what: str) -> Any:
        """Call the handler as API Gateway calls its integration: give up after the integration
        timeout (the function runs on regardless, as a Lambda invoke does); this request's thread
        waits, the front's others go on."""
        outcome: list[tuple[bool, Any]] = []
        done, gave_up = threading.Event(), threading.Event()

        def run() -> None:
            try:
                outcome.append((True, handler(event, context)))
            except BaseException as exc:  # raised in the waiting request's thread
                outcome.append((False, exc))
                if gave_up.is_set():  # nobody waits for it any more: say so
                    print(f"[api] {what}, after the integration timeout: {exc!r}", file=sys.stderr)
            finally:
                done.set()

        threading.Thread(target=run, name="api-integration", daemon=True).start()
        if not done.wait(self.integration_timeout_s):
            gave_up.set()
            print(f"[api] {what}: no answer in {self.integration_timeout_s:g} s (integration timeout)", file=sys.stderr)
            raise IntegrationTimeout(what)
        ok, value = outcome[0]
        if not ok:
            raise value
        return value

    def gateway_answer(
        self,
        response_type: str,
        message: str | None,
        request: BaseHTTPRequestHandler,
        query: str,
        path_parameters: dict[str, str],
        request_id: str,
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        gateway_request = GatewayRequest(
            headers=dict(request.headers.items()),
            query={k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()},
            path_parameters=path_parameters,
            request_id=request_id,
            stage=self.stage,
        )
        answer: GatewayAnswer = self.gateway_responses.render(response_type, message, gateway_request)
        return answer.status, [*answer.headers, ("x-amzn-RequestId", request_id)], answer.body

    def build_event(
        self,
        request: BaseHTTPRequestHandler,
        found: _Match,
        method: str,
        path: str,
        query: str,
        raw_body: bytes,
        request_id: str,
    ) -> dict[str, Any]:
        multi_headers: dict[str, list[str]] = {}
        for name, value in request.headers.items():
            multi_headers.setdefault(name, []).append(value)
        multi_query = parse_qs(query, keep_blank_values=True)
        body: str | None
        try:
            body, is_b64 = (raw_body.decode("utf-8"), False) if raw_body else (None, False)
        except UnicodeDecodeError:
            body, is_b64 = base64.b64encode(raw_body).decode("ascii"), True
        now = time.time()
        return {
            "resource": found.route.resource,
            "path": path,
            "httpMethod": method,
            "headers": {k: v[-1] for k, v in multi_headers.items()} or None,
            "multiValueHeaders": multi_headers or None,
            "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
            "multiValueQueryStringParameters": multi_query or None,
            "pathParameters": found.path_parameters or None,
            "stageVariables": None,
            "requestContext": {
                "accountId": ACCOUNT_ID,
                "apiId": "local",
                "resourceId": "local",
                "stage": self.stage,
                "requestId": request_id,
                "extendedRequestId": request_id,
                "requestTime": formatdate(now, usegmt=True),
                "requestTimeEpoch": int(now * 1000),
                "identity": {
                    "sourceIp": request.client_address[0],
                    "userAgent": request.headers.get("User-Agent"),
                },
                "resourcePath": found.route.resource,
                "httpMethod": method,
                # The path as the caller sent it: on AWS the stage (or a base path) precedes the
                # resource path; the local URL has neither.
                "path": path,
                "protocol": request.request_version,
                "domainName": request.headers.get("Host", ""),
            },
            "body": body,
            "isBase64Encoded": is_b64,
        }

    @staticmethod
    def render(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
        if not isinstance(result, dict) or "statusCode" not in result:
            raise ValueError("handler result is not an API Gateway proxy response")
        headers: list[tuple[str, str]] = []
        single = result.get("headers") or {}
        multi = result.get("multiValueHeaders") or {}
        for name, values in multi.items():
            headers.extend((name, str(v)) for v in values)
        multi_names = {n.lower() for n in multi}
        headers.extend((n, str(v)) for n, v in single.items() if n.lower() not in multi_names)
        raw = result.get("body")
        if raw is None:
            body = b""
        elif result.get("isBase64Encoded"):
            try:
                body = base64.b64decode(raw, validate=True)
            except binascii.Error as exc:
                raise ValueError("isBase64Encoded body is not base64") from exc
        else:
            body = str(raw).encode("utf-8")
        return int(result["statusCode"]), headers, body
