"""Helpers for tests that run on the embedded AWS (fixtures stay in the test modules)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

TERMINAL_EXECUTION_STATUSES = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


@contextmanager
def environ_restored() -> Iterator[None]:
    """Undo every os.environ change made inside (the deployer applies function env globally)."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def wait_for_execution(sfn: Any, execution_arn: str, timeout: float = 30.0) -> dict[str, Any]:
    """Poll describe_execution until the execution ends; return its description."""
    deadline = time.monotonic() + timeout
    while True:
        description: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
        if description["status"] in TERMINAL_EXECUTION_STATUSES:
            return description
        if time.monotonic() > deadline:
            raise TimeoutError(f"{execution_arn} still {description['status']} after {timeout}s")
        time.sleep(0.1)


def run_execution(sfn: Any, state_machine_arn: str, payload: Any, timeout: float = 30.0) -> dict[str, Any]:
    """Start one execution with `payload` as input and wait for it to end."""
    arn = sfn.start_execution(stateMachineArn=state_machine_arn, input=json.dumps(payload))["executionArn"]
    return wait_for_execution(sfn, arn, timeout)


def pending_job_row(task_id: str, created: datetime, *, deadline_s: int = 7200) -> dict[str, Any]:
    """A job row as submit leaves it before any poll (for sweeps over many seeded jobs)."""
    from bridge.timeutil import iso

    return {
        "task_id": task_id,
        "kind": "job",
        "status": "pending",
        "model": "video-default",
        "created_at": iso(created),
        "deadline_at": int(created.timestamp()) + deadline_s,
        "poll_count": 0,
    }


def create_table_like(client: Any, logical_id: str, name: str, **parameters: str) -> None:
    """Create table `name` with the keys and indexes template.yaml gives `logical_id` (its defaults,
    or these parameter values), so a module's tests use the deployed shape, not a copy of it."""
    from bridge_local.cfn.intrinsics import Resolver, parameter_values
    from bridge_local.deployer import DEFAULT_TEMPLATE
    from bridge_local.emulator import DEFAULT_REGION
    from bridge_local.sam import load_template

    template = load_template(DEFAULT_TEMPLATE)
    resolver = Resolver("tests", DEFAULT_REGION, parameter_values(template, parameters))
    resolver.evaluate_conditions(template.get("Conditions") or {})
    props = template["Resources"][logical_id]["Properties"]
    shape = {
        key: resolver.resolve(props[key])
        for key in ("KeySchema", "AttributeDefinitions", "GlobalSecondaryIndexes")
        if key in props
    }
    client.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", **shape)
