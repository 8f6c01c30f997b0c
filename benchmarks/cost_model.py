"""Cost per 1,000 jobs, from real executions: `.venv/bin/python benchmarks/cost_model.py`.

1. Measure. For each polling policy (the ETA policy and a fixed 3 s loop) a local stack runs a
   few jobs end to end. From each job's Step Functions execution history it counts the state
   transitions (every state entered, which is what Standard workflows bill) and the polls, and it
   times every poll function invocation and each submit's round trip, and measures the job's DynamoDB
   item. Transitions per job are fitted as `fixed + per_poll x polls` over those executions.
2. Project. The polls a 1-, 2- and 10-minute job takes under each policy come from the polling
   replay (`benchmarks/polling_benchmark.py`: the same policy code against the simulator's answer
   curve, in virtual time; linear progress, no model history, so the ETA policy's first job of a
   model). The replay is checked against the polls the real executions made.
3. Price. Published us-east-1 list prices (below) turn transitions, invocations, billed
   milliseconds, DynamoDB writes and the per-job SNS, EventBridge and API Gateway requests into
   dollars per 1,000 jobs. Billed Lambda time is the measured handler time plus
   `--upstream-latency-ms` for the Router One call each poll and submit makes (the simulator
   answers in about a millisecond; Router One will not).

Target: at most $1.00 per 1,000 two-minute jobs with the ETA policy. Exits 1 if missed.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "layers" / "bridge"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from benchmarks.polling_benchmark import POLICIES, WorkloadJob, replay_job  # noqa: E402
from bridge_local.emulator import registry  # noqa: E402
from bridge_local.local_stack import StackOptions, running_stack  # noqa: E402

# us-east-1 list prices (USD).
PRICES = {
    "sfn_transition": 0.025 / 1000,  # Step Functions Standard, per state transition
    "lambda_request": 0.20 / 1_000_000,
    "lambda_gb_s": 0.0000166667,  # x86_64
    "apigw_request": 3.50 / 1_000_000,  # REST API, first 333 million
    "dynamodb_wru": 0.625 / 1_000_000,  # on-demand write request unit
    "sns_publish": 0.50 / 1_000_000,
    "eventbridge_event": 1.00 / 1_000_000,  # custom event
}
LAMBDA_GB = 256 / 1024  # the template's MemorySize
POLICY_PARAMETER = {"eta": "eta", "fixed-3s": "fixed"}
JOB_MINUTES = (1, 2, 10)
TARGET_USD_PER_1000_TWO_MINUTE_JOBS = 1.00


@dataclass
class Measured:
    """What the real executions of one policy showed."""

    policy: str
    transitions: list[int] = field(default_factory=list)
    polls: list[int] = field(default_factory=list)
    run_s: list[float] = field(default_factory=list)
    poll_ms: list[float] = field(default_factory=list)
    submit_ms: list[float] = field(default_factory=list)
    item_bytes: list[int] = field(default_factory=list)


def _timed(handler: Callable[..., Any], into: list[float], lock: threading.Lock) -> Callable[..., Any]:
    def wrapper(event: Any, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return handler(event, context)
        finally:
            with lock:
                into.append((time.perf_counter() - started) * 1000)

    return wrapper


def measure(policy: str, run_seconds: Sequence[float]) -> Measured:
    measured = Measured(policy=policy)
    lock = threading.Lock()
    parameters = {"LogLevel": "ERROR", "PollingPolicy": POLICY_PARAMETER[policy], "PollIntervalSeconds": "3"}
    with running_stack(StackOptions(name="cost", parameters=parameters, receiver=False)) as local:
        stack = local.stack
        name = stack.function_names["PollFunction"]
        registry.register(name, _timed(stack.handlers["PollFunction"], measured.poll_ms, lock))
        headers = {"Authorization": f"Bearer {local.api_key}"}
        task_ids = []
        with httpx.Client(base_url=local.api_url, timeout=60, headers=headers) as client:
            for run_s in run_seconds:
                prompt = f"cost model [sim duration={run_s} queue=1 progress=linear]"
                started = time.perf_counter()
                response = client.post("/v1/videos/generations", json={"model": "video-default", "prompt": prompt})
                # The whole local round trip (front, authorizer, handler): an upper bound of the handler.
                measured.submit_ms.append((time.perf_counter() - started) * 1000)
                response.raise_for_status()
                task_ids.append(response.json()["task_id"])
        sfn = local.aws.client("stepfunctions")
        dynamodb = local.aws.client("dynamodb")
        deadline = time.monotonic() + 60 + 3 * max(run_seconds)
        for task_id, run_s in zip(task_ids, run_seconds, strict=True):
            while True:
                executions = [
                    e
                    for e in sfn.list_executions(stateMachineArn=stack.state_machine_arn, maxResults=1000)["executions"]
                    if e["name"] == task_id or e["name"].startswith(f"{task_id}--")
                ]
                if executions and all(e["status"] != "RUNNING" for e in executions):
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"{task_id} still running after the deadline")
                time.sleep(0.5)
            entered = polls = 0
            for execution in executions:
                pages = sfn.get_paginator("get_execution_history").paginate(executionArn=execution["executionArn"])
                for page in pages:
                    for event in page["events"]:
                        entered += event["type"].endswith("StateEntered")
                        details = event.get("stateEnteredEventDetails") or {}
                        polls += details.get("name") == "PollUpstream"
            measured.transitions.append(entered)
            measured.polls.append(polls)
            measured.run_s.append(run_s)
            item = dynamodb.get_item(TableName=stack.table_name, Key={"task_id": {"S": task_id}})["Item"]
            measured.item_bytes.append(len(json.dumps(item)))
    return measured


def fit(xs: Sequence[int], ys: Sequence[int]) -> tuple[float, float]:
    """Least-squares (intercept, slope) of ys against xs."""
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread if spread else 0.0
    return mean_y - slope * mean_x, slope


def replayed_polls(policy: str, run_s: float) -> int:
    choose, _ = POLICIES[policy]
    job = WorkloadJob(
        id="model",
        model="video-default",
        submit_at_s=0.0,
        queue_s=1.0,
        run_s=run_s,
        progress="linear",
        outcome="completed",
    )
    return replay_job(job, choose, None).polls


def lambda_usd(invocations: float, billed_ms: float) -> float:
    return invocations * (PRICES["lambda_request"] + LAMBDA_GB * billed_ms / 1000 * PRICES["lambda_gb_s"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-seconds", default="8,16,24,32", help="simulated durations of the measured jobs")
    parser.add_argument("--upstream-latency-ms", type=float, default=200.0, help="Router One's answer time per call")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    run_seconds = [float(s) for s in args.run_seconds.split(",")]

    measured = {policy: measure(policy, run_seconds) for policy in POLICY_PARAMETER}
    all_polls = [p for m in measured.values() for p in m.polls]
    all_transitions = [t for m in measured.values() for t in m.transitions]
    fixed_part, per_poll = fit(all_polls, all_transitions)
    worst = max(abs(fixed_part + per_poll * p - t) for p, t in zip(all_polls, all_transitions, strict=True))
    poll_ms = statistics.median([ms for m in measured.values() for ms in m.poll_ms])
    submit_ms = statistics.median([ms for m in measured.values() for ms in m.submit_ms])
    item_kb = max(b for m in measured.values() for b in m.item_bytes) / 1024
    wru = math.ceil(item_kb)  # per write of the job's row (an update is billed on the larger item)
    billed_poll_ms = math.ceil(poll_ms + args.upstream_latency_ms)
    billed_submit_ms = math.ceil(submit_ms + args.upstream_latency_ms)

    print("Measured on the local stack (real state machine, real handlers):")
    for policy, m in measured.items():
        predicted = [replayed_polls(policy, s) for s in m.run_s]
        print(
            f"  {policy:<8} jobs of {', '.join(f'{s:.0f}' for s in m.run_s)} s: polls {m.polls} "
            f"(replay predicts {predicted}), transitions {m.transitions}"
        )
    print(f"  transitions per job = {fixed_part:.1f} + {per_poll:.2f} x polls  (largest residual {worst:.1f})")
    print(
        f"  handler time, median: poll {poll_ms:.0f} ms, submit {submit_ms:.0f} ms; billed with "
        f"{args.upstream_latency_ms:.0f} ms for Router One: {billed_poll_ms} ms and {billed_submit_ms} ms at 256 MB"
    )
    print(f"  job row: {item_kb:.2f} KB -> {wru} write unit(s) per write")
    print()
    print("Cost per 1,000 jobs (linear progress; us-east-1 list prices)")
    print(
        f"{'policy':<9} {'job':>6} {'polls':>6} {'transitions':>11} {'SFN $':>8} {'Lambda $':>9} {'other $':>8} {'total $':>8}"
    )
    rows = []
    for policy in POLICY_PARAMETER:
        for minutes in JOB_MINUTES:
            polls = replayed_polls(policy, minutes * 60.0)
            transitions = fixed_part + per_poll * polls
            sfn = transitions * PRICES["sfn_transition"]
            lam = lambda_usd(polls, billed_poll_ms) + lambda_usd(1, billed_submit_ms)
            # Writes: create, one per poll, the outcome, the model's run-time ring. One event per channel.
            writes = (polls + 3) * wru
            other = (
                PRICES["apigw_request"]
                + writes * PRICES["dynamodb_wru"]
                + PRICES["sns_publish"]
                + PRICES["eventbridge_event"]
            )
            total = sfn + lam + other
            rows.append({"policy": policy, "minutes": minutes, "polls": polls, "usd_per_1000": round(1000 * total, 3)})
            print(
                f"{policy:<9} {minutes:>4}min {polls:>6} {transitions:>11.0f} {1000 * sfn:>8.3f} "
                f"{1000 * lam:>9.3f} {1000 * other:>8.3f} {1000 * total:>8.3f}"
            )
    target = next(r for r in rows if r["policy"] == "eta" and r["minutes"] == 2)["usd_per_1000"]
    met = target <= TARGET_USD_PER_1000_TWO_MINUTE_JOBS
    print(
        f"\nETA policy, 2-minute jobs: ${target:.3f} per 1,000 "
        f"(target <= ${TARGET_USD_PER_1000_TWO_MINUTE_JOBS:.2f}: {'met' if met else 'MISSED'})"
    )
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "per_poll": per_poll, "fixed": fixed_part}, indent=2))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
