"""Recovering an endpoint: every delivery to it that failed since a time, sent again at a bounded rate.

The API queues the first page as a message of the webhook queue; the delivery function takes a page
(at most PAGE_SIZE deliveries), starts a new round of each, spaced 1/RATE_PER_S apart, and queues
the next page after them. However many deliveries failed, the endpoint sees at most RATE_PER_S new
first attempts a second from a recovery, and no invocation does more than one page.
"""

from __future__ import annotations

from bridge.observability import logger, metrics
from bridge.store import deliveries
from bridge.store.deliveries import DeliveryStatus
from bridge.timeutil import utcnow
from bridge.webhooks.dispatch import MAX_ROUNDS, DeliveryMessage, Recovery, RecoveryMessage, enqueue

PAGE_SIZE = 50
RATE_PER_S = 5.0


def start(*, owner_id: str, endpoint_id: str, since: str) -> None:
    enqueue(RecoveryMessage(recover=Recovery(owner_id=owner_id, endpoint_id=endpoint_id, since=since)), delay_s=0)


def resend_page(recovery: Recovery) -> str:
    """Start a new round of each failed delivery on this page; queue the next page behind them."""
    now = utcnow()
    rows, last_key = deliveries.endpoint_deliveries(
        recovery.endpoint_id,
        limit=PAGE_SIZE,
        start_key=recovery.start_key,
        statuses=DeliveryStatus.FAILED,
        since=recovery.since,
    )
    resent = 0
    for row in rows:
        round_no = deliveries.start_round(
            row["task_id"], row["event_id"], now=now, max_rounds=MAX_ROUNDS, only_statuses=DeliveryStatus.FAILED
        )
        if round_no is None:
            continue  # sent again already (a repeated page), or out of rounds
        enqueue(
            DeliveryMessage(task_id=row["task_id"], event_id=row["event_id"], round=round_no),
            delay_s=resent / RATE_PER_S,
        )
        resent += 1
    total = recovery.resent + resent
    if last_key:
        follow = recovery.model_copy(update={"start_key": last_key, "resent": total})
        enqueue(RecoveryMessage(recover=follow), delay_s=max(1.0, resent / RATE_PER_S))
    else:
        logger.info("endpoint recovery finished", extra={"endpoint_id": recovery.endpoint_id, "resent": total})
    metrics.add_metric(name="WebhookDeliveriesRecovered", unit="Count", value=resent)
    return "recovering" if last_key else "recovered"
