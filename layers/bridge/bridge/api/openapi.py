"""The API's OpenAPI 3.1 document, built from the resolver's routes and the answer models.

Imported only when the document is asked for: Powertools' OpenAPI models take about 100 ms to
import, and no other request needs them.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer, Server
from pydantic import BaseModel

from bridge.api.schema import SCHEMA_REF
from bridge.models import GenerationRequest
from bridge.upstream import caller_keys
from bridge.webhooks.endpoints import EndpointCreate, EndpointUpdate, KeyRotation, RecoveryRequest

API_VERSION = "1.0.0"

# The request bodies the routes read themselves (`bridge.api.request_body`), by their name in the
# document's components: the routes' `schema.request_body(name)` refer to these.
REQUEST_MODELS: dict[str, type[BaseModel]] = {
    "GenerationRequest": GenerationRequest,
    "WebhookEndpointCreate": EndpointCreate,
    "WebhookEndpointUpdate": EndpointUpdate,
    "WebhookEndpointKeyRotation": KeyRotation,
    "WebhookEndpointRecoveryRequest": RecoveryRequest,
}

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


def build_document(resolver: APIGatewayRestResolver, server_url: str) -> dict[str, Any]:
    """The document of every route `resolver` has, served from `server_url`."""
    schema = resolver.get_openapi_schema(
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
    # Nothing answers Powertools' own validation shapes: its errors become the 400 envelope instead.
    for unused in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        components.pop(unused, None)
    for name, model in REQUEST_MODELS.items():
        request_schema = model.model_json_schema(ref_template=f"{SCHEMA_REF}{{model}}")
        components.update(request_schema.pop("$defs", {}))
        components[name] = request_schema | {"title": name}
    return document
