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
malformed request line, an over-long URI or header) get Router One's error envelope.

The front is a werkzeug app (`http_server`); how a request becomes the proxy event and the
handler's answer a response is in `proxy_event`.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from werkzeug.wrappers import Request

from bridge_local.emulator import ACCOUNT_ID, LambdaContext
from bridge_local.gateway_responses import (
    GatewayAnswer,
    GatewayRefusal,
    GatewayRequest,
    GatewayResponses,
    missing_token_message,
)
from bridge_local.http_server import BackgroundServer, Environ, Service, StartResponse, respond
from bridge_local.proxy_event import (
    MAX_PAYLOAD_BYTES,
    TransportError,
    build_event,
    header_fields,
    read_body,
    render_result,
)

Handler = Callable[[Any, Any], Any]
# An answer: status, header fields, body.
_Answer = tuple[int, list[tuple[str, str]], bytes]

INTERNAL_ERROR = {"error": {"message": "internal error", "type": "api_error", "code": "internal_error"}}
# What API Gateway's front end answers past its payload limit, before any gateway response applies (seen
# from deployed REST APIs: plain text, and a REQUEST_TOO_LARGE response does not change it).
TOO_LONG_STATUS = 413
TOO_LONG_HEADERS = [("Content-Type", "text; charset=utf-8")]
TOO_LONG_BODY = f"HTTP content length exceeded {MAX_PAYLOAD_BYTES} bytes.".encode()
# REST API's default integration timeout. Only tests shorten it (ApiFront's integration_timeout_s);
# the local run keeps AWS's.
INTEGRATION_TIMEOUT_S = 29.0
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


class ApiFront(Service):
    """Serves `routes` through `handler` as API Gateway would, on a werkzeug server."""

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
        self._server: BackgroundServer | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("ApiFront is not started")
        host, port = self._server.address
        return f"http://{host}:{port}"

    def start(self) -> ApiFront:
        server = BackgroundServer(
            self._app,
            self._host,
            self._port,
            name="api-front",
            error_body=_transport_error,
            # One line, not a traceback dump (e.g. a client hanging up mid-reply).
            on_connection_error=lambda error: print(f"[api] connection failed: {error!r}", file=sys.stderr),
        )
        self._server = server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    # ----------------------------------------------------------------- request → event → response

    def _app(self, environ: Environ, start_response: StartResponse) -> list[bytes]:
        status, headers, body = self.dispatch(environ)
        # The body is re-framed here; the handler's own framing would lie.
        kept = [(n, v) for n, v in headers if n.lower() not in ("content-length", "transfer-encoding", "connection")]
        return respond(start_response, status, kept, body, head_only=environ["REQUEST_METHOD"] == "HEAD")

    def dispatch(self, environ: Environ) -> tuple[int, list[tuple[str, str]], bytes]:
        request = Request(environ)
        path = request.path or "/"
        method = request.method.upper()
        query = dict(request.args.lists())
        request_id = str(uuid.uuid4())
        try:
            raw_body = read_body(environ)
        except TransportError as exc:
            if exc.status == TOO_LONG_STATUS:
                return TOO_LONG_STATUS, [*TOO_LONG_HEADERS, ("x-amzn-RequestId", request_id)], TOO_LONG_BODY
            headers = [("Content-Type", "application/json"), ("x-amzn-RequestId", request_id)]
            return exc.status, headers, _transport_error(exc.status, exc.message)

        def gateway_answer(response_type: str, message: str | None, params: dict[str, str]) -> _Answer:
            return self.gateway_answer(response_type, message, environ, query, params, request_id)

        found = _match(self.routes, method, path)
        handler = (found.route.handler or self.handler) if found else None
        if found is None or handler is None:
            # No such resource or method: API Gateway answers before any authorizer or key check.
            message = missing_token_message(dict(header_fields(environ)))
            return gateway_answer("MISSING_AUTHENTICATION_TOKEN", message, {})

        params = found.path_parameters
        event = build_event(
            environ,
            resource=found.route.resource,
            path_parameters=params,
            method=method,
            path=path,
            query=query,
            raw_body=raw_body,
            request_id=request_id,
            stage=self.stage,
        )
        context = LambdaContext(
            function_name=self.function_name,
            function_version="$LATEST",
            invoked_function_arn=f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{self.function_name}",
            memory_limit_in_mb=256,
            timeout_s=29.0,  # API Gateway's integration timeout
        )
        try:
            result = self.integrate(handler, event, context, f"{method} {path}")
            status, headers, body = render_result(result)
        except GatewayRefusal as refusal:
            return gateway_answer(refusal.response_type, refusal.message, params)
        except IntegrationTimeout:
            return gateway_answer("INTEGRATION_TIMEOUT", None, params)
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
        environ: Environ,
        query: dict[str, list[str]],
        path_parameters: dict[str, str],
        request_id: str,
    ) -> _Answer:
        gateway_request = GatewayRequest(
            headers=dict(header_fields(environ)),
            query={k: v[-1] for k, v in query.items()},
            path_parameters=path_parameters,
            request_id=request_id,
            stage=self.stage,
        )
        answer: GatewayAnswer = self.gateway_responses.render(response_type, message, gateway_request)
        return answer.status, [*answer.headers, ("x-amzn-RequestId", request_id)], answer.body
