"""Cancel and list on their own (`bridge.outcomes.lifecycle`): the outcome written once, the loop stopped,
the event published once through its own execution; pages, filters and cursors of the list."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bridge.clients import jobs_table, stepfunctions
from bridge.errors import Conflict, InvalidRequest, TaskNotFound
from bridge.models import JobStatus
from bridge.outcomes import lifecycle
from bridge.outcomes.checks import CANCEL_FINALIZER, CANCEL_PUBLISH_SUFFIX
from bridge.settings import SettingsError, get_settings
from bridge.store import cursors as paging
from bridge.store import jobs
from bridge.store.dynamo import plain
from bridge.store.job_record import JobRecord
from bridge.tenancy import Caller
from bridge.tracking.loop import execution_arn, execution_name
from bridge_local.emulator import DUMMY_ROLE_ARN, EmbeddedAws
from bridge_local.local_stack import forget_cached_clients
from bridge_local.testing import create_table_like, environ_restored

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
# A loop that stays running until stopped, as a job's tracking execution does while it waits.
WAITING = {"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 600, "End": True}}}


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmbeddedAws]:
    # One server, table set, queue and state machine for the module; every test has owners of its own.
    with environ_restored(), EmbeddedAws() as embedded:
        suffix = uuid.uuid4().hex[:8]
        dynamodb = embedded.client("dynamodb")
        # The keys and indexes template.yaml gives its tables (the owner-status index on, as by default).
        create_table_like(dynamodb, "JobsTable", f"jobs-{suffix}")
        create_table_like(dynamodb, "WebhookDeliveriesTable", f"deliveries-{suffix}")
        create_table_like(dynamodb, "WebhookEndpointsTable", f"endpoints-{suffix}")
        queue = embedded.client("sqs").create_queue(QueueName=f"reconcile-{suffix}")["QueueUrl"]
        machine = embedded.client("stepfunctions").create_state_machine(
            name=f"bridge-{suffix}", definition=json.dumps(WAITING), roleArn=DUMMY_ROLE_ARN
        )["stateMachineArn"]
        os.environ.update(
            JOBS_TABLE_NAME=f"jobs-{suffix}",
            WEBHOOK_DELIVERIES_TABLE_NAME=f"deliveries-{suffix}",
            WEBHOOK_ENDPOINTS_TABLE_NAME=f"endpoints-{suffix}",
            RECONCILE_QUEUE_URL=queue,
            STATE_MACHINE_ARN=machine,
            # Checks are delayed two minutes by default; here they are read at once.
            OUTCOME_CHECK_DELAY_SECONDS="0",
        )
        forget_cached_clients()
        yield embedded
    forget_cached_clients()


@pytest.fixture
def aws(emulator: EmbeddedAws) -> Iterator[EmbeddedAws]:
    get_settings.cache_clear()
    yield emulator
    get_settings.cache_clear()


def stored(task_id: str) -> dict[str, Any]:
    """The job's row as DynamoDB holds it (attributes no model carries included)."""
    return plain(jobs_table().get_item(Key={"task_id": task_id}, ConsistentRead=True)["Item"])


def owner() -> Caller:
    return Caller(owner_id="own_" + uuid.uuid4().hex)


def new_job(caller: Caller, *, minutes: int = 0, callback_events: list[str] | None = None, track: bool = False) -> str:
    task_id = f"task_{uuid.uuid4().hex[:12]}"
    created = T0 + timedelta(minutes=minutes)
    jobs.create_job(
        JobRecord.accepted(
            task_id=task_id,
            owner_id=caller.owner_id,
            model="video-default",
            request={"model": "video-default", "prompt": "p"},
            now=created,
            deadline_s=int((T0 - created).total_seconds()) + 7200,
            retention_days=30,
            callback_url="https://hooks.example.com/in" if callback_events else None,
            webhook_events=callback_events,
            metadata={"order": "7"},
            caller_key_ciphertext=None,
        )
    )
    if track:
        sfn = stepfunctions()
        arn = sfn.start_execution(
            stateMachineArn=os.environ["STATE_MACHINE_ARN"], name=execution_name(task_id), input="{}"
        )["executionArn"]
        jobs.record_progress(
            task_id,
            status="processing",
            progress=10,
            upstream_status="processing",
            now=T0 + timedelta(seconds=30),
            execution_id=arn,
            owner_id=caller.owner_id,
        )
    return task_id


def checks_queued(aws: EmbeddedAws) -> list[str]:
    sqs = aws.client("sqs")
    seen: list[str] = []
    while True:
        answer = sqs.receive_message(QueueUrl=os.environ["RECONCILE_QUEUE_URL"], MaxNumberOfMessages=10)
        messages = answer.get("Messages", [])
        if not messages:
            return seen
        for message in messages:
            seen.append(message["Body"])
            sqs.delete_message(QueueUrl=os.environ["RECONCILE_QUEUE_URL"], ReceiptHandle=message["ReceiptHandle"])


def execution(aws: EmbeddedAws, task_id: str, suffix: str = "") -> dict[str, Any] | None:
    sfn = aws.client("stepfunctions")
    arn = execution_arn(os.environ["STATE_MACHINE_ARN"], execution_name(task_id) + suffix)
    try:
        description: dict[str, Any] = sfn.describe_execution(executionArn=arn)
    except sfn.exceptions.ExecutionDoesNotExist:
        return None
    return description


# --------------------------------------------------------------------------- cancel


def test_cancel_records_the_outcome_stops_the_loop_and_publishes_once(aws: EmbeddedAws) -> None:
    caller = owner()
    task_id = new_job(caller, callback_events=["canceled"], track=True)
    checks_queued(aws)  # drain what other tests left: the queue is the module's

    view = lifecycle.cancel(task_id, caller)

    assert view["task_id"] == task_id and view["status"] == "canceled"
    assert view["error"]["code"] == "canceled"
    row = stored(task_id)
    assert row["finalized_by"] == CANCEL_FINALIZER
    assert row["owner_status"] == f"{caller.owner_id}#canceled"
    assert row["finished_at"] and row[jobs.UNPUBLISHED_FIELD]
    event = json.loads(row["event"])
    assert event["id"] == row["event_id"] and event["data"]["status"] == "canceled"
    assert event["data"]["metadata"] == {"order": "7"} and event["data"]["progress"] == 10
    # The reconciler was asked to check the outcome.
    [check] = checks_queued(aws)
    assert task_id in check
    # The tracking loop was stopped.
    tracking = execution(aws, task_id)
    assert tracking is not None and tracking["status"] == "ABORTED"
    # The event goes out through an execution of its own, whose poll invocation sends the row's outcome.
    publishing = execution(aws, task_id, CANCEL_PUBLISH_SUFFIX)
    assert publishing is not None
    publish_input = json.loads(publishing["input"])
    assert publish_input["action"] == "publish" and publish_input["task_id"] == task_id
    assert publish_input["next_wait_s"] == 0 and "event" not in publish_input


def test_a_second_cancel_answers_the_same_and_publishes_the_same_event(aws: EmbeddedAws) -> None:
    caller = owner()
    task_id = new_job(caller, track=True)
    first = lifecycle.cancel(task_id, caller)
    event_id = stored(task_id)["event_id"]
    second = lifecycle.cancel(task_id, caller)
    assert second == first
    assert stored(task_id)["event_id"] == event_id
    # One publish execution: the second cancel starts none (its name is taken either way).
    publishing = execution(aws, task_id, CANCEL_PUBLISH_SUFFIX)
    assert publishing is not None and json.loads(publishing["input"])["action"] == "publish"


def test_a_finished_job_cannot_be_canceled_and_nothing_is_queued(aws: EmbeddedAws) -> None:
    caller = owner()
    task_id = new_job(caller)
    jobs.jobs_table().update_item(
        Key={"task_id": task_id},
        UpdateExpression="SET #s = :s, event_id = :e",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": "completed", ":e": "evt_done"},
    )
    checks_queued(aws)
    with pytest.raises(Conflict) as excinfo:
        lifecycle.cancel(task_id, caller)
    assert excinfo.value.code == "job_already_finished"
    assert "completed" in excinfo.value.message
    row = stored(task_id)
    assert row["status"] == "completed" and row["event_id"] == "evt_done"
    assert checks_queued(aws) == []
    assert execution(aws, task_id, CANCEL_PUBLISH_SUFFIX) is None


def test_a_poll_that_ends_the_job_first_wins_and_cancel_publishes_nothing(
    aws: EmbeddedAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    caller = owner()
    task_id = new_job(caller, track=True)
    stale = jobs.find_job(task_id, owner_id=caller.owner_id)  # what cancel read, before the poll's write
    poll_event = {"id": "evt_poll_outcome", "time": "2026-11-30T12:05:00Z", "data": {"status": "completed"}}
    assert jobs.record_outcome(task_id, fields={"status": "completed"}, event=poll_event, execution_id="exec-poll")
    monkeypatch.setattr(jobs, "find_job", lambda *args, **kwargs: stale)

    with pytest.raises(Conflict) as excinfo:
        lifecycle.cancel(task_id, caller)
    assert excinfo.value.code == "job_already_finished"
    row = stored(task_id)
    assert row["status"] == "completed" and row["event_id"] == "evt_poll_outcome" and row["finalized_by"] == "exec-poll"
    assert execution(aws, task_id, CANCEL_PUBLISH_SUFFIX) is None
    tracking = execution(aws, task_id)
    assert tracking is not None and tracking["status"] == "RUNNING"  # the poll's loop ends on its own
    aws.client("stepfunctions").stop_execution(executionArn=tracking["executionArn"])


def test_another_owner_cannot_cancel_and_the_job_is_untouched(aws: EmbeddedAws) -> None:
    caller = owner()
    task_id = new_job(caller)
    for stranger in (owner(), Caller(owner_id=owner().owner_id, operator=True)):
        with pytest.raises(TaskNotFound):
            lifecycle.cancel(task_id, stranger)
    row = stored(task_id)
    assert row["status"] == "pending" and "event_id" not in row


def test_an_unknown_job_is_not_found(aws: EmbeddedAws) -> None:
    with pytest.raises(TaskNotFound):
        lifecycle.cancel("task_does_not_exist", owner())


def test_cancel_without_a_running_loop_still_records_and_publishes(aws: EmbeddedAws) -> None:
    caller = owner()
    task_id = new_job(caller)  # never tracked: nothing to stop
    assert lifecycle.cancel(task_id, caller)["status"] == "canceled"
    assert execution(aws, task_id) is None
    assert execution(aws, task_id, CANCEL_PUBLISH_SUFFIX) is not None


def test_cancel_without_a_state_machine_fails_loudly_and_changes_nothing(
    aws: EmbeddedAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    caller = owner()
    task_id = new_job(caller)
    monkeypatch.delenv("STATE_MACHINE_ARN")
    get_settings.cache_clear()
    try:
        with pytest.raises(SettingsError, match="STATE_MACHINE_ARN"):
            lifecycle.cancel(task_id, caller)
    finally:
        get_settings.cache_clear()
    assert stored(task_id)["status"] == JobStatus.PENDING


# --------------------------------------------------------------------------- list


def test_list_pages_newest_first_with_cursors(aws: EmbeddedAws) -> None:
    caller = owner()
    made = [new_job(caller, minutes=i) for i in range(5)]
    new_job(owner())  # someone else's

    pages: list[list[str]] = []
    cursor = None
    while True:
        page = lifecycle.list_jobs(caller, status=None, limit=2, cursor=cursor)
        assert page["object"] == "list"
        pages.append([job["task_id"] for job in page["data"]])
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        cursor = page["next_cursor"]
        assert isinstance(cursor, str) and "=" not in cursor
    listed = [task_id for page in pages for task_id in page]
    assert listed == list(reversed(made))
    assert all(len(page) <= 2 for page in pages)


def test_list_filters_by_status(aws: EmbeddedAws) -> None:
    caller = owner()
    keep = new_job(caller, minutes=1)
    other = new_job(caller, minutes=2)
    lifecycle.cancel(other, caller)
    assert [
        job["task_id"] for job in lifecycle.list_jobs(caller, status="pending", limit=None, cursor=None)["data"]
    ] == [keep]
    canceled = lifecycle.list_jobs(caller, status="canceled", limit=None, cursor=None)["data"]
    assert [(job["task_id"], job["status"]) for job in canceled] == [(other, "canceled")]


def test_an_operator_lists_everyone(aws: EmbeddedAws) -> None:
    a, b = owner(), owner()
    ids = {new_job(a, minutes=600), new_job(b, minutes=601)}
    operator = Caller(owner_id=owner().owner_id, operator=True)
    listed = {job["task_id"] for job in lifecycle.list_jobs(operator, status=None, limit=100, cursor=None)["data"]}
    assert ids <= listed
    # A plain caller sees its own only.
    assert {job["task_id"] for job in lifecycle.list_jobs(a, status=None, limit=100, cursor=None)["data"]} < ids


def test_default_page_size(aws: EmbeddedAws) -> None:
    caller = owner()
    for i in range(paging.DEFAULT_PAGE_SIZE + 1):
        new_job(caller, minutes=i)
    page = lifecycle.list_jobs(caller, status=None, limit=None, cursor=None)
    assert len(page["data"]) == paging.DEFAULT_PAGE_SIZE and page["has_more"]


@pytest.mark.parametrize(
    ("arguments", "param"),
    [
        ({"status": "running", "limit": None}, "status"),
        ({"status": None, "limit": 0}, "limit"),
        ({"status": None, "limit": paging.MAX_PAGE_SIZE + 1}, "limit"),
    ],
)
def test_list_refuses_bad_arguments(aws: EmbeddedAws, arguments: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as excinfo:
        lifecycle.list_jobs(owner(), cursor=None, **arguments)
    assert excinfo.value.param == param


def test_a_cursor_works_only_for_its_own_list(aws: EmbeddedAws) -> None:
    a, b = owner(), owner()
    for i in range(3):
        new_job(a, minutes=i)
        new_job(b, minutes=i)
    cursor_of_a = lifecycle.list_jobs(a, status=None, limit=1, cursor=None)["next_cursor"]
    assert cursor_of_a
    assert lifecycle.list_jobs(a, status=None, limit=1, cursor=cursor_of_a)["data"]
    operator = Caller(owner_id=owner().owner_id, operator=True)
    for caller, status in ((b, None), (a, "pending"), (operator, None)):
        with pytest.raises(InvalidRequest) as excinfo:
            lifecycle.list_jobs(caller, status=status, limit=1, cursor=cursor_of_a)
        assert excinfo.value.param == "cursor"


@pytest.mark.parametrize("cursor", ["not-base64!!", "bm90IGpzb24", "W10", "eyJ0YXNrX2lkIjogMX0"])
def test_garbage_cursors_are_refused(aws: EmbeddedAws, cursor: str) -> None:
    # Not base64; base64 of "not json"; of a list; of {"task_id": 1}.
    with pytest.raises(InvalidRequest) as excinfo:
        lifecycle.list_jobs(owner(), status=None, limit=5, cursor=cursor)
    assert excinfo.value.param == "cursor"
