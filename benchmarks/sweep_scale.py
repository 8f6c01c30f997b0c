"""The pending-jobs sweep at scale: every pending job no poll has seen gets its loop, once, across runs.

Seeds the local stack's jobs table with `--jobs` pending rows past the grace period (a share of them
already seen by a poll, `--seen`), then invokes the deployed reconcile function with a scheduled
event, as its schedule would, until a run ends with nothing left to resume. Each invoke's context
counts down from the function's own Timeout, so a run stops where it would on Lambda. The sweep's
loops go to a state machine that ends at once: what is counted is the sweep's work, not the loops'.

Prints each run (loops started, seconds) and the totals; exits 1 unless every unseen job was
started exactly once and no seen job was started.

    .venv/bin/python benchmarks/sweep_scale.py --jobs 10000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "bridge")]

from bridge.observability import logger  # noqa: E402
from bridge.outcomes.reconcile import SWEEP_CURSOR  # noqa: E402
from bridge.settings import get_settings  # noqa: E402
from bridge.store import job_lists  # noqa: E402
from bridge.timeutil import utcnow  # noqa: E402
from bridge_local.emulator import DUMMY_ROLE_ARN  # noqa: E402
from bridge_local.local_stack import StackOptions, running_stack  # noqa: E402
from bridge_local.schedules import scheduled_event  # noqa: E402
from bridge_local.testing import pending_job_row  # noqa: E402

FUNCTION = "ReconcileFunction"


def seed(table_name: str, count: int, seen_share: float) -> tuple[list[str], list[str]]:
    """Write `count` pending rows an hour old; return (unseen ids, seen ids)."""
    prefix = f"v_scale{uuid.uuid4().hex[:8]}_"
    created = utcnow() - timedelta(hours=1)
    unseen: list[str] = []
    seen: list[str] = []
    table = boto3.session.Session().resource("dynamodb").Table(table_name)
    with table.batch_writer() as batch:
        for i in range(count):
            task_id = f"{prefix}{i:06d}"
            item = pending_job_row(task_id, created + timedelta(milliseconds=i))
            if int((i + 1) * seen_share) > int(i * seen_share):  # spread evenly through the list
                item["execution_id"] = f"arn:aws:states:us-east-1:123456789012:execution:seen:{task_id}"
                seen.append(task_id)
            else:
                unseen.append(task_id)
            batch.put_item(Item=item)
    return unseen, seen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--jobs", type=int, default=10_000, help="pending rows to seed (default 10,000)")
    parser.add_argument("--seen", type=float, default=0.0, help="share of them a poll has already seen (0 to 1)")
    parser.add_argument("--max-runs", type=int, default=200, help="give up after this many runs")
    args = parser.parse_args()

    with running_stack(StackOptions(name="sweep", receiver=False)) as local:
        aws, stack = local.aws, local.stack
        lam = aws.client("lambda")
        function_name = stack.function_names[FUNCTION]
        timeout_s = lam.get_function_configuration(FunctionName=function_name)["Timeout"]
        target = aws.client("stepfunctions").create_state_machine(
            name="sweep-scale-target",
            definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
            roleArn=DUMMY_ROLE_ARN,
        )["stateMachineArn"]
        # IAM is enforced: the reconcile role may start this machine as it may start the real one.
        grant = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "states:StartExecution", "Resource": target}],
        }
        aws.client("iam").put_role_policy(
            RoleName=stack.roles["ReconcileFunctionRole"].role_name,
            PolicyName="sweep-target",
            PolicyDocument=json.dumps(grant),
        )
        os.environ["STATE_MACHINE_ARN"] = target
        get_settings.cache_clear()
        logger.setLevel("WARNING")  # one line per run here, not the function's log

        began = time.monotonic()
        unseen, seen = seed(stack.table_name, args.jobs, args.seen)
        print(f"seeded {args.jobs:,} pending jobs ({len(seen):,} seen by a poll) in {time.monotonic() - began:.1f} s")
        print(f"{FUNCTION} Timeout {timeout_s} s; each run is one scheduled invoke\n")
        print(f"{'run':>4} {'loops started':>14} {'seconds':>8}")

        started: Counter[str] = Counter()
        runs = 0
        total_s = 0.0
        while runs < args.max_runs:
            runs += 1
            t0 = time.monotonic()
            answer = lam.invoke(FunctionName=function_name, Payload=json.dumps(scheduled_event(stack.region)))
            seconds = time.monotonic() - t0
            total_s += seconds
            payload = json.loads(answer["Payload"].read())
            if "FunctionError" in answer:
                print(f"run {runs} failed: {payload}")
                return 1
            started.update(payload["swept"])
            print(f"{runs:>4} {len(payload['swept']):>14,} {seconds:>8.1f}")
            if job_lists.sweep_cursor(SWEEP_CURSOR) is None:  # the pass is complete
                break

        twice = sorted(task_id for task_id, n in started.items() if n > 1)
        missed = sorted(set(unseen) - set(started))
        wrongly = sorted(set(seen) & set(started))
        print(f"\nruns: {runs}, sweep time: {total_s:.1f} s, loops started: {sum(started.values()):,}")
        print(f"unseen jobs started: {len(set(unseen) & set(started)):,} of {len(unseen):,}")
        print(f"started twice: {len(twice)}, missed: {len(missed)}, seen jobs started: {len(wrongly)}")
        ok = not twice and not missed and not wrongly
        print("OK" if ok else "FAILED")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
