"""Webhook delivery pieces on their own: the pinned POST, Retry-After, the retry schedule, signing."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from bridge.errors import ServiceUnavailable
from bridge.outbound import ssrf_guard
from bridge.outbound.pinned_post import pinned_url, post_pinned
from bridge.outbound.retry_after import retry_after_seconds
from bridge.outbound.ssrf_guard import CallbackTarget
from bridge.settings import (
    DEFAULT_WEBHOOK_RETRY_SCHEDULE,
    MIN_RETRY_WINDOW_S,
    DeliverySettings,
    SettingsError,
    get_settings,
)
from bridge.webhooks import sender
from bridge.webhooks.signing import signature_headers, signing_keys

SECRET_A = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SECRET_B = "whsec_bmV3LXNpZ25pbmctc2VjcmV0LWZvci1yb3RhdGlvbi0xMjM0"


def target(url: str = "https://hooks.example.com:8443/in?x=1", addresses: tuple[str, ...] = ("93.184.216.34",)):
    return CallbackTarget(url=url, scheme=url.split(":")[0], host="hooks.example.com", port=8443, addresses=addresses)


def settings(**overrides: Any) -> DeliverySettings:
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
        **overrides,
    )


# --------------------------------------------------------------------------- pinned POST


def test_pinned_url_swaps_only_the_host_for_the_checked_address() -> None:
    assert pinned_url(target(), "93.184.216.34") == "https://93.184.216.34:8443/in?x=1"
    assert pinned_url(target(), "2606:2800:220:1::1") == "https://[2606:2800:220:1::1]:8443/in?x=1"


def test_post_goes_to_the_checked_address_with_the_original_host_and_tls_name() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    client = httpx.Client(transport=httpx.MockTransport(answer))
    result = post_pinned(client, target(), body=b"{}", headers={"webhook-id": "evt_1"}, timeout_s=15)

    assert result.delivered and result.status_code == 204 and result.error is None
    [request] = seen
    assert request.url.host == "93.184.216.34"
    assert request.headers["host"] == "hooks.example.com:8443"
    assert request.extensions["sni_hostname"] == "hooks.example.com"
    assert request.headers["webhook-id"] == "evt_1"
    assert request.extensions["timeout"]["read"] == 15


def test_a_redirect_is_a_failure_and_is_not_followed() -> None:
    calls: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return httpx.Response(302, headers={"location": "https://elsewhere.example/"})

    result = post_pinned(
        httpx.Client(transport=httpx.MockTransport(answer)), target(), body=b"{}", headers={}, timeout_s=1
    )
    assert not result.delivered and result.status_code == 302
    assert "not followed" in (result.error or "")
    assert len(calls) == 1


def test_the_next_checked_address_is_tried_when_one_refuses_connections() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.host == "93.184.216.34":
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200)

    result = post_pinned(
        httpx.Client(transport=httpx.MockTransport(answer)),
        target(addresses=("93.184.216.34", "93.184.216.35")),
        body=b"{}",
        headers={},
        timeout_s=1,
    )
    assert result.delivered


def test_timeouts_and_error_bodies_are_reported() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    def broken(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, headers={"retry-after": "120"}, text="x" * 10_000)

    timed_out = post_pinned(
        httpx.Client(transport=httpx.MockTransport(slow)), target(), body=b"", headers={}, timeout_s=15
    )
    assert timed_out.status_code is None and timed_out.error == "timed out after 15s"
    failed = post_pinned(
        httpx.Client(transport=httpx.MockTransport(broken)), target(), body=b"", headers={}, timeout_s=1
    )
    assert failed.status_code == 503 and failed.retry_after_s == 120
    assert failed.error is not None and len(failed.error) < 250


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    assert retry_after_seconds("30") == 30
    assert retry_after_seconds("²") is None  # a digit to str.isdigit, not to float: one parser for both
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == 90
    assert retry_after_seconds(format_datetime(now - timedelta(seconds=90), usegmt=True), now) == 0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


# --------------------------------------------------------------------------- the schedule


def test_default_schedule_keeps_trying_for_more_than_a_day() -> None:
    minimum = sum(delay * 0.8 for delay in DEFAULT_WEBHOOK_RETRY_SCHEDULE)
    assert minimum >= 24 * 3600
    assert settings().webhook_max_attempts == len(DEFAULT_WEBHOOK_RETRY_SCHEDULE) + 1


def test_retry_delay_follows_the_schedule_with_bounded_jitter() -> None:
    s = settings(webhook_retry_schedule=(10, 100), webhook_retry_jitter=0.2)
    assert sender.retry_delay(1, None, s, rand=lambda: 0.0) == 8
    assert sender.retry_delay(1, None, s, rand=lambda: 1.0) == 12
    assert sender.retry_delay(2, None, s, rand=lambda: 0.5) == 100
    rng = random.Random(7)
    spread = {sender.retry_delay(2, None, s, rand=rng.random) for _ in range(50)}
    assert len(spread) > 10 and min(spread) >= 80 and max(spread) <= 120


def test_retry_after_lengthens_the_wait_but_is_capped() -> None:
    s = settings(webhook_retry_schedule=(5,), webhook_retry_jitter=0, webhook_max_retry_after_seconds=600)
    assert sender.retry_delay(1, 60, s) == 60
    assert sender.retry_delay(1, 1, s) == 5  # never sooner than the schedule
    assert sender.retry_delay(1, 86_400, s) == 600


def test_schedule_and_flags_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_RETRY_SCHEDULE", "1, 2,3")
    monkeypatch.setenv("WEBHOOK_ALLOW_LOOPBACK", "true")
    for name, value in {"JOBS_TABLE_NAME": "t", "WEBHOOK_SIGNING_SECRET": "s", "WEBHOOK_QUEUE_URL": "q"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("WEBHOOK_DELIVERIES_TABLE_NAME", "d")
    monkeypatch.setenv("WEBHOOK_DEAD_LETTER_QUEUE_URL", "dlq")
    get_settings.cache_clear()
    loaded = get_settings(DeliverySettings)
    assert loaded.webhook_retry_schedule == (1, 2, 3) and loaded.webhook_allow_loopback is True
    monkeypatch.setenv("WEBHOOK_RETRY_SCHEDULE", "1,soon")
    get_settings.cache_clear()
    try:
        with pytest.raises(SettingsError, match="WEBHOOK_RETRY_SCHEDULE"):
            get_settings(DeliverySettings)
    finally:
        get_settings.cache_clear()


# --------------------------------------------------------------------------- signing


def test_signatures_verify_with_the_standard_verifier_and_rotation_signs_twice() -> None:
    body = json.dumps({"id": "evt_1", "type": "video.generation.completed"})
    keys = signing_keys(json.dumps({"current": SECRET_B, "previous": SECRET_A}))
    headers = signature_headers(keys, message_id="evt_1", timestamp=datetime.now(UTC), body=body)

    assert headers["webhook-id"] == "evt_1"
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (SECRET_A, SECRET_B):
        assert Webhook(secret).verify(body, headers)["id"] == "evt_1"
    single = signature_headers(signing_keys(SECRET_A), message_id="evt_1", timestamp=datetime.now(UTC), body=body)
    with pytest.raises(Exception, match="signature"):
        Webhook(SECRET_B).verify(body, single)
    with pytest.raises(Exception, match="signature"):
        Webhook(SECRET_A).verify(body.replace("completed", "failed"), single)


@pytest.mark.parametrize("raw", ['{"current": ""}', "[1]", "{not json", '{"current": "!!!"}'])
def test_an_unusable_signing_secret_is_a_clear_error(raw: str) -> None:
    with pytest.raises(ServiceUnavailable) as caught:
        signing_keys(raw)
    assert caught.value.code == "webhook_secret_unusable"


# --------------------------------------------------------------------------- SSRF at attempt time


def test_each_attempt_checks_dns_again_and_refuses_a_host_that_now_points_inside(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DNS rebinding: public at submit, private at delivery. No connection may be made."""
    answers = iter([["93.184.216.34"], ["10.0.0.7"]])
    monkeypatch.setattr(ssrf_guard, "system_resolver", lambda host, port: next(answers))
    url = "https://hooks.example.com/in"
    ssrf_guard.check_callback_url(url)  # the submit-time check passes

    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a refused callback must not be contacted")

    monkeypatch.setattr(sender, "post_pinned", no_network)
    monkeypatch.setattr(sender, "current_signing_keys", no_network)
    delivery = {"callback_url": url, "event": "{}", "event_id": "evt_1"}
    result = sender.attempt_delivery(delivery, settings())
    assert not result.delivered and result.status_code is None
    assert result.error is not None and "private" in result.error


# --------------------------------------------------------------------------- the delivery function's own failures


class NearlyOver:
    """A Lambda context with less time left than one attempt needs (2 s + 5 s of overhead)."""

    def get_remaining_time_in_millis(self) -> int:
        return 6_000


@pytest.fixture
def webhook_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from bridge.observability import metrics
    from bridge.settings import get_settings

    for name, value in {
        "ROUTER_ONE_API_KEY_SECRET": "s",
        "JOBS_TABLE_NAME": "t",
        "WEBHOOK_TIMEOUT_SECONDS": "2",
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    metrics.clear_metrics()
    yield
    metrics.clear_metrics()
    monkeypatch.undo()
    get_settings.cache_clear()


def test_a_record_without_time_for_an_attempt_goes_back_untouched_and_is_counted(
    webhook_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    from bridge.observability import metrics

    def untouched(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("no attempt, no log, when there is no time for one")

    monkeypatch.setattr(sender, "deliver", untouched)
    record = SQSRecord({"messageId": "m-1", "receiptHandle": "r-1", "body": '{"task_id": "v_1", "event_id": "e"}'})
    with pytest.raises(sender.OutOfTime):
        sender.deliver_record(record, NearlyOver())
    assert metrics.metric_set["WebhookDeliveryFailures"]["Value"] == [1.0]


def test_the_default_schedule_spans_three_days_even_at_the_shortest_jitter() -> None:
    s = settings()

    def window(rand: float) -> int:
        return sum(
            sender.retry_delay(attempt, None, s, rand=lambda: rand) for attempt in range(1, s.webhook_max_attempts)
        )

    assert s.webhook_max_attempts == 17
    assert window(0.5) == 358_955  # no jitter: the sum docs/webhooks.md works out
    assert window(0.0) >= MIN_RETRY_WINDOW_S  # every delay 20 % short
