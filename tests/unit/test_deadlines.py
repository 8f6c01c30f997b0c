"""Total deadlines, against real peers on loopback that drip, hang, never close and stream forever.

Each exchange must end by its deadline plus a small margin (a correctness bound, not a speed
target), with the error its caller classifies as a timeout.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from bridge.clients import deadline_client, webhook_client
from bridge.errors import UpstreamTransientError, UpstreamUnavailable
from bridge.outbound import deadlines
from bridge.outbound.pinned_post import post_pinned
from bridge.outbound.ssrf_guard import CallbackTarget
from bridge.upstream.router_one import RouterOneClient
from bridge_local.receiver import Reply, WebhookReceiver
from bridge_local.simulator import RouterOneSimulator

# How far past its deadline an exchange may end: scheduling and closing the socket, nothing more.
# The suite shares two cores with the integration stacks, where a thread may wait over a second to
# run; every misbehaving peer here would hold the exchange for 6 s or more without the deadline.
MARGIN_S = 2.0
SIM_KEY = "sk-deadline-tests"

# Each way a peer can hold a request: (name, reply). `endless` answers 500 so the sender reads its body.
MISBEHAVIOURS = [
    pytest.param(Reply(200, body='{"ok": true}', mode="drip", drip_s=0.5), id="drips-every-byte"),
    pytest.param(Reply(200, mode="hang"), id="never-answers-never-closes"),
    pytest.param(Reply(500, mode="endless", drip_s=0.5), id="streams-an-endless-body"),
]


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        yield running


@pytest.fixture(scope="module")
def simulator() -> Iterator[RouterOneSimulator]:
    with RouterOneSimulator(api_key=SIM_KEY, queue_s=60, run_s=60) as running:
        yield running


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    # Per-phase timeouts far above the deadlines: only the deadline can end these exchanges.
    with deadline_client(timeout=30, follow_redirects=False) as http:
        yield http


_paths = iter(range(1_000_000))


def scripted(receiver: WebhookReceiver, reply: Reply) -> str:
    path = f"/peer/{next(_paths)}"
    receiver.script(path, [reply])
    return f"{receiver.url}{path}"


def timed(call: Callable[[], Any]) -> tuple[float, BaseException | None, Any]:
    started = time.monotonic()
    try:
        result = call()
    except Exception as exc:
        return time.monotonic() - started, exc, None
    return time.monotonic() - started, None, result


# --------------------------------------------------------------------------- the mechanism


@pytest.mark.parametrize("reply", MISBEHAVIOURS)
def test_a_request_ends_at_its_deadline_whatever_the_peer_does(
    receiver: WebhookReceiver, client: httpx.Client, reply: Reply
) -> None:
    url = scripted(receiver, reply)

    def post() -> httpx.Response:
        with deadlines.within(1.0):
            return client.post(url, content=b"{}")

    took, error, _ = timed(post)

    assert isinstance(error, httpx.TimeoutException), error
    assert 0.9 <= took < 1.0 + MARGIN_S


def test_a_phase_timeout_alone_lets_a_dripping_peer_run_on(receiver: WebhookReceiver) -> None:
    """Why the deadline exists: httpx's 0.3 s timeout applies per read, and no read waits that long."""
    url = scripted(receiver, Reply(200, body="{}", mode="drip", drip_s=0.02))
    with httpx.Client(timeout=0.3) as per_phase:
        took, error, response = timed(lambda: per_phase.post(url, content=b"{}"))
    assert error is None and response.status_code == 200
    assert took > 3 * 0.3


def test_a_peer_that_never_reads_is_bounded_while_the_request_is_sent(client: httpx.Client) -> None:
    # Accepted by the kernel, never read: the upload fills the socket buffers and then waits.
    with socket.create_server(("127.0.0.1", 0)) as deaf:
        url = f"http://127.0.0.1:{deaf.getsockname()[1]}/upload"

        def post() -> httpx.Response:
            with deadlines.within(1.0):
                return client.post(url, content=b"x" * (64 << 20))

        took, error, _ = timed(post)
    assert isinstance(error, httpx.TimeoutException), error
    assert took < 1.0 + MARGIN_S


def test_a_pooled_connection_takes_the_deadline_of_each_request(receiver: WebhookReceiver) -> None:
    with deadline_client(timeout=30, follow_redirects=False) as pooled:
        with deadlines.within(5):
            assert pooled.post(scripted(receiver, Reply(200)), content=b"{}").status_code == 200
        took, error, _ = timed(lambda: _post_within(pooled, scripted(receiver, Reply(200, mode="hang")), 0.5))
        assert isinstance(error, httpx.TimeoutException) and took < 0.5 + MARGIN_S
        assert _post_within(pooled, scripted(receiver, Reply(204)), 5).status_code == 204


def _post_within(http: httpx.Client, url: str, seconds: float) -> httpx.Response:
    with deadlines.within(seconds):
        return http.post(url, content=b"{}")


def test_the_tighter_of_two_deadlines_wins() -> None:
    assert deadlines.remaining() is None
    with deadlines.within(10):
        with deadlines.within(1) as inner:
            assert deadlines.current() == inner
            assert 0.9 < (deadlines.remaining() or 0) <= 1
        with deadlines.within(60):
            assert 9 < (deadlines.remaining() or 0) <= 10
    assert deadlines.remaining() is None


class FakeContext:
    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_a_lambda_budget_ends_requests_short_of_the_function_end(
    receiver: WebhookReceiver, client: httpx.Client
) -> None:
    url = scripted(receiver, Reply(200, mode="hang"))

    def post() -> httpx.Response:
        with deadlines.lambda_budget(FakeContext(3_000), reserve_s=2.0), deadlines.within(20):
            return client.post(url, content=b"{}")

    took, error, _ = timed(post)
    assert isinstance(error, httpx.TimeoutException)
    assert 0.9 <= took < 1.0 + MARGIN_S
    with deadlines.lambda_budget(None, reserve_s=2.0):
        assert deadlines.remaining() is None  # no context: nothing to bound by


def test_a_deadline_already_past_fails_before_connecting(receiver: WebhookReceiver, client: httpx.Client) -> None:
    url = scripted(receiver, Reply(200))
    with deadlines.within(0), pytest.raises(httpx.ConnectTimeout):
        client.post(url, content=b"{}")
    assert receiver.deliveries(url.removeprefix(receiver.url)) == []


# --------------------------------------------------------------------------- where it is used


def test_a_dripping_submit_ends_at_the_submit_deadline_as_upstream_unavailable(receiver: WebhookReceiver) -> None:
    body = '{"task_id": "v_' + "0" * 32 + '", "status": "pending"}'
    receiver.script("/v1/videos/generations", [Reply(202, body=body, mode="drip", drip_s=0.5)])
    with deadline_client(timeout=30, follow_redirects=False) as http:
        router_one = RouterOneClient(receiver.url, lambda: SIM_KEY, http, submit_deadline_s=1.0)
        took, error, _ = timed(lambda: router_one.submit({"model": "m", "prompt": "p"}))
    assert isinstance(error, UpstreamUnavailable) and "in time" in error.message
    assert took < 1.0 + MARGIN_S


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param({"drip_s": 0.5}, id="drips-the-status-answer"),
        pytest.param({"slow_s": 30.0}, id="never-answers"),
    ],
)
def test_a_status_poll_ends_at_its_deadline_as_a_transient_error(
    simulator: RouterOneSimulator, fault: dict[str, Any]
) -> None:
    with deadline_client(timeout=30, follow_redirects=False) as http:
        router_one = RouterOneClient(simulator.url, lambda: SIM_KEY, http, status_deadline_s=1.0)
        simulator.queue_next(**fault)
        task_id = router_one.submit({"model": "m", "prompt": "p"}).task_id
        took, error, _ = timed(lambda: router_one.status(task_id))
    assert type(error) is UpstreamTransientError and "in time" in str(error)
    assert 0.9 <= took < 1.0 + MARGIN_S


def webhook_target(url: str) -> CallbackTarget:
    host, _, port = url.removeprefix("http://").partition("/")[0].partition(":")
    return CallbackTarget(url=url, scheme="http", host=host, port=int(port), addresses=(host,))


@pytest.mark.parametrize("reply", MISBEHAVIOURS)
def test_a_webhook_attempt_ends_at_its_timeout_and_says_why(receiver: WebhookReceiver, reply: Reply) -> None:
    url = scripted(receiver, reply)
    with webhook_client(30) as http:
        took, error, result = timed(
            lambda: post_pinned(http, webhook_target(url), body=b"{}", headers={}, timeout_s=1.0)
        )
    assert error is None and not result.delivered
    assert took < 1.0 + MARGIN_S and result.latency_ms < (1.0 + MARGIN_S) * 1000
    if reply.mode == "endless":
        # The status arrived in time; the error body is read only until the deadline.
        assert result.status_code == 500
        assert result.error.startswith("HTTP 500: st") and result.error.endswith("[body cut short: timed out]")
    else:
        assert result.status_code is None and result.error == "timed out after 1s"
