"""The bridge's HTTP API (Router One's paths and envelope) and the one place errors become responses."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from bridge import jobs, lifecycle, webhooks
from bridge.errors import BridgeError, InvalidRequest, internal_error_envelope
from bridge.idempotent_submit import submit_with_key
from bridge.models import GenerationRequest
from bridge.observability import logger

app = APIGatewayRestResolver(enable_validation=True)


def _json(status: int, body: dict[str, Any]) -> Response[dict[str, Any]]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


@app.post("/v1/videos/generations")
def submit_generation(request: GenerationRequest) -> Response[dict[str, Any]]:
    key = app.current_event.headers.get("Idempotency-Key")  # case-insensitive
    return _json(202, submit_with_key(request, key, app.lambda_context))


@app.get("/v1/videos/generations")
def list_generations() -> Response[dict[str, Any]]:
    query = app.current_event.query_string_parameters or {}
    limit = query.get("limit")
    if limit is not None and not limit.isdigit():
        raise InvalidRequest("'limit' must be a whole number", param="limit")
    page = lifecycle.list_jobs(
        status=query.get("status"), limit=int(limit) if limit is not None else None, cursor=query.get("cursor")
    )
    return _json(200, page)


@app.post("/v1/videos/generations/<task_id>/cancel")
def cancel_generation(task_id: str) -> Response[dict[str, Any]]:
    return _json(200, lifecycle.cancel(task_id))


@app.get("/v1/videos/generations/<task_id>")
def get_generation(task_id: str) -> Response[dict[str, Any]]:
    return _json(200, jobs.public_view(jobs.get_job(task_id)))


@app.get("/v1/videos/generations/<task_id>/webhooks")
def list_webhook_deliveries(task_id: str) -> Response[dict[str, Any]]:
    return _json(200, webhooks.deliveries_of(task_id))


@app.post("/v1/videos/generations/<task_id>/webhooks/<event_id>/redeliver")
def redeliver_webhook(task_id: str, event_id: str) -> Response[dict[str, Any]]:
    return _json(202, webhooks.redeliver(task_id, event_id))


@app.exception_handler(RequestValidationError)
def _invalid_request(exc: RequestValidationError) -> Response[dict[str, Any]]:
    return _json(400, describe_validation_errors(exc.errors()).envelope())


@app.exception_handler(UnicodeDecodeError)
def _undecodable_body(exc: UnicodeDecodeError) -> Response[dict[str, Any]]:
    return _json(400, InvalidRequest("the request body is not valid UTF-8", code="invalid_json").envelope())


@app.exception_handler(BridgeError)
def _bridge_error(exc: BridgeError) -> Response[dict[str, Any]]:
    if exc.status >= 500:
        logger.warning("request failed", extra={"code": exc.code, "status": exc.status})
    return _json(exc.status, exc.envelope())


@app.not_found
def _no_route(exc: Exception) -> Response[dict[str, Any]]:
    method, path = app.current_event.http_method, app.current_event.path
    return _json(
        404,
        BridgeError(
            f"no route for {method} {path}", status=404, type="invalid_request_error", code="not_found"
        ).envelope(),
    )


@app.exception_handler(Exception)
def _unexpected(exc: Exception) -> Response[dict[str, Any]]:
    logger.exception("unexpected error")
    return _json(500, internal_error_envelope())


def describe_validation_errors(errors: Any) -> InvalidRequest:
    """Turn the first validation problem into Router One's 400 envelope, naming the field."""
    first = next(iter(errors), {})
    kind = first.get("type", "")
    location = [str(part) for part in first.get("loc", ()) if part != "body"]
    field = ".".join(location) if location else None
    if kind == "json_invalid":
        return InvalidRequest("the request body is not valid JSON", code="invalid_json")
    if field is None:
        return InvalidRequest("the request body must be a JSON object", code="invalid_json")
    if kind == "missing":
        return InvalidRequest(f"'{field}' is required", code="missing_required_parameter", param=field)
    if kind == "extra_forbidden":
        return InvalidRequest(f"'{field}' is not a known parameter", code="unknown_parameter", param=field)
    reason = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    return InvalidRequest(f"'{field}': {reason}", param=field)
