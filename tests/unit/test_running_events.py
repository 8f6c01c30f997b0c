"""`started` and `progress` events on their own (`bridge.tracking.running_events`): which poll sends which,
to which channels, and how often, on rows written the way the poll writes them."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bridge.models import JobStatus
from bridge.settings import get_settings
from bridge.store import deliveries, jobs
from bridge.store.job_record import JobRecord
from bridge.timeutil import iso
from bridge.tracking.running_events import RUNNING_DETAIL_TYPES, RunningNotice, running_notice, started_claim
from bridge.tracking.state import LoopState
from bridge_local.emulator import EmbeddedAws
from bridge_local.local_stack import forget_cached_clients
from bridge_local.testing import create_table_like, environ_restored

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
INTERVAL_S = 30
OWNER = "own_" + "c" * 32


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmbeddedAws]:
    # One server and one pair of tables for the module; every test has jobs of its own.
    with environ_restored(), EmbeddedAws() as embedded:
        dynamodb = embedded.client("dynamodb")
        suffix = uuid.uuid4().hex[:8]
        # The key schemas of JobsTable and WebhookDeliveriesTable in template.yaml.
        create_table_like(dynamodb, "JobsTable", f"jobs-{suffix}")
        create_table_like(dynamodb, "WebhookDeliveriesTable", f"deliveries-{suffix}")
        create_table_like(dynamodb, "WebhookEndpointsTable", f"endpoints-{suffix}")
        os.environ["JOBS_TABLE_NAME"] = f"jobs-{suffix}"
        os.environ["WEBHOOK_DELIVERIES_TABLE_NAME"] = f"deliveries-{suffix}"
        os.environ["WEBHOOK_ENDPOINTS_TABLE_NAME"] = f"endpoints-{suffix}"
        os.environ["PROGRESS_EVENT_INTERVAL_SECONDS"] = str(INTERVAL_S)
        forget_cached_clients()
        yield embedded
    forget_cached_clients()


@pytest.fixture
def on_bus(emulator: EmbeddedAws, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PUBLISH_RUNNING_EVENTS", "true")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def off_bus(emulator: EmbeddedAws, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("PUBLISH_RUNNING_EVENTS", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def new_job(*, callback: bool = False, events: list[str] | None = None) -> str:
    task_id = f"task_{uuid.uuid4().hex[:12]}"
    jobs.create_job(
        JobRecord.accepted(
            task_id=task_id,
            owner_id=OWNER,
            model="video-default",
            request={"model": "video-default", "prompt": "p"},
            now=T0,
            deadline_s=7200,
            retention_days=30,
            callback_url="https://hooks.example.com/in" if callback else None,
            webhook_events=events,
            metadata={"order": "42"},
            caller_key_ciphertext=None,
        )
    )
    return task_id


def state(task_id: str, *, execution: str = "exec-1", poll: int = 1) -> LoopState:
    return LoopState(
        task_id=task_id,
        model="video-default",
        submitted_at=iso(T0),
        deadline_at=int(T0.timestamp()) + 7200,
        next_wait_s=5,
        execution_id=execution,
        polls_in_execution=poll,
    )


def poll(
    task_id: str,
    *,
    status: JobStatus = JobStatus.PROCESSING,
    progress: int | None = None,
    at: timedelta = timedelta(seconds=10),
    execution: str = "exec-1",
    number: int = 1,
) -> RunningNotice:
    """One poll as the poll function makes it: record what it saw (with its claim), then decide."""
    loop = state(task_id, execution=execution, poll=number)
    now = T0 + at
    previous = jobs.record_progress(
        task_id,
        status=status,
        progress=progress,
        upstream_status=str(status),
        now=now,
        execution_id=execution,
        owner_id=OWNER,
        started_by=started_claim(loop) if status == JobStatus.PROCESSING else None,
    )
    assert previous is not None
    return running_notice(previous, state=loop, status=status, progress=progress, now=now)


def kind(notice: RunningNotice) -> str | None:
    return notice.event["type"].removeprefix("video.generation.") if notice.event else None


# --------------------------------------------------------------------------- on the bus


def test_the_first_processing_poll_sends_started_on_the_bus(on_bus: None) -> None:
    task_id = new_job()
    notice = poll(task_id, progress=5)
    assert kind(notice) == "started"
    assert notice.detail_type == RUNNING_DETAIL_TYPES["started"] == "Video Generation Started"
    assert notice.webhook is None  # no callback on this job
    assert notice.event is not None
    data: dict[str, Any] = notice.event["data"]
    assert data["task_id"] == task_id and data["status"] == "processing" and data["progress"] == 5
    assert data["owner_id"] == OWNER and data["metadata"] == {"order": "42"} and data["poll_count"] == 1


def test_a_pending_poll_sends_nothing(on_bus: None) -> None:
    task_id = new_job()
    assert poll(task_id, status=JobStatus.PENDING) == RunningNotice()


def test_started_goes_out_once_and_later_polls_send_progress(on_bus: None) -> None:
    task_id = new_job()
    assert kind(poll(task_id, progress=5, number=1)) == "started"
    second = poll(task_id, progress=20, number=2, at=timedelta(seconds=20))
    assert kind(second) == "progress"
    assert second.detail_type == "Video Generation Progress"
    assert second.event is not None and second.event["data"]["progress"] == 20
    assert second.event["data"]["poll_count"] == 2
    # No further `started`, whatever the progress does.
    third = poll(task_id, progress=20, number=3, at=timedelta(seconds=90))
    assert third == RunningNotice()


def test_a_retried_poll_sends_started_again_with_the_same_id(on_bus: None) -> None:
    task_id = new_job()
    first = poll(task_id, number=1)
    retried = poll(task_id, number=1, at=timedelta(seconds=12))  # same execution and poll: same claim
    assert kind(first) == kind(retried) == "started"
    assert first.event is not None and retried.event is not None
    assert first.event["id"] == retried.event["id"]
    # Another poll of another execution does not hold the claim.
    assert kind(poll(task_id, execution="exec-2", number=1, at=timedelta(seconds=14))) != "started"


def test_a_row_processing_before_claims_existed_sends_no_started(on_bus: None) -> None:
    task_id = new_job()
    jobs.record_progress(task_id, status="processing", progress=None, upstream_status="processing", now=T0)
    assert jobs.get_job(task_id).started_by is None
    # The next poll's claim is the first on the row, but the row was processing already.
    assert poll(task_id, number=2) == RunningNotice()


def test_progress_is_throttled_to_one_per_interval_and_only_when_it_moved(on_bus: None) -> None:
    task_id = new_job()
    poll(task_id, progress=1, number=1, at=timedelta(seconds=0))  # started
    assert kind(poll(task_id, progress=10, number=2, at=timedelta(seconds=5))) == "progress"
    # Moved, but within the interval of the last progress event.
    assert poll(task_id, progress=20, number=3, at=timedelta(seconds=5 + INTERVAL_S - 1)) == RunningNotice()
    # The interval passed and it moved again.
    later = poll(task_id, progress=30, number=4, at=timedelta(seconds=5 + INTERVAL_S))
    assert kind(later) == "progress" and later.event is not None and later.event["data"]["progress"] == 30
    # Unchanged since the last poll: nothing, even long after.
    assert poll(task_id, progress=30, number=5, at=timedelta(minutes=10)) == RunningNotice()
    # No progress value at all: nothing.
    assert poll(task_id, progress=None, number=6, at=timedelta(minutes=20)) == RunningNotice()


def test_progress_ids_differ_per_value_and_repeat_for_the_same_value(on_bus: None) -> None:
    a, b = new_job(), new_job()
    poll(a, progress=1)
    poll(b, progress=1)
    one = poll(a, progress=40, number=2, at=timedelta(seconds=20))
    other = poll(b, progress=50, number=2, at=timedelta(seconds=20))
    assert one.event is not None and other.event is not None
    assert one.event["id"] != other.event["id"]


# --------------------------------------------------------------------------- webhooks


def test_with_the_bus_off_nothing_goes_out_without_a_webhook_that_asks(off_bus: None) -> None:
    task_id = new_job(callback=True, events=["completed", "failed"])
    assert poll(task_id, progress=5) == RunningNotice()
    assert poll(task_id, progress=50, number=2, at=timedelta(minutes=5)) == RunningNotice()
    assert deliveries.list_deliveries(task_id) == []
    # And no progress notification was claimed on the row.
    assert "progress_notified_at" not in jobs.get_job(task_id)


def test_a_webhook_that_asks_for_started_gets_it_without_the_bus(off_bus: None) -> None:
    task_id = new_job(callback=True, events=["started"])
    notice = poll(task_id, progress=5)
    assert notice.event is None and notice.detail_type is None
    assert notice.webhook is not None and notice.webhook["task_id"] == task_id
    [delivery] = deliveries.list_deliveries(task_id)
    assert delivery["event_type"] == "video.generation.started"
    assert notice.webhook["event_id"] == delivery["event_id"]
    # A retry of the same poll logs nothing new and queues nothing twice.
    assert poll(task_id, progress=5, at=timedelta(seconds=11)).webhook is None
    assert len(deliveries.list_deliveries(task_id)) == 1
    # `progress` was not asked for.
    assert poll(task_id, progress=60, number=2, at=timedelta(minutes=5)) == RunningNotice()


def test_a_webhook_that_asks_only_for_progress_gets_progress_from_the_first_poll(off_bus: None) -> None:
    task_id = new_job(callback=True, events=["progress"])
    notice = poll(task_id, progress=5)
    assert notice.webhook is not None and notice.event is None
    [delivery] = deliveries.list_deliveries(task_id)
    assert delivery["event_type"] == "video.generation.progress"


def test_on_the_bus_a_webhook_that_asks_gets_the_same_event(on_bus: None) -> None:
    task_id = new_job(callback=True, events=["started", "progress"])
    notice = poll(task_id, progress=5)
    assert notice.event is not None and notice.webhook is not None
    assert notice.webhook["event_id"] == notice.event["id"]


def test_a_filter_without_a_callback_url_asks_for_nothing(off_bus: None) -> None:
    task_id = new_job()
    jobs.jobs_table().update_item(
        Key={"task_id": task_id},
        UpdateExpression="SET webhook_events_filter = :f",
        ExpressionAttributeValues={":f": ["started", "progress"]},
    )
    assert poll(task_id, progress=5) == RunningNotice()


def test_started_claim_names_the_execution_and_poll() -> None:
    assert started_claim(state("t", execution="exec-9", poll=4)) == "exec-9#4"
    assert started_claim(state("t", execution=None, poll=0)) == "unknown#0"  # type: ignore[arg-type]
