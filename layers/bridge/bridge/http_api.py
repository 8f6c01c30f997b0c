"""The bridge's HTTP API (Router One's paths and envelope) and the one place errors become responses.

Every answer to bad input is Router One's envelope with a 4xx; a 5xx means the bridge or Router One
failed, never the client's bytes.

Request bodies. Only submit reads a body (the other routes ignore one), and it reads it here, not
through Powertools' body validation: that parses the body before any middleware runs, and its JSON
parser takes NaN, keeps the last of duplicate keys and recurses on deep nesting. In order:

1. Size: at most `MAX_BODY_BYTES` (256 KiB, after base64 decoding), else 413 `request_too_large`.
   API Gateway lets up to 10 MB through, but the job row stores the request and DynamoDB items end at
   400 KB; the largest honest body (two 10,000-character prompts, 2 KB of metadata, a few URLs) is
   a tenth of the limit.
2. Content-Type: `application/json`, with parameters, and if a charset is named it must be UTF-8.
   A request without Content-Type is accepted and its body parsed as JSON (some clients omit the
   header; the body still has to be a JSON object). Anything else (text/plain, forms, multipart) is
   415 `unsupported_media_type`, rather than guessed at.
3. UTF-8, else 400 `invalid_json`.
4. Strict JSON (RFC 8259), else 400 `invalid_json`: no NaN or Infinity, no duplicate keys (parsers
   disagree on which one wins), finite numbers of at most `MAX_INTEGER_DIGITS` digits, nesting at
   most `MAX_JSON_DEPTH` levels (checked before parsing, so deep nesting never recurses).
5. The body must be an object, then `GenerationRequest` decides, and a 400 names the field.

Path ids are opaque (Router One's task ids are passed back as they came), but an id that could never
have been stored (longer than `MAX_ID_BYTES` in UTF-8, or not encodable) is a 404 without asking
DynamoDB, which would refuse such a key with an error.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from pydantic import ValidationError

from bridge import jobs, lifecycle, webhooks
from bridge.errors import BridgeError, InvalidRequest, TaskNotFound, internal_error_envelope
from bridge.idempotent_submit import submit_with_key
from bridge.models import GenerationRequest
from bridge.observability import logger

MAX_BODY_BYTES = 256 * 1024
MAX_JSON_DEPTH = 32
MAX_INTEGER_DIGITS = 100
# DynamoDB keys: 2,048 bytes for a partition key, 1,024 for a sort key (event ids are one).
MAX_ID_BYTES = 1024
# A real cursor is a few hundred characters; the bound also keeps its JSON from nesting deeply.
MAX_CURSOR_LENGTH = 1024
LIST_PARAMETERS = frozenset({"status", "limit", "cursor"})

# A JSON string (skipped as a whole) or one bracket; what the depth check counts.
_JSON_STRUCTURE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_LIMIT = re.compile(r"[0-9]{1,6}")

app = APIGatewayRestResolver(enable_validation=True)


def _json(status: int, body: dict[str, Any]) -> Response[dict[str, Any]]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


@app.post("/v1/videos/generations")
def submit_generation() -> Response[dict[str, Any]]:
    request = read_generation_request(app.current_event)
    key = app.current_event.headers.get("Idempotency-Key")  # case-insensitive
    return _json(202, submit_with_key(request, key, app.lambda_context))


@app.get("/v1/videos/generations")
def list_generations() -> Response[dict[str, Any]]:
    query = app.current_event.query_string_parameters or {}
    unknown = sorted(set(query) - LIST_PARAMETERS)
    if unknown:
        raise InvalidRequest(f"'{unknown[0]}' is not a known parameter", code="unknown_parameter", param=unknown[0])
    limit, cursor = query.get("limit"), query.get("cursor")
    if limit is not None and not _LIMIT.fullmatch(limit):
        raise InvalidRequest("'limit' must be a whole number", param="limit")
    if cursor is not None and len(cursor) > MAX_CURSOR_LENGTH:
        raise InvalidRequest("'cursor' is not a cursor this API returned", param="cursor")
    page = lifecycle.list_jobs(
        status=query.get("status"), limit=int(limit) if limit is not None else None, cursor=cursor
    )
    return _json(200, page)


@app.post("/v1/videos/generations/<task_id>/cancel")
def cancel_generation(task_id: str) -> Response[dict[str, Any]]:
    return _json(200, lifecycle.cancel(_task_id(task_id)))


@app.get("/v1/videos/generations/<task_id>")
def get_generation(task_id: str) -> Response[dict[str, Any]]:
    return _json(200, jobs.public_view(jobs.get_job(_task_id(task_id))))


@app.get("/v1/videos/generations/<task_id>/webhooks")
def list_webhook_deliveries(task_id: str) -> Response[dict[str, Any]]:
    return _json(200, webhooks.deliveries_of(_task_id(task_id)))


@app.post("/v1/videos/generations/<task_id>/webhooks/<event_id>/redeliver")
def redeliver_webhook(task_id: str, event_id: str) -> Response[dict[str, Any]]:
    task_id = _task_id(task_id)
    if not _storable_id(event_id):
        jobs.get_job(task_id)  # an unknown task is still a task_not_found
        raise TaskNotFound(
            f"job '{task_id}' has no webhook delivery for that event_id",
            code="webhook_delivery_not_found",
            param="event_id",
        )
    return _json(202, webhooks.redeliver(task_id, event_id))


@app.exception_handler(RequestValidationError)
def _invalid_request(exc: RequestValidationError) -> Response[dict[str, Any]]:
    return _json(400, describe_validation_errors(exc.errors()).envelope())


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


# --------------------------------------------------------------------------- the submit body


def read_generation_request(event: APIGatewayProxyEvent) -> GenerationRequest:
    """The submit body, checked in the order the module docstring gives; raises BridgeError."""
    raw = _body_bytes(event)
    _check_content_type(event.headers.get("Content-Type"))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _invalid_json("the request body is not valid UTF-8") from None
    body = parse_json_object(text)
    try:
        return GenerationRequest.model_validate(body)
    except ValidationError as exc:
        raise describe_validation_errors(exc.errors()) from None


def parse_json_object(text: str) -> dict[str, Any]:
    """Strict JSON that must be an object; every problem is a 400 `invalid_json`."""
    if not text.strip():
        raise _invalid_json("the request body must be a JSON object")
    if _nests_deeper_than(text, MAX_JSON_DEPTH):
        raise _invalid_json(f"the request body nests more than {MAX_JSON_DEPTH} levels deep")
    try:
        parsed = json.loads(
            text, object_pairs_hook=_unique_keys, parse_constant=_no_constant, parse_float=_finite, parse_int=_integer
        )
    except (ValueError, RecursionError):
        raise _invalid_json("the request body is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise _invalid_json("the request body must be a JSON object")
    return parsed


def _body_bytes(event: APIGatewayProxyEvent) -> bytes:
    body = event.body
    if not body:
        return b""
    too_large = BridgeError(
        f"the request body is larger than {MAX_BODY_BYTES} bytes",
        status=413,
        type="invalid_request_error",
        code="request_too_large",
    )
    if event.is_base64_encoded:
        # Four base64 characters carry three bytes: refuse before decoding what is clearly too much.
        if len(body) > (MAX_BODY_BYTES // 3 + 2) * 4:
            raise too_large
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise _invalid_json("the request body is not valid base64") from None
    else:
        # Every character is at least one byte: the length alone settles most oversized bodies.
        if len(body) > MAX_BODY_BYTES:
            raise too_large
        try:
            raw = body.encode("utf-8")
        except UnicodeEncodeError:
            raise _invalid_json("the request body is not valid UTF-8") from None
    if len(raw) > MAX_BODY_BYTES:
        raise too_large
    return raw


def _check_content_type(header: str | None) -> None:
    if header is None or not header.strip():
        return  # accepted: the body is parsed as JSON all the same
    media_type, *parameters = header.split(";")
    charset = "utf-8"
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
    if media_type.strip().lower() != "application/json" or charset not in ("utf-8", "utf8"):
        raise BridgeError(
            f"Content-Type must be application/json (UTF-8), not '{header[:100]}'",
            status=415,
            type="invalid_request_error",
            code="unsupported_media_type",
        )


def _nests_deeper_than(text: str, limit: int) -> bool:
    """Whether arrays and objects nest more than `limit` levels (brackets inside strings skipped)."""
    if text.count("[") + text.count("{") <= limit:
        return False  # it cannot nest deeper than it has brackets: most bodies skip the scan
    depth = 0
    for token in _JSON_STRUCTURE.finditer(text):
        mark = token.group()
        if mark in ("[", "{"):
            depth += 1
            if depth > limit:
                return True
        elif mark in ("]", "}"):
            depth -= 1
    return False


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _invalid_json(f"the request body repeats the key '{key[:100]}'")
        found[key] = value
    return found


def _no_constant(name: str) -> Any:
    raise _invalid_json(f"the request body holds {name}, which is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _invalid_json("the request body holds a number out of range")
    return value


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise _invalid_json(f"the request body holds a number of more than {MAX_INTEGER_DIGITS} digits")
    return int(text)


def _invalid_json(message: str) -> InvalidRequest:
    return InvalidRequest(message, code="invalid_json")


# --------------------------------------------------------------------------- path ids


def _storable_id(value: str) -> bool:
    try:
        return len(value.encode("utf-8")) <= MAX_ID_BYTES
    except UnicodeEncodeError:
        return False


def _task_id(task_id: str) -> str:
    if not _storable_id(task_id):
        raise TaskNotFound("no video generation with that task_id")
    return task_id


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
