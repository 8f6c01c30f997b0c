"""What one delivery attempt teaches about its endpoint: healthy, failing, paused, or disabled.

An endpoint is disabled when it answers 410 (Standard Webhooks: stop sending here) or when every
attempt has failed for `EndpointDisableAfterSeconds` (default 5 days). Its owner then gets a
`webhook.endpoint.disabled` event on the topic (with the `owner_id` attribute) and the bus, and the
`WebhookEndpointsDisabled` metric (alarmed) counts it. A 429 or 503 with Retry-After pauses every
delivery to that endpoint, not only the one that was answered.

The disable and its event are two writes: the row keeps `disable_notice` until the event is out,
so a sender stopped in between leaves it owed, and the next message for that endpoint sends it.
"""

from __future__ import annotations

from datetime import datetime

from bridge.observability import logger, metrics
from bridge.outbound.pinned_post import AttemptResult
from bridge.outcomes.events import (
    ENDPOINT_DISABLED_DETAIL_TYPE,
    build_endpoint_disabled_event,
    endpoint_disabled_event_id,
)
from bridge.outcomes.publishing import send_event
from bridge.settings import DeliverySettings, get_settings
from bridge.store import endpoints
from bridge.store.endpoints import Endpoint
from bridge.timeutil import iso, parse_iso

GONE = "gone"  # it answered 410
FAILING = "failing"  # every attempt failed for the whole allowed period
PAUSING_STATUSES = frozenset({429, 503})


def after_attempt(endpoint: Endpoint, result: AttemptResult, now: datetime) -> None:
    settings = get_settings(DeliverySettings)
    if result.delivered:
        endpoints.note_success(endpoint, now)
        return
    if result.status_code in PAUSING_STATUSES and result.retry_after_s:
        pause = min(result.retry_after_s, settings.webhook_max_retry_after_seconds)
        endpoints.throttle(endpoint, now.timestamp() + pause)
    if result.status_code == 410:
        disable(endpoint, reason=GONE, now=now)
        return
    current = endpoints.note_failure(endpoint, now)
    if current is None or not current.enabled or current.failing_since is None:
        return
    if (now - parse_iso(current.failing_since)).total_seconds() >= settings.endpoint_disable_after_seconds:
        disable(current, reason=FAILING, now=now)


def disable(endpoint: Endpoint, *, reason: str, now: datetime) -> None:
    disabled = endpoints.disable(
        endpoint, reason=reason, notice_id=endpoint_disabled_event_id(endpoint.endpoint_id, iso(now)), now=now
    )
    if disabled is None:
        return  # disabled already (by another attempt) or deleted
    metrics.add_metric(name="WebhookEndpointsDisabled", unit="Count", value=1)
    logger.warning("webhook endpoint disabled", extra={"endpoint_id": endpoint.endpoint_id, "reason": reason})
    send_notice(disabled)


def send_notice(endpoint: Endpoint) -> None:
    """Publish the owed `webhook.endpoint.disabled` event, then clear the debt. Raises if a channel refuses."""
    if not endpoint.disable_notice or not endpoint.disabled_at:
        return
    event = build_endpoint_disabled_event(
        owner_id=endpoint.owner_id,
        endpoint_id=endpoint.endpoint_id,
        url=endpoint.url,
        reason=endpoint.disabled_reason or FAILING,
        disabled_at=endpoint.disabled_at,
        failing_since=endpoint.failing_since,
    )
    send_event(
        event,
        detail_type=ENDPOINT_DISABLED_DETAIL_TYPE,
        attributes={"event_type": event["type"], "owner_id": endpoint.owner_id},
    )
    endpoints.notice_sent(endpoint, endpoint.disable_notice)
