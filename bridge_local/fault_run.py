"""Fault run: many jobs through the local stack while upstream, publishing, the bridge itself and
webhook receivers misbehave.

    python -m bridge_local.fault_run --jobs 1000

What goes wrong:
- upstream: each job gets a random mix of Router One faults (the simulator's prompt directive);
- publishing: the state machine's SNS, EventBridge and webhook-queue sends fail some of the time
  (`moto_patches.interpreter.PublishFaults`), half of them after the send took effect;
- the bridge's own steps (`BridgeFaults`): a poll killed right after recording the outcome (as
  AWS reports a timeout, running out of memory or an unknown error), some of them with their
  execution stopped too, so only the outcome check can publish; a poll killed while its Router One
  request is out (the answer drips); the api dying between cancel's write and its publish (a share
  of jobs is canceled shortly after submit); preparing the webhook failing, before or after its
  row is written;
- receivers: a share of the jobs' callbacks drip, hang or stream an endless 500 body, and an https
  receiver whose certificate names `localhost` only is called as `https://localhost:<port>`
  (delivered) and as `https://127.0.0.1:<port>` (the same address: the TLS check must fail every
  time).

At the end it prints what was submitted, how the jobs ended, the events per channel, duplicates
by event id, lost jobs, the cancels' answers, the webhooks delivered and dead-lettered by cause,
the longest attempt, the outcomes the outcome check published, every injected fault, the settings
and how late this process's threads woke (the local stack runs in one process). It exits
1 unless: no job is lost, every job has exactly one terminal event id per channel (a cancel that
answered 200 or died before its publish: `canceled`; one refused with 409: the real outcome),
every webhook is delivered or dead-lettered with its row saying why (none left pending or
retrying), each receiver got what it should, and no attempt took longer than its timeout + 1 s.
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import gc
import random
import ssl
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

Events = dict[str, list[dict[str, Any]]]
TERMINAL_TYPES = {f"video.generation.{s}" for s in ("completed", "failed", "timed_out", "canceled")}
FINAL_DELIVERY = ("delivered", "gone", "dead_lettered")


# --------------------------------------------------------------------------- the job mix


def job_directive(rng: random.Random, faults: Sequence[str], extra: Sequence[str] = ()) -> str:
    """A `[sim …]` directive: a short job, sometimes failing, with some of `faults` mixed in."""
    parts = [f"duration={rng.uniform(1.0, 6.0):.1f}", f"queue={rng.uniform(0.0, 1.0):.1f}"]
    if rng.random() < 0.15:
        parts.append("outcome=failed")
    parts.append(f"progress={rng.choice(['linear', 'stepped', 'none'])}")
    for fault in faults:
        if rng.random() < 0.2:
            parts.append(fault)
    parts.extend(extra)
    return "[sim " + " ".join(parts) + "]"


# Upstream faults the simulator understands in a directive, each one the bridge has to survive.
DEFAULT_UPSTREAM_FAULTS = (
    "poll_errors=500,503",
    "poll_errors=429:retry-after=none,429:retry-after=2",
    "reset=1",
    "malformed=1",
    "slow_s=1.5 slow_polls=1",
    "unknown_status=upscaling",
    "progress_backwards=true",
    "missing_url=true missing_url_polls=1",
)

# A job whose poll is killed mid-request: its first status answer drips (the request stays out).
MID_REQUEST_DIRECTIVE = "drip_s=0.5 drip_polls=1"
# How long that request is out when the invocation dies.
MID_REQUEST_KILL_S = 1.0

# Receivers of a job's callback: what the delivery must end as, and why each attempt fails.
RECEIVER_EXPECTATIONS: dict[str, tuple[str, str | None]] = {
    "ok": ("delivered", None),
    "tls-name": ("delivered", None),  # https://localhost:<port>, the certificate's name
    "drip": ("dead_lettered", "timed out"),
    "hang": ("dead_lettered", "timed out"),
    "endless": ("dead_lettered", "HTTP 5xx"),
    "tls-ip": ("dead_lettered", "TLS"),  # https://127.0.0.1:<port>, same address, not the certificate's name
}


# What kills a poll right after its outcome write: as AWS reports a death, or "stopped" (the
# execution is stopped as well, so nobody but the outcome check is left to publish).
AFTER_OUTCOME_DEATHS = ("Sandbox.Timedout", "Runtime.OutOfMemory", "Lambda.Unknown")
STOPPED = "stopped"


@dataclass(frozen=True)
class FaultMix:
    """How often each of the bridge's own faults and each receiver happens: shares of jobs (0-1)."""

    kill_after_outcome: float = 0.06  # the poll that records the outcome dies right after the write
    stop_after_outcome: float = 0.02  # ... and its execution is stopped too
    kill_mid_request: float = 0.03  # the first poll dies while its Router One request is out
    cancel: float = 0.10  # canceled 0.5-8 s after submit
    cancel_crash: float = 0.4  # of those cancels: the api dies between the write and the publish
    prepare_failure: float = 0.15  # of jobs with a callback: preparing its webhook fails once
    callback: float = 0.3  # with a callback_url, to one of the receivers below
    receivers: tuple[tuple[str, float], ...] = (
        ("ok", 0.5),
        ("tls-name", 0.1),
        ("drip", 0.1),
        ("hang", 0.1),
        ("endless", 0.1),
        ("tls-ip", 0.1),
    )

    @classmethod
    def upstream_and_publishing_only(cls) -> FaultMix:
        """What the run injected before the bridge's own faults: callbacks to a receiver that answers."""
        return cls(0, 0, 0, 0, 0, 0, 0.3, (("ok", 1.0),))

    def describe(self) -> str:
        receivers = ", ".join(f"{kind} {share:g}" for kind, share in self.receivers)
        return (
            f"of jobs: poll killed after recording {self.kill_after_outcome:g} (+{self.stop_after_outcome:g} "
            f"with its execution stopped), poll killed mid-request {self.kill_mid_request:g}, canceled "
            f"{self.cancel:g} (api dies before the publish in {self.cancel_crash:g} of those), callback "
            f"{self.callback:g} (receivers: {receivers}; preparing the webhook fails in {self.prepare_failure:g})"
        )


@dataclass
class JobPlan:
    body: dict[str, Any]
    receiver: str | None = None  # a key of RECEIVER_EXPECTATIONS
    after_outcome: str | None = None  # one of AFTER_OUTCOME_DEATHS, or STOPPED
    mid_request: bool = False
    cancel_after_s: float | None = None
    cancel_crash: bool = False
    prepare_failure: str | None = None  # "before" or "after" its row is written


def plan_jobs(
    rng: random.Random,
    jobs: int,
    *,
    upstream_faults: Sequence[str],
    mix: FaultMix,
    with_callbacks: bool,
) -> list[JobPlan]:
    kinds, weights = zip(*mix.receivers, strict=True) if mix.receivers else ((), ())
    plans = []
    for i in range(jobs):
        mid_request = rng.random() < mix.kill_mid_request
        extra = [MID_REQUEST_DIRECTIVE] if mid_request else []
        plan = JobPlan(
            body={"model": "video-default", "prompt": f"fault run {i} {job_directive(rng, upstream_faults, extra)}"},
            mid_request=mid_request,
        )
        roll = rng.random()
        if roll < mix.stop_after_outcome:
            plan.after_outcome = STOPPED
        elif roll < mix.stop_after_outcome + mix.kill_after_outcome:
            plan.after_outcome = rng.choice(AFTER_OUTCOME_DEATHS)
        if with_callbacks and kinds and rng.random() < mix.callback:
            plan.receiver = rng.choices(kinds, weights)[0]
            if rng.random() < mix.prepare_failure:
                plan.prepare_failure = rng.choice(["before", "after"])
        if rng.random() < mix.cancel:
            plan.cancel_after_s = rng.uniform(0.5, 8.0)
            plan.cancel_crash = rng.random() < mix.cancel_crash
        plans.append(plan)
    return plans


# --------------------------------------------------------------------------- the bridge's own faults


class InjectedFault(RuntimeError):
    """A crash the fault run caused inside a bridge step (the process died there)."""


class BridgeFaults:
    """The bridge's own deaths and crashes, injected into this process's bridge modules.

    Every handler of the local stack runs in this process, so wrapping a module function here
    wraps it for the poll, api, reconcile and delivery functions alike. `install` wraps and
    registers the restore on `cleanup`; `doom` names a job's faults (right after its submit: its
    first poll comes 3 s later at the earliest); each fault strikes once. `injected` counts what
    was done, by kind.
    """

    def __init__(self, mix: FaultMix) -> None:
        self.mix = mix
        self.injected: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._after_outcome: dict[str, str] = {}
        self._mid_request: set[str] = set()
        self._cancel_crash: set[str] = set()
        self._prepare: dict[str, str] = {}
        self._faulted_cancels: set[str] = set()  # a cancel that answered 5xx because of us
        self._in_cancel = threading.local()

    # ------------------------------------------------------------------ what the run tells it

    def doom(self, task_id: str, plan: JobPlan) -> None:
        with self._lock:
            if plan.after_outcome:
                self._after_outcome[task_id] = plan.after_outcome
            if plan.mid_request:
                self._mid_request.add(task_id)
            if plan.cancel_after_s is not None and plan.cancel_crash:
                self._cancel_crash.add(task_id)
            if plan.prepare_failure:
                self._prepare[task_id] = plan.prepare_failure

    def cancel_was_faulted(self, task_id: str) -> bool:
        with self._lock:
            return task_id in self._faulted_cancels

    # ------------------------------------------------------------------ the wrappers

    def install(self, cleanup: ExitStack) -> BridgeFaults:
        from bridge.outcomes import lifecycle
        from bridge.store import jobs
        from bridge.upstream.router_one import RouterOneClient
        from bridge.webhooks import dispatch

        self._patch(cleanup, jobs, "record_outcome", self._record_outcome(jobs.record_outcome))
        self._patch(cleanup, RouterOneClient, "status", self._status(RouterOneClient.status))
        self._patch(cleanup, lifecycle, "_publish", self._cancel_publish(lifecycle._publish))
        self._patch(cleanup, dispatch, "prepare_delivery", self._prepare_delivery(dispatch.prepare_delivery))
        return self

    @staticmethod
    def _patch(cleanup: ExitStack, owner: Any, name: str, replacement: Any) -> None:
        original = owner.__dict__[name]
        setattr(owner, name, replacement)
        cleanup.callback(setattr, owner, name, original)

    def _count(self, kind: str) -> None:
        with self._lock:
            self.injected[kind] += 1

    def _take(self, faults: dict[str, str] | set[str], task_id: str) -> Any:
        """The fault planned for this job, spent (None if there is none, or it struck already)."""
        with self._lock:
            if isinstance(faults, set):
                found = task_id in faults
                faults.discard(task_id)
                return found or None
            return faults.pop(task_id, None)

    def _record_outcome(self, real: Callable[..., Any]) -> Callable[..., Any]:
        from bridge.clients import stepfunctions
        from bridge.outcomes.lifecycle import CANCEL_OWNER
        from bridge_local.emulator import LambdaFault
        from bridge_local.iam import running_as

        deaths = {
            fault.error_type: fault
            for fault in (LambdaFault.timed_out(), LambdaFault.out_of_memory(), LambdaFault.unknown())
        }

        def record_outcome(task_id: str, **kwargs: Any) -> Any:
            recorded = real(task_id, **kwargs)
            execution = kwargs.get("execution_id")
            if recorded is None or not execution or execution == CANCEL_OWNER:
                return recorded  # only a poll that holds the outcome dies here
            fault = self._take(self._after_outcome, task_id)
            if fault is None:
                return recorded
            if fault == STOPPED:
                # Gone for good (as a failed or stopped execution): only the outcome check publishes.
                # The stop comes from outside the function (an operator, a failed execution): not its role.
                with running_as(None):
                    stepfunctions().stop_execution(executionArn=execution, cause="fault run: stopped after its outcome")
                self._count("poll killed after recording, execution stopped")
                raise LambdaFault.timed_out()
            self._count(f"poll killed after recording ({fault})")
            death = deaths[fault]
            raise LambdaFault(death.error_type, str(death))

        return record_outcome

    def _status(self, real: Callable[..., Any]) -> Callable[..., Any]:
        from bridge_local.emulator import LambdaFault

        def status(client: Any, task_id: str) -> Any:
            if not self._take(self._mid_request, task_id):
                return real(client, task_id)
            # The request goes out in a thread of its own (with the poll's deadline); the
            # invocation dies while it is out, and whatever it brings back is lost.
            answered = threading.Event()
            result: list[Any] = []
            context = contextvars.copy_context()

            def request() -> None:
                try:
                    result.append(context.run(real, client, task_id))
                except Exception as exc:
                    result.append(exc)
                finally:
                    answered.set()

            threading.Thread(target=request, name="fault-run-abandoned-poll", daemon=True).start()
            if answered.wait(MID_REQUEST_KILL_S):
                self._count("poll not killed mid-request (answered first)")
                if isinstance(result[0], Exception):
                    raise result[0]
                return result[0]
            self._count("poll killed mid-request (Sandbox.Timedout)")
            raise LambdaFault.timed_out()

        return status

    def _cancel_publish(self, real: Callable[..., Any]) -> Callable[..., Any]:
        def publish(job: dict[str, Any], event: dict[str, Any], state_machine_arn: str | None) -> Any:
            task_id = job["task_id"]
            if self._take(self._cancel_crash, task_id):
                self._count("api died between cancel's write and its publish")
                with self._lock:
                    self._faulted_cancels.add(task_id)
                raise InjectedFault("fault run: the api died before publishing the cancel")
            self._in_cancel.task_id = task_id
            try:
                return real(job, event, state_machine_arn)
            finally:
                self._in_cancel.task_id = None

        return publish

    def _prepare_delivery(self, real: Callable[..., Any]) -> Callable[..., Any]:
        from bridge.outcomes.events import event_kind
        from bridge.webhooks.dispatch import webhook_wanted

        def prepare_delivery(job: dict[str, Any], event: dict[str, Any], now: Any, **kwargs: Any) -> Any:
            if not webhook_wanted(job, event_kind(event)):
                return real(job, event, now, **kwargs)
            when = self._take(self._prepare, job["task_id"])
            if when is None:
                return real(job, event, now, **kwargs)
            if getattr(self._in_cancel, "task_id", None) == job["task_id"]:
                where = "a cancel"
                with self._lock:
                    self._faulted_cancels.add(job["task_id"])
            else:
                where = "the outcome check" if _called_by_reconciler() else "a poll"
            if when == "after":
                real(job, event, now, **kwargs)
            self._count(f"preparing the webhook failed in {where} ({when} its row was written)")
            raise InjectedFault("fault run: preparing the webhook failed")

        return prepare_delivery


def _called_by_reconciler() -> bool:
    """Whether the outcome check (bridge.outcomes.checks) is on the stack of this call."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_globals.get("__name__") == "bridge.outcomes.checks":
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


# --------------------------------------------------------------------------- the receivers


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
    from bridge.settings import get_settings
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
                made.append(clients.webhook_client(get_settings().webhook_timeout_seconds, verify=trust))
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


# --------------------------------------------------------------------------- the report


def attempt_class(attempt: dict[str, Any]) -> str:
    """Why one delivery attempt failed, in a word or two (or "2xx")."""
    code = attempt.get("status_code")
    if isinstance(code, int):
        return "2xx" if 200 <= code < 300 else f"HTTP {code // 100}xx"
    error = str(attempt.get("error") or "")
    if error.startswith("timed out"):
        return "timed out"
    if "CERTIFICATE_VERIFY_FAILED" in error or "SSL" in error or "TLS" in error:
        return "TLS"
    if error.startswith("connection failed"):
        return "refused" if "refused" in error.lower() else "connection failed"
    if error.startswith("could not attempt"):
        return "could not attempt"
    if error.startswith("refused:"):
        return "URL refused"
    return "other"


@dataclass
class Settings:
    """The settings the run's functions ran with (read from the bridge's own settings)."""

    poll_interval_s: int
    webhook_timeout_s: float
    webhook_retry_schedule: tuple[int, ...]
    outcome_check_delay_s: int
    reconcile_visibility_s: int | None = None

    @property
    def attempt_limit_ms(self) -> int:
        return int((self.webhook_timeout_s + 1) * 1000)

    @property
    def max_attempts(self) -> int:
        return len(self.webhook_retry_schedule) + 1

    def render(self) -> str:
        text = (
            f"PollIntervalSeconds {self.poll_interval_s}, WebhookTimeoutSeconds {self.webhook_timeout_s:g}, "
            f"WebhookRetrySchedule {','.join(map(str, self.webhook_retry_schedule))} "
            f"({self.max_attempts} attempts), OUTCOME_CHECK_DELAY_SECONDS {self.outcome_check_delay_s}"
        )
        if self.reconcile_visibility_s is not None:
            text += f", reconcile queue visibility {self.reconcile_visibility_s} s"
        return text

    @classmethod
    def current(cls, reconcile_visibility_s: int | None = None) -> Settings:
        from bridge.settings import get_settings

        s = get_settings()
        return cls(
            poll_interval_s=s.poll_interval_seconds,
            webhook_timeout_s=s.webhook_timeout_seconds,
            webhook_retry_schedule=tuple(s.webhook_retry_schedule),
            outcome_check_delay_s=s.outcome_check_delay_seconds,
            reconcile_visibility_s=reconcile_visibility_s,
        )


@dataclass
class Report:
    submitted: int = 0
    accepted: list[str] = field(default_factory=list)
    refused: Counter[int] = field(default_factory=Counter)
    terminal_by_status: Counter[str] = field(default_factory=Counter)
    events_by_channel: Counter[str] = field(default_factory=Counter)
    duplicates_by_channel: Counter[str] = field(default_factory=Counter)
    lost: list[str] = field(default_factory=list)  # accepted, yet no terminal event on some channel
    not_exactly_one: list[str] = field(default_factory=list)  # more than one distinct terminal event id
    wall_s: float = 0.0
    injected: dict[str, int] = field(default_factory=dict)  # publish faults
    injected_bridge: dict[str, int] = field(default_factory=dict)  # the bridge's own faults and receivers
    settings: Settings | None = None
    # Cancels: (answer code, what it means) -> count; a cancel that got an answer it should not have.
    cancel_answers: Counter[str] = field(default_factory=Counter)
    cancel_unexpected: list[str] = field(default_factory=list)
    wrong_outcome: list[str] = field(default_factory=list)  # canceled when it should not be, or the reverse
    # Webhooks: one delivery per job with a callback, for its terminal event.
    deliveries: int = 0
    delivered: int = 0
    dead_lettered_by_cause: Counter[str] = field(default_factory=Counter)
    unfinished: list[str] = field(default_factory=list)  # left pending/retrying, or missing
    without_reason: list[str] = field(default_factory=list)  # a final row that does not say why
    by_receiver: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    receiver_mismatch: list[str] = field(default_factory=list)  # e.g. an ordinary receiver dead-lettered
    first_attempt_delivered: int = 0
    longest_attempt: dict[str, Any] | None = None
    over_time: list[str] = field(default_factory=list)  # attempts longer than the timeout + 1 s
    outcome_check_executions: Counter[str] = field(default_factory=Counter)  # by status
    scheduling_lag: SchedulingLag | None = None

    def failures(self) -> list[str]:
        failed = [] if self.accepted else ["nothing accepted"]
        checks: list[tuple[Sized, str]] = [
            (self.lost, "lost"),
            (self.not_exactly_one, "with more than one terminal event id"),
            (self.wrong_outcome, "with the wrong outcome after a cancel"),
            (self.cancel_unexpected, "unexpected cancel answers"),
            (self.unfinished, "webhooks neither delivered nor dead-lettered"),
            (self.without_reason, "final webhook rows without a reason"),
            (self.receiver_mismatch, "deliveries not as their receiver should get them"),
            (self.over_time, "attempts over their timeout + 1 s"),
        ]
        return failed + [f"{len(found)} {what}" for found, what in checks if found]

    @property
    def ok(self) -> bool:
        return not self.failures()

    def render(self) -> str:
        channels = sorted(self.events_by_channel)
        lines = [
            f"jobs submitted          {self.submitted}",
            f"accepted                {len(self.accepted)}"
            + (f"  (refused: {dict(self.refused)})" if self.refused else ""),
            "terminal by status      "
            + ", ".join(f"{status} {n}" for status, n in sorted(self.terminal_by_status.items())),
            "events per channel      "
            + ", ".join(
                f"{c} {self.events_by_channel[c]} ({self.duplicates_by_channel[c]} duplicates)" for c in channels
            ),
            f"lost jobs               {len(self.lost)}" + (f"  {self.lost[:5]}" if self.lost else ""),
            f"not exactly one event   {len(self.not_exactly_one)}"
            + (f"  {self.not_exactly_one[:5]}" if self.not_exactly_one else ""),
        ]
        if self.cancel_answers:
            lines.append(
                f"cancels                 {sum(self.cancel_answers.values())}: "
                + ", ".join(f"{answer} {n}" for answer, n in sorted(self.cancel_answers.items()))
            )
            lines.append(
                f"  wrong outcome         {len(self.wrong_outcome)}"
                + (f"  {self.wrong_outcome[:5]}" if self.wrong_outcome else "")
                + (f"; unexpected answers {self.cancel_unexpected[:5]}" if self.cancel_unexpected else "")
            )
        if self.deliveries:
            dead = sum(self.dead_lettered_by_cause.values())
            lines += [
                f"webhooks                {self.deliveries}: delivered {self.delivered} "
                f"({self.first_attempt_delivered} at the first attempt), dead-lettered {dead}, "
                f"left unfinished {len(self.unfinished)}" + (f"  {self.unfinished[:5]}" if self.unfinished else ""),
                "  dead-lettered by cause "
                + (", ".join(f"{cause} {n}" for cause, n in sorted(self.dead_lettered_by_cause.items())) or "-"),
                "  by receiver           "
                + ", ".join(
                    f"{kind} " + "/".join(f"{status} {n}" for status, n in sorted(counts.items()))
                    for kind, counts in sorted(self.by_receiver.items())
                ),
                f"  not as expected       {len(self.receiver_mismatch)}"
                + (f"  {self.receiver_mismatch[:3]}" if self.receiver_mismatch else "")
                + (f"; rows without a reason {self.without_reason[:3]}" if self.without_reason else ""),
            ]
            if self.longest_attempt is not None and self.settings is not None:
                longest = self.longest_attempt
                lines.append(
                    f"longest attempt         {longest['latency_ms']} ms ({longest['receiver']}: "
                    f"{longest['error'] or longest['status_code']}); timeout "
                    f"{self.settings.webhook_timeout_s:g} s, limit {self.settings.attempt_limit_ms} ms, "
                    f"over it {len(self.over_time)}" + (f"  {self.over_time[:3]}" if self.over_time else "")
                )
        lines.append(
            f"published by the check  {self.outcome_check_executions.get('SUCCEEDED', 0)} outcomes "
            f"(executions <task>--outcome-<n>: {dict(sorted(self.outcome_check_executions.items()))})"
        )
        lines.append(f"injected publish faults {sum(self.injected.values())}  {dict(sorted(self.injected.items()))}")
        if self.injected_bridge:
            lines.append(f"injected bridge faults  {sum(self.injected_bridge.values())}")
            lines += [f"  {kind:<58} {n}" for kind, n in sorted(self.injected_bridge.items())]
        if self.settings is not None:
            lines.append(f"settings                {self.settings.render()}")
        if self.scheduling_lag is not None:
            lines.append(f"scheduling lag          {self.scheduling_lag.render()}")
        lines.append(f"wall time               {self.wall_s:.1f} s")
        failures = self.failures()
        lines.append(
            "result                  "
            + (
                "OK: 0 lost, exactly one terminal event per job per channel"
                + (
                    ", every webhook delivered or dead-lettered with its reason, no attempt over its timeout + 1 s"
                    if self.deliveries
                    else ""
                )
                if not failures
                else "FAILED: " + "; ".join(failures)
            )
        )
        return "\n".join(lines)


def tally(report: Report, events_for: Callable[[str], Events], channels: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Count terminal events per job and channel; return each job's one terminal event (if it has one)."""
    terminal_event: dict[str, dict[str, Any]] = {}
    for task_id in report.accepted:
        seen = events_for(task_id)
        statuses = set()
        for channel in channels:
            terminal = [e for e in seen.get(channel, []) if (e.get("event") or {}).get("type") in TERMINAL_TYPES]
            ids = {e["event"]["id"] for e in terminal}
            report.events_by_channel[channel] += len(terminal)
            report.duplicates_by_channel[channel] += len(terminal) - len(ids)
            if not ids:
                report.lost.append(task_id)
                break
            if len(ids) > 1:
                report.not_exactly_one.append(task_id)
            statuses.update(e["event"]["data"]["status"] for e in terminal)
            terminal_event.setdefault(task_id, terminal[0]["event"])
        else:
            report.terminal_by_status[",".join(sorted(statuses))] += 1
    return terminal_event


def tally_deliveries(
    report: Report,
    rows_of: dict[str, list[dict[str, Any]]],
    receiver_of: dict[str, str],
    terminal_event: dict[str, dict[str, Any]],
    settings: Settings,
) -> None:
    """Each job with a callback: its terminal event's delivery, final, saying why, as its receiver should get it."""
    for task_id, kind in receiver_of.items():
        report.deliveries += 1
        event = terminal_event.get(task_id)
        rows = [r for r in rows_of.get(task_id, []) if event is not None and r["event_id"] == event["id"]]
        if not rows:
            report.unfinished.append(f"{task_id}: no delivery of its terminal event")
            continue
        row = rows[0]
        status = row["status"]
        attempts = row.get("attempts") or []
        report.by_receiver[kind][status] += 1
        for attempt in attempts:
            if report.longest_attempt is None or attempt["latency_ms"] > report.longest_attempt["latency_ms"]:
                report.longest_attempt = attempt | {"receiver": kind}
            if attempt["latency_ms"] > settings.attempt_limit_ms:
                report.over_time.append(f"{task_id} ({kind}): attempt {attempt['attempt']} {attempt['latency_ms']} ms")
        if status not in FINAL_DELIVERY:
            report.unfinished.append(f"{task_id} ({kind}): {status}")
            continue
        last = attempts[-1] if attempts else {}
        if status == "delivered":
            report.delivered += 1
            report.first_attempt_delivered += int(len(attempts) == 1)
            if attempt_class(last) != "2xx":
                report.without_reason.append(f"{task_id}: delivered without a 2xx attempt")
        elif status == "dead_lettered":
            reason = row.get("dead_letter_reason")
            report.dead_lettered_by_cause[f"{reason} / {attempt_class(last)}"] += 1
            if not reason or not last.get("error"):
                report.without_reason.append(f"{task_id}: dead-lettered, reason {reason!r}, last error {last}")
        expected_status, expected_class = RECEIVER_EXPECTATIONS[kind]
        if status != expected_status:
            report.receiver_mismatch.append(f"{task_id} ({kind}): {status}, expected {expected_status}")
        elif expected_class is not None:
            classes = {attempt_class(a) for a in attempts}
            if classes != {expected_class} or len(attempts) != settings.max_attempts:
                report.receiver_mismatch.append(
                    f"{task_id} ({kind}): {len(attempts)} attempts of {sorted(classes)}, expected "
                    f"{settings.max_attempts} of {expected_class}"
                )


# --------------------------------------------------------------------------- the run


def run(
    *,
    api_url: str,
    api_key: str,
    jobs: int,
    events_for: Callable[[str], Events],
    channels: Sequence[str] = ("sns", "eventbridge"),
    callback_url: str | None = None,
    receivers: Receivers | None = None,
    bridge_faults: BridgeFaults | None = None,
    executions: Callable[[], Iterable[dict[str, Any]]] | None = None,
    upstream_faults: Sequence[str] = DEFAULT_UPSTREAM_FAULTS,
    submit_concurrency: int = 8,
    timeout_s: float = 600.0,
    seed: int = 7,
) -> Report:
    """Submit `jobs` jobs, cancel some, wait until each has its terminal events and its webhook has
    ended (or time runs out), and count.

    `receivers` and `bridge_faults` bring the receivers and the bridge's own faults (their mix);
    without them, a share of jobs calls back `callback_url` (a receiver that answers), as before.
    """
    rng = random.Random(seed)
    mix = bridge_faults.mix if bridge_faults else FaultMix.upstream_and_publishing_only()
    plans = plan_jobs(
        rng, jobs, upstream_faults=upstream_faults, mix=mix, with_callbacks=bool(receivers or callback_url)
    )
    for n, plan in enumerate(plans):
        if plan.receiver is not None:
            plan.body["callback_url"] = receivers.url(plan.receiver, n) if receivers else callback_url
    report = Report(submitted=jobs)
    receiver_of: dict[str, str] = {}
    cancels: dict[str, tuple[JobPlan, int]] = {}  # task -> (plan, answer)
    started = time.monotonic()
    lock = threading.Lock()
    report.scheduling_lag = lag = SchedulingLag().start()
    with (
        httpx.Client(base_url=api_url, timeout=60, headers={"Authorization": f"Bearer {api_key}"}) as client,
        ThreadPoolExecutor(max_workers=submit_concurrency, thread_name_prefix="fault-cancel") as cancellers,
    ):

        def cancel_later(task_id: str, plan: JobPlan, due: float) -> None:
            time.sleep(max(0.0, due - time.monotonic()))
            answer = client.post(f"/v1/videos/generations/{task_id}/cancel")
            with lock:
                cancels[task_id] = (plan, answer.status_code)

        def submit(plan: JobPlan) -> None:
            response = client.post("/v1/videos/generations", json=plan.body)
            if response.status_code != 202:
                with lock:
                    report.refused[response.status_code] += 1
                return
            task_id = response.json()["task_id"]
            if bridge_faults is not None:
                bridge_faults.doom(task_id, plan)
            with lock:
                report.accepted.append(task_id)
                if plan.receiver is not None:
                    receiver_of[task_id] = plan.receiver
            if plan.cancel_after_s is not None and bridge_faults is not None:
                cancellers.submit(cancel_later, task_id, plan, time.monotonic() + plan.cancel_after_s)

        with ThreadPoolExecutor(max_workers=submit_concurrency) as pool:
            list(pool.map(submit, plans))

        deadline = started + timeout_s
        pending = set(report.accepted)
        while pending and time.monotonic() < deadline:
            for task_id in list(pending):
                seen = events_for(task_id)
                if all(
                    any((e.get("event") or {}).get("type") in TERMINAL_TYPES for e in seen.get(c, [])) for c in channels
                ):
                    pending.discard(task_id)
            if pending:
                time.sleep(1.0)

        # Every webhook must end: delivered, gone or dead-lettered through its retry schedule.
        rows_of: dict[str, list[dict[str, Any]]] = {}
        waiting = set(receiver_of)
        while waiting:
            for task_id in list(waiting):
                answer = client.get(f"/v1/videos/generations/{task_id}/webhooks")
                rows_of[task_id] = answer.json().get("deliveries", []) if answer.status_code == 200 else []
                if rows_of[task_id] and all(r["status"] in FINAL_DELIVERY for r in rows_of[task_id]):
                    waiting.discard(task_id)
            if not waiting or time.monotonic() >= deadline:
                break
            time.sleep(2.0)

    time.sleep(3.0)  # let late duplicates (retried sends) arrive before counting
    lag.stop()
    report.wall_s = time.monotonic() - started
    terminal_event = tally(report, events_for, channels)
    report.settings = Settings.current()
    if receiver_of:
        tally_deliveries(report, rows_of, receiver_of, terminal_event, report.settings)
    _tally_cancels(report, cancels, terminal_event, bridge_faults)
    if executions is not None:
        accepted = set(report.accepted)
        for execution in executions():
            task_id, marker, _ = execution["name"].partition("--outcome-")
            if marker and task_id in accepted:
                report.outcome_check_executions[execution["status"]] += 1
    if bridge_faults is not None:
        report.injected_bridge = dict(bridge_faults.injected)
        for kind, n in Counter(receiver_of.values()).items():
            if kind != "ok":
                report.injected_bridge[f"receiver: {kind}"] = n
    return report


def _tally_cancels(
    report: Report,
    cancels: dict[str, tuple[JobPlan, int]],
    terminal_event: dict[str, dict[str, Any]],
    bridge_faults: BridgeFaults | None,
) -> None:
    for task_id, (_plan, code) in cancels.items():
        faulted = bridge_faults is not None and bridge_faults.cancel_was_faulted(task_id)
        event = terminal_event.get(task_id)
        outcome = event["data"]["status"] if event else None
        if code == 200:
            report.cancel_answers["200 canceled"] += 1
            should_be_canceled: bool | None = True
        elif code == 409:
            report.cancel_answers["409 already ended"] += 1
            should_be_canceled = False
        elif code >= 500 and faulted:
            report.cancel_answers[f"{code} api died before the publish (injected)"] += 1
            should_be_canceled = True
        else:
            report.cancel_answers[f"{code} unexpected"] += 1
            report.cancel_unexpected.append(f"{task_id}: {code}")
            should_be_canceled = None
        if outcome is not None and should_be_canceled is not None and (outcome == "canceled") != should_be_canceled:
            report.wrong_outcome.append(f"{task_id}: cancel answered {code}, outcome {outcome}")


# --------------------------------------------------------------------------- as a program


class _EventIndex:
    def __init__(self) -> None:
        self._by_task: dict[str, Events] = defaultdict(lambda: defaultdict(list))
        self._lock = threading.Lock()

    def add(self, event: dict[str, Any]) -> None:
        body = event.get("event") if isinstance(event.get("event"), dict) else {}
        task_id = (body.get("data") or {}).get("task_id")
        with self._lock:
            self._by_task[task_id or "?"][event["channel"]].append(event)

    def for_task(self, task_id: str) -> Events:
        with self._lock:
            return {channel: list(events) for channel, events in self._by_task[task_id].items()}


# Short settings, so a retry schedule and an outcome check take seconds instead of hours and minutes.
RUN_PARAMETERS = {
    "PollIntervalSeconds": "3",
    "PollingPolicy": "fixed",
    "LogLevel": "ERROR",
    "WebhookAllowLoopback": "true",
    "WebhookRetrySchedule": "1,2,4",
    "WebhookTimeoutSeconds": "2",
}
OUTCOME_CHECK_DELAY_S = 3
RECONCILE_VISIBILITY_S = 10
# Young collections every 50,000 allocations instead of 700; a full one after 100 middle ones.
GC_THRESHOLDS = (50_000, 20, 100)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bridge_local.fault_run", description=__doc__)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--publish-fault-rate", type=float, default=0.2, help="share of sends that fail (0-1)")
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds to wait for every outcome")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    from bridge_local.local_stack import StackOptions, running_stack
    from bridge_local.moto_patches.interpreter import PublishFaults, install_publish_faults

    index = _EventIndex()
    options = StackOptions(
        name="fault",
        parameters=RUN_PARAMETERS,
        environment={"OUTCOME_CHECK_DELAY_SECONDS": str(OUTCOME_CHECK_DELAY_S)},
    )
    with running_stack(options, on_event=index.add) as local, ExitStack() as cleanup:
        cleanup.enter_context(
            reconcile_visibility(
                local.aws.client("sqs"), local.stack.queue_urls["ReconcileQueue"], RECONCILE_VISIBILITY_S
            )
        )
        faults = PublishFaults(rate=args.publish_fault_rate, seed=args.seed)
        install_publish_faults(faults)
        cleanup.callback(install_publish_faults, None)
        bridge_faults = BridgeFaults(FaultMix()).install(cleanup)
        receivers = start_fault_receivers(cleanup, http_url=local.receiver.url, signing_secret=local.signing_secret)
        settings = Settings.current(RECONCILE_VISIBILITY_S)
        collector = tune_gc(cleanup)
        print(
            f"fault run: {args.jobs} jobs, publish fault rate {args.publish_fault_rate}; {FaultMix().describe()}\n"
            f"short settings: {settings.render()}\n{collector}",
            flush=True,
        )
        report = run(
            api_url=local.api_url,
            api_key=local.api_key,
            jobs=args.jobs,
            events_for=index.for_task,
            receivers=receivers,
            bridge_faults=bridge_faults,
            executions=execution_lister(local.aws.client("stepfunctions"), local.stack.state_machine_arn),
            timeout_s=args.timeout,
            seed=args.seed,
        )
        report.injected = dict(faults.injected)
        report.settings = settings
        print(report.render(), flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
