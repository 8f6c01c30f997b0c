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
import gc
import json
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import accumulate, repeat
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Header, Query
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from pydantic import ValidationError

from bridge.api import schema
from bridge.errors import BridgeError, InvalidRequest, TaskNotFound, internal_error_envelope
from bridge.models import GenerationRequest, JobStatus
from bridge.observability import logger
from bridge.outcomes import lifecycle
from bridge.store import jobs
from bridge.submit.idempotent import MAX_KEY_LENGTH as MAX_IDEMPOTENCY_KEY_LENGTH
from bridge.submit.idempotent import submit_with_key
from bridge.tenancy import Caller, caller_of
from bridge.upstream import caller_keys
from bridge.webhooks import dispatch

MAX_BODY_BYTES = 256 * 1024
MAX_JSON_DEPTH = 32
MAX_INTEGER_DIGITS = 100
# DynamoDB keys: 2,048 bytes for a partition key, 1,024 for a sort key (event ids are one).
MAX_ID_BYTES = 1024
# A real cursor is a few hundred characters; the bound also keeps its JSON from nesting deeply.
MAX_CURSOR_LENGTH = 1024
LIST_PARAMETERS = frozenset({"status", "limit", "cursor"})
API_VERSION = "1.0.0"
SCHEMA_REF = "#/components/schemas/"
# Submit reads its own body (see above), so the document names the body's model here.
GENERATION_REQUEST_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {"$ref": f"{SCHEMA_REF}GenerationRequest"}}},
}

# A JSON string (skipped as a whole) or one bracket; what the depth check counts. A string with no
# closing quote runs to the end of the text: every character is then read by one token at most, so
# the scan is linear. (A pattern that needs the closing quote retries from every quote inside an
# unterminated string, which is quadratic: 0.5 s at 16 KiB.) Possessive quantifiers never give back.
_JSON_STRUCTURE = re.compile(r'"[^"\\]*+(?:\\.[^"\\]*+)*+(?:"|\\?\Z)|[\[\]{}]', re.DOTALL)
_LIMIT = re.compile(r"[0-9]{1,6}")

app = APIGatewayRestResolver(enable_validation=True)


def _json(status: int, body: dict[str, Any]) -> Response[dict[str, Any]]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


def _caller() -> Caller:
    """Whose request this is, as the authorizer named it; every route that touches jobs asks first."""
    return caller_of(app.current_event.raw_event.get("requestContext"))


@app.post(
    "/v1/videos/generations",
    summary="Submit a video generation",
    description="Router One's submit, plus the bridge's callback_url, webhook_events_filter and metadata.",
    operation_id="submitGeneration",
    tags=["generations"],
    responses=schema.responses(
        202,
        schema.GenerationAccepted,
        "Accepted: Router One has the job and the bridge tracks it",
        e400="A field is missing or invalid, the body is not JSON, or Router One refused the request",
        e401="No or an unknown API key; or, in pass-through mode, Router One refused X-Router-One-Key",
        e402="Router One: the account is out of balance (`insufficient_balance`)",
        e409="A request with this Idempotency-Key is still in progress (`idempotency_in_progress`)",
        e413="The body is larger than 256 KiB (`request_too_large`)",
        e415="The body is not application/json (`unsupported_media_type`)",
        e422="This Idempotency-Key was used with another body (`idempotency_key_reused`)",
    ),
    openapi_extensions={"requestBody": GENERATION_REQUEST_BODY},
)
def submit_generation(
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=MAX_IDEMPOTENCY_KEY_LENGTH,
            description="Makes a retried submit safe: the same key and body within 24 h answer the first result",
        ),
    ] = None,
) -> Response[dict[str, Any]]:
    caller = _caller()
    request = read_generation_request(app.current_event)
    # Read here, not as a route argument: Powertools logs route arguments at DEBUG.
    caller_key = caller_keys.seal(app.current_event.headers.get(caller_keys.CALLER_KEY_HEADER))
    return _json(202, submit_with_key(request, idempotency_key, caller, app.lambda_context, caller_key))


@app.get(
    "/v1/videos/generations",
    summary="List your jobs, newest first",
    description="Only the jobs submitted with this API key (an operator key: every owner's).",
    operation_id="listGenerations",
    tags=["generations"],
    responses=schema.responses(
        200,
        schema.JobPage,
        "A page of jobs",
        e400="An unknown parameter, or a bad status, limit or cursor",
    ),
)
def list_generations(
    status: Annotated[JobStatus | None, Query(description="Only jobs in this status")] = None,
    limit: Annotated[
        int | None, Query(ge=1, le=lifecycle.MAX_PAGE_SIZE, description="Page size, 20 by default")
    ] = None,
    cursor: Annotated[
        str | None, Query(max_length=MAX_CURSOR_LENGTH, description="`next_cursor` of the previous page")
    ] = None,
) -> Response[dict[str, Any]]:
    query = app.current_event.query_string_parameters or {}
    unknown = sorted(set(query) - LIST_PARAMETERS)
    if unknown:
        raise InvalidRequest(f"'{unknown[0]}' is not a known parameter", code="unknown_parameter", param=unknown[0])
    # Stricter than an integer's parsing (which takes " 5" and "+5"): digits only.
    if limit is not None and not _LIMIT.fullmatch(query.get("limit", "")):
        raise InvalidRequest("'limit' must be a whole number", param="limit")
    return _json(200, lifecycle.list_jobs(_caller(), status=status, limit=limit, cursor=cursor))


@app.post(
    "/v1/videos/generations/<task_id>/cancel",
    summary="Cancel a job",
    description="Router One has no cancel: the bridge stops tracking and publishes `canceled`.",
    operation_id="cancelGeneration",
    tags=["generations"],
    responses=schema.responses(
        200,
        schema.Job,
        "The job, now canceled",
        e404="No job of this API key with this task_id (`task_not_found`)",
        e409="The job already ended (`job_already_finished`)",
    ),
)
def cancel_generation(task_id: str) -> Response[dict[str, Any]]:
    return _json(200, lifecycle.cancel(_task_id(task_id), _caller()))


@app.get(
    "/v1/videos/generations/<task_id>",
    summary="A job's status",
    operation_id="getGeneration",
    tags=["generations"],
    responses=schema.responses(
        200, schema.Job, "The job", e404="No job of this API key with this task_id (`task_not_found`)"
    ),
)
def get_generation(task_id: str) -> Response[dict[str, Any]]:
    job = jobs.find_job(_task_id(task_id), owner_id=_caller().read_scope())
    return _json(200, jobs.public_view(job))


@app.get(
    "/v1/videos/generations/<task_id>/webhooks",
    summary="A job's webhook deliveries and their attempts",
    operation_id="listWebhookDeliveries",
    tags=["webhooks"],
    responses=schema.responses(
        200,
        schema.WebhookDeliveries,
        "The deliveries",
        e404="No job of this API key with this task_id (`task_not_found`)",
    ),
)
def list_webhook_deliveries(task_id: str) -> Response[dict[str, Any]]:
    return _json(200, dispatch.deliveries_of(_task_id(task_id), _caller()))


@app.post(
    "/v1/videos/generations/<task_id>/webhooks/<event_id>/redeliver",
    summary="Send a webhook event again, with the same webhook-id",
    operation_id="redeliverWebhook",
    tags=["webhooks"],
    responses=schema.responses(
        202,
        schema.Redelivery,
        "Queued for a new round of attempts",
        e404="No job of this API key with that task_id, or no delivery of that event (`task_not_found`, `webhook_delivery_not_found`)",
        e409="The event was already sent in 10 rounds (`redelivery_limit_reached`)",
    ),
)
def redeliver_webhook(task_id: str, event_id: str) -> Response[dict[str, Any]]:
    task_id, caller = _task_id(task_id), _caller()
    if not _storable_id(event_id):
        jobs.find_job(task_id, owner_id=caller.owner_id)  # an unknown task is still a task_not_found
        raise TaskNotFound(
            f"job '{task_id}' has no webhook delivery for that event_id",
            code="webhook_delivery_not_found",
            param="event_id",
        )
    return _json(202, dispatch.redeliver(task_id, event_id, caller))


@app.get(
    "/v1/account",
    summary="Who this API key is",
    description="The key's owner id (for SNS filter policies and EventBridge rules) and whether it is an operator.",
    operation_id="getAccount",
    tags=["account"],
    responses=schema.responses(200, schema.Account, "This key's owner"),
)
def get_account() -> Response[dict[str, Any]]:
    return _json(200, _caller().account())


@app.get("/openapi.json", include_in_schema=False)
def openapi_json() -> Response[str]:
    event = app.current_event
    # The stage (or a custom domain's base path) precedes the resource path in the URL callers used.
    full_path = event.request_context.path or event.path
    base = full_path[: -len(event.path)] if full_path.endswith(event.path) else ""
    return Response(
        status_code=200, content_type=content_types.APPLICATION_JSON, body=json.dumps(openapi_document(base or "/"))
    )


# Where one answer's ids lead: lets clients (and API fuzzers) follow a job from its submit.
_TASK_ID = {"task_id": "$response.body#/task_id"}
LINKS_FROM_SUBMIT = {
    "GetGeneration": {"operationId": "getGeneration", "parameters": _TASK_ID},
    "CancelGeneration": {"operationId": "cancelGeneration", "parameters": _TASK_ID},
    "ListWebhookDeliveries": {"operationId": "listWebhookDeliveries", "parameters": _TASK_ID},
}
LINKS_FROM_DELIVERIES = {
    "RedeliverWebhook": {
        "operationId": "redeliverWebhook",
        "parameters": _TASK_ID | {"event_id": "$response.body#/deliveries/0/event_id"},
    }
}


CALLER_KEY_PARAMETER = {
    "name": caller_keys.CALLER_KEY_HEADER,
    "in": "header",
    "required": False,
    "description": (
        "Pass-through mode (CallerRouterOneKeys=allowed): run this job on your own Router One key; "
        "it is kept KMS-encrypted until the job ends"
    ),
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": caller_keys.MAX_CALLER_KEY_LENGTH,
        "pattern": "^[!-~]+$",  # printable ASCII, no spaces
    },
}


def _link(document: dict[str, Any], path: str, method: str, status: str, links: dict[str, Any]) -> None:
    document["paths"][path][method]["responses"][status]["links"] = links


def openapi_document(server_url: str = "/") -> dict[str, Any]:
    """This API's OpenAPI 3.1 document, generated from the routes and models above."""
    # Imported here: Powertools' OpenAPI models take about 100 ms to import, and only this route needs them.
    from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer, Server

    schema = app.get_openapi_schema(
        title="Router One video bridge",
        version=API_VERSION,
        description=(
            "Router One's video generation API, with webhooks and events when a job ends. Errors are always "
            '`{"error": {"message", "type", "code"}}`.'
        ),
        servers=[Server(url=server_url)],
        security_schemes={"bearer": HTTPBearer(description="The bridge's API key (not a Router One key)")},
        security=[{"bearer": []}],
    )
    document = schema.model_dump(mode="json", by_alias=True, exclude_none=True)
    for operations in document["paths"].values():
        for operation in operations.values():
            # Powertools declares a 422 on every route; its validation errors become our 400 instead.
            if "HTTPValidationError" in json.dumps(operation["responses"].get("422", {})):
                del operation["responses"]["422"]
    _link(document, "/v1/videos/generations", "post", "202", LINKS_FROM_SUBMIT)
    # Not a route argument (see submit_generation), so declared here.
    document["paths"]["/v1/videos/generations"]["post"]["parameters"].append(CALLER_KEY_PARAMETER)
    _link(document, "/v1/videos/generations/{task_id}/webhooks", "get", "200", LINKS_FROM_DELIVERIES)
    components = document.setdefault("components", {}).setdefault("schemas", {})
    # Nothing answers Powertools' own validation shapes: its errors become the 400 envelope below.
    for unused in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        components.pop(unused, None)
    request_schema = GenerationRequest.model_json_schema(ref_template=f"{SCHEMA_REF}{{model}}")
    components.update(request_schema.pop("$defs", {}))
    components["GenerationRequest"] = request_schema
    return document


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
    return _validated(parse_json_object(text))


def _validated(body: dict[str, Any]) -> GenerationRequest:
    """`GenerationRequest.model_validate`, answering with the error it would name first.

    Pydantic reports the fields' errors (in field order) before one `extra_forbidden` per unknown key
    (in body order), and building thousands of those is most of what a body of many keys costs. So
    unknown keys are set aside first: the known fields alone give the same field errors, and if they
    pass, the answer is the first unknown key, as pydantic would have named it.
    """
    fields = GenerationRequest.model_fields
    unknown = next((key for key in body if key not in fields), None)
    if unknown is not None:
        body = {key: value for key, value in body.items() if key in fields}
    try:
        request = GenerationRequest.model_validate(body)
    except ValidationError as exc:
        raise describe_validation_errors(
            exc.errors(include_url=False, include_context=False, include_input=False)
        ) from None
    if unknown is not None:
        raise describe_validation_errors([{"type": "extra_forbidden", "loc": (unknown,)}])
    return request


def parse_json_object(text: str) -> dict[str, Any]:
    """Strict JSON that must be an object; every problem is a 400 `invalid_json`."""
    if not text.strip():
        raise _invalid_json("the request body must be a JSON object")
    if _nests_deeper_than(text, MAX_JSON_DEPTH):
        raise _invalid_json(f"the request body nests more than {MAX_JSON_DEPTH} levels deep")
    try:
        with _collector_paused():
            parsed = json.loads(
                text,
                object_pairs_hook=_unique_keys,
                parse_constant=_no_constant,
                parse_float=_finite,
                parse_int=_integer,
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


# How each token of `_JSON_STRUCTURE` moves the depth; strings (any other token) leave it as it is.
_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def _nests_deeper_than(text: str, limit: int) -> bool:
    """Whether arrays and objects nest more than `limit` levels (brackets inside strings skipped)."""
    if text.count("[") + text.count("{") <= limit:
        return False  # it cannot nest deeper than it has brackets: most bodies skip the scan
    # The depth after every token, summed in C (findall, map, accumulate, max) rather than token by
    # token in Python: 256 KiB of "[]," is 175,000 tokens, and the Python loop took 30 ms over them.
    depths = accumulate(map(_DEPTH_STEP.get, _JSON_STRUCTURE.findall(text), repeat(0)))
    return max(depths, default=0) > limit


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No garbage collection while a body is parsed. Each array and object parsed is a new container;
    enough of them start collections of the older generations too, which walk every object the
    process holds, again and again: 256 KiB of nested arrays took 45 ms to parse with the collector
    running and 9 ms without. A freshly parsed tree holds no cycles, so those passes free nothing."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


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
    if len(text) > MAX_INTEGER_DIGITS and len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
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
    location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "header")]
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
