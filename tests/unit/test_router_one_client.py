"""Upstream answers map to the right domain errors (httpx.MockTransport, no network), what the
real simulator's faults look like to the client, and what one poll step makes of each fault
(docs/upstream-faults.md)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from bridge import settings
from bridge.errors import UpstreamPermanentError, UpstreamRejected, UpstreamTransientError, UpstreamUnavailable
from bridge.models import UpstreamStatus
from bridge.outbound.retry_after import retry_after_seconds
from bridge.outcomes import checks, publishing
from bridge.store import jobs
from bridge.store.job_record import JobRecord
from bridge.timeutil import iso
from bridge.tracking import model_stats, poll_step
from bridge.tracking.running_events import RunningNotice
from bridge.upstream.router_one import RouterOneClient, UpstreamRetryLater
from bridge_local.simulator import RouterOneSimulator

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


# --- fault classification ----------------------------------------------------------------


def raising(exc: Exception) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


@pytest.mark.parametrize(
    "handler",
    [
        pytest.param(raising(httpx.ReadTimeout("slow")), id="read timeout past the per-request budget"),
        pytest.param(raising(httpx.ConnectError("refused")), id="connection refused"),
        pytest.param(raising(httpx.ReadError("[Errno 104] Connection reset by peer")), id="connection reset"),
        pytest.param(raising(httpx.RemoteProtocolError("Server disconnected")), id="closed without an answer"),
        pytest.param(lambda r: envelope(502, "api_error", "upstream_error"), id="502"),
        pytest.param(lambda r: envelope(503, "invalid_request_error", "odd"), id="5xx whatever the envelope"),
        pytest.param(lambda r: httpx.Response(504, text="<html>Gateway Timeout</html>"), id="504 html"),
        pytest.param(lambda r: httpx.Response(429, text=""), id="429 bare, no Retry-After"),
        pytest.param(lambda r: httpx.Response(429, headers={"Retry-After": "soon"}), id="429 unreadable Retry-After"),
        pytest.param(lambda r: httpx.Response(200, text='{"task_id": "v_abc", "sta'), id="truncated JSON"),
        pytest.param(lambda r: httpx.Response(200, text="<html>maintenance</html>"), id="not JSON"),
        pytest.param(lambda r: httpx.Response(200, content=b"\xff\xfe"), id="not UTF-8"),
        pytest.param(lambda r: httpx.Response(200, json=["processing"]), id="JSON but not an object"),
        pytest.param(lambda r: httpx.Response(200, json={"status": 3}), id="status not a string"),
    ],
)
def test_transient_faults_without_retry_after_raise_the_plain_retryable_error(handler) -> None:
    with pytest.raises(UpstreamTransientError) as caught:
        client_answering(handler).status("v_abc")
    assert type(caught.value) is UpstreamTransientError
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    ("status", "retry_after", "seconds"),
    [(429, "2", 2.0), (429, "0", 0.0), (503, "120", 120.0), (502, " 7 ", 7.0)],
)
def test_retry_after_on_a_transient_refusal_is_carried_to_the_poll_step(
    status: int, retry_after: str, seconds: float
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        answer = envelope(status, "rate_limit_error" if status == 429 else "api_error", "x")
        answer.headers["Retry-After"] = retry_after
        return answer

    with pytest.raises(UpstreamRetryLater) as caught:
        client_answering(handler).status("v_abc")
    assert caught.value.retry_after_s == seconds
    assert isinstance(caught.value, UpstreamTransientError)  # still a transient error for every caller
    assert str(status) in str(caught.value)


def test_retry_after_is_ignored_on_a_permanent_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        answer = envelope(404, "invalid_request_error", "task_not_found")
        answer.headers["Retry-After"] = "5"
        return answer

    with pytest.raises(UpstreamPermanentError):
        client_answering(handler).status("v_abc")


def test_retry_after_seconds_reads_delta_seconds_and_http_dates() -> None:
    now = datetime(2026, 11, 24, 20, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("30", now) == 30.0
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == 90.0
    assert retry_after_seconds("Tue, 24 Nov 2026 19:00:00 GMT", now) == 0.0  # in the past: now
    for unreadable in (None, "", "soon", "-5", "1.5", "\u00b2", "Tue, 99 Nov 2026"):
        assert retry_after_seconds(unreadable, now) is None


@pytest.mark.parametrize(
    "raw", ['{"status": "processing", "progress": NaN}', '{"status": "processing", "progress": Infinity}']
)
def test_a_progress_that_is_not_a_finite_number_counts_as_absent(raw: str) -> None:
    seen = client_answering(lambda r: httpx.Response(200, text=raw)).status("v_abc")
    assert seen.status == "processing" and seen.progress is None


def test_completed_without_url_is_read_as_it_came_for_the_poll_step_to_judge() -> None:
    seen = client_answering(lambda r: httpx.Response(200, json={"status": "completed"})).status("v_abc")
    assert seen.status == "completed" and seen.url is None


def test_the_simulators_faults_over_real_http_classify_as_documented() -> None:
    """Real sockets: a reset is a reset, a slow answer trips the client's own timeout."""
    script = ["reset", "truncated", "not_json", "429:retry-after=2", "429:retry-after=none", 503]
    with RouterOneSimulator(api_key=SECRET) as sim:
        sim.queue_next(poll_errors=script, slow_s=0.5, slow_polls=7, queue_s=0)
        with httpx.Client(timeout=0.25) as http:
            client = RouterOneClient(sim.url, lambda: SECRET, http)
            task_id = client.submit({"model": "m", "prompt": "p"}).task_id
            # The first 7 polls answer 0.5 s late, past the 0.25 s budget, whatever they would say.
            for _ in range(7):
                with pytest.raises(UpstreamTransientError, match="in time"):
                    client.status(task_id)
        sim.queue_next(poll_errors=script, queue_s=0)
        with httpx.Client(timeout=5) as http:
            client = RouterOneClient(sim.url, lambda: SECRET, http)
            task_id = client.submit({"model": "m", "prompt": "p"}).task_id
            outcomes: list[Any] = []
            for _ in script:
                with pytest.raises(UpstreamTransientError) as caught:
                    client.status(task_id)
                outcomes.append(getattr(caught.value, "retry_after_s", None))
            assert outcomes == [None, None, None, 2.0, None, None]
            assert client.status(task_id).status == "processing"


# --- what one poll step makes of each fault -----------------------------------------------

TASK = "v_" + "f" * 32
T0 = datetime(2026, 11, 24, 20, 0, 0, tzinfo=UTC)


class FakeUpstream:
    """Answers (or raises) the scripted things in turn."""

    def __init__(self, *answers: dict[str, Any] | Exception) -> None:
        self.answers = list(answers)

    def status(self, task_id: str) -> UpstreamStatus:
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return UpstreamStatus.model_validate(answer)


@pytest.fixture
def row(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """One job row in memory behind the jobs-module calls the poll step makes; fixed 3 s polling."""
    monkeypatch.setenv("POLLING_POLICY", "fixed")
    monkeypatch.setenv("POLL_INTERVAL_SECONDS", "3")
    # The integration session lowers this to 3 for its own jobs; these steps must never roll over.
    monkeypatch.setenv("MAX_POLLS_PER_EXECUTION", "500")
    settings.get_settings.cache_clear()
    job: dict[str, Any] = {
        "task_id": TASK,
        "status": "pending",
        "progress": None,
        "poll_count": 0,
        "model": "video-default",
        "created_at": iso(T0),
        "deadline_at": int(T0.timestamp()) + 7200,
        "expires_at": int(T0.timestamp()) + 86_400,
    }

    def record_progress(task_id: str, **fields: Any) -> JobRecord | None:
        if job["status"] in ("completed", "failed", "timed_out", "canceled"):
            return None
        previous = JobRecord.model_validate(job)
        job.update(status=fields["status"], progress=fields["progress"], upstream_status=fields["upstream_status"])
        job["poll_count"] += 1
        return previous

    def record_outcome(task_id: str, *, fields: dict[str, Any], event: dict[str, Any], execution_id: Any) -> Any:
        job.update(fields, event=json.dumps(event))
        return event

    monkeypatch.setattr(jobs, "record_progress", record_progress)
    monkeypatch.setattr(jobs, "get_job", lambda task_id: JobRecord.model_validate(job))
    monkeypatch.setattr(jobs, "record_outcome", record_outcome)
    monkeypatch.setattr(model_stats, "record_duration", lambda model, seconds: None)
    # No queue here: the outcome check an outcome asks for is noted, not sent.
    monkeypatch.setattr(checks, "queue_check", lambda task_id, **_: job.update(check_queued=True))
    # Nor topic, bus or webhook queue: the outcome a poll sends is noted on the row.
    monkeypatch.setattr(publishing, "publish_outcome", lambda _job, event, now: job.update(published=event["id"]))
    yield job
    settings.get_settings.cache_clear()


def run_polls(monkeypatch: pytest.MonkeyPatch, *answers: dict[str, Any] | Exception) -> list[Any]:
    """Poll once per answer, feeding each step into the next as the state machine would."""
    upstream = FakeUpstream(*answers)
    monkeypatch.setattr(poll_step, "router_one", lambda: upstream)
    state: dict[str, Any] = {
        "task_id": TASK,
        "model": "video-default",
        "submitted_at": "2026-11-24T20:00:00.000Z",
        "deadline_at": int((T0 + timedelta(hours=2)).timestamp()),
        "next_wait_s": 3,
        "poll_memory": {},
    }
    steps: list[Any] = []
    now = T0
    for _ in answers:
        now += timedelta(seconds=state["next_wait_s"])
        try:
            step = poll_step.poll_once(state, now=now)
        except UpstreamTransientError as exc:
            steps.append(exc)  # the state machine retries with the same input
            continue
        steps.append(step)
        state = step.model_dump()
        if step.action == "finish":
            break
    return steps


def test_progress_going_backwards_is_recorded_as_the_highest_seen(
    monkeypatch: pytest.MonkeyPatch, row: dict[str, Any]
) -> None:
    recorded: list[Any] = []

    def notice(previous: dict[str, Any], **kwargs: Any) -> RunningNotice:
        recorded.append(kwargs["progress"])
        return RunningNotice()

    monkeypatch.setattr(poll_step, "running_notice", notice)
    answers = [{"status": "processing", "progress": p} for p in (10, 40, 60, 20, 35, 70)]
    steps = run_polls(
        monkeypatch, *answers, {"status": "processing"}, {"status": "completed", "url": "https://cdn.test/v.mp4"}
    )
    assert recorded == [10, 40, 60, 60, 60, 70, 70]  # what the row and the running events got
    # The poll policy still sees the drop (its samples restart) ...
    assert steps[3].poll_memory.samples[-1][1] == 20 and len(steps[3].poll_memory.samples) == 1
    # ... and the highest value travels with the loop.
    assert steps[3].poll_memory.progress_high == 60
    assert steps[-1].action == "finish" and row["status"] == "completed" and row["progress"] == 100
    assert row["published"] == json.loads(row["event"])["id"]


def test_unknown_status_keeps_the_job_running(monkeypatch: pytest.MonkeyPatch, row: dict[str, Any]) -> None:
    steps = run_polls(
        monkeypatch,
        {"status": "upscaling", "progress": 70},
        {"status": "upscaling"},
        {"status": "completed", "url": "https://cdn.test/v.mp4"},
    )
    assert [s.action for s in steps] == ["wait", "wait", "finish"]
    assert steps[0].status == "processing" and steps[0].next_wait_s == 3
    assert row["status"] == "completed"


def test_completed_without_url_is_asked_again_then_fails_with_missing_video_url(
    monkeypatch: pytest.MonkeyPatch, row: dict[str, Any]
) -> None:
    done = {"status": "completed"}
    steps = run_polls(monkeypatch, {"status": "processing", "progress": 90}, done, done, done)
    assert [s.action for s in steps] == ["wait", "wait", "wait", "finish"]
    assert [s.next_wait_s for s in steps[1:3]] == [3, 3]
    assert row["status"] == "failed"
    assert row["error"]["code"] == "missing_video_url" and row["error"]["type"] == "api_error"
    assert json.loads(row["event"])["data"]["status"] == "failed"


def test_a_url_that_lags_its_status_still_completes(monkeypatch: pytest.MonkeyPatch, row: dict[str, Any]) -> None:
    steps = run_polls(
        monkeypatch, {"status": "completed", "url": ""}, {"status": "completed", "url": "https://cdn.test/v.mp4"}
    )
    assert [s.action for s in steps] == ["wait", "finish"]
    assert row["status"] == "completed" and row["url"] == "https://cdn.test/v.mp4"


def test_retry_after_becomes_the_next_wait_within_bounds(monkeypatch: pytest.MonkeyPatch, row: dict[str, Any]) -> None:
    steps = run_polls(
        monkeypatch,
        UpstreamRetryLater("429", 7.2),
        UpstreamRetryLater("429", 1),
        UpstreamRetryLater("429", 3600),
        UpstreamTransientError("429 without Retry-After"),
    )
    assert [s.next_wait_s for s in steps[:3]] == [8, 3, 60]  # rounded up, 3 s floor, PollMaxWaitSeconds cap
    assert all(s.action == "wait" for s in steps[:3])
    assert type(steps[3]) is UpstreamTransientError  # no Retry-After: the state machine backs off
    assert row["poll_count"] == 0  # nothing was learnt, nothing recorded


def test_transient_faults_past_the_deadline_end_the_job_as_timed_out(
    monkeypatch: pytest.MonkeyPatch, row: dict[str, Any]
) -> None:
    upstream = FakeUpstream(UpstreamTransientError("Router One did not answer the GET in time"))
    monkeypatch.setattr(poll_step, "router_one", lambda: upstream)
    state = {
        "task_id": TASK,
        "model": "m",
        "submitted_at": "2026-11-24T20:00:00.000Z",
        "deadline_at": int(T0.timestamp()),
        "next_wait_s": 3,
    }
    step = poll_step.poll_once(state, now=T0 + timedelta(seconds=1))
    assert step.action == "finish" and row["status"] == "timed_out" and "published" in row
    assert row["error"]["code"] == "deadline_exceeded" and "in time" in row["error"]["message"]


@pytest.mark.parametrize(
    ("upstream_status", "type_", "code", "answered", "answered_code"),
    [
        # The bridge's own key refused: an operator problem, never the caller's 401.
        (401, "authentication_error", "invalid_api_key", 502, "upstream_authentication_failed"),
        (402, "billing_error", "insufficient_balance", 402, "insufficient_balance"),
        (429, "rate_limit_error", "rate_limited", 429, "rate_limited"),
        # Statuses the API does not document become the nearest one it does, Router One's code kept.
        (404, "invalid_request_error", "model_not_found", 400, "model_not_found"),
        (418, "invalid_request_error", "teapot", 400, "teapot"),
        (500, "api_error", "upstream_error", 502, "upstream_error"),
        (507, "api_error", "storage_full", 502, "storage_full"),
    ],
)
def test_submit_refusals_reach_the_caller_with_a_documented_status(
    monkeypatch: pytest.MonkeyPatch, upstream_status: int, type_: str, code: str, answered: int, answered_code: str
) -> None:
    from bridge.submit import submission

    client = client_answering(lambda r: envelope(upstream_status, type_, code))
    monkeypatch.setattr(submission, "router_one", lambda: client)
    with pytest.raises((UpstreamRejected, UpstreamUnavailable)) as caught:
        submission.submit_upstream({"model": "m", "prompt": "p"})
    assert (caught.value.status, caught.value.code) == (answered, answered_code)
    assert SECRET not in caught.value.message
