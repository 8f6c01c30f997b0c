"""One local bridge for the integration tests: the simulator, embedded AWS, the template's
resources, the real handlers and the HTTP front, built once per session."""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from bridge_local.deployer import DeployedStack
from bridge_local.emulator import EmbeddedAws
from bridge_local.local_stack import SimulatorSettings, StackOptions, running_stack
from bridge_local.receiver import WebhookReceiver
from bridge_local.simulator import RouterOneSimulator

ROUTER_ONE_KEY = "sk-integration-secret-4f1d"
# The key callers of the bridge's own API present (Authorization: Bearer …), as on a deployed stack.
BRIDGE_API_KEY = "vb-integration-key-7c2e"
# More keys of the same stack: another tenant, and one the tenancy tests make an operator.
TENANT_B_API_KEY = "vb-integration-tenant-b-91d0"
OPERATOR_API_KEY = "vb-integration-operator-3a57"
# The registered-endpoint tests' own tenant: an endpoint gets every event of its owner's jobs, so
# jobs other modules leave running under the main key must not reach it.
ENDPOINT_TENANT_API_KEY = "vb-integration-endpoints-5b18"
API_KEYS = (BRIDGE_API_KEY, TENANT_B_API_KEY, OPERATOR_API_KEY, ENDPOINT_TENANT_API_KEY)
# Small enough that jobs of a few polls roll over to a new execution: the continuation is exercised.
MAX_POLLS_PER_EXECUTION = 3
# Webhook retries in seconds instead of hours: the schedule is configuration, as in a deployment.
WEBHOOK_RETRY_SCHEDULE = "1,1,2"
WEBHOOK_TIMEOUT_SECONDS = "2"
STACK_OPTIONS = StackOptions(
    name="integration",
    parameters={
        "PollIntervalSeconds": "3",
        # Most tests time jobs by fixed 3 s polls; the ETA policy has tests of its own.
        "PollingPolicy": "fixed",
        "LogLevel": "WARNING",
        "WebhookRetrySchedule": WEBHOOK_RETRY_SCHEDULE,
        "WebhookTimeoutSeconds": WEBHOOK_TIMEOUT_SECONDS,
        "ProgressEventIntervalSeconds": "5",
        # The receiver listens on loopback; the SSRF tests turn this off again.
        "WebhookAllowLoopback": "true",
        # As in the local run: every completed video is copied into the stack's bucket.
        "KeepVideos": "true",
        # Pass-through mode on, so its tests (and the secret scan) run against a KMS key.
        "CallerRouterOneKeys": "allowed",
    },
    environment={"MAX_POLLS_PER_EXECUTION": str(MAX_POLLS_PER_EXECUTION)},
    simulator=SimulatorSettings(queue_s=0.5, run_s=4.0),
    upstream_key=ROUTER_ONE_KEY,
    api_keys=API_KEYS,
)


@dataclass
class EventLog:
    """Every event that reached the observation queues, by task id and channel."""

    by_task: dict[str, dict[str, list[dict[str, Any]]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def add(self, event: dict[str, Any]) -> None:
        body = event.get("event") or {}
        data = (body.get("data") or {}) if isinstance(body, dict) else {}
        # Job events by their task; an endpoint's events (webhook.endpoint.disabled) by the endpoint.
        task_id = data.get("task_id") or data.get("endpoint_id")
        with self.arrived:
            self.by_task[task_id or "?"][event["channel"]].append(event)
            self.arrived.notify_all()

    def wait_for(
        self, task_id: str, channels: tuple[str, ...] = ("sns", "eventbridge"), timeout: float = 40.0
    ) -> dict[str, list[dict[str, Any]]]:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while not all(self.by_task[task_id][channel] for channel in channels):
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = {channel: len(events) for channel, events in self.by_task[task_id].items()}
                    raise AssertionError(
                        f"no event for {task_id} on every channel of {channels} after {timeout}s; saw {seen}"
                    )
                self.arrived.wait(left)
            return {channel: list(events) for channel, events in self.by_task[task_id].items()}

    def for_task(self, task_id: str) -> dict[str, list[dict[str, Any]]]:
        with self.arrived:
            return {channel: list(events) for channel, events in self.by_task[task_id].items()}


@dataclass
class LocalBridge:
    aws: EmbeddedAws
    stack: DeployedStack
    simulator: RouterOneSimulator
    api: httpx.Client
    events: EventLog
    receiver: WebhookReceiver
    signing_secret: str
    owner_id: str  # what the authorizer makes of BRIDGE_API_KEY

    def client_for(self, api_key: str) -> httpx.Client:
        """Another caller of the same stack (close it after use)."""
        return httpx.Client(base_url=self.api.base_url, timeout=30, headers={"Authorization": f"Bearer {api_key}"})

    def submit(self, body: dict[str, Any] | None = None, **sim: Any) -> httpx.Response:
        """POST a job through the HTTP front; `sim` scripts the simulated job (run_s, outcome, …)."""
        if sim:
            self.simulator.queue_next(**sim)
        return self.api.post(
            "/v1/videos/generations", json=body or {"model": "video-default", "prompt": "a fox in snow"}
        )

    def delivery_rows(self, task_id: str, caller: httpx.Client | None = None) -> list[dict[str, Any]]:
        """The job's delivery rows as its owner sees them (the main key's unless `caller` is given)."""
        answer = (caller or self.api).get(f"/v1/videos/generations/{task_id}/webhooks")
        assert answer.status_code == 200, answer.text
        return list(answer.json()["deliveries"])

    def wait_for_delivery_status(self, task_id: str, status: str, timeout: float = 40.0) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            rows = [row for row in self.delivery_rows(task_id) if row["status"] == status]
            return rows[0] if rows else None

        return self.wait_until(reached, timeout, f"a delivery of {task_id} {status}")

    def job_row(self, task_id: str) -> dict[str, Any] | None:
        return (
            self.aws.client("dynamodb")
            .get_item(TableName=self.stack.table_name, Key={"task_id": {"S": task_id}})
            .get("Item")
        )

    def executions(self, task_id: str) -> list[dict[str, Any]]:
        sfn = self.aws.client("stepfunctions")
        found = sfn.list_executions(stateMachineArn=self.stack.state_machine_arn, maxResults=1000)["executions"]
        return [e for e in found if e["name"] == task_id or e["name"].startswith(f"{task_id}--")]

    def wait_until(self, condition: Callable[[], Any], timeout: float = 40.0, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"{what} not met after {timeout}s")

    def wait_for_executions_to_end(self, task_id: str, timeout: float = 40.0) -> list[dict[str, Any]]:
        def all_ended() -> list[dict[str, Any]] | None:
            found = self.executions(task_id)
            return found if found and all(e["status"] != "RUNNING" for e in found) else None

        return self.wait_until(all_ended, timeout, f"executions of {task_id} ended")


@pytest.fixture(scope="session")
def bridge() -> Iterator[LocalBridge]:
    events = EventLog()
    with running_stack(STACK_OPTIONS, on_event=events.add) as running:
        api = httpx.Client(base_url=running.api_url, timeout=30, headers={"Authorization": f"Bearer {BRIDGE_API_KEY}"})
        # The CLI reads its key from the environment, as a user's shell would provide it.
        os.environ["VIDEO_BRIDGE_API_KEY"] = BRIDGE_API_KEY
        with api:
            owner_id = api.get("/v1/account").raise_for_status().json()["owner_id"]
            yield LocalBridge(
                aws=running.aws,
                stack=running.stack,
                simulator=running.simulator,
                api=api,
                events=events,
                receiver=running.receiver,
                signing_secret=running.signing_secret,
                owner_id=owner_id,
            )


@contextmanager
def bridge_settings(**env: str) -> Iterator[None]:
    """Run the in-process handlers with some settings changed (by env variable name), then restore."""
    from bridge.settings import get_settings

    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    get_settings.cache_clear()
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        get_settings.cache_clear()
