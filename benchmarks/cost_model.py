"""Cost per 1,000 jobs, from real executions on the local stack: `.venv/bin/python benchmarks/cost_model.py`.

One local stack with the template's defaults (the ETA policy, the poll function at 128 MB polling
for up to `PollInvocationSeconds` while its waits are short) runs two sets of jobs at once, in real
time, against the Router One simulator:

* two-minute jobs: 120 s of processing after 1 s queued, progress modes mixed as in the reference
  workload (linear, stepped, none: 41/41/19 %);
* a sample of the reference workload (`benchmarks/workloads/video-jobs-1000.jsonl`), drawn evenly
  from each progress mode, with its own queue times, run times and failures.

Each model's run-time history is seeded first, as a stack that has run the model before has it: 50
past run times around two minutes for the two-minute jobs' model, and for each model of the
workload the run times of its last 50 jobs outside the sample.

Per job it measures: the state transitions Step Functions bills (every state entered, across the
job's executions), each poll function invocation's handler time (the waits it sleeps included),
the polls (the job's row), and the submit's round trip. Billed Lambda time adds
`--upstream-latency-ms` for each Router One request (the simulator answers in about a millisecond;
Router One will not). The rest is priced per job from what the bridge does for one: the API request,
DynamoDB writes (the job's creation, one per poll, the outcome, the model's history, the published
mark; write units from the row's measured size), one SNS publish and one EventBridge event, and the outcome check's three SQS requests.

Targets: at most $0.40 per 1,000 two-minute jobs and $0.60 per 1,000 reference jobs, with the modes
weighted as in the workload. Exits 1 if either is missed.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "layers" / "bridge"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from benchmarks.workload_gen import DEFAULT_WORKLOAD, PROGRESS_MODES, WorkloadJob, load_workload  # noqa: E402
from bridge.tracking.model_stats import SLOTS, stats_key  # noqa: E402
from bridge_local.emulator import registry  # noqa: E402
from bridge_local.local_stack import RunningStack, StackOptions, running_stack  # noqa: E402

# us-east-1 list prices (USD).
PRICES = {
    "sfn_transition": 0.025 / 1000,  # Step Functions Standard, per state transition
    "lambda_request": 0.20 / 1_000_000,
    "lambda_gb_s": 0.0000166667,  # x86_64
    "apigw_request": 3.50 / 1_000_000,  # REST API, first 333 million
    "dynamodb_wru": 0.625 / 1_000_000,  # on-demand write request unit
    "sns_publish": 0.50 / 1_000_000,
    "eventbridge_event": 1.00 / 1_000_000,  # custom event
    "sqs_request": 0.40 / 1_000_000,
}
POLL_GB = 128 / 1024  # template.yaml: PollFunction's MemorySize
API_GB = 256 / 1024  # the Globals' MemorySize
# Writes of the job's row besides one per poll: created, outcome, published mark, two for the history ring.
FIXED_WRITES = 5
TWO_MINUTE_MODEL = "video-two-minute"
TWO_MINUTE_RUN_S = 120.0
TARGETS = {"two-minute": 0.40, "reference": 0.60}


@dataclass(frozen=True)
class PlannedJob:
    label: str  # "two-minute" or "reference"
    model: str
    queue_s: float
    run_s: float
    progress: str
    outcome: str

    def prompt(self) -> str:
        outcome = " outcome=failed" if self.outcome == "failed" else ""
        return f"cost model [sim duration={self.run_s:.1f} queue={self.queue_s:.1f} progress={self.progress}{outcome}]"


@dataclass
class JobCost:
    job: PlannedJob
    task_id: str
    submit_ms: float
    transitions: int = 0
    turns: int = 0
    polls: int = 0
    write_units: int = 1  # per write of the job's row: its size in KB, rounded up (an update bills the larger image)
    invocation_ms: list[float] = field(default_factory=list)

    def usd(self, upstream_latency_ms: float) -> dict[str, float]:
        billed_ms = sum(math.ceil(ms) for ms in self.invocation_ms) + self.polls * upstream_latency_ms
        submit_ms = math.ceil(self.submit_ms + upstream_latency_ms)
        lam = (len(self.invocation_ms) + 1) * PRICES["lambda_request"]
        lam += (billed_ms * POLL_GB + submit_ms * API_GB) / 1000 * PRICES["lambda_gb_s"]
        other = (
            PRICES["apigw_request"]
            + (self.polls + FIXED_WRITES) * self.write_units * PRICES["dynamodb_wru"]
            + PRICES["sns_publish"]
            + PRICES["eventbridge_event"]
            + 3 * PRICES["sqs_request"]
        )
        sfn = self.transitions * PRICES["sfn_transition"]
        return {"sfn": sfn, "lambda": lam, "other": other, "total": sfn + lam + other}


def two_minute_jobs(count: int) -> list[PlannedJob]:
    """`count` two-minute jobs, their modes in the reference workload's shares (largest remainder)."""
    shares = {"linear": 405, "stepped": 406, "none": 189}
    exact = {mode: count * share / 1000 for mode, share in shares.items()}
    counts = {mode: math.floor(value) for mode, value in exact.items()}
    for mode in sorted(exact, key=lambda m: exact[m] - counts[m], reverse=True)[: count - sum(counts.values())]:
        counts[mode] += 1
    return [
        PlannedJob("two-minute", TWO_MINUTE_MODEL, 1.0, TWO_MINUTE_RUN_S, mode, "completed")
        for mode in PROGRESS_MODES
        for _ in range(counts[mode])
    ]


def reference_sample(workload: Sequence[WorkloadJob], count: int) -> tuple[list[PlannedJob], dict[str, list[float]]]:
    """Jobs drawn evenly (by id) from each progress mode in its share, and each model's history: the
    run times of its last SLOTS jobs outside the sample."""
    by_mode: dict[str, list[WorkloadJob]] = defaultdict(list)
    for job in sorted(workload, key=lambda j: j.id):
        by_mode[job.progress].append(job)
    picked: list[WorkloadJob] = []
    for mode in PROGRESS_MODES:
        jobs = by_mode[mode]
        take = max(1, round(count * len(jobs) / len(workload)))
        picked += [jobs[(2 * i + 1) * len(jobs) // (2 * take)] for i in range(take)]
    chosen = {job.id for job in picked}
    history: dict[str, list[float]] = defaultdict(list)
    for job in sorted(workload, key=lambda j: j.submit_at_s):
        if job.id not in chosen and job.outcome == "completed":
            history[job.model] = (history[job.model] + [job.run_s])[-SLOTS:]
    planned = [PlannedJob("reference", j.model, j.queue_s, j.run_s, j.progress, j.outcome) for j in picked]
    return planned, dict(history)


def seed_history(local: RunningStack, history: dict[str, list[float]]) -> None:
    """Write each model's ring of recent run times as the poll function keeps it (`model_stats`)."""
    dynamodb = local.aws.client("dynamodb")
    for model, durations in history.items():
        item = {"task_id": {"S": stats_key(model)}, "samples": {"N": str(len(durations))}}
        item |= {f"d{slot}": {"N": str(round(seconds))} for slot, seconds in enumerate(durations[-SLOTS:])}
        dynamodb.put_item(TableName=local.stack.table_name, Item=item)


def _timed(handler: Callable[..., Any], into: dict[str, list[float]], lock: threading.Lock) -> Callable[..., Any]:
    def wrapper(event: Any, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return handler(event, context)
        finally:
            with lock:
                into[str(event.get("task_id"))].append((time.perf_counter() - started) * 1000)

    return wrapper


def measure(planned: Sequence[PlannedJob], history: dict[str, list[float]]) -> list[JobCost]:
    invocations: dict[str, list[float]] = defaultdict(list)
    lock = threading.Lock()
    with running_stack(StackOptions(name="cost", parameters={"LogLevel": "ERROR"}, receiver=False)) as local:
        stack = local.stack
        seed_history(local, history)
        name = stack.function_names["PollFunction"]
        registry.register(name, _timed(stack.handlers["PollFunction"], invocations, lock))
        costs: list[JobCost] = []
        headers = {"Authorization": f"Bearer {local.api_key}"}
        with httpx.Client(base_url=local.api_url, timeout=60, headers=headers) as client:
            for job in planned:
                started = time.perf_counter()
                response = client.post("/v1/videos/generations", json={"model": job.model, "prompt": job.prompt()})
                # The whole local round trip (front, authorizer, handler): an upper bound of the handler.
                submit_ms = (time.perf_counter() - started) * 1000
                response.raise_for_status()
                costs.append(JobCost(job=job, task_id=response.json()["task_id"], submit_ms=submit_ms))
        print(f"  {len(costs)} jobs submitted; waiting for every execution to end ...", flush=True)
        sfn = local.aws.client("stepfunctions")
        dynamodb = local.aws.client("dynamodb")
        deadline = time.monotonic() + 120 + 2 * max(job.queue_s + job.run_s for job in planned)
        for cost in costs:
            executions = _ended_executions(sfn, stack.state_machine_arn, cost.task_id, deadline)
            for execution in executions:
                pages = sfn.get_paginator("get_execution_history").paginate(executionArn=execution["executionArn"])
                for page in pages:
                    for event in page["events"]:
                        if event["type"].endswith("StateEntered"):
                            cost.transitions += 1
                            cost.turns += event["stateEnteredEventDetails"]["name"] == "PollUpstream"
            item = dynamodb.get_item(TableName=stack.table_name, Key={"task_id": {"S": cost.task_id}})["Item"]
            cost.polls = int(item["poll_count"]["N"])
            cost.write_units = math.ceil(len(json.dumps(item)) / 1024)
        with lock:
            for cost in costs:
                cost.invocation_ms = list(invocations[cost.task_id])
    return costs


def _ended_executions(sfn: Any, machine: str, task_id: str, deadline: float) -> list[dict[str, Any]]:
    while True:
        executions = [
            e
            for e in sfn.list_executions(stateMachineArn=machine, maxResults=1000)["executions"]
            if e["name"] == task_id or e["name"].startswith(f"{task_id}--")
        ]
        if executions and all(e["status"] != "RUNNING" for e in executions):
            return executions
        if time.monotonic() > deadline:
            raise SystemExit(f"{task_id} still running after the deadline")
        time.sleep(1.0)


MODE_WEIGHTS = {"linear": 0.405, "stepped": 0.406, "none": 0.189}  # the reference workload's shares
COLUMNS = ("polls", "turns", "transitions", "lambda_s", "sfn", "lambda", "other", "total")


def _means(group: Sequence[JobCost], upstream_latency_ms: float) -> dict[str, float]:
    """Per job: polls, turns, transitions, poll function seconds, and dollars by part."""
    rows = [
        {
            "polls": c.polls,
            "turns": c.turns,
            "transitions": c.transitions,
            "lambda_s": sum(c.invocation_ms) / 1000,
            **c.usd(upstream_latency_ms),
        }
        for c in group
    ]
    return {column: statistics.fmean(row[column] for row in rows) for column in COLUMNS}


def _row(label: str, mode: str, jobs: str, means: dict[str, float]) -> str:
    return (
        f"{label:<11} {mode:<9} {jobs:>4} {means['polls']:>6.1f} {means['turns']:>6.1f} {means['transitions']:>11.1f} "
        f"{means['lambda_s']:>9.1f} {1000 * means['sfn']:>7.3f} {1000 * means['lambda']:>9.3f} "
        f"{1000 * means['other']:>8.3f} {1000 * means['total']:>8.3f}"
    )


def report(costs: Sequence[JobCost], upstream_latency_ms: float) -> dict[str, float]:
    """Print the tables; return dollars per 1,000 jobs of each set, modes weighted as in the workload."""
    print()
    print(
        f"Per job, and $ per 1,000 jobs (us-east-1 list prices; {upstream_latency_ms:.0f} ms billed per Router One request)"
    )
    print(
        f"{'set':<11} {'mode':<9} {'jobs':>4} {'polls':>6} {'turns':>6} {'transitions':>11} {'Lambda s':>9} "
        f"{'SFN $':>7} {'Lambda $':>9} {'other $':>8} {'total $':>8}"
    )
    totals: dict[str, float] = {}
    for label in TARGETS:
        by_mode = {
            mode: _means(group, upstream_latency_ms)
            for mode in PROGRESS_MODES
            if (group := [c for c in costs if c.job.label == label and c.job.progress == mode])
        }
        if not by_mode:
            continue
        for mode, means in by_mode.items():
            count = sum(c.job.label == label and c.job.progress == mode for c in costs)
            print(_row(label, mode, str(count), means))
        weight = sum(MODE_WEIGHTS[mode] for mode in by_mode)
        mixed = {
            column: sum(MODE_WEIGHTS[m] * means[column] for m, means in by_mode.items()) / weight for column in COLUMNS
        }
        print(_row(label, "weighted", "", mixed))
        totals[label] = 1000 * mixed["total"]
    print()
    for label, target in TARGETS.items():
        if label not in totals:
            continue
        met = totals[label] <= target
        print(
            f"{label} jobs, modes weighted as in the workload: ${totals[label]:.3f} per 1,000 "
            f"(target <= ${target:.2f}: {'met' if met else 'MISSED'})"
        )
    return totals


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--two-minute-jobs", type=int, default=16, help="how many two-minute jobs to run")
    parser.add_argument("--reference-jobs", type=int, default=30, help="how many jobs of the reference sample")
    parser.add_argument("--workload", type=Path, default=DEFAULT_WORKLOAD)
    parser.add_argument("--upstream-latency-ms", type=float, default=200.0, help="Router One's answer time per call")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    reference, history = reference_sample(load_workload(args.workload), args.reference_jobs)
    history[TWO_MINUTE_MODEL] = [TWO_MINUTE_RUN_S * (0.9 + 0.2 * i / (SLOTS - 1)) for i in range(SLOTS)]
    planned = two_minute_jobs(args.two_minute_jobs) + reference
    longest = max(job.queue_s + job.run_s for job in planned)
    print(
        f"Running {len(planned)} jobs on a local stack, all at once (about {longest / 60:.0f} minutes) ...", flush=True
    )
    costs = measure(planned, history)
    totals = report(costs, args.upstream_latency_ms)
    if args.json:
        rows = [
            {"set": c.job.label, "mode": c.job.progress, "run_s": c.job.run_s, "polls": c.polls, "turns": c.turns,
             "transitions": c.transitions, "invocation_ms": c.invocation_ms}
            for c in costs
        ]  # fmt: skip
        args.json.write_text(json.dumps({"usd_per_1000": totals, "jobs": rows}, indent=2))
    return 0 if all(totals.get(label, math.inf) <= target for label, target in TARGETS.items()) else 1


if __name__ == "__main__":
    sys.exit(main())
