"""API Gateway's own answers, locally: gateway responses rendered from the translated Body as AWS
renders them, and the front's undeclared routes, payload limit and integration timeout."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge_local.api_front import MAX_PAYLOAD_BYTES, ApiFront, ApiRoute
from bridge_local.gateway_responses import (
    LAMBDA_INVOKE_LIMIT_BYTES,
    RESPONSE_TYPES,
    GatewayRefusal,
    GatewayRequest,
    GatewayResponses,
    check_invoke_size,
    missing_token_message,
    of_template,
    rest_api_bodies,
)
from bridge_local.sam import load_template, translate

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
# Values a caller sends that no answer of the gateway may carry back.
SECRET_KEY = "vb-secret-key-3e9b1f"
SECRET_HEADER = "x-secret-c0ffee"
NOT_FOUND = {
    "error": {
        "message": "no such route: check the method and the path",
        "type": "invalid_request_error",
        "code": "not_found",
    }
}
TIMED_OUT = {
    "error": {
        "message": "the bridge did not answer in time; the request may still complete, so retry a submit "
        "with the same Idempotency-Key",
        "type": "api_error",
        "code": "gateway_timeout",
    }
}


@pytest.fixture(scope="module")
def template_responses() -> GatewayResponses:
    return of_template(TEMPLATE)


# --------------------------------------------------------------------------- rendering rules


def test_without_declared_responses_aws_answers_in_its_own_words() -> None:
    answer = GatewayResponses().render("MISSING_AUTHENTICATION_TOKEN")
    assert (answer.status, json.loads(answer.body)) == (403, {"message": "Missing Authentication Token"})
    answer = GatewayResponses().render("INTEGRATION_TIMEOUT")
    assert (answer.status, json.loads(answer.body)) == (504, {"message": "Endpoint request timed out"})
    answer = GatewayResponses().render("AUTHORIZER_CONFIGURATION_ERROR")
    assert (answer.status, json.loads(answer.body)) == (500, {"message": None})


def test_an_undeclared_type_falls_back_to_default_4xx_or_5xx_with_the_quoted_message() -> None:
    responses = GatewayResponses(
        {
            "DEFAULT_4XX": {"responseTemplates": {"application/json": '{"m": $context.error.messageString}'}},
            "DEFAULT_5XX": {
                "statusCode": "502",
                "responseTemplates": {"application/json": '{"t": "$context.error.responseType"}'},
            },
        }
    )
    four = responses.render("REQUEST_TOO_LARGE")
    assert (four.status, json.loads(four.body)) == (413, {"m": "Request Too Long"})  # the type's own status
    five = responses.render("INTEGRATION_TIMEOUT")
    assert (five.status, json.loads(five.body)) == (502, {"t": "INTEGRATION_TIMEOUT"})  # the fallback's status


def test_a_declared_type_wins_over_its_fallback_and_maps_its_headers() -> None:
    responses = GatewayResponses(
        {
            "DEFAULT_4XX": {"statusCode": "400", "responseTemplates": {"application/json": '{"fallback": true}'}},
            "THROTTLED": {
                "statusCode": "429",
                "responseParameters": {
                    "gatewayresponse.header.Retry-After": "'1'",
                    "gatewayresponse.header.X-Echo": "method.request.header.X-Custom",
                },
                "responseTemplates": {
                    "application/json": '{"id": "$context.requestId", "raw": "$context.error.message"}'
                },
            },
        }
    )
    request = GatewayRequest(headers={"x-custom": "echoed"}, request_id="req-1")
    answer = responses.render("THROTTLED", request=request)
    assert answer.status == 429
    assert json.loads(answer.body) == {"id": "req-1", "raw": "Too Many Requests"}
    assert ("Retry-After", "1") in answer.headers
    assert ("X-Echo", "echoed") in answer.headers  # what AWS does with such a mapping, and why ours has none


def test_an_undeclared_route_with_an_authorization_header_names_a_hash_of_it_not_the_key() -> None:
    message = missing_token_message({"Authorization": f"Bearer {SECRET_KEY}"})
    assert message.startswith("Invalid key=value pair (missing equal-sign) in Authorization header")
    assert SECRET_KEY not in message
    assert missing_token_message({}) == "Missing Authentication Token"
    # Behind a DEFAULT_4XX that shows AWS's message, that hash would reach the caller.
    leaky = GatewayResponses(
        {"DEFAULT_4XX": {"responseTemplates": {"application/json": '{"m": $context.error.messageString}'}}}
    )
    assert "hashed with SHA-256" in json.loads(leaky.render("MISSING_AUTHENTICATION_TOKEN", message).body)["m"]


def test_an_event_lambda_would_refuse_is_request_too_large() -> None:
    check_invoke_size({"body": "a" * 1000})
    with pytest.raises(GatewayRefusal) as refused:
        check_invoke_size({"body": "a" * LAMBDA_INVOKE_LIMIT_BYTES})
    assert (refused.value.response_type, refused.value.message) == ("REQUEST_TOO_LARGE", "Request Too Long")


# --------------------------------------------------------------------------- the template's responses


def test_the_template_declares_an_envelope_for_what_would_otherwise_show_aws_wording(
    template_responses: GatewayResponses,
) -> None:
    assert {
        "MISSING_AUTHENTICATION_TOKEN",
        "RESOURCE_NOT_FOUND",
        "REQUEST_TOO_LARGE",
        "INTEGRATION_TIMEOUT",
        "DEFAULT_4XX",
        "DEFAULT_5XX",
    } <= set(template_responses.declared)


@pytest.mark.parametrize("response_type", sorted(RESPONSE_TYPES))
def test_every_gateway_answer_is_the_envelope_with_nothing_from_the_request(
    template_responses: GatewayResponses, response_type: str
) -> None:
    # The request's values, in the message too, as AWS's wording may hold them.
    headers = {"Authorization": f"Bearer {SECRET_KEY}", "X-Custom": SECRET_HEADER, "X-Api-Key": SECRET_KEY}
    request = GatewayRequest(headers=headers, query={"q": SECRET_HEADER}, request_id="req-2", stage="dev")
    answer = template_responses.render(response_type, f"{SECRET_KEY} {SECRET_HEADER}", request)

    assert 400 <= answer.status < 600
    body = json.loads(answer.body)
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "code"}, body
    assert all(isinstance(v, str) and v for v in body["error"].values())
    assert dict(answer.headers)["Content-Type"] == "application/json"
    for text in (answer.body.decode(), json.dumps(answer.headers)):
        assert SECRET_KEY not in text and SECRET_HEADER not in text


def test_the_template_deploys_one_stage_only() -> None:
    declared = (load_template(TEMPLATE).get("Parameters") or {}).items()
    defaults = {name: str(spec["Default"]) for name, spec in declared if "Default" in spec}
    template = translate(TEMPLATE, defaults, region="us-east-1", account_id="123456789012", stack_name="s").template
    resources = template["Resources"].values()
    deployments = [r["Properties"] for r in resources if r["Type"] == "AWS::ApiGateway::Deployment"]
    stages = [r["Properties"] for r in resources if r["Type"] == "AWS::ApiGateway::Stage"]
    assert len(deployments) == 1 and "StageName" not in deployments[0], deployments  # no stray "Stage"
    assert [s["StageName"] for s in stages] == [{"Ref": "Stage"}]
    assert len(rest_api_bodies(template)) == 1


# --------------------------------------------------------------------------- the front


@pytest.fixture(scope="module")
def front(template_responses: GatewayResponses) -> Iterator[tuple[ApiFront, dict[str, Any]]]:
    state: dict[str, Any] = {"calls": 0, "slow_done": threading.Event()}

    def stub(event: dict[str, Any], context: Any) -> dict[str, Any]:
        state["calls"] += 1
        if (event["pathParameters"] or {}).get("task_id") == "slow":
            time.sleep(1.5)
            state["slow_done"].set()
        return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": '{"ok": true}'}

    routes = [ApiRoute("POST", "/v1/videos/generations"), ApiRoute("GET", "/v1/videos/generations/{task_id}")]
    # A short integration timeout so the test does not wait 29 s.
    with ApiFront(stub, routes, gateway_responses=template_responses, integration_timeout_s=0.5) as api:
        yield api, state


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v2/nothing"),
        ("GET", "/"),
        ("DELETE", "/v1/videos/generations/v_1"),  # a declared path, an undeclared method
        ("GET", "/v1/videos/generations/v_1/cancel"),
        ("OPTIONS", "/v1/videos/generations"),
        ("BREW", "/v1/videos/generations"),
    ],
)
@pytest.mark.parametrize("authorization", [None, f"Bearer {SECRET_KEY}"])
def test_front_undeclared_routes_get_the_templates_missing_token_answer(
    front: tuple[ApiFront, dict[str, Any]], method: str, path: str, authorization: str | None
) -> None:
    api, state = front
    calls = state["calls"]
    headers = {"Authorization": authorization} if authorization else {}
    response = httpx.request(method, f"{api.url}{path}", headers=headers)
    assert (response.status_code, response.json()) == (404, NOT_FOUND)
    assert SECRET_KEY not in response.text
    assert state["calls"] == calls  # the integration never ran


def test_front_without_gateway_responses_answers_undeclared_routes_as_aws_does() -> None:
    with ApiFront(lambda e, c: {"statusCode": 200}, [ApiRoute("GET", "/v1/account")]) as api:
        plain = httpx.get(f"{api.url}/v1/nothing")
        keyed = httpx.post(f"{api.url}/v1/account", headers={"Authorization": f"Bearer {SECRET_KEY}"})
    assert (plain.status_code, plain.json()) == (403, {"message": "Missing Authentication Token"})
    assert keyed.status_code == 403
    assert keyed.json() == {"message": missing_token_message({"Authorization": f"Bearer {SECRET_KEY}"})}


def test_front_body_over_10_mib_is_awss_plain_text_413(front: tuple[ApiFront, dict[str, Any]]) -> None:
    api, state = front
    calls = state["calls"]
    response = httpx.post(f"{api.url}/v1/videos/generations", content=b"x" * (MAX_PAYLOAD_BYTES + 1), timeout=30)
    assert response.status_code == 413
    assert response.text == "HTTP content length exceeded 10485760 bytes."
    assert state["calls"] == calls


def test_front_slow_handler_is_a_504_after_the_integration_timeout_and_others_are_served_meanwhile(
    front: tuple[ApiFront, dict[str, Any]],
) -> None:
    api, state = front
    answers: dict[str, tuple[int, Any, float]] = {}

    def call(name: str, path: str) -> None:
        started = time.monotonic()
        response = httpx.get(f"{api.url}{path}", timeout=10)
        answers[name] = (response.status_code, response.json(), time.monotonic() - started)

    slow = threading.Thread(target=call, args=("slow", "/v1/videos/generations/slow"))
    slow.start()
    time.sleep(0.1)
    call("fast", "/v1/videos/generations/v_1")  # while the slow one is waiting
    slow.join()

    status, body, took = answers["slow"]
    assert (status, body) == (504, TIMED_OUT)
    assert 0.5 <= took < 1.4  # the timeout, not the handler's 1.5 s
    assert answers["fast"][:2] == (200, {"ok": True}) and answers["fast"][2] < 0.5
    assert not state["slow_done"].is_set()
    assert state["slow_done"].wait(5)  # the function ran on to its end, as on Lambda


def test_front_default_integration_timeout_is_29_s() -> None:
    assert ApiFront(None, []).integration_timeout_s == 29.0
