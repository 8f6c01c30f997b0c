"""The webhook endpoints' HTTP routes: bodies read as strictly as submit's (the same reader, for any
model), every refusal in the envelope with a 4xx the document declares, odd and unknown ids a 404,
and the answers of a real run (on an emulated account) in the shapes the document states."""

from __future__ import annotations

import base64
import functools
import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict

from bridge.api import schema
from bridge.api.http_api import app, openapi_document
from bridge.api.request_body import MAX_BODY_BYTES, MAX_JSON_DEPTH, read_generation_request, read_json_body
from bridge.api.routes import endpoints as endpoint_routes
from bridge.api.routes.common import checked_endpoint_id
from bridge.errors import BridgeError
from bridge.models import GenerationRequest
from bridge.store import endpoints as endpoint_store
from bridge.store.deliveries import DeliveryStatus
from bridge.webhooks.dispatch import public_delivery
from bridge.webhooks.endpoint_keys import DEFAULT_OVERLAP_S, MAX_OVERLAP_S
from bridge.webhooks.endpoints import EndpointUpdate, KeyRotation
from bridge_local.emulator import EmbeddedAws
from bridge_local.local_stack import forget_cached_clients
from bridge_local.testing import create_table_like, environ_restored

EVENTS = Path(__file__).resolve().parents[2] / "events"
ENDPOINTS = "/v1/webhook-endpoints"
UNKNOWN_ID = "ep_" + "0" * 32
LONG_ID = "ep_" + "f" * 5000
# Valid bodies of each route that reads one; the id routes' answers then depend on the id alone.
VALID_BODIES = {
    "create": {"url": "https://hooks.example.com/video"},
    "update": {"description": "orders"},
    "rotate": {"overlap_seconds": 60},
    "recover": {"since": "2026-11-30T12:00:00Z"},
}


class FakeContext:
    function_name = "api"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:api"
    aws_request_id = "test-request"


def api_event(
    method: str,
    path: str,
    raw: str | None = None,
    *,
    content_type: str | None = "application/json",
    query: dict[str, str] | None = None,
    base64_encoded: bool = False,
) -> dict[str, Any]:
    """An API Gateway proxy event of this request, from the caller in events/api_status.json."""
    event = json.loads((EVENTS / "api_status.json").read_text())
    event.update(httpMethod=method, path=path, resource=path, pathParameters=None, body=raw)
    event["isBase64Encoded"] = base64_encoded
    event["queryStringParameters"] = query
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} if query else None
    event["requestContext"].update(httpMethod=method, path=f"/dev{path}", resourcePath=path)
    if content_type is not None:
        event["headers"]["Content-Type"] = content_type
        event["multiValueHeaders"]["Content-Type"] = [content_type]
    return event


def call(method: str, path: str, body: Any = None, **options: Any) -> tuple[int, dict[str, Any]]:
    raw = body if isinstance(body, str) or body is None else json.dumps(body)
    response = app.resolve(api_event(method, path, raw, **options), FakeContext())
    return response["statusCode"], json.loads(response["body"])


@functools.cache
def documented_statuses() -> dict[tuple[str, str], set[int]]:
    return {
        (method.upper(), path): {int(status) for status in operation["responses"]}
        for path, item in openapi_document()["paths"].items()
        for method, operation in item.items()
    }


def refusal(status: int, body: dict[str, Any], expected: int, code: str, *, route: tuple[str, str]) -> dict[str, Any]:
    """The error of an envelope answer with the expected status, which the route's document declares."""
    assert status == expected, body
    schema.ErrorEnvelope.model_validate(body)
    assert body["error"]["code"] == code, body
    assert expected in documented_statuses()[route], (route, expected)
    return body["error"]


@pytest.fixture(autouse=True)
def empty_store(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """No endpoint exists, and the store refuses keys DynamoDB would refuse (sort keys over 1,024 bytes)."""
    asked: list[str] = []

    def get_endpoint(owner_id: str, endpoint_id: str) -> None:
        asked.append(endpoint_id)
        if len(endpoint_id.encode("utf-8", "surrogatepass")) > 1024:
            error = {"Code": "ValidationException", "Message": "Aggregated size of all range keys has exceeded"}
            raise ClientError({"Error": error}, "GetItem")
        return None

    monkeypatch.setattr(endpoint_store, "get_endpoint", get_endpoint)
    return asked


# --------------------------------------------------------------------------- the body reader, for any model


class Sample(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int
    when: datetime | None = None
    flag: bool = False


def proxy_event(raw: str | None, content_type: str | None = "application/json", **options: Any) -> APIGatewayProxyEvent:
    return APIGatewayProxyEvent(api_event("POST", ENDPOINTS, raw, content_type=content_type, **options))


def read_error(raw: str | None, model: type[BaseModel] = Sample, **options: Any) -> BridgeError:
    with pytest.raises(BridgeError) as refused:
        read_json_body(proxy_event(raw, **options), model)
    return refused.value


@pytest.mark.parametrize(
    ("raw", "options", "status", "code"),
    [
        ("[" * (MAX_BODY_BYTES + 1), {}, 413, "request_too_large"),
        ('{"count": 1}', {"content_type": "text/plain"}, 415, "unsupported_media_type"),
        ('{"count": 1}', {"content_type": "application/json; charset=latin-1"}, 415, "unsupported_media_type"),
        (base64.b64encode(b'{"count": "\xff"}').decode(), {"base64_encoded": True}, 400, "invalid_json"),
        ('{"count": 1, "count": 2}', {}, 400, "invalid_json"),
        ('{"count": NaN}', {}, 400, "invalid_json"),
        ('{"count": 1, "x": ' + "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1) + "}", {}, 400, "invalid_json"),
        ("[1]", {}, 400, "invalid_json"),
        ("", {}, 400, "invalid_json"),
        (None, {}, 400, "invalid_json"),
    ],
)
def test_any_model_gets_the_submit_bodys_checks(
    raw: str | None, options: dict[str, Any], status: int, code: str
) -> None:
    refused = read_error(raw, **options)
    assert (refused.status, refused.code) == (status, code)


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({}, "missing_required_parameter", "count"),
        ({"count": 1, "colour": "red"}, "unknown_parameter", "colour"),
        # JSON's types as JSON has them: no number in a string, no 0 for false, no number for a time.
        ({"count": "5"}, "invalid_parameter", "count"),
        ({"count": 5.5}, "invalid_parameter", "count"),
        ({"count": 1, "flag": 0}, "invalid_parameter", "flag"),
        ({"count": 1, "flag": "yes"}, "invalid_parameter", "flag"),
        ({"count": 1, "when": 1764504000}, "invalid_parameter", "when"),
    ],
)
def test_any_model_is_validated_strictly_naming_the_field(body: dict[str, Any], code: str, param: str) -> None:
    refused = read_error(json.dumps(body))
    assert (refused.status, refused.code, refused.param) == (400, code, param)
    assert param in refused.message


def test_json_types_are_read_as_json_means_them() -> None:
    body = '{"count": 3, "when": "2026-11-30T12:00:00Z", "flag": true}'
    read = read_json_body(proxy_event(body), Sample)
    assert read == Sample(count=3, when=datetime(2026, 11, 30, 12, tzinfo=UTC), flag=True)
    update = read_json_body(proxy_event('{"event_types": ["failed"], "enabled": false}'), EndpointUpdate)
    assert update.event_types == ["failed"] and update.enabled is False


def test_an_unpaired_surrogate_is_a_400_not_a_failure() -> None:
    refused = read_error('{"description": "\\ud800"}', EndpointUpdate)
    assert (refused.status, refused.code) == (400, "invalid_json")


@pytest.mark.parametrize("raw", [None, ""])
def test_an_optional_body_left_out_means_the_defaults(raw: str | None) -> None:
    # Not even a Content-Type is needed when there is nothing to read.
    event = proxy_event(raw, content_type=None)
    assert read_json_body(event, KeyRotation, optional=True).overlap_seconds == DEFAULT_OVERLAP_S
    with pytest.raises(BridgeError):
        read_json_body(event, KeyRotation)


def test_an_optional_body_that_is_there_is_read_like_any_other() -> None:
    assert read_json_body(proxy_event('{"overlap_seconds": 60}'), KeyRotation, optional=True).overlap_seconds == 60
    for raw in ("  ", "[]", '{"overlap_seconds": -1}'):
        with pytest.raises(BridgeError) as refused:
            read_json_body(proxy_event(raw), KeyRotation, optional=True)
        assert refused.value.status == 400, raw
    with pytest.raises(BridgeError) as refused:
        read_json_body(proxy_event("{}", content_type="text/plain"), KeyRotation, optional=True)
    assert refused.value.status == 415


def test_the_submit_body_is_still_read_through_the_same_reader() -> None:
    request = read_generation_request(proxy_event('{"model": "video-default", "prompt": "a fox", "duration": 5.0}'))
    assert isinstance(request, GenerationRequest) and request.duration == 5
    with pytest.raises(BridgeError) as refused:
        read_generation_request(proxy_event('{"model": "video-default", "prompt": "\\ud800"}'))
    assert refused.value.param == "prompt"  # its own validators still name the field


# --------------------------------------------------------------------------- the routes' refusals

ID_ROUTES = [
    ("GET", "", None),
    ("PATCH", "", VALID_BODIES["update"]),
    ("DELETE", "", None),
    ("POST", "/rotate", VALID_BODIES["rotate"]),
    ("POST", "/rotate", None),
    ("POST", "/recover", VALID_BODIES["recover"]),
    ("GET", "/deliveries", None),
]
BODY_ROUTES = [
    ("POST", ENDPOINTS, ENDPOINTS),
    ("PATCH", f"{ENDPOINTS}/{UNKNOWN_ID}", f"{ENDPOINTS}/{{endpoint_id}}"),
    ("POST", f"{ENDPOINTS}/{UNKNOWN_ID}/rotate", f"{ENDPOINTS}/{{endpoint_id}}/rotate"),
    ("POST", f"{ENDPOINTS}/{UNKNOWN_ID}/recover", f"{ENDPOINTS}/{{endpoint_id}}/recover"),
]


@pytest.mark.parametrize(("method", "suffix", "body"), ID_ROUTES)
@pytest.mark.parametrize("endpoint_id", [UNKNOWN_ID, "unknown", LONG_ID, "é" * 600])
def test_unknown_and_impossible_ids_are_a_404(
    method: str, suffix: str, body: Any, endpoint_id: str, empty_store: list[str]
) -> None:
    status, answer = call(method, f"{ENDPOINTS}/{endpoint_id}{suffix}", body)
    refusal(status, answer, 404, "webhook_endpoint_not_found", route=(method, f"{ENDPOINTS}/{{endpoint_id}}{suffix}"))
    # An id no row could have never reaches the store (DynamoDB would refuse the key with an error).
    assert LONG_ID not in empty_store and "é" * 600 not in empty_store


def test_an_id_no_route_matches_or_no_key_could_hold_is_a_404_too() -> None:
    status, answer = call("GET", f"{ENDPOINTS}/ep_\udcff")  # the resolver's own 404: no route takes it
    assert status == 404 and schema.ErrorEnvelope.model_validate(answer)
    with pytest.raises(BridgeError) as refused:
        checked_endpoint_id("ep_\udcff")
    assert (refused.value.status, refused.value.code) == (404, "webhook_endpoint_not_found")


@pytest.mark.parametrize(
    ("route", "body", "code", "param"),
    [
        (0, {"url": 5}, "invalid_parameter", "url"),
        (0, {"url": "https://hooks.example.com", "event_types": ["finished"]}, "invalid_parameter", "event_types.0"),
        (0, {"url": "https://hooks.example.com", "event_types": []}, "invalid_parameter", "event_types"),
        (
            0,
            {"url": "https://hooks.example.com", "signature_versions": ["v2"]},
            "invalid_parameter",
            "signature_versions.0",
        ),
        (0, {"url": "https://hooks.example.com", "description": "x" * 513}, "invalid_parameter", "description"),
        (0, {"url": "https://hooks.example.com", "secret": "whsec_mine"}, "unknown_parameter", "secret"),
        (0, {}, "missing_required_parameter", "url"),
        (1, {"enabled": "yes"}, "invalid_parameter", "enabled"),
        (1, {"enabled": 1}, "invalid_parameter", "enabled"),
        (1, {"id": "ep_other"}, "unknown_parameter", "id"),
        (2, {"overlap_seconds": "60"}, "invalid_parameter", "overlap_seconds"),
        (2, {"overlap_seconds": MAX_OVERLAP_S + 1}, "invalid_parameter", "overlap_seconds"),
        (3, {}, "missing_required_parameter", "since"),
        (3, {"since": 1764504000}, "invalid_parameter", "since"),
        (3, {"since": "yesterday"}, "invalid_parameter", "since"),
    ],
)
def test_a_bad_body_is_a_400_naming_the_field(route: int, body: dict[str, Any], code: str, param: str) -> None:
    method, path, template = BODY_ROUTES[route]
    error = refusal(*call(method, path, body), 400, code, route=(method, template))
    assert error["param"] == param and param.split(".")[0] in error["message"]


@pytest.mark.parametrize(("method", "path", "template"), BODY_ROUTES)
def test_body_routes_refuse_what_submit_refuses(method: str, path: str, template: str) -> None:
    route = (method, template)
    refusal(*call(method, path, " " * (MAX_BODY_BYTES + 1)), 413, "request_too_large", route=route)
    refusal(*call(method, path, "{}", content_type="text/plain"), 415, "unsupported_media_type", route=route)
    refusal(*call(method, path, '{"url": 1, "url": 2}'), 400, "invalid_json", route=route)
    refusal(*call(method, path, "[]"), 400, "invalid_json", route=route)
    refusal(*call(method, path, "{" * 40 + "}" * 40), 400, "invalid_json", route=route)


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ({"page": "2"}, "page"),
        ({"limit": "+5"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"status": "failed"}, "status"),
        ({"cursor": "c" * 1025}, "cursor"),
    ],
)
def test_a_bad_delivery_list_query_is_a_400_naming_the_parameter(query: dict[str, str], param: str) -> None:
    route = ("GET", f"{ENDPOINTS}/{{endpoint_id}}/deliveries")
    status, answer = call("GET", f"{ENDPOINTS}/{UNKNOWN_ID}/deliveries", query=query)
    assert refusal(status, answer, 400, answer["error"]["code"], route=route)["param"] == param


def test_the_documented_delivery_statuses_are_the_stores() -> None:
    documented = set(endpoint_routes.DeliveryStatusName.__args__)
    assert documented == {DeliveryStatus.PENDING, DeliveryStatus.RETRYING} | DeliveryStatus.FINAL


def test_the_route_bodies_are_the_domains_models() -> None:
    document = openapi_document()
    components = document["components"]["schemas"]
    for (method, path), model in {
        ("post", ENDPOINTS): "WebhookEndpointCreate",
        ("patch", f"{ENDPOINTS}/{{endpoint_id}}"): "WebhookEndpointUpdate",
        ("post", f"{ENDPOINTS}/{{endpoint_id}}/rotate"): "WebhookEndpointKeyRotation",
        ("post", f"{ENDPOINTS}/{{endpoint_id}}/recover"): "WebhookEndpointRecoveryRequest",
    }.items():
        body = document["paths"][path][method]["requestBody"]
        assert body["content"]["application/json"]["schema"]["$ref"] == schema.SCHEMA_REF + model
        assert body["required"] is (model != "WebhookEndpointKeyRotation")
        assert components[model]["additionalProperties"] is False
        assert document["paths"][path][method]["tags"] == ["webhook-endpoints"]
    assert components["WebhookEndpointRecoveryRequest"]["required"] == ["since"]


# --------------------------------------------------------------------------- delivery rows, as documented


def delivery_row(**fields: Any) -> dict[str, Any]:
    return {
        "task_id": "v_" + "1" * 32,
        "event_id": "evt_" + "a" * 32,
        "event_type": "video.generation.completed",
        "status": "delivered",
        "round": 1,
        "attempt_count": 1,
        "created_at": "2026-11-30T12:00:00.000Z",
        "updated_at": "2026-11-30T12:00:01.000Z",
        "attempts": [{"round": 1, "attempt": 1, "status_code": 200}],
    } | fields


def test_a_delivery_row_is_shown_as_the_document_says() -> None:
    to_callback = public_delivery(delivery_row())
    schema.WebhookDelivery.model_validate(to_callback)
    assert to_callback["destination"] == {"type": "callback_url"}
    stopped = delivery_row(
        event_id="evt_" + "a" * 32 + "_" + UNKNOWN_ID,
        endpoint_id=UNKNOWN_ID,
        status="stopped",
        stopped_reason="endpoint_deleted",
    )
    schema.WebhookDelivery.model_validate(public_delivery(stopped))
    summary = public_delivery(stopped, with_attempts=False)
    schema.WebhookDeliverySummary.model_validate(summary)
    assert summary["destination"] == {"type": "endpoint", "endpoint_id": UNKNOWN_ID}
    # A log row is the summary plus its attempts: the endpoint's list states no attempts.
    with pytest.raises(ValueError):
        schema.WebhookDeliverySummary.model_validate(public_delivery(stopped))


# --------------------------------------------------------------------------- a real run


@pytest.fixture(scope="module")
def aws() -> Iterator[EmbeddedAws]:
    with environ_restored(), EmbeddedAws() as embedded:
        suffix = uuid.uuid4().hex[:8]
        dynamodb = embedded.client("dynamodb")
        for logical_id, name in (("WebhookDeliveriesTable", "deliveries"), ("WebhookEndpointsTable", "endpoints")):
            create_table_like(dynamodb, logical_id, f"{name}-{suffix}")
        os.environ.update(
            WEBHOOK_DELIVERIES_TABLE_NAME=f"deliveries-{suffix}",
            WEBHOOK_ENDPOINTS_TABLE_NAME=f"endpoints-{suffix}",
            WEBHOOK_QUEUE_URL=embedded.client("sqs").create_queue(QueueName=f"hooks-{suffix}")["QueueUrl"],
            WEBHOOK_ENDPOINT_KEY_ID=embedded.client("kms").create_key()["KeyMetadata"]["KeyId"],
            WEBHOOK_ALLOW_LOOPBACK="true",
        )
        forget_cached_clients()
        yield embedded
    forget_cached_clients()


def test_a_whole_endpoint_life_over_the_routes_in_the_documented_shapes(
    aws: EmbeddedAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.undo()  # the real store, on the emulated account
    created_status, created = call("POST", ENDPOINTS, {"url": "http://127.0.0.1:9/hook", "event_types": ["failed"]})
    assert created_status == 201, created
    schema.WebhookEndpointWithSecret.model_validate(created)
    one = f"{ENDPOINTS}/{created['id']}"

    answers = {
        "get": (call("GET", one), schema.WebhookEndpoint),
        "list": (call("GET", ENDPOINTS), schema.WebhookEndpointList),
        "update": (call("PATCH", one, {"enabled": False, "description": "orders"}), schema.WebhookEndpoint),
        "rotate": (call("POST", one + "/rotate"), schema.WebhookEndpointWithSecret),
        "deliveries": (call("GET", one + "/deliveries", query={"limit": "5"}), schema.WebhookEndpointDeliveries),
    }
    for name, ((status, answer), model) in answers.items():
        assert status == 200, (name, answer)
        model.model_validate(answer)
    assert "secret" not in answers["get"][0][1] and answers["rotate"][0][1]["secret"] != created["secret"]
    assert [e["id"] for e in answers["list"][0][1]["data"]] == [created["id"]]
    assert answers["update"][0][1]["disabled_reason"] == "disabled_by_owner"

    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    refusal(
        *call("POST", one + "/recover", {"since": since}),
        409,
        "endpoint_disabled",
        route=("POST", f"{ENDPOINTS}/{{endpoint_id}}/recover"),
    )
    assert call("PATCH", one, {"enabled": True})[0] == 200
    status, recovery = call("POST", one + "/recover", {"since": since})
    assert status == 202, recovery
    schema.WebhookEndpointRecovery.model_validate(recovery)

    status, deleted = call("DELETE", one)
    assert status == 200 and schema.WebhookEndpointDeleted.model_validate(deleted).deleted
    refusal(*call("GET", one), 404, "webhook_endpoint_not_found", route=("GET", f"{ENDPOINTS}/{{endpoint_id}}"))
