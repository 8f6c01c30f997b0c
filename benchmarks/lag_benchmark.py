"""End-to-end lag and throughput on the local stack: `.venv/bin/python benchmarks/lag_benchmark.py`.

For each load (`--jobs 50,500`) it starts a fresh local stack (embedded AWS, the real template,
state machine and handlers, the Router One simulator, a webhook receiver), submits that many
short jobs at once and follows each to its end. It reports:

- submit latency at the API (p50/p95/p99);
- lag from the simulator's completion of a job (when Router One would first answer "completed")
  to its event arriving on SNS, on EventBridge and at the webhook receiver (p50/p95/p99), read
  from the local observer queues and the receiver, all on one monotonic clock;
- jobs completed per second (jobs / time from the first submit to the last terminal event);
- errors: refused submits, jobs missing an event on some channel, failed executions.

Lag per job should not grow with the load: the table shows both loads side by side, and
`--plot` draws lag against load. Figures are local: one process runs every function, the
emulator and the simulator on this machine's cores, and the local API serves one request at a
time per function as one Lambda instance would (API Gateway would run many instances at once).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "layers" / "bridge"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from bridge.timeutil import parse_iso  # noqa: E402
from bridge_local.local_stack import StackOptions, running_stack  # noqa: E402

CHANNELS = ("sns", "eventbridge", "webhook")
# The SNS lag in two parts: until the poll that saw the end recorded it (the job row's
# finished_at), and from there to arrival (publishing and delivery).
STAGES = ("detected", "published")
TERMINAL_TYPES = {f"video.generation.{s}" for s in ("completed", "failed", "timed_out", "canceled")}
DEFAULT_PLOT = ROOT / "docs" / "lag-vs-load.png"


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0-100) of a non-empty sample."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


@dataclass
class LoadResult:
    jobs: int
    submit_s: list[float] = field(default_factory=list)
    lag_s: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    stage_s: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    refused: int = 0
    missing: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    failed_executions: int = 0
    wall_s: float = 0.0
    # The whole local stack is this one process. CPU seconds it used per second of the run: near one
    # core (the GIL's limit) means it was saturated, and queueing for it is part of every lag.
    cpu_cores: float = 0.0
    # Work per job, which must not grow with the load: CPU seconds, and polls (the job rows' count).
    cpu_per_job_s: float = 0.0
    polls: list[int] = field(default_factory=list)

    @property
    def completed(self) -> int:
        return len(self.lag_s.get("sns", []))

    @property
    def jobs_per_s(self) -> float:
        return self.completed / self.wall_s if self.wall_s else 0.0

    @property
    def errors(self) -> int:
        return self.refused + sum(self.missing.values()) + self.failed_executions

    def summary(self) -> dict[str, Any]:
        def pcts(values: list[float]) -> dict[str, float | None]:
            if not values:
                return {"p50": None, "p95": None, "p99": None}
            return {f"p{q}": round(percentile(values, q), 3) for q in (50, 95, 99)}

        return {
            "jobs": self.jobs,
            "submit_latency_s": pcts(self.submit_s),
            "lag_s": {channel: pcts(self.lag_s.get(channel, [])) for channel in CHANNELS},
            "sns_lag_stages_s": {stage: pcts(self.stage_s.get(stage, [])) for stage in STAGES},
            "completed": self.completed,
            "jobs_per_s": round(self.jobs_per_s, 2),
            "wall_s": round(self.wall_s, 1),
            "cpu_cores_busy": round(self.cpu_cores, 2),
            "cpu_per_job_s": round(self.cpu_per_job_s, 3),
            "polls_per_job": pcts([float(n) for n in self.polls]),
            "errors": {
                "refused_submits": self.refused,
                "missing_events": dict(self.missing),
                "failed_executions": self.failed_executions,
            },
        }


class _Arrivals:
    """First arrival (monotonic) of each job's terminal event, per channel."""

    def __init__(self) -> None:
        self.first: dict[str, dict[str, float]] = defaultdict(dict)
        self.lock = threading.Lock()

    def note(self, channel: str, event: Any, at: float) -> None:
        if not isinstance(event, dict) or event.get("type") not in TERMINAL_TYPES:
            return
        task_id = (event.get("data") or {}).get("task_id")
        with self.lock:
            self.first[task_id].setdefault(channel, at)

    def of(self, task_id: str) -> dict[str, float]:
        with self.lock:
            return dict(self.first.get(task_id, {}))


def run_load(
    jobs: int,
    *,
    seed: int,
    min_run_s: float,
    max_run_s: float,
    submit_concurrency: int,
    timeout_s: float,
) -> LoadResult:
    rng = random.Random(seed)
    result = LoadResult(jobs=jobs)
    arrivals = _Arrivals()
    # The receiver stamps wall time; events here get monotonic time. One offset maps the first.
    wall_to_monotonic = time.monotonic() - time.time()

    def on_event(message: dict[str, Any]) -> None:
        arrivals.note(message.get("channel", "raw"), message.get("event"), time.monotonic())

    options = StackOptions(
        name="bench",
        parameters={"LogLevel": "ERROR", "WebhookAllowLoopback": "true", "PollIntervalSeconds": "3"},
        # Several receivers per observer queue, so the observer is not what is measured.
        event_readers=4,
    )
    with running_stack(options, on_event=on_event) as local:
        callback = f"{local.receiver.url}/hooks/bench"
        bodies = [
            {
                "model": "video-default",
                "prompt": f"bench {i} [sim duration={rng.uniform(min_run_s, max_run_s):.1f} queue=0.5]",
                "callback_url": callback,
            }
            for i in range(jobs)
        ]
        accepted: list[str] = []
        lock = threading.Lock()
        started, cpu_started = time.monotonic(), time.process_time()
        with httpx.Client(
            base_url=local.api_url, timeout=60, headers={"Authorization": f"Bearer {local.api_key}"}
        ) as client:

            def submit(body: dict[str, Any]) -> None:
                t0 = time.monotonic()
                response = client.post("/v1/videos/generations", json=body)
                elapsed = time.monotonic() - t0
                with lock:
                    result.submit_s.append(elapsed)
                    if response.status_code == 202:
                        accepted.append(response.json()["task_id"])
                    else:
                        result.refused += 1

            with ThreadPoolExecutor(max_workers=submit_concurrency) as pool:
                list(pool.map(submit, bodies))

        def note_webhooks() -> None:
            # Once per round for all jobs (noting is idempotent): this runs inside the measured process.
            for delivery in local.receiver.deliveries("/hooks/bench"):
                arrivals.note("webhook", delivery.event, delivery.received_at + wall_to_monotonic)

        pending = set(accepted)
        deadline = time.monotonic() + timeout_s
        while pending and time.monotonic() < deadline:
            note_webhooks()
            pending = {task_id for task_id in pending if not set(CHANNELS) <= set(arrivals.of(task_id))}
            if pending:
                time.sleep(0.5)
        last_arrival = max((at for task_id in accepted for at in arrivals.of(task_id).values()), default=started)
        result.wall_s = last_arrival - started
        cpu_s = time.process_time() - cpu_started
        result.cpu_cores = cpu_s / max(time.monotonic() - started, 1e-9)
        result.cpu_per_job_s = cpu_s / max(len(accepted), 1)

        dynamodb = local.aws.client("dynamodb")
        for task_id in accepted:
            task = local.simulator.task(task_id)
            finished_upstream = task["created_at"] + task["config"]["queue_s"] + task["config"]["run_s"]
            got = arrivals.of(task_id)
            for channel in CHANNELS:
                if channel in got:
                    result.lag_s[channel].append(got[channel] - finished_upstream)
                else:
                    result.missing[channel] += 1
            row = dynamodb.get_item(TableName=local.stack.table_name, Key={"task_id": {"S": task_id}}).get("Item", {})
            if "poll_count" in row:
                result.polls.append(int(row["poll_count"]["N"]))
            if "finished_at" in row and "sns" in got:
                recorded = parse_iso(row["finished_at"]["S"]).timestamp() + wall_to_monotonic
                result.stage_s["detected"].append(recorded - finished_upstream)
                result.stage_s["published"].append(got["sns"] - recorded)
        sfn = local.aws.client("stepfunctions")
        pages = sfn.get_paginator("list_executions").paginate(
            stateMachineArn=local.stack.state_machine_arn, statusFilter="FAILED"
        )
        result.failed_executions = sum(len(page["executions"]) for page in pages)
    return result


def render(results: list[LoadResult]) -> str:
    def cell(values: list[float], digits: int = 2) -> str:
        if not values:
            return "-"
        return " / ".join(f"{percentile(values, q):.{digits}f}" for q in (50, 95, 99))

    header = ["", *[f"{r.jobs} jobs" for r in results]]
    rows = [
        ["submit latency p50/p95/p99 (s)", *[cell(r.submit_s) for r in results]],
        *[[f"lag to {c} p50/p95/p99 (s)", *[cell(r.lag_s.get(c, [])) for r in results]] for c in CHANNELS],
        ["  sns part 1: until the end is recorded (s)", *[cell(r.stage_s.get("detected", [])) for r in results]],
        ["  sns part 2: from record to arrival (s)", *[cell(r.stage_s.get("published", [])) for r in results]],
        ["jobs completed", *[str(r.completed) for r in results]],
        ["jobs completed per second", *[f"{r.jobs_per_s:.2f}" for r in results]],
        ["wall time (s)", *[f"{r.wall_s:.1f}" for r in results]],
        ["local stack CPU, cores busy", *[f"{r.cpu_cores:.2f}" for r in results]],
        ["local stack CPU per job (s)", *[f"{r.cpu_per_job_s:.3f}" for r in results]],
        ["polls per job p50/p95/p99", *[cell([float(n) for n in r.polls], digits=0) for r in results]],
        ["errors", *[str(r.errors) for r in results]],
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(text.ljust(widths[i]) if i == 0 else text.rjust(widths[i]) for i, text in enumerate(row))
        for row in [header, *rows]
    ]
    return "\n".join(lines)


def plot(results: list[LoadResult], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loads = [r.jobs for r in results]
    fig, ax = plt.subplots(figsize=(7, 4))
    for channel, marker in zip(CHANNELS, "os^", strict=True):
        for q, style in ((50, "-"), (95, "--")):
            values = [percentile(r.lag_s[channel], q) if r.lag_s.get(channel) else float("nan") for r in results]
            ax.plot(loads, values, style, marker=marker, label=f"{channel} p{q}")
    ax.set_xscale("log")
    ax.set_xticks(loads, labels=[str(n) for n in loads])
    ax.minorticks_off()
    ax.set_xlabel("concurrent jobs")
    ax.set_ylabel("lag after upstream completion (s)")
    ax.set_title("Event lag against load (local stack)")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", default="50,500", help="comma-separated loads (concurrent jobs), default 50,500")
    parser.add_argument("--min-run-s", type=float, default=5.0, help="shortest simulated generation (s)")
    parser.add_argument("--max-run-s", type=float, default=15.0, help="longest simulated generation (s)")
    parser.add_argument("--submit-concurrency", type=int, default=8, help="parallel submits")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for every event per load")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--plot", type=Path, nargs="?", const=DEFAULT_PLOT, help=f"write a plot (default {DEFAULT_PLOT})"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    loads = [int(n) for n in args.jobs.split(",") if n.strip()]
    results = []
    for jobs in loads:
        print(f"load: {jobs} concurrent jobs …", flush=True)
        results.append(
            run_load(
                jobs,
                seed=args.seed,
                min_run_s=args.min_run_s,
                max_run_s=args.max_run_s,
                submit_concurrency=args.submit_concurrency,
                timeout_s=args.timeout,
            )
        )
    print(render(results))
    if len(results) >= 2 and all(r.lag_s.get("sns") for r in results):
        small, large = results[0], results[-1]
        ratio = statistics.median(large.lag_s["sns"]) / max(statistics.median(small.lag_s["sns"]), 1e-9)
        print(f"\nmedian SNS lag at {large.jobs} jobs is {ratio:.2f}x that at {small.jobs} jobs")
    if args.json:
        args.json.write_text(json.dumps([r.summary() for r in results], indent=2))
    if args.plot:
        plot(results, args.plot)
        print(f"plot: {args.plot}")
    return 0 if all(r.errors == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
