"""The OpenAPI document: generated from the routes, complete, and declaring the envelope for every error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode

from bridge.api_schema import ErrorEnvelope, Job, JobPage
from bridge.http_api import app, openapi_document
from bridge.models import GenerationRequest

ROOT = Path(__file__).resolve().parents[2]
METHODS = ("get", "post", "put", "patch", "delete")


class FakeContext:
    function_name = "api"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:api"
    aws_request_id = "req-1"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi_document()


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }


def test_the_document_has_exactly_the_templates_routes(document: dict[str, Any]) -> None:
    template, _ = decode(str(ROOT / "template.yaml"))
    events = template["Resources"]["ApiFunction"]["Properties"]["Events"].values()
    routes = {(e["Properties"]["Method"].upper(), e["Properties"]["Path"]) for e in events if e["Type"] == "Api"}
    # The document describes the API; the route that serves the document is not part of it.
    assert set(operations(document)) == routes - {("GET", "/openapi.json")}


def test_every_error_status_of_every_route_is_the_envelope(document: dict[str, Any]) -> None:
    envelope = {"$ref": "#/components/schemas/ErrorEnvelope"}
    for route, operation in operations(document).items():
        responses = operation["responses"]
        errors = {int(status) for status in responses if int(status) >= 400}
        # What the gateway or any handler can answer, whatever the route.
        assert {401, 403, 429, 500, 502, 503, 504} <= errors, route
        for status in errors:
            assert responses[str(status)]["content"] == {"application/json": {"schema": envelope}}, (route, status)
        successes = [int(status) for status in responses if int(status) < 400]
        assert len(successes) == 1 and responses[str(successes[0])]["content"]["application/json"]["schema"], route


def test_no_route_documents_a_shape_it_never_answers(document: dict[str, Any]) -> None:
    # Powertools' default 422 validation shape is replaced by the 400 envelope everywhere.
    text = json.dumps(document)
    assert "HTTPValidationError" not in text and "ValidationError" not in text


def test_the_submit_body_is_the_request_model(document: dict[str, Any]) -> None:
    submit = document["paths"]["/v1/videos/generations"]["post"]
    ref = submit["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    assert set(schema["properties"]) == set(GenerationRequest.model_fields)
    assert set(schema["required"]) == {"model", "prompt"}
    assert schema["additionalProperties"] is False
    # Every reference the document makes resolves inside it.
    for target in {part.split('"')[0] for part in json.dumps(document).split('"$ref": "#/components/schemas/')[1:]}:
        assert target in document["components"]["schemas"], target
    header = [p for p in submit["parameters"] if p["in"] == "header"]
    # Header names are case-blind; Powertools documents them in lower case.
    assert sorted(p["name"].lower() for p in header) == ["idempotency-key", "x-router-one-key"]


def test_the_list_parameters_are_documented_with_their_bounds(document: dict[str, Any]) -> None:
    parameters = {p["name"]: p for p in document["paths"]["/v1/videos/generations"]["get"]["parameters"]}
    assert set(parameters) == {"status", "limit", "cursor"}
    limit = next(s for s in parameters["limit"]["schema"]["anyOf"] if s.get("type") == "integer")
    assert (limit["minimum"], limit["maximum"]) == (1, 100)


def test_answers_are_closed_shapes() -> None:
    # additionalProperties false: an answer with a key the document does not name is a failure.
    for model in (ErrorEnvelope, Job, JobPage):
        assert model.model_json_schema()["additionalProperties"] is False


@pytest.mark.parametrize(
    ("request_path", "server"),
    [("/Prod/openapi.json", "/Prod"), ("/api/v2/openapi.json", "/api/v2"), ("/openapi.json", "/")],
)
def test_the_served_document_points_at_the_url_it_was_fetched_from(request_path: str, server: str) -> None:
    event = json.loads((ROOT / "events" / "api_status.json").read_text())
    event.update(path="/openapi.json", resource="/openapi.json", pathParameters=None)
    event["requestContext"].update(path=request_path, resourcePath="/openapi.json")
    response = app.resolve(event, FakeContext())
    assert response["statusCode"] == 200
    served = json.loads(response["body"])
    assert served["servers"] == [{"url": server}]
    assert served["paths"] == openapi_document()["paths"]
