"""A local API Gateway (REST, v1 proxy integration) in front of the api handler.

moto does not run API Gateway → Lambda proxy integrations, so this does the job
`sam local start-api` does: HTTP request → proxy event → handler → HTTP response.
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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from bridge_local.emulator import ACCOUNT_ID, LambdaContext

Handler = Callable[[Any, Any], Any]

INTERNAL_ERROR = {"error": {"message": "internal error", "type": "api_error", "code": "internal_error"}}


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


def _match(routes: Sequence[ApiRoute], method: str, path: str) -> tuple[_Match | None, bool]:
    """Return the best route for (method, path) and whether the path matched any route at all."""
    path_known = False
    for route in sorted(routes, key=ApiRoute.specificity):
        found = route.pattern().fullmatch(path.rstrip("/") or "/")
        if found is None:
            continue
        path_known = True
        if route.method in ("ANY", method):
            return _Match(route, {k: unquote(v) for k, v in found.groupdict().items()}), True
    return None, path_known


def _not_found(message: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": "invalid_request_error", "code": "not_found"}}).encode()


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
    ) -> None:
        self.handler = handler
        self.routes = list(routes)
        self.stage = stage
        self.function_name = function_name
        self.region = region
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
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = handle_any

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
        length = int(request.headers.get("Content-Length") or 0)
        raw_body = request.rfile.read(length) if length else b""
        request_id = str(uuid.uuid4())

        found, path_known = _match(self.routes, method, path)
        handler = (found.route.handler or self.handler) if found else None
        if found is None or handler is None:
            message = f"no route for {method} {path}" if not path_known else f"{method} is not allowed on {path}"
            headers = [("Content-Type", "application/json"), ("x-amzn-RequestId", request_id)]
            return 404, headers, _not_found(message)

        event = self.build_event(request, found, method, path, split.query, raw_body, request_id)
        context = LambdaContext(
            function_name=self.function_name,
            function_version="$LATEST",
            invoked_function_arn=f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{self.function_name}",
            memory_limit_in_mb=256,
            timeout_s=29.0,  # API Gateway's integration timeout
        )
        try:
            result = handler(event, context)
            status, headers, body = self.render(result)
        except Exception as exc:  # any crash is a 500 envelope, never a trace
            print(f"[api] {method} {path}: {type(exc).__name__}: {exc}", file=sys.stderr)
            status, headers = 500, [("Content-Type", "application/json")]
            body = json.dumps(INTERNAL_ERROR).encode()
        return status, [*headers, ("x-amzn-RequestId", request_id)], body

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
                # On AWS the request context path carries the stage prefix.
                "path": f"/{self.stage}{path}",
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
