"""The webhook endpoints resource: register, list, read, change and delete an endpoint, rotate its
keys, recover its failed deliveries, and read its delivery log across jobs.

Every call is the caller's own: another owner's endpoint is a 404 `webhook_endpoint_not_found`, as
is one that does not exist (`bridge.webhooks.endpoints`). Bodies are read as submit's is
(`bridge.api.request_body`); rotate's is optional.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from bridge.api import schema
from bridge.api.request_body import read_json_body
from bridge.api.routes.common import (
    MAX_CURSOR_LENGTH,
    check_list_query,
    checked_endpoint_id,
    json_response,
    request_caller,
)
from bridge.store import cursors as paging
from bridge.webhooks import endpoints
from bridge.webhooks.endpoints import EndpointCreate, EndpointUpdate, KeyRotation, RecoveryRequest

PATH = "/v1/webhook-endpoints"
TAGS = ["webhook-endpoints"]
# The statuses a delivery can have (`bridge.store.deliveries.DeliveryStatus`); the domain checks them too.
DeliveryStatusName = Literal["pending", "retrying", "delivered", "gone", "dead_lettered", "stopped"]

# The bodies' models are in the document's components under these names (`bridge.api.openapi`).
CREATE_BODY = schema.request_body("WebhookEndpointCreate")
UPDATE_BODY = schema.request_body("WebhookEndpointUpdate")
ROTATE_BODY = schema.request_body("WebhookEndpointKeyRotation", required=False)
RECOVER_BODY = schema.request_body("WebhookEndpointRecoveryRequest")

_NOT_FOUND = "No webhook endpoint of this API key with this id (`webhook_endpoint_not_found`)"
_BAD_BODY = "A field is missing or invalid, or the body is not a JSON object"
_TOO_LARGE = "The body is larger than 256 KiB (`request_too_large`)"
_NOT_JSON = "The body is not application/json (`unsupported_media_type`)"

router = APIGatewayRouter()


@router.post(
    PATH,
    summary="Register a webhook endpoint",
    description="It gets the chosen events of every job of this API key, signed with its own keys. "
    "The answer holds the signing secret, which no later answer shows.",
    operation_id="createWebhookEndpoint",
    tags=TAGS,
    responses=schema.responses(
        201,
        schema.WebhookEndpointWithSecret,
        "The endpoint, with its signing secret",
        e400=f"{_BAD_BODY}; or the url is not a public https URL (`invalid_endpoint_url`)",
        e409="This API key has registered the most endpoints it may (`endpoint_limit_reached`)",
        e413=_TOO_LARGE,
        e415=_NOT_JSON,
    ),
    openapi_extensions={"requestBody": CREATE_BODY},
)
def create_webhook_endpoint() -> Response[dict[str, Any]]:
    event = router.current_event
    return json_response(201, endpoints.create(request_caller(event), read_json_body(event, EndpointCreate)))


@router.get(
    PATH,
    summary="List your webhook endpoints",
    operation_id="listWebhookEndpoints",
    tags=TAGS,
    responses=schema.responses(200, schema.WebhookEndpointList, "Every endpoint of this API key"),
)
def list_webhook_endpoints() -> Response[dict[str, Any]]:
    return json_response(200, endpoints.list_endpoints(request_caller(router.current_event)))


@router.get(
    f"{PATH}/<endpoint_id>",
    summary="A webhook endpoint",
    operation_id="getWebhookEndpoint",
    tags=TAGS,
    responses=schema.responses(200, schema.WebhookEndpoint, "The endpoint", e404=_NOT_FOUND),
)
def get_webhook_endpoint(endpoint_id: str) -> Response[dict[str, Any]]:
    return json_response(200, endpoints.get(request_caller(router.current_event), checked_endpoint_id(endpoint_id)))


@router.patch(
    f"{PATH}/<endpoint_id>",
    summary="Change a webhook endpoint",
    description="Only the fields given change. `enabled: true` re-enables a disabled endpoint and starts "
    "its health afresh; `enabled: false` disables it (its pending deliveries stop).",
    operation_id="updateWebhookEndpoint",
    tags=TAGS,
    responses=schema.responses(
        200,
        schema.WebhookEndpoint,
        "The endpoint, changed",
        e400=f"{_BAD_BODY}; or the url is not a public https URL (`invalid_endpoint_url`)",
        e404=_NOT_FOUND,
        e413=_TOO_LARGE,
        e415=_NOT_JSON,
    ),
    openapi_extensions={"requestBody": UPDATE_BODY},
)
def update_webhook_endpoint(endpoint_id: str) -> Response[dict[str, Any]]:
    event = router.current_event
    request = read_json_body(event, EndpointUpdate)
    return json_response(200, endpoints.update(request_caller(event), checked_endpoint_id(endpoint_id), request))


@router.delete(
    f"{PATH}/<endpoint_id>",
    summary="Delete a webhook endpoint",
    description="Its deliveries not yet through stop; its delivery log stays until the rows expire.",
    operation_id="deleteWebhookEndpoint",
    tags=TAGS,
    responses=schema.responses(200, schema.WebhookEndpointDeleted, "Deleted", e404=_NOT_FOUND),
)
def delete_webhook_endpoint(endpoint_id: str) -> Response[dict[str, Any]]:
    return json_response(200, endpoints.delete(request_caller(router.current_event), checked_endpoint_id(endpoint_id)))


@router.post(
    f"{PATH}/<endpoint_id>/rotate",
    summary="Rotate a webhook endpoint's signing keys",
    description="New keys sign at once; the previous ones keep signing beside them for `overlap_seconds` "
    "(24 h by default), so receivers can switch without missing a delivery. The body is optional.",
    operation_id="rotateWebhookEndpointKeys",
    tags=TAGS,
    responses=schema.responses(
        200,
        schema.WebhookEndpointWithSecret,
        "The endpoint with its new public keys and signing secret",
        e400=_BAD_BODY,
        e404=_NOT_FOUND,
        e409="Another rotation of this endpoint won the race; read it and retry (`rotation_conflict`)",
        e413=_TOO_LARGE,
        e415=_NOT_JSON,
    ),
    openapi_extensions={"requestBody": ROTATE_BODY},
)
def rotate_webhook_endpoint_keys(endpoint_id: str) -> Response[dict[str, Any]]:
    event = router.current_event
    request = read_json_body(event, KeyRotation, optional=True)
    return json_response(200, endpoints.rotate_keys(request_caller(event), checked_endpoint_id(endpoint_id), request))


@router.post(
    f"{PATH}/<endpoint_id>/recover",
    summary="Send again every delivery to a webhook endpoint that failed since a time",
    description="Gone, dead-lettered and stopped deliveries since `since` (at most 14 days ago) each start "
    "a new round, at a bounded rate. The endpoint must be enabled.",
    operation_id="recoverWebhookEndpoint",
    tags=TAGS,
    responses=schema.responses(
        202,
        schema.WebhookEndpointRecovery,
        "Queued",
        e400=f"{_BAD_BODY}; or `since` is older than the deliveries kept",
        e404=_NOT_FOUND,
        e409="The endpoint is disabled: enable it first (`endpoint_disabled`)",
        e413=_TOO_LARGE,
        e415=_NOT_JSON,
    ),
    openapi_extensions={"requestBody": RECOVER_BODY},
)
def recover_webhook_endpoint(endpoint_id: str) -> Response[dict[str, Any]]:
    event = router.current_event
    request = read_json_body(event, RecoveryRequest)
    return json_response(202, endpoints.recover(request_caller(event), checked_endpoint_id(endpoint_id), request))


@router.get(
    f"{PATH}/<endpoint_id>/deliveries",
    summary="A webhook endpoint's deliveries, from every job, newest first",
    operation_id="listWebhookEndpointDeliveries",
    tags=TAGS,
    responses=schema.responses(
        200,
        schema.WebhookEndpointDeliveries,
        "A page of deliveries",
        e400="An unknown parameter, or a bad status, limit or cursor",
        e404=_NOT_FOUND,
    ),
)
def list_webhook_endpoint_deliveries(
    endpoint_id: str,
    status: Annotated[DeliveryStatusName | None, Query(description="Only deliveries in this status")] = None,
    limit: Annotated[
        int | None,
        Query(
            ge=1,
            le=paging.MAX_PAGE_SIZE,
            description=f"Page size, {paging.DEFAULT_PAGE_SIZE} by default",
        ),
    ] = None,
    cursor: Annotated[
        str | None, Query(max_length=MAX_CURSOR_LENGTH, description="`next_cursor` of the previous page")
    ] = None,
) -> Response[dict[str, Any]]:
    check_list_query(router.current_event, limit)
    caller, endpoint_id = request_caller(router.current_event), checked_endpoint_id(endpoint_id)
    return json_response(200, endpoints.list_deliveries(caller, endpoint_id, status=status, limit=limit, cursor=cursor))
