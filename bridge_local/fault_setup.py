"""What the fault run sets up around the stack: misbehaving webhook receivers (and a TLS one called
by the wrong name), a short retry for the outcome check, the execution list, fewer full garbage
collections, and a measure of how late this process's threads wake."""

from __future__ import annotations

import contextlib
import gc
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class Receivers:
    """Callback URLs by receiver kind (see RECEIVER_EXPECTATIONS)."""

    urls: dict[str, str]

    def url(self, kind: str, job: int) -> str:
        # One path per job: the receiver's own log then tells jobs apart too.
        base, _, query = self.urls[kind].partition("?")
        return f"{base}/{job}" + (f"?{query}" if query else "")


def start_fault_receivers(cleanup: ExitStack, *, http_url: str, signing_secret: str) -> Receivers:
    """The misbehaving receivers, and an https receiver whose certificate names `localhost` only.

    The webhook client is made to trust that certificate (and the usual CAs) for the run; the
    bridge's code is unchanged: `bridge.webhooks.sender` is handed a client built by
    `bridge.clients.webhook_client` with the test CA added, as tests/unit/test_webhook_hosts.py does.
    """
    from bridge import clients
    from bridge.settings import WebhookSendingSettings, get_settings
    from bridge.webhooks import sender
    from bridge_local.receiver import WebhookReceiver
    from bridge_local.tls import self_signed

    certificate = self_signed(["localhost"])
    secure = WebhookReceiver([signing_secret], ssl_context=certificate.server_context()).start()
    cleanup.callback(secure.stop)
    trust = ssl.create_default_context()
    trust.load_verify_locations(cadata=certificate.cert_pem.decode("ascii"))
    made: list[httpx.Client] = []
    lock = threading.Lock()

    def trusting_client() -> httpx.Client:
        with lock:
            if not made:
                made.append(
                    clients.webhook_client(get_settings(WebhookSendingSettings).webhook_timeout_seconds, verify=trust)
                )
            return made[0]

    original = sender.webhook_http_client
    sender.webhook_http_client = trusting_client  # type: ignore[assignment]
    cleanup.callback(setattr, sender, "webhook_http_client", original)
    cleanup.callback(lambda: [client.close() for client in made])
    return Receivers(
        urls={
            "ok": f"{http_url}/hooks/fault-ok",
            "drip": f"{http_url}/hooks/fault-drip?mode=drip&drip_s=0.5",
            "hang": f"{http_url}/hooks/fault-hang?mode=hang",
            "endless": f"{http_url}/hooks/fault-endless?mode=endless&status=500&drip_s=0.2",
            "tls-name": f"https://localhost:{secure.port}/hooks/fault-tls-name",
            "tls-ip": f"https://127.0.0.1:{secure.port}/hooks/fault-tls-ip",
        }
    )


@contextmanager
def reconcile_visibility(sqs: Any, queue_url: str, seconds: int) -> Iterator[None]:
    """A failed outcome check comes back after `seconds` instead of the template's visibility timeout."""
    before = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["VisibilityTimeout"])["Attributes"]
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"VisibilityTimeout": str(seconds)})
    try:
        yield
    finally:
        sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"VisibilityTimeout": before["VisibilityTimeout"]})


def execution_lister(sfn: Any, state_machine_arn: str) -> Callable[[], list[dict[str, Any]]]:
    """Every execution of the state machine (name and status), for counting the outcome check's."""

    def executions() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"stateMachineArn": state_machine_arn, "maxResults": 1000}
        while True:
            page = sfn.list_executions(**kwargs)
            found += [{"name": e["name"], "status": e["status"]} for e in page["executions"]]
            if not page.get("nextToken"):
                return found
            kwargs["nextToken"] = page["nextToken"]

    return executions


class SchedulingLag:
    """How late a thread of this process wakes up (it asks to every `tick_s` and records the excess),
    and how long the garbage collector stopped every thread.

    The local stack runs every function, the emulated AWS and the receivers in this one process,
    under one interpreter lock: while a full collection of its large heap runs, or the process is
    otherwise busy, a thread whose socket timed out waits before it can notice. Deployed, each
    invocation has a small process of its own.
    """

    def __init__(self, tick_s: float = 0.05) -> None:
        self.tick_s = tick_s
        self.lags_ms: list[int] = []
        self.gc_pauses_ms: list[tuple[int, int]] = []  # (pause, generation)
        self._gc_started = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fault-run-lag", daemon=True)

    def start(self) -> SchedulingLag:
        gc.callbacks.append(self._on_gc)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc_pauses_ms.append((int((time.perf_counter() - self._gc_started) * 1000), info["generation"]))

    def _run(self) -> None:
        while True:
            asked = time.monotonic()
            if self._stop.wait(self.tick_s):
                return
            self.lags_ms.append(int((time.monotonic() - asked - self.tick_s) * 1000))

    def longest_stall_ms(self) -> int:
        """The longest this process kept a waiting thread from running, so far."""
        return max(self.lags_ms, default=0)

    def render(self) -> str:
        if not self.lags_ms:
            return "-"
        ordered = sorted(self.lags_ms)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        over_1s = sum(lag > 1000 for lag in ordered)
        full = [pause for pause, generation in self.gc_pauses_ms if generation == 2]
        return (
            f"max {ordered[-1]} ms, 99th percentile {p99} ms, over 1 s {over_1s} times (a thread of this "
            f"process waking every {self.tick_s * 1000:g} ms); full garbage collections {len(full)}, "
            f"longest {max(full, default=0)} ms"
        )


# Young collections every 50,000 allocations instead of 700; a full one after 100 middle ones.
GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc(cleanup: ExitStack) -> str:
    """Fewer and shorter full collections: what the started stack holds is frozen out of them
    (botocore's service models, moto, the handlers), and they come less often. Undone on cleanup."""
    thresholds = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    cleanup.callback(gc.set_threshold, *thresholds)
    cleanup.callback(gc.unfreeze)
    return f"gc: {gc.get_freeze_count()} objects frozen after start, thresholds {GC_THRESHOLDS} (default {thresholds})"
