"""The API takes Bearer API keys as a deployed stack does: authorizer, usage-plan key check, envelopes."""

from __future__ import annotations

import httpx
import pytest

from .conftest import LocalBridge

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "invalid_api_key"),
        ({"Authorization": "Bearer"}, "invalid_api_key"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "invalid_api_key"),
        ({"Authorization": "Bearer not-a-key-of-this-stack"}, "invalid_api_key"),
        ({"x-api-key": "vb-integration-key-7c2e"}, "invalid_api_key"),  # keys come as Bearer, like Router One's
    ],
)
def test_requests_without_a_valid_key_are_refused_with_a_401_envelope(
    bridge: LocalBridge, headers: dict[str, str], code: str
) -> None:
    before = bridge.simulator.task_count()
    with httpx.Client(base_url=str(bridge.api.base_url), timeout=10) as anonymous:
        for method, path in (("POST", "/v1/videos/generations"), ("GET", "/v1/videos/generations")):
            response = anonymous.request(
                method,
                path,
                headers=headers,
                json={"model": "video-default", "prompt": "x"} if method == "POST" else None,
            )
            assert response.status_code == 401, response.text
            error = response.json()["error"]
            assert error["code"] == code and error["type"] == "authentication_error"
    assert bridge.simulator.task_count() == before


def test_a_valid_key_passes_and_the_handler_sees_who_called(bridge: LocalBridge) -> None:
    response = bridge.api.get("/v1/videos/generations", params={"limit": 1})
    assert response.status_code == 200, response.text
