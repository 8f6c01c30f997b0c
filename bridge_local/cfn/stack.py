"""What a local deploy hands back: the deployed stack, and what stands in for Lambda's event source
mappings and schedules (run by `bridge_local.sqs_poller` and `bridge_local.schedules`)."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge_local.api_front import ApiRoute
from bridge_local.emulator import Handler
from bridge_local.gateway_auth import ApiAuth, gated
from bridge_local.iam import RoleSession


class DeployError(RuntimeError):
    """The template uses something this local deployer does not know how to create."""


@dataclass(frozen=True)
class SqsEventSource:
    """A function's SQS event (what Lambda's event source mapping does on AWS; run by sqs_poller)."""

    function_logical_id: str
    function_name: str
    queue_url: str
    queue_arn: str
    batch_size: int
    report_batch_item_failures: bool
    # ScalingConfig.MaximumConcurrency: how many batches Lambda works on at once (None: unbounded).
    maximum_concurrency: int | None = None
    # Where the function's code is, so the poller can load one instance per concurrent batch.
    code_dir: Path | None = None
    handler: str = ""
    # The function's Timeout: the context it is invoked with counts down from it, as on Lambda.
    timeout_s: float = 3.0
    # The function's execution role: the poller receives and deletes with it, as Lambda does.
    role: RoleSession | None = None


@dataclass(frozen=True)
class ScheduledInvoke:
    """A function's Schedule event: invoke it every `every_s` seconds (run by bridge_local.schedules)."""

    function_logical_id: str
    function_name: str
    every_s: int


@dataclass
class DeployedStack:
    stack_name: str
    region: str
    parameters: dict[str, str]
    resources: dict[str, str]  # logical id → physical id (what Ref returns)
    outputs: dict[str, str]  # template Outputs that resolve locally
    environment: dict[str, str]  # the union applied to os.environ
    function_environments: dict[str, dict[str, str]]
    function_names: dict[str, str]  # logical id → function name
    handlers: dict[str, Handler]  # logical id → imported handler
    api_routes: list[ApiRoute]
    api_function: str | None  # logical id of the function behind the Api events
    api_auth: ApiAuth | None = None
    event_sources: list[SqsEventSource] = field(default_factory=list)
    schedules: list[ScheduledInvoke] = field(default_factory=list)
    queue_urls: dict[str, str] = field(default_factory=dict)  # logical id → queue URL
    roles: dict[str, RoleSession] = field(default_factory=dict)  # logical id → the role's session
    template: dict[str, Any] = field(default_factory=dict)  # the translated CloudFormation
    table_name: str = ""
    topic_arn: str = ""
    event_bus_name: str = ""
    state_machine_arn: str = ""
    secret_arn: str = ""
    sns_queue_url: str = ""
    events_queue_url: str = ""

    @property
    def api_handler(self) -> Handler:
        if self.api_function is None:
            raise DeployError("no function in the template has Api events")
        return self.handlers[self.api_function]

    @property
    def stage(self) -> str:
        return self.parameters.get("Stage", "dev")

    def api_front_handler(self, api_keys: Iterable[str]) -> Handler:
        """The api handler behind the Api's authorizer and key check, as API Gateway puts them.

        Calls are serialised: a Lambda instance handles one request at a time, and the handler's
        module state (the resolver's current event, the logger's keys) relies on that.
        """
        handler = one_at_a_time(self.api_handler)
        if self.api_auth is None:
            return handler
        authorizer = self.handlers.get(self.api_auth.authorizer_function or "")
        return gated(handler, self.api_auth, authorizer, api_keys, region=self.region, stage=self.stage)


def one_at_a_time(handler: Handler) -> Handler:
    lock = threading.Lock()

    def serialised(event: Any, context: Any) -> Any:
        with lock:
            return handler(event, context)

    return serialised
