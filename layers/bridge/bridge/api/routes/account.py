"""The account resource: who the API key of this request is."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from bridge.api import schema
from bridge.api.routes.common import json_response, request_caller

router = APIGatewayRouter()


@router.get(
    "/v1/account",
    summary="Who this API key is",
    description="The key's owner id (for SNS filter policies and EventBridge rules) and whether it is an operator.",
    operation_id="getAccount",
    tags=["account"],
    responses=schema.responses(200, schema.Account, "This key's owner"),
)
def get_account() -> Response[dict[str, Any]]:
    return json_response(200, request_caller(router.current_event).account())
