"""What a deploy knows while it creates resources: the emulator, the resolver, and what each creator
recorded (functions, roles, queues, routes, event sources, schedules) for the stack it returns."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from bridge_local.api_front import ApiRoute
from bridge_local.cfn.intrinsics import Resolver
from bridge_local.cfn.stack import DeployError, ScheduledInvoke, SqsEventSource
from bridge_local.emulator import ACCOUNT_ID, EmbeddedAws, Handler, registry
from bridge_local.iam import RoleSession
from bridge_local.sam import Translated


@dataclass
class DeployState:
    aws: EmbeddedAws
    translated: Translated
    stack_name: str
    resolver: Resolver
    function_envs: dict[str, dict[str, str]] = field(default_factory=dict)
    function_names: dict[str, str] = field(default_factory=dict)  # logical id → function name
    function_roles: dict[str, RoleSession | None] = field(default_factory=dict)
    handlers: dict[str, Handler] = field(default_factory=dict)
    routes: list[ApiRoute] = field(default_factory=list)
    api_function: str | None = None
    event_sources: list[SqsEventSource] = field(default_factory=list)
    schedules: list[ScheduledInvoke] = field(default_factory=list)
    queue_urls: dict[str, str] = field(default_factory=dict)  # logical id → URL
    queue_arns: dict[str, str] = field(default_factory=dict)  # ARN → URL
    roles: dict[str, RoleSession] = field(default_factory=dict)  # logical id → its assumed session

    @property
    def template(self) -> dict[str, Any]:
        return self.translated.template

    @property
    def region(self) -> str:
        return self.aws.region

    def physical_name(self, logical_id: str, limit: int = 64) -> str:
        name = f"{self.stack_name}-{logical_id}"
        if len(name) <= limit:
            return name
        # CloudFormation shortens long generated names and adds a unique suffix; so does this.
        digest = hashlib.sha256(name.encode()).hexdigest()[:12]
        return f"{name[: limit - 13]}-{digest}"

    def arn(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self.region}:{ACCOUNT_ID}:{resource}"

    def function_logical_id(self, name_or_arn: str) -> str:
        name = registry.function_name_of(name_or_arn)
        for logical_id, known in self.function_names.items():
            if known == name:
                return logical_id
        raise DeployError(f"{name_or_arn} is not a function of this template")
