"""The bridge's HTTP API: the resolver, its routers and the one place errors become responses.

Every answer to bad input is Router One's envelope `{"error": {"message", "type", "code"}}` with a
4xx; a 5xx means the bridge or Router One failed, never the client's bytes.

The routes live in `bridge.api.routes`, one router per resource (generations, webhooks, webhook
endpoints, account), and raise `BridgeError`s; request bodies are read by `bridge.api.request_body`.
Only this module turns an exception into a response, and it serves the OpenAPI document of all the
routes.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from bridge.api.request_body import describe_validation_errors
from bridge.api.routes import account, endpoints, generations, webhooks
from bridge.api.routes.common import json_response
from bridge.errors import BridgeError, internal_error_envelope
from bridge.observability import logger

app = APIGatewayRestResolver(enable_validation=True)
# In this order, which is the order of the paths in the document.
app.include_router(generations.router)
app.include_router(webhooks.router)
app.include_router(endpoints.router)
app.include_router(account.router)


@app.get("/openapi.json", include_in_schema=False)
def openapi_json() -> Response[str]:
    event = app.current_event
    # The stage (or a custom domain's base path) precedes the resource path in the URL callers used.
    full_path = event.request_context.path or event.path
    base = full_path[: -len(event.path)] if full_path.endswith(event.path) else ""
    return Response(
        status_code=200, content_type=content_types.APPLICATION_JSON, body=json.dumps(openapi_document(base or "/"))
    )


def openapi_document(server_url: str = "/") -> dict[str, Any]:
    """This API's OpenAPI 3.1 document, generated from the routes and models."""
    from bridge.api.openapi import build_document  # only this route needs it (see that module)

    return build_document(app, server_url)


@app.exception_handler(RequestValidationError)
def _invalid_request(exc: RequestValidationError) -> Response[dict[str, Any]]:
    return json_response(400, describe_validation_errors(exc.errors()).envelope())


@app.exception_handler(BridgeError)
def _bridge_error(exc: BridgeError) -> Response[dict[str, Any]]:
    if exc.status >= 500:
        logger.warning("request failed", extra={"code": exc.code, "status": exc.status})
    return json_response(exc.status, exc.envelope())


@app.not_found
def _no_route(exc: Exception) -> Response[dict[str, Any]]:
    method, path = app.current_event.http_method, app.current_event.path
    return json_response(
        404,
        BridgeError(
            f"no route for {method} {path}", status=404, type="invalid_request_error", code="not_found"
        ).envelope(),
    )


@app.exception_handler(Exception)
def _unexpected(exc: Exception) -> Response[dict[str, Any]]:
    logger.exception("unexpected error")
    return json_response(500, internal_error_envelope())
