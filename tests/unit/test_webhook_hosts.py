"""Every webhook host gets its own TLS check, non-ASCII hosts go out IDNA-encoded, and whatever
breaks inside an attempt is that attempt's logged failure, never an exception.

The receiver is a real https server on loopback; the host names reach it through the SSRF
guard's resolver (faked, as DNS is), and its self-signed certificate is trusted through an SSL
context given to the webhook client.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bridge import clients
from bridge.errors import InvalidRequest, ServiceUnavailable
from bridge.outbound import ssrf_guard
from bridge.outbound.ssrf_guard import check_callback_url
from bridge.settings import DeliverySettings
from bridge.webhooks import sender
from bridge.webhooks.signing import signing_keys
from bridge_local.receiver import Reply, WebhookReceiver
from bridge_local.tls import Certificate, self_signed

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
PUNYCODE = "xn--bcher-kva.example"  # bücher.example
HOSTS = {"a.example": ["127.0.0.1"], "b.example": ["127.0.0.1"], PUNYCODE: ["127.0.0.1"]}


@pytest.fixture(scope="module")
def certificate() -> Certificate:
    # Valid for a.example and the IDNA form of bücher.example; not for b.example.
    return self_signed(["a.example", PUNYCODE])


@pytest.fixture(scope="module")
def receiver(certificate: Certificate) -> Iterator[WebhookReceiver]:
    with WebhookReceiver([SECRET], ssl_context=certificate.server_context()) as running:
        yield running


@pytest.fixture
def resolved(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    asked: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return HOSTS[host]

    monkeypatch.setattr(ssrf_guard, "system_resolver", resolve)
    monkeypatch.setattr(sender, "current_signing_keys", lambda: signing_keys(SECRET))
    return asked


def use_client(monkeypatch: pytest.MonkeyPatch, client: httpx.Client) -> None:
    monkeypatch.setattr(sender, "webhook_http_client", lambda: client)


def settings() -> DeliverySettings:
    return DeliverySettings(
        jobs_table_name="t",
        webhook_signing_secret="sig",
        webhook_dead_letter_queue_url="dlq",
        webhook_deliveries_table_name="d",
        webhook_queue_url="q",
        webhook_endpoints_table_name="e",
        webhook_endpoint_key_id="k",
        event_topic_arn="arn:aws:sns:us-east-1:123456789012:t",
        event_bus_name="b",
        webhook_allow_loopback=True,
        webhook_timeout_seconds=5,
    )


def delivery(url: str, event_id: str = "evt_tls") -> dict[str, Any]:
    return {"callback_url": url, "event": json.dumps({"id": event_id}), "event_id": event_id}


# --------------------------------------------------------------------------- one TLS check per host


def deliver_a_then_b(receiver: WebhookReceiver, tag: str) -> list[Any]:
    """A delivered webhook and a refused one (503, its short body read to the end, so the connection
    could be kept) to a.example, then one to b.example, on the same address and port."""
    receiver.script(f"/{tag}/a-busy", [Reply(503, body="busy")])
    return [
        sender.attempt_delivery(delivery(f"https://a.example:{receiver.port}/{tag}/a"), settings()),
        sender.attempt_delivery(delivery(f"https://a.example:{receiver.port}/{tag}/a-busy"), settings()),
        sender.attempt_delivery(delivery(f"https://b.example:{receiver.port}/{tag}/b"), settings()),
    ]


def test_a_second_host_on_the_same_address_gets_its_own_certificate_check(
    monkeypatch: pytest.MonkeyPatch, receiver: WebhookReceiver, certificate: Certificate, resolved: list[str]
) -> None:
    use_client(monkeypatch, clients.webhook_client(5, verify=certificate.client_context()))

    delivered, refused, second_host = deliver_a_then_b(receiver, "own")

    assert delivered.delivered, delivered
    assert refused.status_code == 503 and refused.error == "HTTP 503: busy"
    assert not second_host.delivered and second_host.status_code is None
    assert "certificate is not valid for 'b.example'" in (second_host.error or ""), second_host
    assert [r.path for r in receiver.deliveries() if r.path.startswith("/own/")] == ["/own/a", "/own/a-busy"]
    assert receiver.deliveries("/own/a")[0].headers["host"] == f"a.example:{receiver.port}"


def test_a_pooled_client_would_carry_the_second_host_over_the_first_ones_tls(
    monkeypatch: pytest.MonkeyPatch, receiver: WebhookReceiver, certificate: Certificate, resolved: list[str]
) -> None:
    """The hazard the webhook client avoids: httpcore keys its pool by address and port, not by TLS name."""
    pooled = clients.deadline_client(timeout=5, follow_redirects=False, verify=certificate.client_context())
    use_client(monkeypatch, pooled)

    _, _, second_host = deliver_a_then_b(receiver, "pooled")

    assert second_host.delivered  # over a.example's connection: b.example's certificate was never asked for


# --------------------------------------------------------------------------- IDNA


def test_a_non_ascii_host_is_resolved_and_checked_in_its_idna_form() -> None:
    asked: list[str] = []
    target = check_callback_url(
        "https://Bücher.example:8443/hook?x=1", resolver=lambda host, port: asked.append(host) or ["93.184.216.34"]
    )
    assert asked == [PUNYCODE]
    assert (target.host, target.host_header, target.port) == (PUNYCODE, f"{PUNYCODE}:8443", 8443)
    assert check_callback_url("https://[2606:2800:220:1::1]/x").host_header == "[2606:2800:220:1::1]"


def test_a_webhook_to_a_non_ascii_host_goes_out_with_its_idna_name(
    monkeypatch: pytest.MonkeyPatch, receiver: WebhookReceiver, certificate: Certificate, resolved: list[str]
) -> None:
    use_client(monkeypatch, clients.webhook_client(5, verify=certificate.client_context()))
    result = sender.attempt_delivery(delivery(f"https://bücher.example:{receiver.port}/idna"), settings())
    assert result.delivered, result
    assert resolved == [PUNYCODE]
    [received] = receiver.deliveries("/idna")
    assert received.headers["host"] == f"{PUNYCODE}:{receiver.port}"  # and the certificate matched that name


@pytest.mark.parametrize("url", ["https://☃.example/hook", "https://a\u200db.example/hook", "https://xn--a.ü/x"])
def test_a_host_that_is_no_valid_domain_name_is_refused_not_a_crash(url: str) -> None:
    def no_dns(host: str, port: int) -> list[str]:
        raise AssertionError("an invalid name must not reach DNS")

    with pytest.raises(InvalidRequest) as caught:
        check_callback_url(url, resolver=no_dns)
    assert caught.value.code == "invalid_callback_url"


# --------------------------------------------------------------------------- failures inside an attempt


def test_an_unreadable_signing_secret_is_a_failed_attempt(monkeypatch: pytest.MonkeyPatch, resolved: list[str]) -> None:
    def unreadable() -> Any:
        raise ServiceUnavailable("the webhook signing secret is not valid JSON", code="webhook_secret_unusable")

    monkeypatch.setattr(sender, "current_signing_keys", unreadable)
    result = sender.attempt_delivery(delivery("https://a.example/x"), settings())
    assert not result.delivered and result.status_code is None
    assert result.error == "could not attempt: the webhook signing secret is not valid JSON"


def test_a_crash_in_the_url_check_is_a_failed_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(*args: Any, **kwargs: Any) -> Any:
        raise UnicodeError("label empty or too long")

    monkeypatch.setattr(sender, "check_callback_url", crash)
    result = sender.attempt_delivery(delivery("https://bücher.example/x"), settings())
    assert not result.delivered
    assert result.error == "could not attempt: UnicodeError: label empty or too long"
