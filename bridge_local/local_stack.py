"""The one way to start the whole bridge in this process: `running_stack(StackOptions(...))`.

Router One (the simulator, or a real base URL), embedded AWS, the translated template deployed on
it with the upstream key stored as an operator would, the SQS pollers (and, if asked, the
schedules), a webhook receiver, a tail of the outcome events, the API Gateway front, and CloudWatch's
part: the handlers' metrics put into it (`metric_sink`) and the template's alarms evaluated
(`alarms`; `RunningStack.alarms.evaluate_now()` on demand). The local
run (`bridge_local.run`), the integration tests' `bridge` fixture, the fault run, the API fuzz run
and the benchmarks all start it here and differ only in their `StackOptions`.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge_local.alarms import LocalAlarms
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
from bridge_local.metric_sink import MetricSink, fresh_metrics_state
from bridge_local.receiver import ReceivedWebhook, WebhookReceiver
from bridge_local.schedules import start_schedulers
from bridge_local.simulator import RouterOneSimulator
from bridge_local.sqs_poller import start_pollers
from bridge_local.tail import EventTail
from bridge_local.testing import environ_restored

EventObserver = Callable[[dict[str, Any]], None]
DeliveryObserver = Callable[[ReceivedWebhook], None]


@dataclass(frozen=True)
class SimulatorSettings:
    """How the Router One simulator times every job unless a prompt directive says otherwise."""

    queue_s: float = 1.0
    run_s: float = 8.0


@dataclass(frozen=True)
class RealRouterOne:
    """A real Router One to call instead of starting the simulator."""

    base_url: str
    api_key: str


@dataclass(frozen=True)
class StackOptions:
    """What differs between the local run, the tests, the fault run and the benchmarks."""

    name: str = "local"  # goes into generated keys, so a key says which run made it
    parameters: Mapping[str, str] = field(default_factory=dict)  # template parameter overrides
    # Set before the deploy (settings the handlers read that the template does not declare);
    # every change to os.environ made while the stack runs is undone when it stops.
    environment: Mapping[str, str] = field(default_factory=dict)
    router_one: RealRouterOne | None = None  # None: start the simulator
    simulator: SimulatorSettings = SimulatorSettings()
    upstream_key: str | None = None  # the simulator's key (default: a new one)
    api_keys: tuple[str, ...] = ()  # what callers send as Authorization: Bearer, one tenant each
    callers: int = 1  # without api_keys: how many new keys to make
    receiver: bool = True
    receiver_port: int = 0
    event_readers: int = 1  # receivers per observer queue (more keep up with a busy topic)
    schedules: bool = False  # run the template's rate() schedules as timers
    alarm_interval_s: float = 5.0  # evaluate the template's alarms this often (0: only on demand)
    api_port: int = 0
    aws_port: int = 0
    template: Path = DEFAULT_TEMPLATE
    stack_name: str = DEFAULT_STACK_NAME


@dataclass
class RunningStack:
    aws: EmbeddedAws
    stack: DeployedStack
    front: ApiFront
    api_keys: tuple[str, ...]
    upstream_url: str
    upstream_key: str
    signing_secret: str  # the stack's current webhook signing secret
    alarms: LocalAlarms  # the template's alarms: `evaluate_now()`, `state(...)`, `inbox()`
    started_simulator: RouterOneSimulator | None = None
    started_receiver: WebhookReceiver | None = None

    @property
    def api_key(self) -> str:
        return self.api_keys[0]

    @property
    def api_url(self) -> str:
        return self.front.url

    @property
    def simulator(self) -> RouterOneSimulator:
        if self.started_simulator is None:
            raise RuntimeError("this stack calls a real Router One; it has no simulator")
        return self.started_simulator

    @property
    def receiver(self) -> WebhookReceiver:
        if self.started_receiver is None:
            raise RuntimeError("this stack was started without a webhook receiver")
        return self.started_receiver


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
    fresh_metrics_state()


def _caller_keys(options: StackOptions) -> tuple[str, ...]:
    if options.api_keys:
        return options.api_keys
    return tuple(f"vb-{options.name}-{n}-{secrets.token_hex(8)}" for n in range(options.callers))


def _upstream(options: StackOptions, cleanup: ExitStack) -> tuple[str, str, RouterOneSimulator | None]:
    """(base URL, key, the simulator if one was started)."""
    if options.router_one is not None:
        return options.router_one.base_url, options.router_one.api_key, None
    key = options.upstream_key or f"sk-{options.name}-{secrets.token_hex(8)}"
    simulator = RouterOneSimulator(
        api_key=key, queue_s=options.simulator.queue_s, run_s=options.simulator.run_s
    ).start()
    cleanup.callback(simulator.stop)
    return simulator.url, key, simulator


def _start_monitoring(options: StackOptions, cleanup: ExitStack, aws: EmbeddedAws, stack: DeployedStack) -> LocalAlarms:
    """CloudWatch's part: the handlers' metrics go into it, the template's alarms are evaluated."""
    sink = MetricSink(aws.client("cloudwatch")).start()
    cleanup.callback(sink.stop)
    alarms = LocalAlarms(aws, stack, sink, interval_s=options.alarm_interval_s).start()
    cleanup.callback(alarms.stop)
    return alarms


def _start_observers(
    options: StackOptions,
    cleanup: ExitStack,
    aws: EmbeddedAws,
    stack: DeployedStack,
    on_event: EventObserver | None,
) -> None:
    """What stands in for Lambda's event source mappings and schedules, and the event tail."""
    for poller in start_pollers(stack.event_sources, stack.region):
        cleanup.callback(poller.stop)
    if options.schedules:
        for scheduler in start_schedulers(stack.schedules, stack.region):
            cleanup.callback(scheduler.stop)
    if on_event is not None:
        tail = EventTail([stack.sns_queue_url, stack.events_queue_url], on_event, readers=options.event_readers)
        cleanup.callback(tail.start().stop)


@contextmanager
def running_stack(
    options: StackOptions = StackOptions(),
    *,
    on_event: EventObserver | None = None,
    on_delivery: DeliveryObserver | None = None,
) -> Iterator[RunningStack]:
    """Start the whole stack; stop it all (and restore os.environ) on leaving.

    `on_event` sees every outcome event published to SNS and EventBridge; `on_delivery` every
    webhook the built-in receiver gets.
    """
    with environ_restored(), ExitStack() as cleanup:
        # No X-Ray daemon here; the caller's env can still override.
        os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
        # Metrics on, as in a deployed function: the sink takes them into the emulated CloudWatch
        # (only `options.environment` can turn them off).
        os.environ["POWERTOOLS_METRICS_DISABLED"] = "false"
        os.environ.update(options.environment)
        cleanup.callback(forget_cached_clients)
        upstream_url, upstream_key, simulator = _upstream(options, cleanup)
        aws = EmbeddedAws(port=options.aws_port).start()
        cleanup.callback(aws.stop)
        parameters = {"RouterOneBaseUrl": upstream_url, **options.parameters}
        stack = deploy(aws, options.template, parameters, stack_name=options.stack_name)
        forget_cached_clients()
        put_router_one_key(aws, stack, upstream_key)
        signing_secret = webhook_signing_secret(aws, stack)
        alarms = _start_monitoring(options, cleanup, aws, stack)
        receiver = None
        if options.receiver:
            receiver = WebhookReceiver([signing_secret], port=options.receiver_port, on_delivery=on_delivery).start()
            cleanup.callback(receiver.stop)
        _start_observers(options, cleanup, aws, stack, on_event)
        api_keys = _caller_keys(options)
        front = ApiFront(
            stack.api_front_handler(api_keys),
            stack.api_routes,
            port=options.api_port,
            stage=stack.stage,
            function_name=stack.function_names[stack.api_function] if stack.api_function else "api",
            region=stack.region,
            gateway_responses=of_stack(stack),
        ).start()
        cleanup.callback(front.stop)
        yield RunningStack(
            aws=aws,
            stack=stack,
            front=front,
            api_keys=api_keys,
            upstream_url=upstream_url,
            upstream_key=upstream_key,
            signing_secret=signing_secret,
            alarms=alarms,
            started_simulator=simulator,
            started_receiver=receiver,
        )
