"""What every route module shares: the JSON answer, whose request it is, and which path ids can exist.

Path ids are opaque (Router One's task ids are passed back as they came), but an id that could never
have been stored (longer than `MAX_ID_BYTES` in UTF-8, or not encodable) is a 404 without asking
DynamoDB, which would refuse such a key with an error.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

from bridge.errors import TaskNotFound
from bridge.tenancy import Caller, caller_of

# DynamoDB keys: 2,048 bytes for a partition key, 1,024 for a sort key (event ids are one).
MAX_ID_BYTES = 1024


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
