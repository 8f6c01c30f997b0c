"""The pure parts: wait policy, execution naming, event envelope."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from bridge.models import JobStatus
from bridge.outcomes.events import build_outcome_event, detail_type, event_id
from bridge.tracking.loop import execution_name, next_wait_seconds, should_continue_in_new_execution


@pytest.mark.parametrize(
    ("interval", "to_deadline", "expected"), [(5, 3600, 5), (1, 3600, 3), (0, 3600, 3), (30, 10, 11), (30, -50, 3)]
)
def test_next_wait_never_goes_under_three_seconds(interval: int, to_deadline: float, expected: int) -> None:
    assert next_wait_seconds(interval, seconds_to_deadline=to_deadline) == expected


def test_loop_rolls_over_at_the_configured_poll_count() -> None:
    assert not should_continue_in_new_execution(499, 500)
    assert should_continue_in_new_execution(500, 500)


@pytest.mark.parametrize("task_id", ["v_8f3a92c1d4e74b6ea0b5f1d29c7e8a01", "weird id/with:chars", "x" * 200])
def test_execution_names_are_valid_deterministic_and_distinct_per_generation(task_id: str) -> None:
    first, again, next_one = execution_name(task_id), execution_name(task_id), execution_name(task_id, 1)
    assert first == again
    assert first != next_one
    for name in (first, next_one):
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,80}", name)


def test_sanitised_names_of_different_ids_do_not_collide() -> None:
    assert execution_name("a/b") != execution_name("a:b")


def test_plain_task_ids_are_used_as_execution_names() -> None:
    assert execution_name("v_8f3a92c1d4e74b6ea0b5f1d29c7e8a01") == "v_8f3a92c1d4e74b6ea0b5f1d29c7e8a01"


def test_completed_event_carries_the_contract_fields() -> None:
    finished = datetime(2026, 11, 24, 20, 2, 30, tzinfo=UTC)
    event = build_outcome_event(
        task_id="v_1",
        status=JobStatus.COMPLETED,
        model="video-default",
        submitted_at="2026-11-24T20:00:00.000Z",
        finished_at=finished,
        poll_count=12,
        url="https://cdn.test/v.mp4",
        url_ttl_s=86_400,
        metadata={"order": "42"},
    )
    assert event["type"] == "video.generation.completed"
    assert event["id"] == event_id("v_1", JobStatus.COMPLETED)
    assert event["time"] == "2026-11-24T20:02:30.000Z"
    data = event["data"]
    assert data["task_id"] == "v_1" and data["status"] == "completed" and data["model"] == "video-default"
    assert data["url"] == "https://cdn.test/v.mp4"
    assert data["url_expires_at"] == (finished + timedelta(days=1)).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )
    assert data["timings"]["elapsed_s"] == 150.0
    assert data["poll_count"] == 12
    assert data["error"] is None
    assert data["metadata"] == {"order": "42"}


def test_event_ids_are_stable_per_task_and_outcome_and_unique_across_them() -> None:
    assert event_id("v_1", JobStatus.FAILED) == event_id("v_1", JobStatus.FAILED)
    assert (
        len(
            {event_id("v_1", JobStatus.FAILED), event_id("v_1", JobStatus.COMPLETED), event_id("v_2", JobStatus.FAILED)}
        )
        == 3
    )


def test_failed_event_has_error_and_no_url() -> None:
    event = build_outcome_event(
        task_id="v_1",
        status=JobStatus.FAILED,
        model="m",
        submitted_at="2026-11-24T20:00:00.000Z",
        finished_at=datetime(2026, 11, 24, 20, 1, tzinfo=UTC),
        poll_count=3,
        error={"message": "content policy", "type": "generation_error", "code": "generation_failed"},
    )
    assert event["type"] == "video.generation.failed"
    assert event["data"]["url"] is None and event["data"]["url_expires_at"] is None
    assert event["data"]["error"]["code"] == "generation_failed"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (JobStatus.COMPLETED, "Video Generation Completed"),
        (JobStatus.FAILED, "Video Generation Failed"),
        (JobStatus.TIMED_OUT, "Video Generation Timed Out"),
    ],
)
def test_each_outcome_has_a_readable_detail_type(status: JobStatus, expected: str) -> None:
    assert detail_type(status) == expected
