"""Upstream answers map to the right domain errors (httpx.MockTransport, no network)."""

import httpx
import pytest

from bridge.errors import UpstreamPermanentError, UpstreamRejected, UpstreamTransientError, UpstreamUnavailable
from bridge.router_one import RouterOneClient

SECRET = "sk-unit-test-secret"


def client_answering(handler) -> RouterOneClient:
    return RouterOneClient("https://router.test/", lambda: SECRET, httpx.Client(transport=httpx.MockTransport(handler)))


def envelope(status: int, type_: str, code: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"message": f"{code} happened", "type": type_, "code": code}})


def test_submit_sends_bearer_key_and_body_and_returns_task() -> None:
    seen: dict = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["auth"] = request.headers["authorization"]
        seen["url"] = str(request.url)
        seen["body"] = request.content
        return httpx.Response(202, json={"task_id": "v_abc", "status": "pending"})

    accepted = client_answering(handler).submit({"model": "m", "prompt": "p"})
    assert accepted.task_id == "v_abc"
    assert seen["auth"] == f"Bearer {SECRET}"
    assert seen["url"] == "https://router.test/v1/videos/generations"
    assert b'"prompt":"p"' in seen["body"].replace(b" ", b"")


@pytest.mark.parametrize(
    ("status", "type_", "code"),
    [
        (401, "authentication_error", "invalid_api_key"),
        (402, "billing_error", "insufficient_balance"),
        (400, "invalid_request_error", "reference_image_invalid"),
        (502, "api_error", "upstream_error"),
    ],
)
def test_submit_passes_upstream_errors_through_with_same_status_and_envelope(
    status: int, type_: str, code: str
) -> None:
    with pytest.raises(UpstreamRejected) as caught:
        client_answering(lambda r: envelope(status, type_, code)).submit({"model": "m", "prompt": "p"})
    assert caught.value.status == status
    assert caught.value.envelope()["error"] == {"message": f"{code} happened", "type": type_, "code": code}


@pytest.mark.parametrize(
    "handler",
    [
        pytest.param(lambda r: (_ for _ in ()).throw(httpx.ConnectError("refused")), id="connection refused"),
        pytest.param(lambda r: (_ for _ in ()).throw(httpx.ReadTimeout("slow")), id="timeout"),
        pytest.param(lambda r: httpx.Response(202, text="<html>ok</html>"), id="unparseable success"),
        pytest.param(lambda r: httpx.Response(202, json={"status": "pending"}), id="no task id"),
        pytest.param(lambda r: httpx.Response(503, text="Service Unavailable"), id="error without envelope"),
    ],
)
def test_submit_network_or_garbage_becomes_502_upstream_error(handler) -> None:
    with pytest.raises(UpstreamUnavailable) as caught:
        client_answering(handler).submit({"model": "m", "prompt": "p"})
    assert caught.value.status == 502
    assert caught.value.envelope()["error"]["type"] == "api_error"
    assert caught.value.envelope()["error"]["code"] == "upstream_error"
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    "handler",
    [
        pytest.param(lambda r: (_ for _ in ()).throw(httpx.ConnectTimeout("slow")), id="timeout"),
        pytest.param(lambda r: (_ for _ in ()).throw(httpx.RemoteProtocolError("reset")), id="reset"),
        pytest.param(lambda r: envelope(429, "rate_limit_error", "rate_limited"), id="429"),
        pytest.param(lambda r: envelope(500, "api_error", "upstream_error"), id="500"),
        pytest.param(lambda r: envelope(400, "api_error", "upstream_error"), id="upstream_error keyed on code"),
        pytest.param(lambda r: httpx.Response(503, text="busy"), id="503 no envelope"),
        pytest.param(lambda r: httpx.Response(200, text="{truncated"), id="malformed body"),
        pytest.param(lambda r: httpx.Response(200, json={"progress": 5}), id="no status"),
    ],
)
def test_poll_transient_trouble_raises_the_named_retryable_error(handler) -> None:
    with pytest.raises(UpstreamTransientError):
        client_answering(handler).status("v_abc")


@pytest.mark.parametrize(
    ("status", "code"),
    [(401, "invalid_api_key"), (404, "task_not_found"), (400, "invalid_task_id"), (418, "teapot")],
)
def test_poll_permanent_errors_carry_the_upstream_error(status: int, code: str) -> None:
    with pytest.raises(UpstreamPermanentError) as caught:
        client_answering(lambda r: envelope(status, "invalid_request_error", code)).status("v_abc")
    assert caught.value.status == status
    assert caught.value.error["code"] == code


def test_poll_reads_progress_url_and_unknown_status() -> None:
    answers = iter(
        [
            {"task_id": "v_abc", "status": "processing", "progress": 45},
            {"task_id": "v_abc", "status": "completed", "url": "https://cdn.test/v.mp4"},
            {"task_id": "v_abc", "status": "queued_for_gpu"},
        ]
    )
    client = client_answering(lambda r: httpx.Response(200, json=next(answers)))
    assert client.status("v_abc").progress == 45
    assert client.status("v_abc").url == "https://cdn.test/v.mp4"
    assert client.status("v_abc").status == "queued_for_gpu"


def test_poll_escapes_the_opaque_task_id_in_the_path() -> None:
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["path"] = request.url.raw_path
        return httpx.Response(200, json={"status": "pending"})

    client_answering(handler).status("v_a/../b")
    assert seen["path"] == b"/v1/videos/generations/v_a%2F..%2Fb"
