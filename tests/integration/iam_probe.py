"""Run one job on a local stack deployed from a given template and report the IAM denials it met.

Run in a process of its own by test_iam_enforced: a stack from another template cannot share a
process with the suite's stack (function settings and clients are per process, as on Lambda).

    python -m tests.integration.iam_probe TEMPLATE ROLE ACTION  → one JSON line on stdout
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import httpx

from bridge_local import iam
from bridge_local.local_stack import StackOptions, running_stack


def main(template: str, role: str, action: str, timeout_s: float = 40.0) -> int:
    options = StackOptions(parameters={"PollIntervalSeconds": "3"}, receiver=False, template=Path(template))
    with running_stack(options) as local:
        local.simulator.queue_next(run_s=1.0, queue_s=0.2)
        auth = {"Authorization": f"Bearer {local.api_key}"}
        answer = httpx.post(
            f"{local.api_url}/v1/videos/generations",
            headers=auth,
            json={"model": "video-default", "prompt": "a fox in snow"},
            timeout=30,
        )
        task_id = answer.json()["task_id"]
        role_name = local.stack.roles[role].role_name
        deadline = time.monotonic() + timeout_s
        denied: list[iam.Decision] = []
        while not denied and time.monotonic() < deadline:
            time.sleep(0.2)
            denied = [
                d for d in iam.usage.snapshot() if not d.allowed and d.role_name == role_name and d.action == action
            ]
        time.sleep(4)  # the simulated job has ended by now: a loop with its grants would have seen it
        status = httpx.get(f"{local.api_url}/v1/videos/generations/{task_id}", headers=auth, timeout=30).json()
        sfn = local.aws.client("stepfunctions")
        [execution] = sfn.list_executions(stateMachineArn=local.stack.state_machine_arn)["executions"]
        history = sfn.get_execution_history(executionArn=execution["executionArn"], maxResults=1000)["events"]
        print(
            json.dumps(
                {
                    "role_name": role_name,
                    "denied_resources": sorted({d.resource for d in denied}),
                    "job_status": status.get("status"),
                    "task_errors": [
                        e["taskFailedEventDetails"].get("error") for e in history if e["type"] == "TaskFailed"
                    ],
                    "topic_arn": local.stack.topic_arn,
                    "table_name": local.stack.table_name,
                }
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
