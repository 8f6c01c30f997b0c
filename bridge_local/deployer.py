"""Deploy template.yaml onto the embedded AWS, from the CloudFormation SAM's transform makes of it.

`bridge_local.sam` runs aws-sam-translator as AWS would (roles and their policies, permissions,
event source mappings, the REST API and its stage are SAM's, not ours). What is left here is what
no library does: resolving the intrinsics against the emulator, creating each resource with plain
API calls in dependency order, assuming each role so its code signs with it, and wiring invokes,
queues, schedules and the Api to the handlers imported from their code directories.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import secrets
import string
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge_local import iam as iam_local
from bridge_local.api_front import ApiRoute
from bridge_local.emulator import ACCOUNT_ID, DUMMY_ZIP, EmbeddedAws, Handler, registry
from bridge_local.gateway_auth import ApiAuth, api_auth_of, gated
from bridge_local.iam import RoleSession, as_role
from bridge_local.sam import Translated, load_template, translate

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TEMPLATE = PROJECT_ROOT / "template.yaml"
DEFAULT_STACK_NAME = "video-bridge-local"

_SUB_VAR = re.compile(r"\$\{([^}!]+)\}")


class DeployError(RuntimeError):
    """The template uses something this local deployer does not know how to create."""


class _NoValue:
    """AWS::NoValue: the property (or list item) it stands for is left out."""


NO_VALUE = _NoValue()


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


class _Resolver:
    """Evaluates the intrinsic functions the template uses against known physical ids."""

    def __init__(self, stack_name: str, region: str, parameters: dict[str, str]) -> None:
        self.pseudo = {
            "AWS::Region": region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::StackName": stack_name,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
        self.parameters = parameters
        self.refs: dict[str, str] = {}
        self.attrs: dict[str, dict[str, str]] = {}
        self.conditions: dict[str, bool] = {}

    def evaluate_conditions(self, definitions: Mapping[str, Any]) -> None:
        """The template's Conditions section (Fn::Equals, Fn::Not, Fn::And, Fn::Or, Condition)."""
        pending = dict(definitions)

        def truth(expression: Any) -> bool:
            (key, arg), *_ = expression.items()
            if key == "Condition":
                if arg not in self.conditions:
                    self.conditions[arg] = truth(pending[arg])
                return self.conditions[arg]
            if key == "Fn::Equals":
                return str(self.resolve(arg[0])) == str(self.resolve(arg[1]))
            if key == "Fn::Not":
                return not truth(arg[0])
            if key == "Fn::And":
                return all(truth(a) for a in arg)
            if key == "Fn::Or":
                return any(truth(a) for a in arg)
            raise DeployError(f"condition function {key} is not supported by the local deployer")

        for name in pending:
            truth({"Condition": name})

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        for table in (self.pseudo, self.parameters, self.refs):
            if name in table:
                return table[name]
        raise DeployError(f"Ref to {name!r} before it has a physical id")

    def get_att(self, logical_id: str, attr: str) -> str:
        try:
            return self.attrs[logical_id][attr]
        except KeyError:
            raise DeployError(f"Fn::GetAtt {logical_id}.{attr} is not known locally") from None

    def sub(self, template: str, variables: Mapping[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1).strip()
            if name in variables:
                return str(self.resolve(variables[name]))
            if "." in name and not name.startswith("AWS::"):
                logical_id, attr = name.split(".", 1)
                return self.get_att(logical_id, attr)
            return self.ref(name)

        # ${!Literal} stays as ${Literal}, as in CloudFormation.
        return _SUB_VAR.sub(replace, template).replace("${!", "${")

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [item for item in (self.resolve(v) for v in value) if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            key, arg = next(iter(value.items()))
            if key == "Fn::If":
                name, when_true, when_false = arg
                if name not in self.conditions:
                    raise DeployError(f"Fn::If names an unknown condition {name!r}")
                return self.resolve(when_true if self.conditions[name] else when_false)
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                logical_id, attr = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.get_att(logical_id, attr)
            if key == "Fn::Sub":
                if isinstance(arg, list):
                    return self.sub(arg[0], arg[1])
                return self.sub(arg, {})
            if key == "Fn::Join":
                return str(arg[0]).join(str(self.resolve(v)) for v in self.resolve(arg[1]))
            if key == "Fn::Select":
                return self.resolve(arg[1])[int(self.resolve(arg[0]))]
            if key.startswith("Fn::") or key == "Condition":
                raise DeployError(f"intrinsic {key} is not supported by the local deployer")
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}


def _as_env_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def one_at_a_time(handler: Handler) -> Handler:
    lock = threading.Lock()

    def serialised(event: Any, context: Any) -> Any:
        with lock:
            return handler(event, context)

    return serialised


def _generated_secret(spec: Mapping[str, Any]) -> str:
    """What Secrets Manager's GenerateSecretString would make (the subset the template uses)."""
    alphabet = string.ascii_letters + string.digits
    if not spec.get("ExcludePunctuation"):
        alphabet += "!#$%&()*+,-.:;<=>?@[]^_{|}~"
    value = "".join(secrets.choice(alphabet) for _ in range(int(spec.get("PasswordLength", 32))))
    if "GenerateStringKey" not in spec:
        return value
    document = json.loads(spec.get("SecretStringTemplate") or "{}")
    document[spec["GenerateStringKey"]] = value
    return json.dumps(document)


_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def _rate_seconds(expression: str) -> int:
    """`rate(5 minutes)` → 300. Cron expressions are not run locally."""
    match = _RATE.match(expression.strip())
    if match is None:
        raise DeployError(f"schedule {expression!r}: only rate(...) expressions run locally")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2).rstrip("s")]


def _lifecycle_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """CloudFormation's lifecycle rule shape, in the S3 API's (the parts the template uses)."""
    api: dict[str, Any] = {"ID": rule.get("Id", "rule"), "Status": rule["Status"], "Filter": {"Prefix": ""}}
    if "ExpirationInDays" in rule:
        api["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    if "AbortIncompleteMultipartUpload" in rule:
        days = int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])
        api["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": days}
    return api


def _metric_query(query: Mapping[str, Any]) -> dict[str, Any]:
    """A metric math alarm's query as PutMetricAlarm takes it (CloudFormation's strings made numbers)."""
    shaped = dict(query)
    if "ReturnData" in shaped:
        shaped["ReturnData"] = str(shaped["ReturnData"]).lower() == "true"
    if "MetricStat" in shaped:
        shaped["MetricStat"] = dict(shaped["MetricStat"]) | {"Period": int(shaped["MetricStat"]["Period"])}
    return shaped


def _parameter_values(template: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, str]:
    values: dict[str, str] = {}
    declared = template.get("Parameters", {}) or {}
    unknown = set(overrides) - set(declared)
    if unknown:
        raise DeployError(f"unknown parameter override(s): {sorted(unknown)}")
    for name, spec in declared.items():
        if name in overrides:
            values[name] = _as_env_string(overrides[name])
        elif "Default" in spec:
            values[name] = _as_env_string(spec["Default"])
        else:
            raise DeployError(f"parameter {name} has no default and no override")
        allowed = spec.get("AllowedValues")
        if allowed and values[name] not in [str(a) for a in allowed]:
            raise DeployError(f"parameter {name}={values[name]!r} not in {allowed}")
    return values


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
        self.aws = aws
        self.translated = translated
        self.template = translated.template
        self.source = source  # template.yaml itself, for what only it says (the Api's Auth)
        self.stack_name = stack_name
        self.region = aws.region
        self.r = _Resolver(stack_name, aws.region, parameters)
        self.import_handlers = import_handlers
        self.apply_environment = apply_environment
        self.function_envs: dict[str, dict[str, str]] = {}
        self.function_names: dict[str, str] = {}
        self.function_roles: dict[str, RoleSession | None] = {}
        self.handlers: dict[str, Handler] = {}
        self.routes: list[ApiRoute] = []
        self.api_function: str | None = None
        self.event_sources: list[SqsEventSource] = []
        self.schedules: list[ScheduledInvoke] = []
        self.queue_urls: dict[str, str] = {}  # logical id → URL
        self.queue_arns: dict[str, str] = {}  # ARN → URL
        self.roles: dict[str, RoleSession] = {}  # logical id → its assumed session

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

    # ----------------------------------------------------------------- resource creators

    def role(self, logical_id: str, props: Mapping[str, Any]) -> None:
        p = self.r.resolve(dict(props))
        name = str(p.get("RoleName") or self.physical_name(logical_id))
        iam = self.aws.client("iam")
        role = iam.create_role(
            RoleName=name,
            Path=str(p.get("Path", "/")),
            AssumeRolePolicyDocument=json.dumps(p["AssumeRolePolicyDocument"]),
        )["Role"]
        for policy in p.get("Policies") or []:
            # IAM takes a document without Version as 2008-10-17, which differs from 2012-10-17 only
            # in policy variables; SAM's policy templates leave it out, and moto insists on one.
            document = {"Version": "2012-10-17"} | dict(policy["PolicyDocument"])
            iam.put_role_policy(
                RoleName=name, PolicyName=str(policy["PolicyName"]), PolicyDocument=json.dumps(document)
            )
        for arn in p.get("ManagedPolicyArns") or []:
            iam.attach_role_policy(RoleName=name, PolicyArn=str(arn))
        # What Lambda and Step Functions do with an execution role: assume it, then sign with it.
        credentials = self.aws.client("sts").assume_role(RoleArn=role["Arn"], RoleSessionName=name[:64])["Credentials"]
        session = RoleSession(
            role_name=name,
            role_arn=role["Arn"],
            access_key_id=credentials["AccessKeyId"],
            secret_access_key=credentials["SecretAccessKey"],
            session_token=credentials["SessionToken"],
        )
        iam_local.remember(session)
        self.roles[logical_id] = session
        self.r.refs[logical_id] = name
        self.r.attrs[logical_id] = {"Arn": role["Arn"], "RoleId": role["RoleId"]}

    def layer(self, logical_id: str, props: Mapping[str, Any]) -> None:
        content = self.translated.code_dir(props["Content"])
        # A Python layer puts python/ on the path; SAM's build step also accepts the plain dir.
        path = content / "python" if (content / "python").is_dir() else content
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
        self.r.refs[logical_id] = self.arn("lambda", f"layer:{self.physical_name(logical_id)}:1")

    def function(self, logical_id: str, props: Mapping[str, Any]) -> None:
        p = self.r.resolve({k: v for k, v in props.items() if k != "Code"})
        name = str(p.get("FunctionName") or self.physical_name(logical_id))
        env = {k: _as_env_string(v) for k, v in ((p.get("Environment") or {}).get("Variables") or {}).items()}
        role_arn = str(p["Role"])
        answer = self.aws.client("lambda").create_function(
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
        self.function_names[logical_id] = name
        self.function_envs[logical_id] = env
        self.function_roles[logical_id] = iam_local.session_for_role(role_arn)
        self.r.refs[logical_id] = name
        self.r.attrs[logical_id] = {"Arn": answer["FunctionArn"]}

    def permission(self, logical_id: str, props: Mapping[str, Any]) -> None:
        p = self.r.resolve(dict(props))
        kwargs = {"FunctionName": p["FunctionName"], "StatementId": logical_id, "Action": p["Action"]}
        kwargs["Principal"] = p["Principal"]
        if "SourceArn" in p:
            kwargs["SourceArn"] = p["SourceArn"]
        self.aws.client("lambda").add_permission(**kwargs)
        self.r.refs[logical_id] = logical_id

    def event_source_mapping(self, logical_id: str, props: Mapping[str, Any]) -> None:
        p = self.r.resolve(dict(props))
        arn = str(p["EventSourceArn"])
        if arn not in self.queue_arns:
            raise DeployError(f"{logical_id}: only SQS queues of this template run locally ({arn})")
        function_id = self.function_logical_id(str(p["FunctionName"]))
        fn = self.template["Resources"][function_id]["Properties"]
        scaling = p.get("ScalingConfig") or {}
        self.event_sources.append(
            SqsEventSource(
                function_logical_id=function_id,
                function_name=self.function_names[function_id],
                queue_url=self.queue_arns[arn],
                queue_arn=arn,
                batch_size=int(p.get("BatchSize", 10)),
                report_batch_item_failures="ReportBatchItemFailures" in (p.get("FunctionResponseTypes") or []),
                maximum_concurrency=int(scaling["MaximumConcurrency"]) if "MaximumConcurrency" in scaling else None,
                code_dir=self.translated.code_dir(fn["Code"]),
                handler=str(fn["Handler"]),
                timeout_s=float(self.r.resolve(fn.get("Timeout", 3))),
                role=self.function_roles[function_id],
            )
        )
        self.r.refs[logical_id] = str(uuid.uuid4())

    def rule(self, logical_id: str, props: Mapping[str, Any]) -> None:
        p = self.r.resolve(dict(props))
        name = str(p.get("Name") or self.physical_name(logical_id))
        if "ScheduleExpression" in p:
            # Schedules run as local timers; their targets are this template's functions.
            every = _rate_seconds(str(p["ScheduleExpression"]))
            for target in p.get("Targets") or []:
                function_id = self.function_logical_id(str(target["Arn"]))
                self.schedules.append(ScheduledInvoke(function_id, self.function_names[function_id], every))
        else:
            events = self.aws.client("events")
            bus = str(p.get("EventBusName") or "default")
            events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps(p["EventPattern"]), State="ENABLED")
            targets = [{"Id": t["Id"], "Arn": t["Arn"]} for t in p.get("Targets") or []]
            if targets:
                events.put_targets(Rule=name, EventBusName=bus, Targets=targets)
        self.r.refs[logical_id] = name
        self.r.attrs[logical_id] = {"Arn": self.arn("events", f"rule/{name}")}

    def state_machine(self, logical_id: str, props: Mapping[str, Any]) -> None:
        p = self.r.resolve(dict(props))
        if "DefinitionString" not in p:
            raise DeployError(f"{logical_id}: needs a DefinitionString (local definitions are inlined)")
        substitutions = {k: str(v) for k, v in (p.get("DefinitionSubstitutions") or {}).items()}

        def substitute(match: re.Match[str]) -> str:
            return substitutions.get(match.group(1), match.group(0))

        definition = _SUB_VAR.sub(substitute, str(p["DefinitionString"]))
        name = str(p.get("StateMachineName") or self.physical_name(logical_id, limit=80))
        arn = self.aws.client("stepfunctions").create_state_machine(
            name=name,
            definition=json.dumps(json.loads(definition)),
            roleArn=str(p["RoleArn"]),
            type=str(p.get("StateMachineType", "STANDARD")),
        )["stateMachineArn"]
        self.r.refs[logical_id] = arn
        self.r.attrs[logical_id] = {"Arn": arn, "Name": name}

    def rest_api(self, logical_id: str, props: Mapping[str, Any]) -> None:
        body = self.r.resolve(dict(props.get("Body") or {}))
        for path, operations in (body.get("paths") or {}).items():
            for method, operation in operations.items():
                integration = operation.get("x-amazon-apigateway-integration") or {}
                uri = str(integration.get("uri", ""))
                match = re.search(r"/functions/(arn:[^/]+)/invocations", uri)
                if match is None:
                    raise DeployError(
                        f"{logical_id} {method.upper()} {path}: only Lambda proxy integrations run locally"
                    )
                function_id = self.function_logical_id(match.group(1))
                if self.api_function not in (None, function_id):
                    raise DeployError("more than one function serves the Api; api_front serves one handler")
                self.api_function = function_id
                verb = "ANY" if method == "x-amazon-apigateway-any-method" else method.upper()
                self.routes.append(ApiRoute(method=verb, resource=path))
        self.r.refs[logical_id] = "local"
        self.r.attrs[logical_id] = {"RootResourceId": "local"}

    def api_part(self, logical_id: str, props: Mapping[str, Any]) -> None:
        """Deployment, stage, usage plan, key: the local front plays these (gateway_auth)."""
        p = self.r.resolve(dict(props))
        self.r.refs[logical_id] = str(p.get("StageName") or logical_id)

    def table(self, logical_id: str, props: Mapping[str, Any]) -> None:
        p = self.r.resolve(dict(props))
        name = p.get("TableName") or self.physical_name(logical_id, limit=255)
        ddb = self.aws.client("dynamodb")
        kwargs: dict[str, Any] = {
            "TableName": name,
            "KeySchema": p["KeySchema"],
            "AttributeDefinitions": p["AttributeDefinitions"],
            "BillingMode": p.get("BillingMode", "PROVISIONED"),
        }
        if kwargs["BillingMode"] == "PROVISIONED":
            kwargs["ProvisionedThroughput"] = {
                k: int(v)
                for k, v in p.get("ProvisionedThroughput", {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}).items()
            }
        for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes", "StreamSpecification", "SSESpecification"):
            if key in p:
                kwargs[key] = p[key]
        if "SSESpecification" in kwargs:
            kwargs["SSESpecification"] = {"Enabled": bool(kwargs["SSESpecification"].get("SSEEnabled", False))}
        table = ddb.create_table(**kwargs)["TableDescription"]
        ttl = p.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            ddb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
            )
        self.r.refs[logical_id] = name
        self.r.attrs[logical_id] = {"Arn": table["TableArn"], "StreamArn": table.get("LatestStreamArn", "")}

    def topic(self, logical_id: str, props: Mapping[str, Any]) -> None:
        p = self.r.resolve(dict(props))
        name = p.get("TopicName") or self.physical_name(logical_id, limit=256)
        attributes = {"DisplayName": p["DisplayName"]} if "DisplayName" in p else {}
        arn = self.aws.client("sns").create_topic(Name=name, Attributes=attributes)["TopicArn"]
        self.r.refs[logical_id] = arn
        self.r.attrs[logical_id] = {"TopicArn": arn, "TopicName": name}

    def event_bus(self, logical_id: str, props: Mapping[str, Any]) -> None:
        p = self.r.resolve(dict(props))
        name = p["Name"]
        arn = self.aws.client("events").create_event_bus(Name=name)["EventBusArn"]
        self.r.refs[logical_id] = name
        self.r.attrs[logical_id] = {"Arn": arn, "Name": name}

    def secret(self, logical_id: str, props: Mapping[str, Any]) -> None:
        p = self.r.resolve(dict(props))
        name = p.get("Name") or self.physical_name(logical_id, limit=512)
        value = p.get("SecretString", "")
        if "GenerateSecretString" in p:
            value = _generated_secret(p["GenerateSecretString"])
        kwargs: dict[str, Any] = {"Name": name, "SecretString": value}
        if "Description" in p:
            kwargs["Description"] = p["Description"]
        arn = self.aws.client("secretsmanager").create_secret(**kwargs)["ARN"]
        self.r.refs[logical_id] = arn
        self.r.attrs[logical_id] = {"Id": arn}

    def kms_key(self, logical_id: str, props: Mapping[str, Any]) -> None:
        p = self.r.resolve(dict(props))
        kms = self.aws.client("kms")
        kwargs: dict[str, Any] = {"Description": p.get("Description", logical_id), "KeyUsage": "ENCRYPT_DECRYPT"}
        if "KeyPolicy" in p:
            kwargs["Policy"] = json.dumps(p["KeyPolicy"])
        metadata = kms.create_key(**kwargs)["KeyMetadata"]
        if p.get("EnableKeyRotation"):
            kms.enable_key_rotation(KeyId=metadata["KeyId"])
        self.r.refs[logical_id] = metadata["KeyId"]
        self.r.attrs[logical_id] = {"Arn": metadata["Arn"], "KeyId": metadata["KeyId"]}

    def queue(self, logical_id: str, props: Mapping[str, Any]) -> None:
        p = self.r.resolve(dict(props))
        name = p.get("QueueName") or self.physical_name(logical_id, limit=80)
        attributes: dict[str, str] = {}
        for key in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "ReceiveMessageWaitTimeSeconds"):
            if key in p:
                attributes[key] = str(p[key])
        if "RedrivePolicy" in p:
            attributes["RedrivePolicy"] = json.dumps(p["RedrivePolicy"])
        sqs = self.aws.client("sqs")
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.queue_urls[logical_id] = url
        self.queue_arns[arn] = url
        self.r.refs[logical_id] = url
        self.r.attrs[logical_id] = {"Arn": arn, "QueueName": name, "QueueUrl": url}

    def bucket(self, logical_id: str, props: Mapping[str, Any]) -> None:
        p = self.r.resolve(dict(props))
        name = str(p.get("BucketName") or self.physical_name(logical_id)).lower()[:63]
        s3 = self.aws.client("s3")
        s3.create_bucket(Bucket=name)
        if "LifecycleConfiguration" in p:
            s3.put_bucket_lifecycle_configuration(
                Bucket=name,
                LifecycleConfiguration={"Rules": [_lifecycle_rule(r) for r in p["LifecycleConfiguration"]["Rules"]]},
            )
        self.r.refs[logical_id] = name
        self.r.attrs[logical_id] = {"Arn": f"arn:aws:s3:::{name}", "DomainName": f"{name}.s3.amazonaws.com"}

    def bucket_policy(self, logical_id: str, props: Mapping[str, Any]) -> None:
        p = self.r.resolve(dict(props))
        document = dict(p["PolicyDocument"])
        # The embedded AWS speaks plain http, and moto enforces bucket policies: a TLS-only rule
        # would refuse every local request, so it is left out here (and only here).
        document["Statement"] = [
            statement
            for statement in document.get("Statement", [])
            if "aws:SecureTransport" not in json.dumps(statement.get("Condition", {}))
        ]
        if document["Statement"]:
            self.aws.client("s3").put_bucket_policy(Bucket=p["Bucket"], Policy=json.dumps(document))
        self.r.refs[logical_id] = p["Bucket"]

    def alarm(self, logical_id: str, props: Mapping[str, Any]) -> None:
        p = self.r.resolve(dict(props))
        name = p.get("AlarmName") or self.physical_name(logical_id, limit=255)
        keys = (
            "AlarmDescription",
            "Namespace",
            "MetricName",
            "Dimensions",
            "Statistic",
            "Period",
            "EvaluationPeriods",
            "Threshold",
            "ComparisonOperator",
            "TreatMissingData",
            "AlarmActions",
        )
        kwargs = {key: p[key] for key in keys if key in p}
        if "Metrics" in p:  # a metric math alarm
            kwargs["Metrics"] = [_metric_query(query) for query in p["Metrics"]]
        for key in ("Period", "EvaluationPeriods"):
            if key in kwargs:
                kwargs[key] = int(kwargs[key])
        if "Threshold" in kwargs:
            kwargs["Threshold"] = float(kwargs["Threshold"])
        self.aws.client("cloudwatch").put_metric_alarm(AlarmName=name, **kwargs)
        self.r.refs[logical_id] = name

    # ----------------------------------------------------------------- driver

    def creators(self) -> dict[str, Callable[[str, Mapping[str, Any]], None]]:
        api_parts = dict.fromkeys(
            (
                "AWS::ApiGateway::Deployment",
                "AWS::ApiGateway::Stage",
                "AWS::ApiGateway::UsagePlan",
                "AWS::ApiGateway::ApiKey",
                "AWS::ApiGateway::UsagePlanKey",
            ),
            self.api_part,
        )
        return {
            "AWS::IAM::Role": self.role,
            "AWS::Lambda::LayerVersion": self.layer,
            "AWS::Lambda::Function": self.function,
            "AWS::Lambda::Permission": self.permission,
            "AWS::Lambda::EventSourceMapping": self.event_source_mapping,
            "AWS::Events::Rule": self.rule,
            "AWS::StepFunctions::StateMachine": self.state_machine,
            "AWS::ApiGateway::RestApi": self.rest_api,
            **api_parts,
            "AWS::DynamoDB::Table": self.table,
            "AWS::SNS::Topic": self.topic,
            "AWS::Events::EventBus": self.event_bus,
            "AWS::SecretsManager::Secret": self.secret,
            "AWS::KMS::Key": self.kms_key,
            "AWS::SQS::Queue": self.queue,
            "AWS::S3::Bucket": self.bucket,
            "AWS::S3::BucketPolicy": self.bucket_policy,
            "AWS::CloudWatch::Alarm": self.alarm,
        }

    def run(self) -> DeployedStack:
        self.r.evaluate_conditions(self.template.get("Conditions") or {})
        resources: dict[str, Any] = {
            logical_id: res
            for logical_id, res in (self.template.get("Resources") or {}).items()
            if "Condition" not in res or self.r.conditions[res["Condition"]]
        }
        creators = self.creators()
        unknown = {r["Type"] for r in resources.values()} - set(creators)
        if unknown:
            raise DeployError(f"resource types not supported locally: {sorted(unknown)}")
        for logical_id in creation_order(resources):
            res = resources[logical_id]
            creators[res["Type"]](logical_id, res.get("Properties") or {})

        environment = self.environment_union()
        if self.apply_environment:
            os.environ.update(environment)
        if self.import_handlers:
            # After the env is set: handler modules may read settings at import.
            self.register_handlers()
        return self.result(resources, environment)

    def register_handlers(self) -> None:
        functions = self.template["Resources"]
        for logical_id, name in self.function_names.items():
            props = functions[logical_id]["Properties"]
            code_dir = self.translated.code_dir(props["Code"])
            module_name = f"fn_{code_dir.name}_{str(props['Handler']).rpartition('.')[0].replace('.', '_')}"
            handler = as_role(
                import_handler(code_dir, str(props["Handler"]), module_name), self.function_roles[logical_id]
            )
            self.handlers[logical_id] = handler
            registry.register(name, handler)

    def environment_union(self) -> dict[str, str]:
        union: dict[str, str] = {}
        for logical_id, env in self.function_envs.items():
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
            stack_name=self.stack_name,
            region=self.region,
            parameters=dict(self.r.parameters),
            resources={k: v for k, v in self.r.refs.items() if k in resources},
            outputs=outputs,
            environment=environment,
            function_environments=self.function_envs,
            function_names=self.function_names,
            handlers=self.handlers,
            api_routes=self.routes,
            api_function=self.api_function,
            api_auth=self.api_auth(),
            event_sources=self.event_sources,
            schedules=self.schedules,
            queue_urls=self.queue_urls,
            roles=self.roles,
            template=self.template,
            table_name=first("AWS::DynamoDB::Table"),
            topic_arn=first("AWS::SNS::Topic"),
            event_bus_name=first("AWS::Events::EventBus"),
            state_machine_arn=first("AWS::StepFunctions::StateMachine"),
            secret_arn=first("AWS::SecretsManager::Secret"),
        )


def _references(value: Any) -> set[str]:
    """Logical ids (and pseudo parameters) a property value refers to."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= _references(item)
    elif isinstance(value, dict):
        for key, arg in value.items():
            if key == "Ref" and isinstance(arg, str):
                found.add(arg)
            elif key == "Fn::GetAtt":
                found.add(arg[0] if isinstance(arg, list) else str(arg).split(".", 1)[0])
            elif key == "Fn::Sub":
                text, variables = (arg[0], arg[1]) if isinstance(arg, list) else (arg, {})
                found |= {name.split(".", 1)[0] for name in _SUB_VAR.findall(str(text)) if name not in variables}
                found |= _references(variables)
            else:
                found |= _references(arg)
    return found


def creation_order(resources: Mapping[str, Any]) -> list[str]:
    """Every resource after those it refers to or depends on (CloudFormation's order)."""
    needs: dict[str, set[str]] = {}
    for logical_id, res in resources.items():
        depends = res.get("DependsOn") or []
        depends = [depends] if isinstance(depends, str) else list(depends)
        needs[logical_id] = (_references(res.get("Properties") or {}) | set(depends)) & set(resources)
    order: list[str] = []
    done: set[str] = set()
    while len(order) < len(resources):
        ready = sorted(lid for lid in resources if lid not in done and needs[lid] <= done)
        if not ready:
            stuck = sorted(lid for lid in resources if lid not in done)
            raise DeployError(f"resources refer to each other in a circle: {stuck}")
        order.extend(ready)
        done.update(ready)
    return order


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
    values = _parameter_values(source, parameters or {})
    translated = translate(path, values, region=aws.region, account_id=ACCOUNT_ID, stack_name=stack_name)
    deployer = _Deployer(aws, translated, source, stack_name, values, import_handlers, apply_environment)
    stack = deployer.run()
    if observers:
        create_observers(aws, stack)
    return stack


def put_router_one_key(aws: EmbeddedAws, stack: DeployedStack, api_key: str) -> None:
    """Store the upstream key the way an operator does after a deploy (see README)."""
    aws.client("secretsmanager").put_secret_value(
        SecretId=stack.secret_arn, SecretString=json.dumps({"api_key": api_key})
    )


def webhook_signing_secret(aws: EmbeddedAws, stack: DeployedStack) -> str:
    """The `current` webhook signing secret the stack generated (what receivers verify with)."""
    answer = aws.client("secretsmanager").get_secret_value(SecretId=stack.resources["WebhookSigningSecret"])
    return str(json.loads(answer["SecretString"])["current"])
