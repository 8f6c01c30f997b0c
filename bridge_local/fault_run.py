"""Fault run: many jobs through the local stack while upstream and publishing misbehave.

    python -m bridge_local.fault_run --jobs 1000

Each job gets a random mix of upstream faults (through the simulator's prompt directive) and
the state machine's SNS, EventBridge and webhook-queue sends fail some of the time. At the end
it prints what was submitted, how the jobs ended, the events per channel, duplicates by event
id and lost jobs; it exits 1 unless every accepted job has exactly one terminal event per
channel (after deduplication by id) and none is lost.
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx

Events = dict[str, list[dict[str, Any]]]
TERMINAL_TYPES = {f"video.generation.{s}" for s in ("completed", "failed", "timed_out", "canceled")}


# --------------------------------------------------------------------------- the job mix


def job_directive(rng: random.Random, faults: Sequence[str]) -> str:
    """A `[sim …]` directive: a short job, sometimes failing, with some of `faults` mixed in."""
    parts = [f"duration={rng.uniform(1.0, 6.0):.1f}", f"queue={rng.uniform(0.0, 1.0):.1f}"]
    if rng.random() < 0.15:
        parts.append("outcome=failed")
    parts.append(f"progress={rng.choice(['linear', 'stepped', 'none'])}")
    for fault in faults:
        if rng.random() < 0.2:
            parts.append(fault)
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


# --------------------------------------------------------------------------- the report


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
    injected: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.lost and not self.not_exactly_one and bool(self.accepted)

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
            f"injected publish faults {sum(self.injected.values())}  {dict(sorted(self.injected.items()))}",
            f"wall time               {self.wall_s:.1f} s",
            "result                  "
            + ("OK: 0 lost, exactly one terminal event per job per channel" if self.ok else "FAILED"),
        ]
        return "\n".join(lines)


def tally(report: Report, events_for: Callable[[str], Events], channels: Sequence[str]) -> None:
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
        else:
            report.terminal_by_status[",".join(sorted(statuses))] += 1


# --------------------------------------------------------------------------- the run


def run(
    *,
    api_url: str,
    api_key: str,
    jobs: int,
    events_for: Callable[[str], Events],
    channels: Sequence[str] = ("sns", "eventbridge"),
    callback_url: str | None = None,
    upstream_faults: Sequence[str] = DEFAULT_UPSTREAM_FAULTS,
    submit_concurrency: int = 8,
    timeout_s: float = 600.0,
    seed: int = 7,
) -> Report:
    """Submit `jobs` jobs, wait until each has its terminal events (or time runs out), and count."""
    rng = random.Random(seed)
    report = Report(submitted=jobs)
    bodies = []
    for i in range(jobs):
        body: dict[str, Any] = {
            "model": "video-default",
            "prompt": f"fault run {i} {job_directive(rng, upstream_faults)}",
        }
        if callback_url and rng.random() < 0.3:
            body["callback_url"] = callback_url
        bodies.append(body)
    started = time.monotonic()
    lock = threading.Lock()
    with httpx.Client(base_url=api_url, timeout=60, headers={"Authorization": f"Bearer {api_key}"}) as client:

        def submit(body: dict[str, Any]) -> None:
            response = client.post("/v1/videos/generations", json=body)
            with lock:
                if response.status_code == 202:
                    report.accepted.append(response.json()["task_id"])
                else:
                    report.refused[response.status_code] += 1

        with ThreadPoolExecutor(max_workers=submit_concurrency) as pool:
            list(pool.map(submit, bodies))

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
    time.sleep(3.0)  # let late duplicates (retried sends) arrive before counting
    report.wall_s = time.monotonic() - started
    tally(report, events_for, channels)
    return report


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bridge_local.fault_run", description=__doc__)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--publish-fault-rate", type=float, default=0.2, help="share of sends that fail (0-1)")
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds to wait for every outcome")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    from bridge_local.emulator import PublishFaults, install_publish_faults
    from bridge_local.local_stack import start_local_stack

    index = _EventIndex()
    with ExitStack() as cleanup:
        local = start_local_stack(
            cleanup,
            parameters={
                "PollIntervalSeconds": "3",
                "PollingPolicy": "fixed",
                "LogLevel": "ERROR",
                "WebhookAllowLoopback": "true",
                "WebhookRetrySchedule": "1,2,4",
            },
            on_event=index.add,
            name="fault",
        )
        faults = PublishFaults(rate=args.publish_fault_rate, seed=args.seed)
        install_publish_faults(faults)
        cleanup.callback(install_publish_faults, None)
        print(f"fault run: {args.jobs} jobs, publish fault rate {args.publish_fault_rate}", flush=True)
        report = run(
            api_url=local.api_url,
            api_key=local.api_key,
            jobs=args.jobs,
            events_for=index.for_task,
            callback_url=f"{local.receiver.url}/hooks/fault-run",
            timeout_s=args.timeout,
            seed=args.seed,
        )
        report.injected = dict(faults.injected)
        print(report.render(), flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
