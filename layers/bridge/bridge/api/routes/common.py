"""What every route module shares: the JSON answer, whose request it is, which path ids can exist,
and the checks of a list's query.

Path ids are opaque (Router One's task ids are passed back as they came), but an id that could never
have been stored (longer than `MAX_ID_BYTES` in UTF-8, or not encodable) is a 404 without asking
DynamoDB, which would refuse such a key with an error.
"""

from __future__ import annotations

import re
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

from bridge.errors import InvalidRequest, TaskNotFound
from bridge.tenancy import Caller, caller_of

# DynamoDB keys: 2,048 bytes for a partition key, 1,024 for a sort key (event ids are one).
MAX_ID_BYTES = 1024
# A real cursor is a few hundred characters; the bound also keeps its JSON from nesting deeply.
MAX_CURSOR_LENGTH = 1024
LIST_PARAMETERS = frozenset({"status", "limit", "cursor"})
_LIMIT = re.compile(r"[0-9]{1,6}")


def json_response(status: int, body: dict[str, Any]) -> Response[dict[str, Any]]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


def request_caller(event: APIGatewayProxyEvent) -> Caller:
    """Whose request this is, as the authorizer named it; every route that touches jobs asks first."""
    return caller_of(event.raw_event.get("requestContext"))


def storable_id(value: str) -> bool:
    try:
        return len(value.encode("utf-8")) <= MAX_ID_BYTES
    except UnicodeEncodeError:
        return False


def checked_task_id(task_id: str) -> str:
    """The path's task id, or a 404 if no job could have it."""
    if not storable_id(task_id):
        raise TaskNotFound("no video generation with that task_id")
    return task_id


def checked_endpoint_id(endpoint_id: str) -> str:
    """The path's webhook endpoint id, or the 404 an unknown endpoint gets if none could have it."""
    if not storable_id(endpoint_id):
        raise TaskNotFound("no webhook endpoint with that id", code="webhook_endpoint_not_found")
    return endpoint_id


def check_list_query(event: APIGatewayProxyEvent, limit: int | None) -> None:
    """What the resolver's own checks of a list's query let through: an unknown parameter, or a
    `limit` an integer's parsing takes (" 5", "+5") that is not digits only."""
    query = event.query_string_parameters or {}
    unknown = sorted(set(query) - LIST_PARAMETERS)
    if unknown:
        raise InvalidRequest(f"'{unknown[0]}' is not a known parameter", code="unknown_parameter", param=unknown[0])
    if limit is not None and not _LIMIT.fullmatch(query.get("limit", "")):
        raise InvalidRequest("'limit' must be a whole number", param="limit")
