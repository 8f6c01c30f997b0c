"""What API Gateway answers itself, through the local stack's front and the template's gateway
responses: undeclared routes and methods, the payload limits, the integration timeout."""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

import httpx
import pytest

from bridge_local.api_front import MAX_PAYLOAD_BYTES, ApiFront
from bridge_local.gateway_responses import of_stack

from .conftest import API_KEYS, BRIDGE_API_KEY, LocalBridge

pytestmark = pytest.mark.integration

NOT_FOUND = {
    "error": {
        "message": "no such route: check the method and the path",
        "type": "invalid_request_error",
        "code": "not_found",
    }
}
TOO_LARGE = {
    "error": {"message": "the request is too large", "type": "invalid_request_error", "code": "request_too_large"}
}
TIMED_OUT = {
    "error": {
        "message": "the bridge did not answer in time; the request may still complete, so retry a submit "
        "with the same Idempotency-Key",
        "type": "api_error",
        "code": "gateway_timeout",
    }
}
NO_KEY = {
    "error": {
        "message": "missing or malformed Authorization: Bearer <key>",
        "type": "authentication_error",
        "code": "invalid_api_key",
    }
}
UNKNOWN_KEY = {"error": {"message": "unknown API key", "type": "authentication_error", "code": "invalid_api_key"}}
WRONG_KEY = "vb-not-a-key-of-this-stack-5d2a"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v2/videos/generations"),
        ("GET", "/"),
        ("POST", "/v1/account"),  # declared paths, undeclared methods
        ("DELETE", "/v1/videos/generations/v_1"),
        ("PUT", "/v1/videos/generations"),
        ("HEAD", "/v1/account"),
        ("OPTIONS", "/v1/videos/generations"),
        ("GET", "/v1/videos/generations/v_1/cancel"),
    ],
)
@pytest.mark.parametrize("authorization", [f"Bearer {BRIDGE_API_KEY}", None, f"Bearer {WRONG_KEY}", "Basic eDp5"])
def test_an_undeclared_route_or_method_is_not_found_whatever_the_key(
    bridge: LocalBridge, method: str, path: str, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    with httpx.Client(base_url=str(bridge.api.base_url), timeout=10) as client:
        response = client.request(method, path, headers=headers)
    assert response.status_code == 404
    if method != "HEAD":
        assert response.json() == NOT_FOUND
    assert WRONG_KEY not in response.text and BRIDGE_API_KEY not in response.text


def test_the_gateway_answers_a_route_miss_before_the_authorizer_and_the_key_check(bridge: LocalBridge) -> None:
    # On a declared route the same callers are refused by the authorizer or the key check...
    with httpx.Client(base_url=str(bridge.api.base_url), timeout=10) as client:
        declared_no_key = client.get("/v1/account")
        declared_wrong_key = client.get("/v1/account", headers={"Authorization": f"Bearer {WRONG_KEY}"})
        undeclared_no_key = client.get("/v1/accounts")
        undeclared_wrong_key = client.get("/v1/accounts", headers={"Authorization": f"Bearer {WRONG_KEY}"})
    assert (declared_no_key.status_code, declared_no_key.json()) == (401, NO_KEY)
    assert (declared_wrong_key.status_code, declared_wrong_key.json()) == (401, UNKNOWN_KEY)
    # ...which never run for a route the API does not have.
    assert (undeclared_no_key.status_code, undeclared_no_key.json()) == (404, NOT_FOUND)
    assert (undeclared_wrong_key.status_code, undeclared_wrong_key.json()) == (404, NOT_FOUND)


def test_a_body_over_10_mib_gets_api_gateways_own_413(bridge: LocalBridge) -> None:
    before = bridge.simulator.task_count()
    response = bridge.api.post(
        "/v1/videos/generations",
        content=b"x" * (MAX_PAYLOAD_BYTES + 1),
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    # API Gateway's front end, before any gateway response: this text is what a deployed stack sends.
    assert (response.status_code, response.text) == (413, "HTTP content length exceeded 10485760 bytes.")
    assert bridge.simulator.task_count() == before


def test_a_body_the_function_cannot_take_is_request_too_large_after_the_key_check(bridge: LocalBridge) -> None:
    body = b'{"prompt": "' + b"a" * (7 * 1024 * 1024) + b'"}'  # under 10 MiB, over Lambda's 6 MB invoke limit
    with_key = bridge.api.post(
        "/v1/videos/generations", content=body, headers={"Content-Type": "application/json"}, timeout=60
    )
    assert (with_key.status_code, with_key.json()) == (413, TOO_LARGE)
    with httpx.Client(base_url=str(bridge.api.base_url), timeout=60) as anonymous:
        without_key = anonymous.post(
            "/v1/videos/generations", content=body, headers={"Content-Type": "application/json"}
        )
    assert (without_key.status_code, without_key.json()) == (401, NO_KEY)


def test_a_function_slower_than_the_integration_timeout_is_a_504_and_the_front_answers_others_meanwhile(
    bridge: LocalBridge,
) -> None:
    finished = threading.Event()

    def slow_api(event: dict[str, Any], context: Any) -> dict[str, Any]:
        # Not the real handler: it would run alongside the session front's, which it must not.
        time.sleep(2.0)
        finished.set()
        return {"statusCode": 200, "body": "{}"}

    stack = dataclasses.replace(bridge.stack, handlers={**bridge.stack.handlers, bridge.stack.api_function: slow_api})
    front = ApiFront(
        stack.api_front_handler(API_KEYS),
        stack.api_routes,
        stage=stack.stage,
        gateway_responses=of_stack(stack),
        integration_timeout_s=0.5,  # 29 s on AWS and in the local run
    )
    answers: dict[str, tuple[int, Any, float]] = {}

    def call(name: str, method: str, path: str, key: str | None) -> None:
        started = time.monotonic()
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        response = httpx.request(method, f"{front.url}{path}", headers=headers, timeout=10)
        answers[name] = (response.status_code, response.json(), time.monotonic() - started)

    with front:
        slow = threading.Thread(target=call, args=("slow", "GET", "/v1/account", BRIDGE_API_KEY))
        slow.start()
        time.sleep(0.2)
        call("missing route", "GET", "/v1/nothing", BRIDGE_API_KEY)
        call("no key", "GET", "/v1/account", None)
        slow.join()

    assert answers["slow"][:2] == (504, TIMED_OUT)
    assert 0.5 <= answers["slow"][2] < 1.8
    assert answers["missing route"][:2] == (404, NOT_FOUND) and answers["missing route"][2] < 0.5
    assert answers["no key"][:2] == (401, NO_KEY) and answers["no key"][2] < 0.5
    assert not finished.is_set()
    assert finished.wait(5)  # the function ran to its end, as an invoke API Gateway gave up on does
