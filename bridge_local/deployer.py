"""Deploy template.yaml onto the embedded AWS, from the CloudFormation SAM's transform makes of it.

`bridge_local.sam` runs aws-sam-translator as AWS would (roles and their policies, permissions,
event source mappings, the REST API and its stage are SAM's, not ours). What is left is what no
library does: resolving the intrinsics against the emulator (`cfn.intrinsics`), creating each
resource with plain API calls (`cfn.compute`, `cfn.data`), and, here, the deploy itself: every
resource in dependency order, then the handlers imported from their code directories and routed,
and the queues that let a local run watch what the stack publishes.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bridge_local.cfn.compute import COMPUTE_CREATORS, Creator
from bridge_local.cfn.data import DATA_CREATORS
from bridge_local.cfn.intrinsics import Resolver, creation_order, parameter_values
from bridge_local.cfn.stack import DeployedStack, DeployError, ScheduledInvoke, SqsEventSource, one_at_a_time
from bridge_local.cfn.state import DeployState
from bridge_local.emulator import ACCOUNT_ID, EmbeddedAws, Handler, registry
from bridge_local.function_env import with_own_environment
from bridge_local.gateway_auth import ApiAuth, api_auth_of
from bridge_local.iam import as_role
from bridge_local.sam import Translated, load_template, translate

# Importers of the deployer's names from before its parts moved to bridge_local.cfn.
__all__ = [
    "DEFAULT_STACK_NAME",
    "DEFAULT_TEMPLATE",
    "DeployError",
    "DeployedStack",
    "Handler",
    "ScheduledInvoke",
    "SqsEventSource",
    "creation_order",
    "deploy",
    "import_handler",
    "load_template",
    "one_at_a_time",
    "put_router_one_key",
    "webhook_signing_secret",
]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TEMPLATE = PROJECT_ROOT / "template.yaml"
DEFAULT_STACK_NAME = "video-bridge-local"
CREATORS: dict[str, Creator] = COMPUTE_CREATORS | DATA_CREATORS


def import_handler(code_dir: Path, handler: str, module_name: str) -> Handler:
    """Import `<code_dir>/<module path>.py` under a unique name and return its handler attribute."""
    module_path, _, attr = handler.rpartition(".")
    source = code_dir / (module_path.replace(".", "/") + ".py")
    spec = importlib.util.spec_from_file_location(module_name, source)
    if spec is None or spec.loader is None:
        raise DeployError(f"cannot import {source}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise DeployError(f"{source} has no callable {attr!r}")
    return fn


class _Deployer:
    """Creates the translated template's resources in dependency order, as CloudFormation would."""

    def __init__(
        self,
        aws: EmbeddedAws,
        translated: Translated,
        source: dict[str, Any],
        stack_name: str,
        parameters: dict[str, str],
        import_handlers: bool,
        apply_environment: bool,
    ) -> None:
        self.state = DeployState(aws, translated, stack_name, Resolver(stack_name, aws.region, parameters))
        self.r = self.state.resolver
        self.template = translated.template
        self.source = source  # template.yaml itself, for what only it says (the Api's Auth)
        self.import_handlers = import_handlers
        self.apply_environment = apply_environment

    def run(self) -> DeployedStack:
        self.r.evaluate_conditions(self.template.get("Conditions") or {})
        resources: dict[str, Any] = {
            logical_id: res
            for logical_id, res in (self.template.get("Resources") or {}).items()
            if "Condition" not in res or self.r.conditions[res["Condition"]]
        }
        unknown = {r["Type"] for r in resources.values()} - set(CREATORS)
        if unknown:
            raise DeployError(f"resource types not supported locally: {sorted(unknown)}")
        for logical_id in creation_order(resources):
            res = resources[logical_id]
            CREATORS[res["Type"]](self.state, logical_id, res.get("Properties") or {})

        environment = self.environment_union()
        if self.apply_environment:
            os.environ.update(environment)
        if self.import_handlers:
            # After the env is set: handler modules may read settings at import.
            self.register_handlers()
        return self.result(resources, environment)

    def register_handlers(self) -> None:
        functions = self.template["Resources"]
        for logical_id, name in self.state.function_names.items():
            props = functions[logical_id]["Properties"]
            code_dir = self.state.translated.code_dir(props["Code"])
            module_name = f"fn_{code_dir.name}_{str(props['Handler']).rpartition('.')[0].replace('.', '_')}"
            handler = as_role(
                import_handler(code_dir, str(props["Handler"]), module_name), self.state.function_roles[logical_id]
            )
            handler = with_own_environment(handler, logical_id, self.state.function_envs[logical_id])
            self.state.handlers[logical_id] = handler
            registry.register(name, handler)

    def environment_union(self) -> dict[str, str]:
        union: dict[str, str] = {}
        for logical_id, env in self.state.function_envs.items():
            for key, value in env.items():
                if key in union and union[key] != value:
                    print(
                        f"[deployer] {key} differs between functions; {logical_id} wins in the shared process",
                        file=sys.stderr,
                    )
                union[key] = value
        return union

    def api_auth(self) -> ApiAuth | None:
        apis = [r for r in (self.source.get("Resources") or {}).values() if r.get("Type") == "AWS::Serverless::Api"]
        # Unresolved on purpose: the authorizer is named by its logical id (Fn::GetAtt), as the template says.
        return api_auth_of(dict(apis[0].get("Properties") or {})) if apis else None

    def result(self, resources: Mapping[str, Any], environment: dict[str, str]) -> DeployedStack:
        def first(kind: str) -> str:
            ids = [self.r.refs[lid] for lid, res in resources.items() if res["Type"] == kind]
            return ids[0] if ids else ""

        outputs: dict[str, str] = {}
        for name, spec in (self.template.get("Outputs") or {}).items():
            if "Condition" in spec and not self.r.conditions[spec["Condition"]]:
                continue
            try:
                outputs[name] = str(self.r.resolve(spec["Value"]))
            except DeployError:
                continue
        return DeployedStack(
            stack_name=self.state.stack_name,
            region=self.state.region,
            parameters=dict(self.r.parameters),
            resources={k: v for k, v in self.r.refs.items() if k in resources},
            outputs=outputs,
            environment=environment,
            function_environments=self.state.function_envs,
            function_names=self.state.function_names,
            handlers=self.state.handlers,
            api_routes=self.state.routes,
            api_function=self.state.api_function,
            api_auth=self.api_auth(),
            event_sources=self.state.event_sources,
            schedules=self.state.schedules,
            queue_urls=self.state.queue_urls,
            roles=self.state.roles,
            template=self.template,
            table_name=first("AWS::DynamoDB::Table"),
            topic_arn=first("AWS::SNS::Topic"),
            event_bus_name=first("AWS::Events::EventBus"),
            state_machine_arn=first("AWS::StepFunctions::StateMachine"),
            secret_arn=first("AWS::SecretsManager::Secret"),
        )


def create_observers(aws: EmbeddedAws, stack: DeployedStack) -> None:
    """Local-only plumbing: SQS queues that see every SNS message and every bus event."""
    sqs = aws.client("sqs")

    def queue(suffix: str) -> tuple[str, str]:
        url = sqs.create_queue(QueueName=f"{stack.stack_name}-{suffix}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return url, arn

    if stack.topic_arn:
        url, arn = queue("observe-sns")
        # Raw delivery off: the SNS envelope (with MessageAttributes) is what we want to see.
        aws.client("sns").subscribe(
            TopicArn=stack.topic_arn, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "false"}
        )
        stack.sns_queue_url = url
    if stack.event_bus_name:
        url, arn = queue("observe-events")
        events = aws.client("events")
        rule = f"{stack.stack_name}-observe"
        source = stack.parameters.get("EventSource")
        pattern = {"source": [source]} if source else {"account": [ACCOUNT_ID]}
        events.put_rule(Name=rule, EventBusName=stack.event_bus_name, EventPattern=json.dumps(pattern), State="ENABLED")
        events.put_targets(Rule=rule, EventBusName=stack.event_bus_name, Targets=[{"Id": "observe", "Arn": arn}])
        stack.events_queue_url = url


def deploy(
    aws: EmbeddedAws,
    template_path: Path | str = DEFAULT_TEMPLATE,
    parameters: Mapping[str, Any] | None = None,
    *,
    stack_name: str = DEFAULT_STACK_NAME,
    import_handlers: bool = True,
    observers: bool = True,
    apply_environment: bool = True,
) -> DeployedStack:
    """Create the template's resources on `aws`; return their ids and the functions' env.

    With `apply_environment` (needed to run the handlers) the union of every function's
    environment goes into os.environ; without it, it is only computed.
    """
    path = Path(template_path).resolve()
    source = load_template(path)
    values = parameter_values(source, parameters or {})
    translated = translate(path, values, region=aws.region, account_id=ACCOUNT_ID, stack_name=stack_name)
    deployer = _Deployer(aws, translated, source, stack_name, values, import_handlers, apply_environment)
    stack = deployer.run()
    if observers:
        create_observers(aws, stack)
    return stack


def put_router_one_key(aws: EmbeddedAws, stack: DeployedStack, api_key: str) -> None:
    """Store the upstream key the way an operator does after a deploy (see docs/operations.md)."""
    aws.client("secretsmanager").put_secret_value(
        SecretId=stack.secret_arn, SecretString=json.dumps({"api_key": api_key})
    )


def webhook_signing_secret(aws: EmbeddedAws, stack: DeployedStack) -> str:
    """The `current` webhook signing secret the stack generated (what receivers verify with)."""
    answer = aws.client("secretsmanager").get_secret_value(SecretId=stack.resources["WebhookSigningSecret"])
    return str(json.loads(answer["SecretString"])["current"])
