"""The Router One simulator, exercised over real HTTP with a fake clock (no sleeping)."""

from __future__ import annotations

import itertools
import json
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge_local.simulator import ApiError, RouterOneSimulator, parse_directive, parse_faults
from bridge_local.simulator import main as simulator_main

KEY = "sk-local-simulator"
AUTH = {"Authorization": f"Bearer {KEY}"}
SUBMIT = "/v1/videos/generations"
TASK_ID_RE = re.compile(r"^v_[0-9a-f]{32}$")
REPO_ROOT = Path(__file__).resolve().parents[2]


class FakeClock:
    """Monotonic clock the tests move by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sim(clock: FakeClock) -> Iterator[RouterOneSimulator]:
    with RouterOneSimulator(clock=clock) as simulator:
        yield simulator


@pytest.fixture
def client(sim: RouterOneSimulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.url, headers=AUTH, timeout=10) as http:
        yield http


def submit(client: httpx.Client, prompt: str = "a cat on a skateboard", **extra: Any) -> httpx.Response:
    return client.post(SUBMIT, json={"model": "video-1", "prompt": prompt, **extra})


def submit_ok(client: httpx.Client, prompt: str = "a cat on a skateboard", **extra: Any) -> str:
    response = submit(client, prompt, **extra)
    assert response.status_code == 202, response.text
    return response.json()["task_id"]


def poll(client: httpx.Client, task_id: str) -> dict[str, Any]:
    response = client.get(f"{SUBMIT}/{task_id}")
    assert response.status_code == 200, response.text
    return response.json()


def assert_error(response: httpx.Response, status: int, type_: str, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["type"] == type_
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


# --- submit and the job timeline -------------------------------------------------------


def test_submit_returns_202_with_pending_task(client: httpx.Client) -> None:
    first = submit(client)
    second = submit(client)
    assert first.status_code == 202
    assert first.headers["content-type"] == "application/json"
    body = first.json()
    assert set(body) == {"task_id", "status"}
    assert body["status"] == "pending"
    assert TASK_ID_RE.match(body["task_id"])
    assert second.json()["task_id"] != body["task_id"]


def test_timeline_pending_processing_completed(sim: RouterOneSimulator, client: httpx.Client, clock: FakeClock) -> None:
    task_id = submit_ok(client)  # defaults: queue 1 s, run 8 s, linear, completed

    assert poll(client, task_id) == {"task_id": task_id, "status": "pending"}
    clock.advance(0.99)
    assert poll(client, task_id)["status"] == "pending"

    seen = []
    for _ in range(8):
        clock.advance(1.0)
        state = poll(client, task_id)
        assert state["status"] == "processing"
        assert "url" not in state and "error" not in state
        seen.append(state["progress"])
    assert seen == sorted(seen) and len(set(seen)) == len(seen)  # linear: strictly rising
    assert all(isinstance(p, int) and 0 <= p <= 100 for p in seen)
    assert seen[-1] >= 85

    clock.advance(0.02)  # 9.01 s after submit
    done = poll(client, task_id)
    assert done == {
        "task_id": task_id,
        "status": "completed",
        "url": f"{sim.url}/files/{task_id}.mp4",
    }
    video = httpx.get(done["url"], timeout=10)
    assert video.status_code == 200
    assert video.headers["content-type"] == "video/mp4"
    assert video.content[4:8] == b"ftyp"


def test_file_is_not_served_before_completion(client: httpx.Client) -> None:
    task_id = submit_ok(client)
    assert_error(client.get(f"/files/{task_id}.mp4"), 404, "invalid_request_error", "file_not_found")


def test_failed_outcome_carries_error(clock: FakeClock) -> None:
    failing = RouterOneSimulator(outcome="failed", clock=clock)
    with failing, httpx.Client(base_url=failing.url, headers=AUTH, timeout=10) as http:
        task_id = submit_ok(http)
        clock.advance(9)
        assert poll(http, task_id) == {
            "task_id": task_id,
            "status": "failed",
            "error": {"message": "content policy violation", "code": "generation_failed"},
        }


def test_progress_none_omits_progress(sim: RouterOneSimulator, client: httpx.Client, clock: FakeClock) -> None:
    sim.queue_next(progress="none")
    task_id = submit_ok(client)
    clock.advance(3)
    assert poll(client, task_id) == {"task_id": task_id, "status": "processing"}


def test_progress_stepped_stalls_and_jumps(sim: RouterOneSimulator, client: httpx.Client, clock: FakeClock) -> None:
    sim.queue_next(progress="stepped", queue_s=0, run_s=10)
    task_id = submit_ok(client)
    values = []
    for _ in range(100):  # sample every 0.1 s across the run
        values.append(poll(client, task_id)["progress"])
        clock.advance(0.1)
    assert values == sorted(values)  # never goes backwards
    jumps = {b - a for a, b in itertools.pairwise(values) if b != a}
    assert len(jumps) >= 3  # uneven step sizes
    assert max(jumps) > 10
    assert sum(1 for a, b in itertools.pairwise(values) if a == b) > 50  # mostly stalled
    assert 90 <= values[-1] < 100  # ~95 before the end
    assert poll(client, task_id)["status"] == "completed"


# --- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer sk-wrong"}, {"Authorization": KEY}, {"Authorization": f"Basic {KEY}"}],
    ids=["missing", "wrong-key", "no-scheme", "basic-scheme"],
)
def test_submit_rejects_bad_key(sim: RouterOneSimulator, headers: dict[str, str]) -> None:
    response = httpx.post(sim.url + SUBMIT, json={"model": "m", "prompt": "p"}, headers=headers)
    assert_error(response, 401, "authentication_error", "invalid_api_key")
    assert KEY not in response.text


def test_status_rejects_bad_key(sim: RouterOneSimulator, client: httpx.Client) -> None:
    task_id = submit_ok(client)
    for headers in ({}, {"Authorization": "Bearer sk-wrong"}):
        response = httpx.get(f"{sim.url}{SUBMIT}/{task_id}", headers=headers)
        assert_error(response, 401, "authentication_error", "invalid_api_key")
    assert sim.task(task_id)["polls"] == 0


def test_api_key_can_be_changed_at_run_time(sim: RouterOneSimulator, client: httpx.Client) -> None:
    reply = client.post("/_sim/config", json={"api_key": "sk-other"})
    assert reply.status_code == 200 and "sk-other" not in reply.text
    assert_error(submit(client), 401, "authentication_error", "invalid_api_key")
    response = httpx.post(
        sim.url + SUBMIT, json={"model": "m", "prompt": "p"}, headers={"Authorization": "Bearer sk-other"}
    )
    assert response.status_code == 202


def test_insufficient_balance_switch(client: httpx.Client) -> None:
    assert client.post("/_sim/config", json={"insufficient_balance": True}).status_code == 200
    assert_error(submit(client), 402, "billing_error", "insufficient_balance")
    client.post("/_sim/config", json={"insufficient_balance": False})
    assert submit(client).status_code == 202


def test_insufficient_balance_from_constructor(clock: FakeClock) -> None:
    broke = RouterOneSimulator(insufficient_balance=True, clock=clock)
    with broke, httpx.Client(base_url=broke.url, headers=AUTH) as http:
        assert_error(submit(http), 402, "billing_error", "insufficient_balance")


@pytest.mark.parametrize(
    "extra",
    [
        {"image_url": "https://img.example/oversized.png"},
        {"image_urls": ["https://img.example/ok.png", "https://img.example/big-OVERSIZED.jpg"]},
    ],
    ids=["image_url", "image_urls"],
)
def test_oversized_reference_image(client: httpx.Client, extra: dict[str, Any]) -> None:
    assert_error(submit(client, **extra), 400, "invalid_request_error", "reference_image_invalid")


def test_normal_reference_images_are_accepted(client: httpx.Client) -> None:
    response = submit(client, image_url="https://img.example/a.png", image_urls=["https://img.example/b.png"])
    assert response.status_code == 202


def test_unknown_task_is_404(client: httpx.Client) -> None:
    missing = "v_" + "0" * 32
    assert_error(client.get(f"{SUBMIT}/{missing}"), 404, "invalid_request_error", "task_not_found")


@pytest.mark.parametrize(
    "task_id",
    [
        "abc",
        "v_" + "a" * 32 + "%0A",
        "v_" + "a" * 31,
        "v_" + "A" * 32,
        "v_" + "g" * 32,
        "x_" + "a" * 32,
        "v_" + "a" * 33,
    ],
)
def test_malformed_task_id_is_400(client: httpx.Client, task_id: str) -> None:
    assert_error(client.get(f"{SUBMIT}/{task_id}"), 400, "invalid_request_error", "invalid_task_id")


@pytest.mark.parametrize(
    "body",
    [
        {"prompt": "p"},
        {"model": "m"},
        {"model": "", "prompt": "p"},
        {"model": "m", "prompt": "  "},
        {"model": "m", "prompt": 5},
        {"model": "m", "prompt": "p", "image_urls": ["a", "b", "c", "d"]},
        {"model": "m", "prompt": "p", "aspect_ratio": "4:3"},
        {"model": "m", "prompt": "p", "duration": "5"},
    ],
)
def test_invalid_submit_fields(client: httpx.Client, body: dict[str, Any]) -> None:
    assert_error(client.post(SUBMIT, json=body), 400, "invalid_request_error", "invalid_parameter")


@pytest.mark.parametrize("content", [b"[1, 2]", b"not json", b"", b"\xff\xfe"])
def test_submit_body_must_be_json_object(client: httpx.Client, content: bytes) -> None:
    response = client.post(SUBMIT, content=content, headers={"Content-Type": "application/json"})
    assert_error(response, 400, "invalid_request_error", "invalid_json")


def test_unknown_path_and_wrong_method_use_envelope(client: httpx.Client) -> None:
    assert_error(client.get("/v2/nothing"), 404, "invalid_request_error", "not_found")
    wrong = client.get(SUBMIT)
    assert_error(wrong, 405, "invalid_request_error", "method_not_allowed")
    assert wrong.headers["allow"] == "POST"


@pytest.mark.parametrize(
    ("request_line", "status"),
    [(b"THIS IS NOT HTTP", 400), (b"GARBAGE", 400), (b"BREW /pot HTTP/1.1", 501), (b"GET / HTTP/7.0", 505)],
)
def test_malformed_http_gets_json_not_html(sim: RouterOneSimulator, request_line: bytes, status: int) -> None:
    host, port = sim.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(request_line + b"\r\n\r\n")
        raw = b""
        while chunk := conn.recv(4096):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 %d" % status), raw
    assert b"content-type: application/json" in head.lower()
    assert b"Traceback" not in raw and b"<html" not in raw.lower()
    assert set(httpx.Response(status, content=body).json()) == {"error"}


# --- scripting: prompt directive and control API ---------------------------------------


def test_prompt_directive_scripts_the_job(sim: RouterOneSimulator, client: httpx.Client, clock: FakeClock) -> None:
    prompt = "a storm at sea [sim duration=5 outcome=failed progress=none queue=0 error_code=blocked]"
    task_id = submit_ok(client, prompt)
    assert poll(client, task_id) == {"task_id": task_id, "status": "processing"}
    clock.advance(4.9)
    assert poll(client, task_id)["status"] == "processing"
    clock.advance(0.1)
    state = poll(client, task_id)
    assert state["status"] == "failed"
    assert state["error"]["code"] == "blocked"
    assert sim.task(task_id)["config"]["run_s"] == 5.0


def test_parse_directive_handles_quotes_and_aliases() -> None:
    parsed = parse_directive('x [SIM queue_s=2 duration=3 error_message="too spicy" poll_errors=503,429]')
    assert parsed == {"queue_s": 2.0, "run_s": 3.0, "error_message": "too spicy", "poll_errors": [503, 429]}
    assert parse_directive("no directive here") == {}


@pytest.mark.parametrize(
    "prompt",
    ["[sim outcome=exploded]", "[sim duration=soon]", "[sim colour=red]", "[sim duration]", '[sim x="open]'],
)
def test_bad_directive_is_400(client: httpx.Client, prompt: str) -> None:
    assert_error(submit(client, prompt), 400, "invalid_request_error", "invalid_parameter")


def test_control_queue_is_fifo_and_beats_directive(
    sim: RouterOneSimulator, client: httpx.Client, clock: FakeClock
) -> None:
    assert client.post("/_sim/next", json={"queue_s": 0, "run_s": 2, "outcome": "failed"}).json() == {"queued": 1}
    sim.queue_next(queue_s=0, run_s=4)
    first = submit_ok(client, "[sim outcome=completed duration=100]")
    second = submit_ok(client)
    third = submit_ok(client)  # queue drained: defaults
    clock.advance(2)
    assert poll(client, first)["status"] == "failed"
    assert poll(client, second)["status"] == "processing"
    assert poll(client, third)["status"] == "processing"
    clock.advance(2)
    assert poll(client, second)["status"] == "completed"
    assert poll(client, third)["status"] == "processing"
    assert sim.task(third)["config"]["run_s"] == 8.0


def test_rejected_submit_does_not_spend_queued_config(sim: RouterOneSimulator, client: httpx.Client) -> None:
    forced = "v_" + "c" * 32
    sim.queue_next(task_id=forced)
    assert submit(client, image_url="http://x/oversized").status_code == 400
    assert submit_ok(client) == forced


def test_poll_errors_sequence_then_normal(sim: RouterOneSimulator, client: httpx.Client) -> None:
    response = client.post("/_sim/next", json={"poll_errors": [503, 429, 500]})
    assert response.status_code == 200
    task_id = submit_ok(client)

    first = client.get(f"{SUBMIT}/{task_id}")
    assert_error(first, 503, "api_error", "upstream_error")
    second = client.get(f"{SUBMIT}/{task_id}")
    assert_error(second, 429, "rate_limit_error", "rate_limited")
    assert second.headers["retry-after"] == "1"
    third = client.get(f"{SUBMIT}/{task_id}")
    assert_error(third, 500, "api_error", "upstream_error")
    assert "retry-after" not in third.headers
    assert poll(client, task_id)["status"] == "pending"

    record = sim.task(task_id)
    assert record["polls"] == 4
    assert record["poll_errors_remaining"] == []


def test_forced_task_id_and_duplicate(sim: RouterOneSimulator, client: httpx.Client, clock: FakeClock) -> None:
    forced = "v_" + "ab" * 16
    sim.queue_next(task_id=forced, queue_s=0)
    assert submit(client).json() == {"task_id": forced, "status": "pending"}
    clock.advance(1)
    client.post("/_sim/next", json={"task_id": forced})
    duplicate = submit(client, "another prompt")
    assert duplicate.status_code == 202
    assert duplicate.json() == {"task_id": forced, "status": "processing"}
    record = client.get(f"/_sim/tasks/{forced}").json()
    assert record["submits"] == 2
    assert record["request"]["prompt"] == "a cat on a skateboard"  # the original job is kept


def test_task_record_shows_request_and_polls(sim: RouterOneSimulator, client: httpx.Client) -> None:
    task_id = submit_ok(client, "dawn over a city", duration=5, aspect_ratio="16:9")
    poll(client, task_id)
    poll(client, task_id)
    record = httpx.get(f"{sim.url}/_sim/tasks/{task_id}")  # control endpoints need no auth
    assert record.status_code == 200
    body = record.json()
    assert body["polls"] == 2
    assert body["request"] == {"model": "video-1", "prompt": "dawn over a city", "duration": 5, "aspect_ratio": "16:9"}
    assert body["view"]["status"] == "pending"
    assert_error(httpx.get(f"{sim.url}/_sim/tasks/v_{'1' * 32}"), 404, "invalid_request_error", "task_not_found")
    with pytest.raises(KeyError):
        sim.task("v_" + "1" * 32)


@pytest.mark.parametrize(
    "body",
    [
        {"outcome": "exploded"},
        {"progress": "fast"},
        {"run_s": -1},
        {"queue_s": "1"},
        {"task_id": "v_nothex"},
        {"poll_errors": [200]},
        {"poll_errors": "503"},
        {"bogus": 1},
    ],
)
def test_control_next_validates(sim: RouterOneSimulator, client: httpx.Client, body: dict[str, Any]) -> None:
    assert_error(client.post("/_sim/next", json=body), 400, "invalid_request_error", "invalid_parameter")
    with pytest.raises(ValueError):
        sim.queue_next(**body)


def test_config_changes_defaults_and_reset_restores(
    sim: RouterOneSimulator, client: httpx.Client, clock: FakeClock
) -> None:
    changed = client.post("/_sim/config", json={"run_s": 2, "queue_s": 0, "outcome": "failed"}).json()
    assert changed["config"]["run_s"] == 2.0
    assert client.get("/_sim/config").json()["config"]["outcome"] == "failed"
    task_id = submit_ok(client)
    sim.queue_next(run_s=30)
    clock.advance(2)
    assert poll(client, task_id)["status"] == "failed"

    assert client.post("/_sim/reset").json() == {"reset": True}
    assert_error(client.get(f"{SUBMIT}/{task_id}"), 404, "invalid_request_error", "task_not_found")
    fresh = submit_ok(client)  # the run_s=30 entry was dropped by reset
    assert sim.task(fresh)["config"] == {
        "queue_s": 1.0,
        "run_s": 8.0,
        "outcome": "completed",
        "progress": "linear",
        "error_code": "generation_failed",
        "error_message": "content policy violation",
        "poll_errors": [],
        "reset": 0,
        "malformed": 0,
        "slow_s": 0.0,
        "slow_polls": None,
        "drip_s": 0.0,
        "drip_polls": None,
        "drip_submit": False,
        "video_bytes": 24,
        "video_stall_at": None,
        "unknown_status": None,
        "unknown_after": 0.5,
        "progress_backwards": False,
        "missing_url": False,
        "missing_url_polls": None,
    }


# --- server behaviour ------------------------------------------------------------------


def test_quiet_by_default(client: httpx.Client, capfd: pytest.CaptureFixture[str]) -> None:
    submit_ok(client)
    client.get("/nowhere")
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""


def test_verbose_logs_one_line_per_request_without_key(clock: FakeClock, capfd: pytest.CaptureFixture[str]) -> None:
    with RouterOneSimulator(clock=clock, verbose=True) as loud, httpx.Client(base_url=loud.url, headers=AUTH) as http:
        task_id = submit_ok(http)
        poll(http, task_id)
    err = capfd.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 2
    assert "POST /v1/videos/generations -> 202" in lines[0]
    assert f"GET /v1/videos/generations/{task_id} -> 200" in lines[1]
    assert KEY not in err


def test_start_stop_and_constructor_validation(clock: FakeClock) -> None:
    simulator = RouterOneSimulator(clock=clock).start()
    url = simulator.url
    assert httpx.get(url + "/_sim/health").json() == {"ok": True}
    with pytest.raises(RuntimeError):
        simulator.start()
    simulator.stop()
    simulator.stop()  # idempotent
    with pytest.raises(httpx.TransportError):
        httpx.get(url + "/_sim/health", timeout=2)
    with pytest.raises(ValueError):
        RouterOneSimulator(outcome="maybe")


def test_cli_runs_in_foreground_and_stops_on_ctrl_c() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge_local.simulator", "--port", "0", "--queue-s", "0", "--run-s", "0"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 15)
        assert ready, "simulator printed nothing"
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert match, line
        url = match.group(0)
        with httpx.Client(base_url=url, headers=AUTH, timeout=10) as http:
            task_id = submit_ok(http)
            assert poll(http, task_id)["status"] == "completed"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    assert "Traceback" not in err
    assert KEY not in line + out + err


# --- fault modes -----------------------------------------------------------------------


def status_url(task_id: str) -> str:
    return f"{SUBMIT}/{task_id}"


def faults_served(sim: RouterOneSimulator, task_id: str) -> list[Any]:
    return [entry["fault"] for entry in sim.task(task_id)["poll_log"]]


def test_poll_errors_script_mixes_statuses_retry_after_and_broken_answers(
    sim: RouterOneSimulator, client: httpx.Client
) -> None:
    script = ["429:retry-after=2", "429:retry-after=none", "502", 504, "reset", "truncated", "not_json"]
    assert client.post("/_sim/next", json={"poll_errors": script}).status_code == 200
    task_id = submit_ok(client)

    with_header = client.get(status_url(task_id))
    assert_error(with_header, 429, "rate_limit_error", "rate_limited")
    assert with_header.headers["retry-after"] == "2"
    without = client.get(status_url(task_id))
    assert_error(without, 429, "rate_limit_error", "rate_limited")
    assert "retry-after" not in without.headers
    assert_error(client.get(status_url(task_id)), 502, "api_error", "upstream_error")
    assert_error(client.get(status_url(task_id)), 504, "api_error", "upstream_error")
    with pytest.raises(httpx.TransportError):
        client.get(status_url(task_id))
    truncated = client.get(status_url(task_id))
    assert truncated.status_code == 200 and truncated.text.startswith('{"task_id"')
    with pytest.raises(ValueError):
        truncated.json()
    not_json = client.get(status_url(task_id))
    assert not_json.status_code == 200 and not_json.text.startswith("<html>")
    assert poll(client, task_id)["status"] == "pending"  # script spent: normal again

    record = sim.task(task_id)
    assert record["polls"] == 8
    assert record["poll_errors_remaining"] == []
    assert faults_served(sim, task_id) == [
        "429:retry-after=2",
        "429:retry-after=none",
        502,
        504,
        "reset",
        "truncated",
        "not_json",
        None,
    ]
    assert record["config"]["poll_errors"] == [
        "429:retry-after=2",
        "429:retry-after=none",
        502,
        504,
        "reset",
        "truncated",
        "not_json",
    ]


def test_retry_after_can_ride_on_a_5xx_too(sim: RouterOneSimulator, client: httpx.Client) -> None:
    sim.queue_next(poll_errors=["503:retry-after=7", 503])
    task_id = submit_ok(client)
    first = client.get(status_url(task_id))
    assert first.status_code == 503 and first.headers["retry-after"] == "7"
    assert "retry-after" not in client.get(status_url(task_id)).headers


def test_reset_counter_drops_the_next_polls_without_an_answer(sim: RouterOneSimulator, client: httpx.Client) -> None:
    sim.queue_next(reset=2)
    task_id = submit_ok(client)
    for _ in range(2):
        with pytest.raises(httpx.TransportError):
            client.get(status_url(task_id))
    assert poll(client, task_id)["status"] == "pending"
    assert sim.task(task_id)["polls"] == 3
    assert faults_served(sim, task_id) == ["reset", "reset", None]
    # The server itself is fine: other requests on new connections keep working.
    assert client.get("/_sim/health").json() == {"ok": True}


def test_malformed_counter_alternates_truncated_and_non_json_bodies(
    sim: RouterOneSimulator, client: httpx.Client, clock: FakeClock
) -> None:
    sim.queue_next(malformed=3, queue_s=0)
    task_id = submit_ok(client)
    clock.advance(4)
    bodies = [client.get(status_url(task_id)) for _ in range(3)]
    assert [b.status_code for b in bodies] == [200, 200, 200]
    for body in bodies:
        with pytest.raises(ValueError):
            body.json()
    assert bodies[0].headers["content-type"] == "application/json"
    full = json.dumps({"task_id": task_id, "status": "processing", "progress": 50})
    assert full.startswith(bodies[0].text) and len(bodies[0].text) < len(full)
    assert bodies[1].headers["content-type"] == "text/html"
    assert poll(client, task_id) == {"task_id": task_id, "status": "processing", "progress": 50}
    assert faults_served(sim, task_id) == ["truncated", "not_json", "truncated", None]


def test_answer_faults_are_served_in_order_script_then_resets_then_malformed(
    sim: RouterOneSimulator, client: httpx.Client
) -> None:
    sim.queue_next(poll_errors=[503], reset=1, malformed=1)
    task_id = submit_ok(client)
    assert sim.task(task_id)["poll_errors_remaining"] == [503, "reset", "truncated"]
    assert client.get(status_url(task_id)).status_code == 503
    with pytest.raises(httpx.TransportError):
        client.get(status_url(task_id))
    with pytest.raises(ValueError):
        client.get(status_url(task_id)).json()
    assert poll(client, task_id)["status"] == "pending"


def test_slow_polls_exceed_a_client_timeout_then_answer_promptly(sim: RouterOneSimulator) -> None:
    sim.queue_next(slow_s=0.6, slow_polls=1)
    with httpx.Client(base_url=sim.url, headers=AUTH, timeout=0.2) as impatient:
        task_id = submit_ok(impatient)
        with pytest.raises(httpx.ReadTimeout):
            impatient.get(status_url(task_id))
        assert poll(impatient, task_id)["status"] == "pending"
    record = sim.task(task_id)
    assert [entry["delay_s"] for entry in record["poll_log"]] == [0.6, 0.0]
    assert record["slow_polls_remaining"] == 0


def test_slow_answers_every_poll_when_slow_polls_is_null(sim: RouterOneSimulator, client: httpx.Client) -> None:
    sim.queue_next(slow_s=0.2, poll_errors=[503])
    task_id = submit_ok(client)
    started = time.monotonic()
    assert client.get(status_url(task_id)).status_code == 503  # slow whatever the answer
    poll(client, task_id)
    assert time.monotonic() - started >= 0.4
    assert sim.task(task_id)["slow_polls_remaining"] is None


def test_a_dripped_answer_outlasts_a_per_read_timeout_but_arrives_whole(sim: RouterOneSimulator) -> None:
    sim.queue_next(drip_s=0.01, drip_polls=1)
    with httpx.Client(base_url=sim.url, headers=AUTH, timeout=0.2) as per_read:
        task_id = submit_ok(per_read)
        started = time.monotonic()
        dripped = per_read.get(status_url(task_id))
        took = time.monotonic() - started
        assert dripped.json() == {"task_id": task_id, "status": "pending"}
        # One byte per 10 ms: longer than the 0.2 s read timeout in all, shorter for every read.
        assert took > 0.2 + len(dripped.content) * 0.005
        assert poll(per_read, task_id)["status"] == "pending"
    record = sim.task(task_id)
    assert [entry["drip_s"] for entry in record["poll_log"]] == [0.01, 0.0]
    assert record["drip_polls_remaining"] == 0


def test_drip_submit_drips_the_submit_answer_too(sim: RouterOneSimulator, client: httpx.Client) -> None:
    sim.queue_next(drip_s=0.01, drip_submit=True)
    started = time.monotonic()
    task_id = submit_ok(client)
    assert time.monotonic() - started > 0.5  # well over 100 bytes, 10 ms apart
    assert sim.task(task_id)["config"]["drip_submit"] is True


def test_a_stalled_video_download_stops_part_way_and_holds_the_connection(
    sim: RouterOneSimulator, client: httpx.Client, clock: FakeClock
) -> None:
    sim.queue_next(queue_s=0, run_s=1, video_bytes=100_000, video_stall_at=50_000)
    task_id = submit_ok(client)
    clock.advance(2)
    url = poll(client, task_id)["url"]
    received = b""
    with httpx.Client(timeout=0.5) as http, http.stream("GET", url) as response:
        assert response.headers["content-length"] == "100000"
        with pytest.raises(httpx.ReadTimeout):
            for chunk in response.iter_bytes():
                received += chunk
    assert len(received) == 50_000 and received.startswith(b"\x00\x00\x00\x18ftyp")
    sim.queue_next(queue_s=0, run_s=1, video_bytes=1000)
    whole = submit_ok(client)
    clock.advance(2)
    assert len(httpx.get(poll(client, whole)["url"], timeout=5).content) == 1000


@pytest.mark.parametrize(
    "bad", [{"drip_s": -1}, {"drip_s": 11}, {"drip_polls": -1}, {"video_bytes": 3}, {"video_stall_at": -5}]
)
def test_bad_drip_and_video_options_are_refused(sim: RouterOneSimulator, bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        sim.queue_next(**bad)


def test_unknown_status_replaces_processing_for_the_later_part_of_the_run(
    sim: RouterOneSimulator, client: httpx.Client, clock: FakeClock
) -> None:
    sim.queue_next(queue_s=0, run_s=10, unknown_status="upscaling", unknown_after=0.5)
    task_id = submit_ok(client)
    clock.advance(2)
    assert poll(client, task_id) == {"task_id": task_id, "status": "processing", "progress": 20}
    clock.advance(4)
    assert poll(client, task_id) == {"task_id": task_id, "status": "upscaling", "progress": 60}
    clock.advance(4)
    assert poll(client, task_id)["status"] == "completed"


def test_progress_backwards_drops_once_then_climbs_again_below_its_peak(
    sim: RouterOneSimulator, client: httpx.Client, clock: FakeClock
) -> None:
    sim.queue_next(queue_s=0, run_s=10, progress_backwards=True)
    task_id = submit_ok(client)
    values = []
    for _ in range(20):
        values.append(poll(client, task_id)["progress"])
        clock.advance(0.5)
    drops = [(a, b) for a, b in itertools.pairwise(values) if b < a]
    assert drops == [(55, 20)]
    assert values[:12] == sorted(values[:12]) and values[12:] == sorted(values[12:])
    assert max(values[12:]) < 60  # restarted at the same pace: below the old peak to the end
    assert [entry["progress"] for entry in sim.task(task_id)["poll_log"]] == values
    assert poll(client, task_id)["status"] == "completed"


def test_missing_url_for_good_or_for_the_first_completed_polls(
    sim: RouterOneSimulator, client: httpx.Client, clock: FakeClock
) -> None:
    sim.queue_next(queue_s=0, run_s=1, missing_url=True)
    never = submit_ok(client)
    sim.queue_next(queue_s=0, run_s=1, missing_url=True, missing_url_polls=2)
    lagging = submit_ok(client)
    clock.advance(2)
    for _ in range(3):
        assert poll(client, never) == {"task_id": never, "status": "completed"}
    assert poll(client, lagging) == {"task_id": lagging, "status": "completed"}
    assert poll(client, lagging) == {"task_id": lagging, "status": "completed"}
    assert poll(client, lagging)["url"] == f"{sim.url}/files/{lagging}.mp4"
    assert sim.task(lagging)["missing_url_polls_remaining"] == 0
    assert client.get(f"/files/{never}.mp4").status_code == 200  # the file exists, the answer lacks it


def test_missing_url_polls_are_spent_only_by_completed_answers(
    sim: RouterOneSimulator, client: httpx.Client, clock: FakeClock
) -> None:
    sim.queue_next(queue_s=0, run_s=2, missing_url=True, missing_url_polls=1, poll_errors=[500])
    task_id = submit_ok(client)
    assert client.get(status_url(task_id)).status_code == 500
    assert poll(client, task_id)["status"] == "processing"
    clock.advance(3)
    assert "url" not in poll(client, task_id)
    assert "url" in poll(client, task_id)


def test_server_default_faults_apply_to_every_new_job_until_reset(
    sim: RouterOneSimulator, client: httpx.Client
) -> None:
    reply = client.post("/_sim/config", json={"reset": 1, "poll_errors": ["429:retry-after=none"]})
    assert reply.status_code == 200
    assert reply.json()["config"]["poll_errors"] == ["429:retry-after=none"]
    assert client.get("/_sim/config").json()["config"]["reset"] == 1
    first, second = submit_ok(client), submit_ok(client)
    for task_id in (first, second):
        assert client.get(status_url(task_id)).status_code == 429
        with pytest.raises(httpx.TransportError):
            client.get(status_url(task_id))
        assert poll(client, task_id)["status"] == "pending"
    sim.queue_next(reset=0, poll_errors=[])  # one job opts out of the server's faults
    assert poll(client, submit_ok(client))["status"] == "pending"
    client.post("/_sim/reset")
    assert poll(client, submit_ok(client))["status"] == "pending"


def test_constructor_faults_are_server_defaults(clock: FakeClock) -> None:
    with RouterOneSimulator(clock=clock, faults={"malformed": 1}) as faulty:
        assert faulty.configure()["malformed"] == 1
        with httpx.Client(base_url=faulty.url, headers=AUTH) as http:
            task_id = submit_ok(http)
            with pytest.raises(ValueError):
                http.get(status_url(task_id)).json()
    with pytest.raises(ValueError):
        RouterOneSimulator(faults={"reset": -1})
    with pytest.raises(ValueError):
        RouterOneSimulator(faults={"run_s": 3})  # not a fault option


def test_directive_scripts_faults(sim: RouterOneSimulator, client: httpx.Client, clock: FakeClock) -> None:
    prompt = (
        "a lighthouse [sim queue=0 duration=4 poll_errors=503,429:retry-after=3,reset malformed=1 "
        "slow_s=0.05 slow_polls=1 unknown_status=upscaling unknown_after=0 missing_url=true missing_url_polls=all]"
    )
    task_id = submit_ok(client, prompt)
    config = sim.task(task_id)["config"]
    assert config["poll_errors"] == [503, "429:retry-after=3", "reset"]
    assert config["malformed"] == 1 and config["slow_s"] == 0.05 and config["slow_polls"] == 1
    assert config["unknown_status"] == "upscaling" and config["unknown_after"] == 0.0
    assert config["missing_url"] is True and config["missing_url_polls"] is None
    assert client.get(status_url(task_id)).status_code == 503
    assert client.get(status_url(task_id)).headers["retry-after"] == "3"
    with pytest.raises(httpx.TransportError):
        client.get(status_url(task_id))
    with pytest.raises(ValueError):
        client.get(status_url(task_id)).json()
    assert poll(client, task_id)["status"] == "upscaling"
    clock.advance(5)
    assert poll(client, task_id) == {"task_id": task_id, "status": "completed"}


def test_parse_faults_reads_directive_syntax() -> None:
    assert parse_faults("reset=1 slow_s=2 slow_polls=all progress_backwards=yes unknown_status=none") == {
        "reset": 1,
        "slow_s": 2.0,
        "slow_polls": None,
        "progress_backwards": True,
        "unknown_status": None,
    }
    assert parse_faults("") == {}
    with pytest.raises(ApiError):
        parse_faults("duration=3")


@pytest.mark.parametrize(
    "body",
    [
        {"poll_errors": [600]},
        {"poll_errors": ["600"]},
        {"poll_errors": ["429:retry-after=soon"]},
        {"poll_errors": ["429:retry-after=100000"]},
        {"poll_errors": ["boom"]},
        {"poll_errors": [True]},
        {"poll_errors": [None]},
        {"reset": -1},
        {"reset": True},
        {"reset": 1.5},
        {"malformed": "2"},
        {"slow_s": -0.1},
        {"slow_s": 1000},
        {"slow_s": "2"},
        {"slow_polls": -1},
        {"slow_polls": "all"},
        {"unknown_status": "processing"},
        {"unknown_status": "Completed"},
        {"unknown_status": ""},
        {"unknown_status": "has spaces"},
        {"unknown_status": 5},
        {"unknown_after": 1.5},
        {"unknown_after": None},
        {"progress_backwards": "yes"},
        {"progress_backwards": 1},
        {"missing_url": 1},
        {"missing_url_polls": -2},
    ],
)
def test_fault_options_are_validated_everywhere(
    sim: RouterOneSimulator, client: httpx.Client, body: dict[str, Any]
) -> None:
    assert_error(client.post("/_sim/next", json=body), 400, "invalid_request_error", "invalid_parameter")
    assert_error(client.post("/_sim/config", json=body), 400, "invalid_request_error", "invalid_parameter")
    with pytest.raises(ValueError):
        sim.queue_next(**body)
    with pytest.raises(ValueError):
        sim.configure(**body)
    assert submit(client).status_code == 202  # nothing half-applied


@pytest.mark.parametrize(
    "prompt",
    [
        "[sim reset=many]",
        "[sim slow_s=fast]",
        "[sim missing_url=maybe]",
        "[sim poll_errors=503,oops]",
        "[sim unknown_status=pending]",
        "[sim slow_polls=-1]",
    ],
)
def test_bad_fault_directive_is_400(client: httpx.Client, prompt: str) -> None:
    assert_error(submit(client, prompt), 400, "invalid_request_error", "invalid_parameter")


def test_cli_refuses_bad_faults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        simulator_main(["--port", "0", "--faults", "reset=lots"])
    assert exited.value.code == 2
    assert "--faults" in capsys.readouterr().err


@pytest.mark.parametrize(("duration", "run_s"), [(None, 8.0), (5, 8.0), (10, 16.0), (2, 3.2), (3600, 32.0)])
def test_run_time_follows_the_requested_duration(
    sim: RouterOneSimulator, client: httpx.Client, duration: int | None, run_s: float
) -> None:
    extra = {} if duration is None else {"duration": duration}
    task_id = submit_ok(client, "a slow pan over hills", **extra)
    # The default run_s is a 5 s clip's; longer clips run longer, capped at a 20 s clip's.
    assert sim.task(task_id)["config"]["run_s"] == pytest.approx(run_s)


def test_a_scripted_run_time_wins_over_the_requested_duration(
    sim: RouterOneSimulator, client: httpx.Client, clock: FakeClock
) -> None:
    directed = submit_ok(client, "hills [sim duration=2 queue=0]", duration=10)
    sim.queue_next(run_s=3.0)
    queued = submit_ok(client, "hills", duration=10)
    assert sim.task(directed)["config"]["run_s"] == 2.0
    assert sim.task(queued)["config"]["run_s"] == 3.0
    clock.advance(2.5)
    assert poll(client, directed)["status"] == "completed"
