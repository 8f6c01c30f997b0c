"""`./dev receiver-endpoint` (bridge_local.receiver_endpoint): what it asks of the API and hands to
the receiver, its errors when the local run is not there, and what it prints. The API and the
receiver are an httpx.MockTransport here; a real receiver takes the keys in the last tests, and
tests/integration/test_receiver_endpoint.py runs the command against the session stack."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from bridge.models import WebhookEvent
from bridge.webhooks import endpoint_keys
from bridge_local import receiver_endpoint
from bridge_local.receiver import ENDPOINT_KEYS_PATH, WebhookReceiver
from bridge_local.receiver_endpoint import RegistrationError, main, mask, register, rotate

API = "http://api.test"
RECEIVER = "http://receiver.test"
KEY = "vb-local-unit"


class FakeServices:
    """The local API and the receiver's admin route, as a MockTransport records and answers them."""

    def __init__(self) -> None:
        self.keys = endpoint_keys.new_key_set()
        self.rotated_keys: endpoint_keys.KeySet | None = None
        self.requests: list[httpx.Request] = []
        self.handed_over: list[dict[str, Any]] = []
        self.create_status = 201
        self.receiver_status = 200  # of the admin route's GET
        self.handover_status = 200  # of its POST
        self.receiver_up = True

    def endpoint(self, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "object": "webhook_endpoint",
            "id": "ep_0123",
            "url": body["url"],
            "description": body["description"],
            "event_types": body["event_types"],
            "signature_versions": body["signature_versions"],
            "enabled": True,
            "public_keys": [{"key": self.keys.public_key(), "expires_at": None}],
            "secret": self.keys.v1,
        }

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.host == "receiver.test":
            if not self.receiver_up:
                raise httpx.ConnectError("connection refused", request=request)
            if request.method == "POST":
                if self.handover_status != 200:
                    return httpx.Response(self.handover_status, json={"error": "bad key"})
                self.handed_over.append(json.loads(request.content))
            return httpx.Response(self.receiver_status, json={"endpoints": []})
        path = request.url.path
        if request.method == "POST" and path == "/v1/webhook-endpoints":
            if self.create_status != 201:
                error = {"message": "nope", "type": "invalid_request_error", "code": "some_code"}
                return httpx.Response(self.create_status, json={"error": error})
            return httpx.Response(201, json=self.endpoint(json.loads(request.content)))
        if request.method == "POST" and path == "/v1/webhook-endpoints/ep_0123/rotate":
            new = self.rotated_keys = endpoint_keys.new_key_set()
            public_keys = [
                {"key": new.public_key(), "expires_at": None},
                {"key": self.keys.public_key(), "expires_at": "2026-12-01T00:00:00Z"},
            ]
            return httpx.Response(
                200,
                json={"id": "ep_0123", "url": f"{RECEIVER}/hooks/endpoint", "signature_versions": ["v1", "v1a"]}
                | {"public_keys": public_keys, "secret": new.v1, "event_types": ["completed"]},
            )
        if request.method == "DELETE":
            return httpx.Response(200, json={"deleted": True})
        return httpx.Response(404, json={"error": {"message": "no route", "code": "route_not_found"}})

    def calls(self) -> list[str]:
        return [f"{r.method} {r.url.host}{r.url.path}" for r in self.requests]


@pytest.fixture
def services() -> FakeServices:
    return FakeServices()


@pytest.fixture
def clients(services: FakeServices) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    transport = httpx.MockTransport(services)
    headers = {"Authorization": f"Bearer {KEY}"}
    with (
        httpx.Client(base_url=API, transport=transport, headers=headers) as api,
        httpx.Client(base_url=RECEIVER, transport=transport) as receiver,
    ):
        yield api, receiver


def run(services: FakeServices, *args: str, environ: dict[str, str] | None = None) -> int:
    env = {"VIDEO_BRIDGE_API": API, "VIDEO_BRIDGE_API_KEY": KEY} if environ is None else environ
    return main(["--receiver", RECEIVER, *args], environ=env, transport=httpx.MockTransport(services))


def test_register_creates_a_v1_and_v1a_endpoint_for_every_event_and_hands_over_its_keys(
    services: FakeServices, clients: tuple[httpx.Client, httpx.Client]
) -> None:
    endpoint = register(*clients)

    assert services.calls() == [
        f"GET receiver.test{ENDPOINT_KEYS_PATH}",  # the receiver is there before anything is created
        "POST api.test/v1/webhook-endpoints",
        f"POST receiver.test{ENDPOINT_KEYS_PATH}",
    ]
    create = services.requests[1]
    assert create.headers["Authorization"] == f"Bearer {KEY}"
    assert json.loads(create.content) == {
        "url": f"{RECEIVER}/hooks/endpoint",
        "event_types": [str(kind) for kind in WebhookEvent],
        "description": receiver_endpoint.DESCRIPTION,
        "signature_versions": ["v1", "v1a"],
    }
    assert "Authorization" not in services.requests[2].headers  # the caller's key stays with the API
    assert services.handed_over == [endpoint]
    assert endpoint["secret"] == services.keys.v1


def test_no_receiver_is_a_clear_error_and_no_endpoint_is_made(
    services: FakeServices, clients: tuple[httpx.Client, httpx.Client]
) -> None:
    services.receiver_up = False
    with pytest.raises(RegistrationError, match=r"no webhook receiver at http://receiver.test.*\./dev up") as caught:
        register(*clients)
    assert caught.value.exit_code == 3
    assert services.calls() == [f"GET receiver.test{ENDPOINT_KEYS_PATH}"]


def test_a_receiver_that_refuses_the_keys_leaves_no_endpoint_behind(
    services: FakeServices, clients: tuple[httpx.Client, httpx.Client]
) -> None:
    services.handover_status = 400
    with pytest.raises(RegistrationError, match="refused the keys"):
        register(*clients)
    assert services.calls()[-1] == "DELETE api.test/v1/webhook-endpoints/ep_0123"


@pytest.mark.parametrize(
    ("status", "message", "exit_code"),
    [
        (401, r"refused the key \(HTTP 401\).*VIDEO_BRIDGE_API_KEY", 2),
        (404, r"has no /v1/webhook-endpoints route", 2),
        (409, r"POST /v1/webhook-endpoints: nope \(some_code\)", 2),
        (503, r"nope \(some_code\)", 3),
    ],
)
def test_api_refusals_are_one_line_each(
    services: FakeServices, clients: tuple[httpx.Client, httpx.Client], status: int, message: str, exit_code: int
) -> None:
    services.create_status = status
    with pytest.raises(RegistrationError, match=message) as caught:
        register(*clients)
    assert caught.value.exit_code == exit_code
    assert services.handed_over == []


def test_rotate_hands_over_the_new_secret_and_both_public_keys(
    services: FakeServices, clients: tuple[httpx.Client, httpx.Client]
) -> None:
    rotated = rotate(*clients, "ep_0123", overlap_seconds=600)

    assert json.loads(services.requests[1].content) == {"overlap_seconds": 600}
    assert services.handed_over == [rotated] and len(rotated["public_keys"]) == 2


# --------------------------------------------------------------------------- the command line


def test_main_prints_the_endpoint_and_its_public_key_never_the_secret(
    services: FakeServices, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(services) == 0

    out = capsys.readouterr().out
    assert "Registered the built-in receiver as webhook endpoint ep_0123" in out
    assert f"url:        {RECEIVER}/hooks/endpoint" in out
    assert f"public key: {services.keys.public_key()}  (current)" in out
    assert mask(services.keys.v1) in out and services.keys.v1 not in out
    assert "signature ok: v1 ok (current), v1a ok (current)" in out


def test_main_without_a_key_or_a_running_stack_says_what_to_do(
    services: FakeServices, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(services, environ={}) == 2
    assert "set VIDEO_BRIDGE_API_KEY" in capsys.readouterr().err
    assert services.requests == []

    services.receiver_up = False
    assert run(services) == 3
    assert "./dev up" in capsys.readouterr().err


def test_main_talks_to_the_api_the_cli_would(services: FakeServices) -> None:
    run(services, "--path", "/hooks/mine")
    assert services.requests[1].url == httpx.URL(f"{API}/v1/webhook-endpoints")
    assert json.loads(services.requests[1].content)["url"] == f"{RECEIVER}/hooks/mine"


def test_mask_keeps_four_characters() -> None:
    assert mask("whsec_AbCdEfGh") == "whsec_AbCd…"
    assert mask("plain-secret") == "plai…"


# --------------------------------------------------------------------------- a real receiver takes the keys


@pytest.fixture
def real_receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        yield running


def with_real_receiver(services: FakeServices, receiver: WebhookReceiver) -> Callable[[httpx.Request], httpx.Response]:
    """The fake API; the receiver's requests go to the real one over loopback."""

    def route(request: httpx.Request) -> httpx.Response:
        if request.url.host == "receiver.test":
            answer = httpx.request(
                request.method, receiver.url + request.url.path, content=request.content, headers=request.headers
            )
            return httpx.Response(answer.status_code, content=answer.content)
        return services(request)

    return route


def test_the_real_receiver_verifies_the_next_delivery_and_a_rotation_overlap(
    services: FakeServices, real_receiver: WebhookReceiver
) -> None:
    transport = httpx.MockTransport(with_real_receiver(services, real_receiver))
    with (
        httpx.Client(base_url=API, transport=transport) as api,
        httpx.Client(base_url=RECEIVER, transport=transport) as receiver,
    ):
        register(api, receiver)
    [known] = real_receiver.registered_endpoints()
    assert known.endpoint_id == "ep_0123" and known.path == "/hooks/endpoint"

    def deliver(keys: list[endpoint_keys.KeySet], message_id: str) -> str:
        now = datetime.now(UTC).replace(microsecond=0)
        body = json.dumps({"id": message_id, "type": "video.generation.completed", "data": {}})
        signature = endpoint_keys.signatures(keys, ["v1", "v1a"], message_id=message_id, timestamp=now, body=body)
        headers = {"webhook-id": message_id, "webhook-timestamp": str(int(now.timestamp()))}
        httpx.post(
            real_receiver.url + "/hooks/endpoint", content=body, headers=headers | {"webhook-signature": signature}
        )
        [record] = real_receiver.deliveries("/hooks/endpoint", message_id)
        assert record.answered == 200, record.signatures
        return record.signatures

    assert deliver([services.keys], "evt_1") == "v1 ok (current), v1a ok (current)"

    with (
        httpx.Client(base_url=API, transport=transport) as api,
        httpx.Client(base_url=RECEIVER, transport=transport) as receiver,
    ):
        rotate(api, receiver, "ep_0123", overlap_seconds=600)
    assert services.rotated_keys is not None
    overlap = deliver([services.rotated_keys, services.keys], "evt_2")
    assert overlap == "v1 ok (current + previous), v1a ok (current + previous)"
