"""The submit body is validated exactly as Router One documents it, and errors name the field."""

import json
from pathlib import Path

import pytest

from bridge.http_api import app

EVENTS = Path(__file__).resolve().parents[2] / "events"


class FakeContext:
    function_name = "api"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:api"
    aws_request_id = "test-request"


def post(body: object | None, *, raw: str | None = None) -> tuple[int, dict]:
    event = json.loads((EVENTS / "api_submit.json").read_text())
    event["body"] = raw if raw is not None else (None if body is None else json.dumps(body))
    response = app.resolve(event, FakeContext())
    return response["statusCode"], json.loads(response["body"])


VALID = {"model": "video-default", "prompt": "a fox"}


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"prompt": "a fox"}, "model", "missing_required_parameter"),
        ({"model": "video-default"}, "prompt", "missing_required_parameter"),
        ({**VALID, "model": ""}, "model", "invalid_parameter"),
        ({**VALID, "model": 7}, "model", "invalid_parameter"),
        ({**VALID, "prompt": ["a", "fox"]}, "prompt", "invalid_parameter"),
        ({**VALID, "duration": "5"}, "duration", "invalid_parameter"),
        ({**VALID, "duration": 5.5}, "duration", "invalid_parameter"),
        ({**VALID, "duration": True}, "duration", "invalid_parameter"),
        ({**VALID, "duration": 0}, "duration", "invalid_parameter"),
        ({**VALID, "size": 720}, "size", "invalid_parameter"),
        ({**VALID, "aspect_ratio": "4:3"}, "aspect_ratio", "invalid_parameter"),
        ({**VALID, "negative_prompt": {"no": "rain"}}, "negative_prompt", "invalid_parameter"),
        ({**VALID, "image_url": "ftp://example.com/a.png"}, "image_url", "invalid_parameter"),
        ({**VALID, "image_url": "not a url"}, "image_url", "invalid_parameter"),
        ({**VALID, "image_url": "https://"}, "image_url", "invalid_parameter"),
        ({**VALID, "image_urls": "https://example.com/a.png"}, "image_urls", "invalid_parameter"),
        (
            {**VALID, "image_urls": [f"https://example.com/{i}.png" for i in range(4)]},
            "image_urls",
            "invalid_parameter",
        ),
        (
            {**VALID, "image_urls": ["https://example.com/a.png", "file:///etc/passwd"]},
            "image_urls.1",
            "invalid_parameter",
        ),
        ({**VALID, "input_reference": 12}, "input_reference", "invalid_parameter"),
        ({**VALID, "webhook": "https://example.com"}, "webhook", "unknown_parameter"),
    ],
)
def test_bad_field_is_refused_with_400_naming_it(body: dict, field: str, code: str) -> None:
    status, payload = post(body)
    assert status == 400
    error = payload["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == code
    assert error["param"] == field
    assert f"'{field}'" in error["message"]


@pytest.mark.parametrize("raw", ["", "not json", "[1, 2]", '"a string"', '{"model": '])
def test_body_that_is_not_a_json_object_is_a_400_envelope(raw: str) -> None:
    status, payload = post(None, raw=raw)
    assert status == 400
    assert payload["error"]["code"] == "invalid_json"
    assert set(payload["error"]) >= {"message", "type", "code"}


def test_every_documented_field_is_accepted_by_the_model() -> None:
    from bridge.models import GenerationRequest

    body = {
        "model": "video-default",
        "prompt": "a fox",
        "duration": 8,
        "size": "1080p",
        "aspect_ratio": "9:16",
        "negative_prompt": "rain",
        "image_url": "https://example.com/a.png",
        "image_urls": ["http://example.com/1.png", "https://example.com/2.png", "https://example.com/3.png"],
        "input_reference": "ref-1",
    }
    assert GenerationRequest.model_validate(body).upstream_body() == body


def test_unknown_route_gets_a_404_envelope() -> None:
    event = json.loads((EVENTS / "api_status.json").read_text())
    event["path"] = "/v1/images/generations"
    response = app.resolve(event, FakeContext())
    assert response["statusCode"] == 404
    assert json.loads(response["body"])["error"]["code"] == "not_found"


def test_the_bridges_own_fields_never_reach_router_one() -> None:
    from bridge.models import GenerationRequest

    request = GenerationRequest.model_validate(
        {
            **VALID,
            "callback_url": "https://hooks.example.com/in",
            "webhook_events_filter": ["progress", "completed", "progress"],
            "metadata": {"order": "A-17"},
        }
    )
    assert request.upstream_body() == VALID
    assert request.webhook_events() == ["progress", "completed"]
    default = GenerationRequest.model_validate({**VALID, "callback_url": "https://hooks.example.com/in"})
    assert default.webhook_events() == ["completed", "failed", "timed_out", "canceled"]
