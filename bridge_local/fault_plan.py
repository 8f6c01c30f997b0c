"""The fault run's plan: which faults each job meets (upstream directives, the bridge's own deaths,
cancels, webhook receivers), drawn from a seeded `FaultMix`, and what each receiver must end as."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Events = dict[str, list[dict[str, Any]]]
TERMINAL_TYPES = {f"video.generation.{s}" for s in ("completed", "failed", "timed_out", "canceled")}
FINAL_DELIVERY = ("delivered", "gone", "dead_lettered")


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
