"""The whole bridge on embedded AWS for a script: simulator, stack, pollers, receiver, event tail, API.

The fault run and the API fuzz run start the same pieces in the same order; this is that order.
(The local run and the test fixture start them too, each with its own printing or bookkeeping.)
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge_local.api_front import ApiFront
from bridge_local.deployer import (
    DEFAULT_STACK_NAME,
    DEFAULT_TEMPLATE,
    DeployedStack,
    deploy,
    put_router_one_key,
    webhook_signing_secret,
)
from bridge_local.emulator import EmbeddedAws
from bridge_local.gateway_responses import of_stack
from bridge_local.receiver import WebhookReceiver
from bridge_local.simulator import RouterOneSimulator
from bridge_local.sqs_poller import start_pollers
from bridge_local.tail import EventTail


@dataclass
class LocalStack:
    aws: EmbeddedAws
    stack: DeployedStack
    simulator: RouterOneSimulator
    receiver: WebhookReceiver
    front: ApiFront
    api_keys: tuple[str, ...]  # what callers send as Authorization: Bearer, one key per tenant

    @property
    def api_key(self) -> str:
        return self.api_keys[0]

    @property
    def api_url(self) -> str:
        return self.front.url


def forget_cached_clients() -> None:
    """Settings, clients and the cached secret live per process: a new stack (or changed env)
    starts them afresh, as a new Lambda instance would."""
    from aws_lambda_powertools.utilities import parameters

    from bridge import clients, settings
    from bridge.submit import idempotent
    from bridge.upstream import configured

    settings.get_settings.cache_clear()
    clients.reset()
    idempotent.reset()
    configured.router_one.cache_clear()
    parameters.clear_caches()
    parameters.base.DEFAULT_PROVIDERS.clear()


def start_local_stack(
    cleanup: ExitStack,
    *,
    parameters: dict[str, str],
    on_event: Callable[[dict[str, Any]], None] | None = None,
    simulator_options: dict[str, Any] | None = None,
    name: str = "local",
    event_readers: int = 1,
    callers: int = 1,
    template: Path = DEFAULT_TEMPLATE,
    stack_name: str = DEFAULT_STACK_NAME,
) -> LocalStack:
    """Start everything, registering each stop on `cleanup`; the upstream key is stored as a deploy would."""
    # No X-Ray daemon and no CloudWatch here; the env can still override.
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    api_keys = tuple(f"vb-{name}-{n}-{secrets.token_hex(8)}" for n in range(callers))
    upstream_key = f"sk-{name}-{secrets.token_hex(8)}"
    simulator = RouterOneSimulator(api_key=upstream_key, **(simulator_options or {})).start()
    cleanup.callback(simulator.stop)
    aws = EmbeddedAws().start()
    cleanup.callback(aws.stop)
    stack = deploy(aws, template, parameters={"RouterOneBaseUrl": simulator.url, **parameters}, stack_name=stack_name)
    forget_cached_clients()
    put_router_one_key(aws, stack, upstream_key)
    receiver = WebhookReceiver([webhook_signing_secret(aws, stack)]).start()
    cleanup.callback(receiver.stop)
    for poller in start_pollers(stack.event_sources, stack.region):
        cleanup.callback(poller.stop)
    if on_event is not None:
        tail = EventTail([stack.sns_queue_url, stack.events_queue_url], on_event, readers=event_readers).start()
        cleanup.callback(tail.stop)
    front = ApiFront(
        stack.api_front_handler(api_keys), stack.api_routes, stage=stack.stage, gateway_responses=of_stack(stack)
    ).start()
    cleanup.callback(front.stop)
    return LocalStack(aws=aws, stack=stack, simulator=simulator, receiver=receiver, front=front, api_keys=api_keys)
