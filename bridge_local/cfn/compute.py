"""Creating the template's code and its wiring: IAM roles (assumed, so code signs with them), layers,
functions, permissions, SQS event sources, rules and rate() schedules, state machines, the REST API."""

from __future__ import annotations

import json
import re
import sys
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from bridge_local import iam as iam_local
from bridge_local.api_front import ApiRoute
from bridge_local.cfn.intrinsics import SUB_VAR, as_env_string
from bridge_local.cfn.stack import DeployError, ScheduledInvoke, SqsEventSource
from bridge_local.cfn.state import DeployState
from bridge_local.emulator import DUMMY_ZIP
from bridge_local.iam import RoleSession

Creator = Callable[[DeployState, str, Mapping[str, Any]], None]

_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")


_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def _rate_seconds(expression: str) -> int:
    """`rate(5 minutes)` → 300. Cron expressions are not run locally."""
    match = _RATE.match(expression.strip())
    if match is None:
        raise DeployError(f"schedule {expression!r}: only rate(...) expressions run locally")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2).rstrip("s")]


def create_role(state: DeployState, logical_id: str, props: Mapping[str, Any]) -> None:
    p = state.resolver.resolve(dict(props))
    name = str(p.get("RoleName") or state.physical_name(logical_id))
    iam = state.aws.client("iam")
    role = iam.create_role(
        RoleName=name,
        Path=str(p.get("Path", "/")),
        AssumeRolePolicyDocument=json.dumps(p["AssumeRolePolicyDocument"]),
    )["Role"]
    for policy in p.get("Policies") or []:
        # IAM takes a document without Version as 2008-10-17, which differs from 2012-10-17 only
        # in policy variables; SAM's policy templates leave it out, and moto insists on one.
        document = {"Version": "2012-10-17"} | dict(policy["PolicyDocument"])
        iam.put_role_policy(RoleName=name, PolicyName=str(policy["PolicyName"]), PolicyDocument=json.dumps(document))
    for arn in p.get("ManagedPolicyArns") or []:
        iam.attach_role_policy(RoleName=name, PolicyArn=str(arn))
    # What Lambda and Step Functions do with an execution role: assume it, then sign with it.
    credentials = state.aws.client("sts").assume_role(RoleArn=role["Arn"], RoleSessionName=name[:64])["Credentials"]
    session = RoleSession(
        role_name=name,
        role_arn=role["Arn"],
        access_key_id=credentials["AccessKeyId"],
        secret_access_key=credentials["SecretAccessKey"],
        session_token=credentials["SessionToken"],
    )
    iam_local.remember(session)
    state.roles[logical_id] = session
    state.resolver.refs[logical_id] = name
    state.resolver.attrs[logical_id] = {"Arn": role["Arn"], "RoleId": role["RoleId"]}


def create_layer(state: DeployState, logical_id: str, props: Mapping[str, Any]) -> None:
    content = state.translated.code_dir(props["Content"])
    # A Python layer puts python/ on the path; SAM's build step also accepts the plain dir.
    path = content / "python" if (content / "python").is_dir() else content
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
    state.resolver.refs[logical_id] = state.arn("lambda", f"layer:{state.physical_name(logical_id)}:1")


def create_function(state: DeployState, logical_id: str, props: Mapping[str, Any]) -> None:
    p = state.resolver.resolve({k: v for k, v in props.items() if k != "Code"})
    name = str(p.get("FunctionName") or state.physical_name(logical_id))
    env = {k: as_env_string(v) for k, v in ((p.get("Environment") or {}).get("Variables") or {}).items()}
    role_arn = str(p["Role"])
    answer = state.aws.client("lambda").create_function(
        FunctionName=name,
        Runtime=str(p.get("Runtime", "python3.11")),
        Role=role_arn,
        Handler=str(p["Handler"]),
        Code={"ZipFile": DUMMY_ZIP},
        Description=str(p.get("Description", "")),
        MemorySize=int(p.get("MemorySize", 128)),
        Timeout=int(p.get("Timeout", 3)),
        Environment={"Variables": env},
    )
    state.function_names[logical_id] = name
    state.function_envs[logical_id] = env
    state.function_roles[logical_id] = iam_local.session_for_role(role_arn)
    state.resolver.refs[logical_id] = name
    state.resolver.attrs[logical_id] = {"Arn": answer["FunctionArn"]}


def create_permission(state: DeployState, logical_id: str, props: Mapping[str, Any]) -> None:
    p = state.resolver.resolve(dict(props))
    kwargs = {"FunctionName": p["FunctionName"], "StatementId": logical_id, "Action": p["Action"]}
    kwargs["Principal"] = p["Principal"]
    if "SourceArn" in p:
        kwargs["SourceArn"] = p["SourceArn"]
    state.aws.client("lambda").add_permission(**kwargs)
    state.resolver.refs[logical_id] = logical_id


def create_event_source_mapping(state: DeployState, logical_id: str, props: Mapping[str, Any]) -> None:
    p = state.resolver.resolve(dict(props))
    arn = str(p["EventSourceArn"])
    if arn not in state.queue_arns:
        raise DeployError(f"{logical_id}: only SQS queues of this template run locally ({arn})")
    function_id = state.function_logical_id(str(p["FunctionName"]))
    fn = state.template["Resources"][function_id]["Properties"]
    scaling = p.get("ScalingConfig") or {}
    state.event_sources.append(
        SqsEventSource(
            function_logical_id=function_id,
            function_name=state.function_names[function_id],
            queue_url=state.queue_arns[arn],
            queue_arn=arn,
            batch_size=int(p.get("BatchSize", 10)),
            report_batch_item_failures="ReportBatchItemFailures" in (p.get("FunctionResponseTypes") or []),
            maximum_concurrency=int(scaling["MaximumConcurrency"]) if "MaximumConcurrency" in scaling else None,
            code_dir=state.translated.code_dir(fn["Code"]),
            handler=str(fn["Handler"]),
            timeout_s=float(state.resolver.resolve(fn.get("Timeout", 3))),
            role=state.function_roles[function_id],
        )
    )
    state.resolver.refs[logical_id] = str(uuid.uuid4())


def create_rule(state: DeployState, logical_id: str, props: Mapping[str, Any]) -> None:
    p = state.resolver.resolve(dict(props))
    name = str(p.get("Name") or state.physical_name(logical_id))
    if "ScheduleExpression" in p:
        # Schedules run as local timers; their targets are this template's functions.
        every = _rate_seconds(str(p["ScheduleExpression"]))
        for target in p.get("Targets") or []:
            function_id = state.function_logical_id(str(target["Arn"]))
            state.schedules.append(ScheduledInvoke(function_id, state.function_names[function_id], every))
    else:
        events = state.aws.client("events")
        bus = str(p.get("EventBusName") or "default")
        events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps(p["EventPattern"]), State="ENABLED")
        targets = [{"Id": t["Id"], "Arn": t["Arn"]} for t in p.get("Targets") or []]
        if targets:
            events.put_targets(Rule=name, EventBusName=bus, Targets=targets)
    state.resolver.refs[logical_id] = name
    state.resolver.attrs[logical_id] = {"Arn": state.arn("events", f"rule/{name}")}


def create_state_machine(state: DeployState, logical_id: str, props: Mapping[str, Any]) -> None:
    p = state.resolver.resolve(dict(props))
    if "DefinitionString" not in p:
        raise DeployError(f"{logical_id}: needs a DefinitionString (local definitions are inlined)")
    substitutions = {k: str(v) for k, v in (p.get("DefinitionSubstitutions") or {}).items()}

    def substitute(match: re.Match[str]) -> str:
        return substitutions.get(match.group(1), match.group(0))

    definition = SUB_VAR.sub(substitute, str(p["DefinitionString"]))
    name = str(p.get("StateMachineName") or state.physical_name(logical_id, limit=80))
    arn = state.aws.client("stepfunctions").create_state_machine(
        name=name,
        definition=json.dumps(json.loads(definition)),
        roleArn=str(p["RoleArn"]),
        type=str(p.get("StateMachineType", "STANDARD")),
    )["stateMachineArn"]
    state.resolver.refs[logical_id] = arn
    state.resolver.attrs[logical_id] = {"Arn": arn, "Name": name}


def create_rest_api(state: DeployState, logical_id: str, props: Mapping[str, Any]) -> None:
    body = state.resolver.resolve(dict(props.get("Body") or {}))
    for path, operations in (body.get("paths") or {}).items():
        for method, operation in operations.items():
            integration = operation.get("x-amazon-apigateway-integration") or {}
            uri = str(integration.get("uri", ""))
            match = re.search(r"/functions/(arn:[^/]+)/invocations", uri)
            if match is None:
                raise DeployError(f"{logical_id} {method.upper()} {path}: only Lambda proxy integrations run locally")
            function_id = state.function_logical_id(match.group(1))
            if state.api_function not in (None, function_id):
                raise DeployError("more than one function serves the Api; api_front serves one handler")
            state.api_function = function_id
            verb = "ANY" if method == "x-amazon-apigateway-any-method" else method.upper()
            state.routes.append(ApiRoute(method=verb, resource=path))
    state.resolver.refs[logical_id] = "local"
    state.resolver.attrs[logical_id] = {"RootResourceId": "local"}


def create_api_part(state: DeployState, logical_id: str, props: Mapping[str, Any]) -> None:
    """Deployment, stage, usage plan, key: the local front plays these (gateway_auth)."""
    p = state.resolver.resolve(dict(props))
    state.resolver.refs[logical_id] = str(p.get("StageName") or logical_id)


API_PARTS = (
    "AWS::ApiGateway::Deployment",
    "AWS::ApiGateway::Stage",
    "AWS::ApiGateway::UsagePlan",
    "AWS::ApiGateway::ApiKey",
    "AWS::ApiGateway::UsagePlanKey",
)
COMPUTE_CREATORS: dict[str, Creator] = {
    "AWS::IAM::Role": create_role,
    "AWS::Lambda::LayerVersion": create_layer,
    "AWS::Lambda::Function": create_function,
    "AWS::Lambda::Permission": create_permission,
    "AWS::Lambda::EventSourceMapping": create_event_source_mapping,
    "AWS::Events::Rule": create_rule,
    "AWS::StepFunctions::StateMachine": create_state_machine,
    "AWS::ApiGateway::RestApi": create_rest_api,
    **dict.fromkeys(API_PARTS, create_api_part),
}
