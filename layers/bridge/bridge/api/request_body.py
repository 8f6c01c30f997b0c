"""Request bodies: read, checked and parsed before their pydantic model sees them.

Every route that takes a body (submit, and the webhook endpoints' create, update, rotate and
recover) reads it here with `read_json_body(event, Model)`, not through Powertools' body
validation: that parses the body before any middleware runs, and its JSON parser takes NaN, keeps
the last of duplicate keys and recurses on deep nesting. Routes without a body ignore one. In order:

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
5. The body must be an object, then the route's model decides, and a 400 names the field. A model
   strict on its own (`GenerationRequest`, whose validators name the field for every refusal)
   validates the parsed object; any other is validated as JSON in pydantic's strict mode, so that
   JSON's types are taken as JSON has them: an ISO 8601 string is a date-time and a string an enum
   value, but "5" is no integer, 0 no boolean and a number no date-time.

A route whose body is optional (rotate) passes `optional=True`: no body at all means the model's
defaults; a body that is there is read like any other.

Every problem is a `BridgeError` with Router One's envelope; `describe_validation_errors` names the
field at fault, for these checks and for the resolver's own parameter validation alike.
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
from typing import Any, TypeVar

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from pydantic import BaseModel, ValidationError

from bridge.errors import BridgeError, InvalidRequest
from bridge.models import GenerationRequest

MAX_BODY_BYTES = 256 * 1024
MAX_JSON_DEPTH = 32
MAX_INTEGER_DIGITS = 100

# A JSON string (skipped as a whole) or one bracket; what the depth check counts. A string with no
# closing quote runs to the end of the text: every character is then read by one token at most, so
# the scan is linear. (A pattern that needs the closing quote retries from every quote inside an
# unterminated string, which is quadratic: 0.5 s at 16 KiB.) Possessive quantifiers never give back.
_JSON_STRUCTURE = re.compile(r'"[^"\\]*+(?:\\.[^"\\]*+)*+(?:"|\\?\Z)|[\[\]{}]', re.DOTALL)


ModelT = TypeVar("ModelT", bound=BaseModel)


def read_generation_request(event: APIGatewayProxyEvent) -> GenerationRequest:
    """The submit body, checked in the order the module docstring gives; raises BridgeError."""
    return read_json_body(event, GenerationRequest)


def read_json_body(event: APIGatewayProxyEvent, model: type[ModelT], *, optional: bool = False) -> ModelT:
    """The request's body as `model`, checked in the order the module docstring gives; raises BridgeError.

    With `optional`, a request without a body (or with an empty one) gets the model's defaults.
    """
    raw = _body_bytes(event)
    if optional and not raw:
        return _validated({}, model)
    _check_content_type(event.headers.get("Content-Type"))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _invalid_json("the request body is not valid UTF-8") from None
    return _validated(parse_json_object(text), model)


def _validated(body: dict[str, Any], model: type[Any] = GenerationRequest) -> Any:
    """`model`'s validation of the body, answering with the error it would name first.

    Pydantic reports the fields' errors (in field order) before one `extra_forbidden` per unknown key
    (in body order), and building thousands of those is most of what a body of many keys costs. So
    unknown keys are set aside first: the known fields alone give the same field errors, and if they
    pass, the answer is the first unknown key, as pydantic would have named it.
    """
    fields = model.model_fields
    unknown = next((key for key in body if key not in fields), None)
    if unknown is not None:
        body = {key: value for key, value in body.items() if key in fields}
    try:
        request = _validate(model, body)
    except ValidationError as exc:
        raise describe_validation_errors(
            exc.errors(include_url=False, include_context=False, include_input=False)
        ) from None
    if unknown is not None:
        raise describe_validation_errors([{"type": "extra_forbidden", "loc": (unknown,)}])
    return request


def _validate(model: type[ModelT], body: dict[str, Any]) -> ModelT:
    """The parsed body as `model`: as it is for a strict model, else as JSON in strict mode (see above)."""
    if model.model_config.get("strict"):
        return model.model_validate(body)
    try:
        return model.model_validate_json(json.dumps(body), strict=True)
    except ValidationError as exc:
        # The body parsed already, so the only JSON pydantic refuses is a string holding an unpaired
        # surrogate (JSON's "\ud800" escape), which no UTF-8 text can carry.
        if any(error["type"] == "json_invalid" for error in exc.errors(include_url=False)):
            raise _invalid_json("the request body holds a string that is not valid Unicode") from None
        raise


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
