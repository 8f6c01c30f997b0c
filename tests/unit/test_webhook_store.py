"""The webhook delivery log on its own (`bridge.store.deliveries`): one item per job and event, and
conditional writes that neither log an attempt twice nor fork a delivery's rounds."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bridge.clients import deliveries_table
from bridge.settings import get_settings
from bridge.store import deliveries
from bridge.store.deliveries import DeliveryStatus
from bridge_local.emulator import EmbeddedAws
from bridge_local.local_stack import forget_cached_clients
from bridge_local.testing import create_table_like, environ_restored

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
URL = "https://hooks.example.com/in"


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmbeddedAws]:
    # One server for the module (starting one takes over a second); every test makes its own table.
    with environ_restored(), EmbeddedAws() as embedded:
        forget_cached_clients()
        yield embedded
    forget_cached_clients()


@pytest.fixture
def table(emulator: EmbeddedAws, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"deliveries-{uuid.uuid4().hex[:10]}"
    create_table_like(emulator.client("dynamodb"), "WebhookDeliveriesTable", name)
    monkeypatch.setenv("WEBHOOK_DELIVERIES_TABLE_NAME", name)
    renamed()
    yield name
    renamed()


def renamed() -> None:
    # Only what the table name changes: a new boto3 session per test would cost more than the test.
    get_settings.cache_clear()
    deliveries_table.cache_clear()


def event(event_id: str = "evt_1", kind: str = "video.generation.completed") -> dict[str, Any]:
    return {"id": event_id, "type": kind, "data": {"task_id": "task_1", "status": "completed"}}


def create(task_id: str = "task_1", event_id: str = "evt_1", **extra: Any) -> bool:
    return deliveries.create_delivery(
        task_id=task_id,
        event=event(event_id),
        callback_url=URL,
        now=NOW,
        expires_at=extra.pop("expires_at", None),
        **extra,
    )


def attempt(n: int, status: str, *, round_no: int = 1, reason: str | None = None) -> bool:
    return deliveries.record_attempt(
        task_id="task_1",
        event_id="evt_1",
        round_no=round_no,
        attempt=n,
        entry={"attempt": n, "status_code": 500 if status != DeliveryStatus.DELIVERED else 200},
        status=status,
        next_attempt_at=NOW + timedelta(seconds=30) if status == DeliveryStatus.RETRYING else None,
        now=NOW + timedelta(seconds=n),
        dead_letter_reason=reason,
    )


def raw(task_id: str = "task_1", event_id: str = "evt_1") -> dict[str, Any]:
    item: dict[str, Any] = deliveries_table().get_item(Key={"task_id": task_id, "event_id": event_id})["Item"]
    return item


# --------------------------------------------------------------------------- create and read


def test_a_new_delivery_is_pending_in_round_one(table: str) -> None:
    assert create(expires_at=1_900_000_000, owner_id="owner-a")
    delivery = deliveries.get_delivery("task_1", "evt_1")
    assert delivery is not None
    assert delivery["status"] == DeliveryStatus.PENDING
    assert delivery["round"] == 1 and delivery["attempt_count"] == 0 and delivery["attempts"] == []
    assert delivery["callback_url"] == URL and delivery["event_type"] == "video.generation.completed"
    assert json.loads(delivery["event"]) == event()
    assert delivery["expires_at"] == 1_900_000_000
    assert delivery["owner_id"] == "owner-a"
    assert delivery["created_at"] == delivery["updated_at"]


def test_a_delivery_outlives_a_job_kept_less_long_than_its_retries(table: str) -> None:
    job_expires = int(NOW.timestamp()) + 86_400  # JobRetentionDays=1
    assert create(expires_at=job_expires)
    kept = deliveries.get_delivery("task_1", "evt_1")
    assert kept is not None and kept["expires_at"] == int(NOW.timestamp()) + deliveries.MIN_DELIVERY_LIFETIME_S


def test_optional_fields_are_left_out_when_absent(table: str) -> None:
    assert create()
    item = raw()
    assert "expires_at" not in item and "owner_id" not in item


def test_a_second_create_for_the_same_event_is_refused_and_changes_nothing(table: str) -> None:
    assert create()
    assert attempt(1, DeliveryStatus.RETRYING)
    assert not create()
    delivery = deliveries.get_delivery("task_1", "evt_1")
    assert delivery is not None and delivery["attempt_count"] == 1 and delivery["status"] == DeliveryStatus.RETRYING
    # Another event of the same job is another delivery.
    assert create(event_id="evt_2")


def test_missing_delivery_reads_as_none(table: str) -> None:
    assert deliveries.get_delivery("task_1", "nope") is None
    assert deliveries.list_deliveries("task_1") == []


def test_deliveries_are_listed_per_job_oldest_first(table: str) -> None:
    for i, minutes in enumerate((5, 1, 3)):
        deliveries_table().put_item(
            Item={
                "task_id": "task_1",
                "event_id": f"evt_{i}",
                "created_at": (NOW + timedelta(minutes=minutes)).isoformat(),
            }
        )
    deliveries_table().put_item(Item={"task_id": "task_2", "event_id": "evt_x", "created_at": NOW.isoformat()})
    listed = deliveries.list_deliveries("task_1")
    assert [item["event_id"] for item in listed] == ["evt_1", "evt_2", "evt_0"]


# --------------------------------------------------------------------------- attempts


def test_attempts_are_appended_in_order_and_set_the_status(table: str) -> None:
    create()
    assert attempt(1, DeliveryStatus.RETRYING)
    assert attempt(2, DeliveryStatus.DELIVERED)
    delivery = deliveries.get_delivery("task_1", "evt_1")
    assert delivery is not None
    assert [entry["attempt"] for entry in delivery["attempts"]] == [1, 2]
    assert delivery["attempt_count"] == 2 and delivery["status"] == DeliveryStatus.DELIVERED
    assert delivery["next_attempt_at"] is None
    assert "hand_on_pending" not in delivery


def test_the_same_attempt_is_logged_once(table: str) -> None:
    create()
    assert attempt(1, DeliveryStatus.RETRYING)
    assert not attempt(1, DeliveryStatus.RETRYING)  # a duplicate queue message
    assert not attempt(1, DeliveryStatus.DELIVERED)
    delivery = deliveries.get_delivery("task_1", "evt_1")
    assert delivery is not None and len(delivery["attempts"]) == 1 and delivery["status"] == DeliveryStatus.RETRYING


def test_an_attempt_of_another_round_is_refused(table: str) -> None:
    create()
    assert not attempt(1, DeliveryStatus.RETRYING, round_no=2)
    assert deliveries.get_delivery("task_1", "evt_1")["attempts"] == []  # type: ignore[index]


def test_an_attempt_on_no_delivery_is_refused(table: str) -> None:
    assert not attempt(1, DeliveryStatus.RETRYING)
    assert deliveries.get_delivery("task_1", "evt_1") is None


def test_hand_on_mark_is_set_by_retries_and_cleared_only_for_its_attempt(table: str) -> None:
    create()
    attempt(1, DeliveryStatus.RETRYING)
    assert raw()["hand_on_pending"] == 1
    deliveries.handed_on("task_1", "evt_1", round_no=1, attempt=2)  # not this attempt's: kept
    deliveries.handed_on("task_1", "evt_1", round_no=2, attempt=1)  # not this round's: kept
    assert raw()["hand_on_pending"] == 1
    deliveries.handed_on("task_1", "evt_1", round_no=1, attempt=1)
    assert "hand_on_pending" not in raw()
    deliveries.handed_on("task_1", "evt_1", round_no=1, attempt=1)  # again: a no-op, no error


def test_dead_lettering_keeps_its_reason_and_a_hand_on_mark(table: str) -> None:
    create()
    attempt(1, DeliveryStatus.RETRYING)
    assert attempt(2, DeliveryStatus.DEAD_LETTERED, reason="retries exhausted")
    item = raw()
    assert item["status"] == DeliveryStatus.DEAD_LETTERED
    assert item["dead_letter_reason"] == "retries exhausted"
    assert item["hand_on_pending"] == 2


def test_a_final_answer_clears_a_pending_hand_on(table: str) -> None:
    create()
    attempt(1, DeliveryStatus.RETRYING)
    assert attempt(2, DeliveryStatus.GONE)
    item = raw()
    assert item["status"] == DeliveryStatus.GONE and "hand_on_pending" not in item


# --------------------------------------------------------------------------- rounds


def test_a_new_round_starts_from_attempt_one_and_keeps_the_history(table: str) -> None:
    create()
    attempt(1, DeliveryStatus.RETRYING)
    attempt(2, DeliveryStatus.DEAD_LETTERED, reason="retries exhausted")
    assert deliveries.start_round("task_1", "evt_1", now=NOW + timedelta(hours=1), max_rounds=3) == 2
    item = raw()
    assert item["round"] == 2 and item["attempt_count"] == 0 and item["status"] == DeliveryStatus.PENDING
    assert "dead_letter_reason" not in item and "hand_on_pending" not in item
    assert len(item["attempts"]) == 2
    # The old round's chain is now stale; the new round's first attempt is logged.
    assert not attempt(3, DeliveryStatus.RETRYING, round_no=1)
    assert attempt(1, DeliveryStatus.DELIVERED, round_no=2)


def test_rounds_stop_at_the_maximum(table: str) -> None:
    create()
    assert deliveries.start_round("task_1", "evt_1", now=NOW, max_rounds=2) == 2
    assert deliveries.start_round("task_1", "evt_1", now=NOW, max_rounds=2) is None
    assert raw()["round"] == 2


def test_no_round_for_a_delivery_that_does_not_exist(table: str) -> None:
    assert deliveries.start_round("task_1", "evt_1", now=NOW, max_rounds=5) is None
    assert deliveries.get_delivery("task_1", "evt_1") is None  # and none was made


def test_final_statuses() -> None:
    assert {"delivered", "gone", "dead_lettered", "stopped"} == DeliveryStatus.FINAL
    assert DeliveryStatus.PENDING not in DeliveryStatus.FINAL and DeliveryStatus.RETRYING not in DeliveryStatus.FINAL
