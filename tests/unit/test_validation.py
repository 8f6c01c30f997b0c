"""The submit body is validated exactly as Router One documents it, and errors name the field."""

import json
from pathlib import Path
from typing import Any

import pytest

from bridge.api.http_api import app
from bridge.models import (
    MAX_IMAGE_URLS,
    MAX_INPUT_REFERENCE_LENGTH,
    MAX_MODEL_LENGTH,
    MAX_PROMPT_LENGTH,
    MAX_SIZE_LENGTH,
    MAX_URL_LENGTH,
    WebhookEvent,
)

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


# --------------------------------------------------------------------------- every field bounded

LONG_URL_BASE = "https://example.com/"


def long_url(length: int) -> str:
    return LONG_URL_BASE + "a" * (length - len(LONG_URL_BASE))


def body_with(field: str, value: object) -> dict:
    """VALID with `field` set; `image_urls.0` means the first (and only) item of image_urls."""
    if field == "image_urls.0":
        return {**VALID, "image_urls": [value]}
    return {**VALID, field: value}


@pytest.fixture
def accepted(monkeypatch: pytest.MonkeyPatch) -> list:
    """Submit accepts without Router One (and without the SSRF guard's DNS look-up); what it got is kept."""
    from bridge.api.routes import generations

    requests: list = []

    def submit(request: object, *args: object, **kwargs: object) -> dict:
        requests.append(request)
        return {"task_id": "v_0123456789abcdef0123456789abcdef", "status": "pending"}

    monkeypatch.setattr(generations, "submit_with_key", submit)
    return requests


STRING_BOUNDS = [
    # (field, bound, a value of exactly `length` characters)
    ("model", MAX_MODEL_LENGTH, lambda n: "m" * n),
    ("prompt", MAX_PROMPT_LENGTH, lambda n: "p" * n),
    ("negative_prompt", MAX_PROMPT_LENGTH, lambda n: "n" * n),
    ("size", MAX_SIZE_LENGTH, lambda n: "s" * n),
    ("input_reference", MAX_INPUT_REFERENCE_LENGTH, lambda n: "r" * n),
    ("image_url", MAX_URL_LENGTH, long_url),
    ("image_urls.0", MAX_URL_LENGTH, long_url),
    ("callback_url", MAX_URL_LENGTH, long_url),
]


@pytest.mark.parametrize(("field", "bound", "value_of"), STRING_BOUNDS, ids=[b[0] for b in STRING_BOUNDS])
def test_every_string_is_accepted_at_its_bound_and_refused_one_past_it(
    field: str, bound: int, value_of: Any, accepted: list
) -> None:
    status, payload = post(body_with(field, value_of(bound)))
    assert status == 202, payload
    status, payload = post(body_with(field, value_of(bound + 1)))
    assert status == 400
    error = payload["error"]
    assert (error["code"], error["param"]) == ("invalid_parameter", field)
    assert f"'{field}'" in error["message"] and f"at most {bound} characters" in error["message"]


@pytest.mark.parametrize(
    ("field", "items", "bound"),
    [
        ("image_urls", [f"https://example.com/{i}.png" for i in range(8)], MAX_IMAGE_URLS),
        ("webhook_events_filter", [event.value for event in WebhookEvent] * 2, len(WebhookEvent)),
    ],
)
def test_every_list_is_accepted_at_its_bound_and_refused_one_past_it(
    field: str, items: list, bound: int, accepted: list
) -> None:
    extra = {"callback_url": "https://hooks.example.com/in"} if field == "webhook_events_filter" else {}
    status, payload = post({**VALID, **extra, field: items[:bound]})
    assert status == 202, payload
    status, payload = post({**VALID, **extra, field: items[: bound + 1]})
    assert status == 400
    assert (payload["error"]["param"], payload["error"]["code"]) == (field, "invalid_parameter")
    assert f"at most {bound} items" in payload["error"]["message"]


@pytest.mark.parametrize("field", ["model", "prompt", "size"])
@pytest.mark.parametrize("blank", [" ", "   ", "\t\n", "\u3000", "\u00a0\u2003", "\ufeff", "\x1c"])
def test_blank_model_prompt_and_size_are_refused_naming_the_field(field: str, blank: str) -> None:
    status, payload = post({**VALID, field: blank})
    assert status == 400
    error = payload["error"]
    assert (error["code"], error["param"]) == ("invalid_parameter", field)
    assert error["message"] == f"'{field}': must not be blank (whitespace only)"


@pytest.mark.parametrize("field", ["negative_prompt", "input_reference"])
def test_blank_negative_prompt_and_input_reference_mean_nothing_and_pass(field: str, accepted: list) -> None:
    for blank in ("", " ", "\n"):
        assert post({**VALID, field: blank})[0] == 202
    assert [getattr(request, field) for request in accepted] == ["", " ", "\n"]


def test_text_with_blanks_around_words_is_kept_as_sent(accepted: list) -> None:
    body = {"model": " video-default", "prompt": "\ta fox \n", "size": "720p "}
    assert post(body)[0] == 202
    assert accepted[0].upstream_body() == body


# What clients send today; none may be refused (the local run's callbacks are plain http on loopback).
ACCEPTED_URLS = [
    "https://example.com/hook?token=abc",
    "http://127.0.0.1:8001/hooks/x",
    "http://localhost:8001/hooks/x",
    "https://[2606:4700:4700::1111]/in",
    "https://[2606:4700:4700:0:0:0:0:1111]:8443/in",
    "https://[::ffff:93.184.216.34]/in",
    "HTTPS://Hooks.Example.COM/In",
    "https://example.com",
    "https://example.com:443",
    "https://example.com:/a",
    "https://example.com?x=1",
    "https://example.com#top",
    "https://user:pa%20ss@example.com/a.png",
    "https://xn--bcher-kva.example/b%C3%BCcher.png",
    "https://bucket.s3.amazonaws.com/a.png?X-Amz-Credential=AK%2F20260101%2Fus-east-1&X-Amz-Signature=ab12",
    "https://cdn.example.com/i.png?q={x}|y^z&r=[1]",
    "https://a_b.example/~u/it's(1)*.png;v=2",
]
REFUSED_URLS = [
    "",
    "example.com/a.png",
    "//example.com/a.png",
    "ftp://example.com/a.png",
    "file:///etc/passwd",
    "javascript:alert(1)",
    "https:/example.com",
    "https://",
    "https:///a.png",
    "https://:443/a.png",
    "https://user@/a.png",
    "https://exa mple.com/",
    "https://example.com/a b.png",
    "https://example.com/a\tb.png",
    " https://example.com/",
    "https://example.com/\n",
    "https://bücher.example/",
    "https://example.com/bücher.png",
    "https://example.com/a\x7f",
    "https://example.com:65536/",
    "https://example.com:8o/",
    "https://example.com:80:80/",
    "https://[1.2.3.4]/",
    "https://[::1/",
    "https://[12345::1]/",
    "https://[1:2:3:4:5:6:7:8:9]/",
    "https://[fe80::1%25eth0]/",
    "https://exa%zzmple.com/",
    "https://example.com\\@evil.example/",
]


@pytest.mark.parametrize("field", ["image_url", "image_urls.0", "callback_url"])
def test_uri_fields_take_what_clients_send(field: str, accepted: list) -> None:
    for url in ACCEPTED_URLS:
        status, payload = post(body_with(field, url))
        assert status == 202, (url, payload)


@pytest.mark.parametrize("field", ["image_url", "image_urls.0", "callback_url"])
@pytest.mark.parametrize("url", REFUSED_URLS)
def test_uri_fields_refuse_what_is_not_an_http_uri_naming_the_field(field: str, url: str) -> None:
    status, payload = post(body_with(field, url))
    assert status == 400, url
    assert (payload["error"]["param"], payload["error"]["code"]) == (field, "invalid_parameter")
    assert payload["error"]["message"].startswith(f"'{field}': must be an http(s) URI")


def test_a_whole_number_written_with_a_fraction_is_that_integer(accepted: list) -> None:
    # JSON Schema (and so the document) counts 5.0 as the integer 5; Router One gets 5.
    assert post(None, raw='{"model": "m", "prompt": "p", "duration": 5.0}')[0] == 202
    assert accepted[0].upstream_body()["duration"] == 5
    assert isinstance(accepted[0].duration, int)
