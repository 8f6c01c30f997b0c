"""Embedded AWS: a moto server in this process whose Lambda invokes run real Python handlers.

moto 5.2.5 is pinned: the Lambda routing below patches one method of its non-Docker Lambda
backend, and `verify_lambda_routing()` fails loudly if that method moves or changes shape.
"""

from __future__ import annotations

import inspect
import io
import json
import logging
import os
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, ClassVar

import boto3
import httpx
from moto.server import ThreadedMotoServer

from bridge_local import iam
from bridge_local.quotas import install_quotas

ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "us-east-1"
ROLE_NAME = "video-bridge-local"
DUMMY_ROLE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:role/{ROLE_NAME}"
# moto's Lambda refuses a role it does not know; one role serves every local function and machine.
_TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]},
            "Action": "sts:AssumeRole",
        }
    ],
}

MOTO_CONFIG: dict[str, Any] = {
    "stepfunctions": {"execute_state_machine": True},
    "lambda": {"use_docker": False},
}

Handler = Callable[[Any, Any], Any]

# The signature the patch is written against; a moto upgrade that changes it must fail here.
_EXPECTED_INVOKE_PARAMS = ["self", "function_name", "qualifier", "body", "headers", "response_headers"]


# --------------------------------------------------------------------------- Lambda context


@dataclass
class LambdaContext:
    """What the Lambda Python runtime hands a handler, enough for Powertools and our code."""

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    timeout_s: float
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = ""
    _deadline: float = 0.0

    def __post_init__(self) -> None:
        self.log_group_name = self.log_group_name or f"/aws/lambda/{self.function_name}"
        if not self.log_stream_name:
            day = time.strftime("%Y/%m/%d", time.gmtime())
            self.log_stream_name = f"{day}/[{self.function_version}]{uuid.uuid4().hex}"
        self._deadline = time.monotonic() + self.timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


# --------------------------------------------------------------------------- handler registry


class HandlerRegistry:
    """Function name → handler. ARNs (with or without qualifier) resolve to their name."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._lock = threading.Lock()

    @staticmethod
    def function_name_of(name_or_arn: str) -> str:
        # arn:aws:lambda:region:account:function:name[:qualifier] or name[:qualifier]
        if name_or_arn.startswith("arn:"):
            parts = name_or_arn.split(":")
            return parts[6] if len(parts) > 6 else name_or_arn
        return name_or_arn.split(":", 1)[0]

    def register(self, name_or_arn: str, handler: Handler) -> None:
        with self._lock:
            self._handlers[self.function_name_of(name_or_arn)] = handler

    def unregister(self, name_or_arn: str) -> None:
        with self._lock:
            self._handlers.pop(self.function_name_of(name_or_arn), None)

    def lookup(self, name_or_arn: str) -> Handler | None:
        with self._lock:
            return self._handlers.get(self.function_name_of(name_or_arn))

    def clear(self) -> None:
        with self._lock:
            self._handlers.clear()


# moto's backend is process-global, so the routing table is too.
registry = HandlerRegistry()


# --------------------------------------------------------------------------- the moto patch


def _lambda_simple_backend_class() -> type:
    from moto.awslambda_simple.models import LambdaSimpleBackend

    return LambdaSimpleBackend


def verify_lambda_routing() -> None:
    """Raise if moto no longer has the method we patch, with the shape we patch it for."""
    cls = _lambda_simple_backend_class()
    invoke = cls.__dict__.get("invoke")
    if invoke is None:
        raise RuntimeError("moto changed: LambdaSimpleBackend.invoke is gone; Lambda routing cannot work")
    original = getattr(invoke, "__bridge_original__", invoke)
    params = list(inspect.signature(original).parameters)
    if params != _EXPECTED_INVOKE_PARAMS:
        raise RuntimeError(f"moto changed: LambdaSimpleBackend.invoke{params} != {_EXPECTED_INVOKE_PARAMS}")
    if not hasattr(cls, "get_function"):
        raise RuntimeError("moto changed: LambdaSimpleBackend.get_function is gone")


class LambdaFault(Exception):
    """Raise from a handler to end the invocation as the Lambda service itself reports a death.

    The handler's own exceptions come back under their class name; a timeout, running out of
    memory or a runtime crash come back under names no Python class has, and Step Functions
    matches its Retry and Catch rules on those names.
    """

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type

    @classmethod
    def timed_out(cls, after_s: float = 40.0) -> LambdaFault:
        return cls("Sandbox.Timedout", f"Task timed out after {after_s:.2f} seconds")

    @classmethod
    def out_of_memory(cls) -> LambdaFault:
        return cls("Runtime.OutOfMemory", "Runtime exited with error: signal: killed")

    @classmethod
    def unknown(cls) -> LambdaFault:
        # What Step Functions names a function error whose payload says nothing.
        return cls("Lambda.Unknown", "The cause could not be determined because Lambda did not return an error type.")


def _error_payload(exc: BaseException) -> dict[str, Any]:
    # Lambda's Python runtime shape; Step Functions reads errorType as the error name.
    error_type = exc.error_type if isinstance(exc, LambdaFault) else type(exc).__name__
    return {"errorType": error_type, "errorMessage": str(exc), "stackTrace": []}


def _run_handler(handler: Handler, event: Any, context: LambdaContext) -> tuple[bytes, bool]:
    """Run one invocation; return (payload, failed)."""
    try:
        result = handler(event, context)
    except Exception as exc:  # every handler failure becomes a function error
        payload = _error_payload(exc)
        message = str(exc).splitlines()[0] if str(exc) else ""
        print(f"[lambda {context.function_name}] {payload['errorType']}: {message}", file=sys.stderr)
        return json.dumps(payload).encode("utf-8"), True
    try:
        return json.dumps(result).encode("utf-8"), False
    except (TypeError, ValueError) as exc:
        # The Lambda runtime reports an unserializable result under this name.
        print(f"[lambda {context.function_name}] Runtime.MarshalError: {exc}", file=sys.stderr)
        error = {"errorType": "Runtime.MarshalError", "errorMessage": f"Unable to marshal response: {exc}"}
        return json.dumps(error | {"stackTrace": []}).encode("utf-8"), True


def install_lambda_routing() -> None:
    """Patch LambdaSimpleBackend.invoke once so registered functions run in this process."""
    verify_lambda_routing()
    cls = _lambda_simple_backend_class()
    if getattr(cls.invoke, "__bridge_original__", None) is not None:
        return
    original = cls.invoke

    def invoke(
        self: Any,
        function_name: str,
        qualifier: str | None,
        body: Any,
        headers: Any,
        response_headers: Any,
    ) -> str | bytes | None:
        handler = registry.lookup(function_name)
        if handler is None:
            return original(self, function_name, qualifier, body, headers, response_headers)
        # Unknown functions raise ResourceNotFound here, as on AWS.
        fn = self.get_function(function_name, qualifier)
        raw = body.decode("utf-8") if isinstance(body, bytes) else body
        event = json.loads(raw) if raw else {}
        context = LambdaContext(
            function_name=fn.function_name,
            function_version=fn.version,
            invoked_function_arn=fn.function_arn,
            memory_limit_in_mb=int(fn.memory_size or 128),
            timeout_s=float(fn.timeout or 3),
        )
        invocation_type = headers.get("X-Amz-Invocation-Type", "RequestResponse") if headers else "RequestResponse"
        if invocation_type == "DryRun":
            return b""
        if invocation_type == "Event":
            # Async invoke: AWS answers 202 at once and runs the function later.
            threading.Thread(target=_run_handler, args=(handler, event, context), daemon=True).start()
            return b""
        payload, failed = _run_handler(handler, event, context)
        if failed:
            response_headers["x-amz-function-error"] = "Unhandled"
        response_headers["Content-Length"] = str(len(payload))
        return payload

    invoke.__bridge_original__ = original  # type: ignore[attr-defined]
    cls.invoke = invoke


# --------------------------------------------------------------------------- states:startExecution


def _sfn_service_class() -> type:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
        StateTaskServiceSfn,
    )

    return StateTaskServiceSfn


def verify_sfn_integration_fix() -> None:
    """Raise if the hooks the startExecution fix relies on are gone."""
    cls = _sfn_service_class()
    for name in ("_normalise_parameters", "_normalise_response", "_get_boto_service_action"):
        if not hasattr(cls, name):
            raise RuntimeError(f"moto changed: StateTaskServiceSfn.{name} is gone")


def install_sfn_integration_fix() -> None:
    """Make the interpreter's `states:startExecution` task work (broken in moto 5.2.5).

    moto ported LocalStack's interpreter but left parameter/response normalisation as no-ops:
    the ASL's `StateMachineArn`/`Name`/`Input` reach boto3 unchanged, whose Step Functions
    model wants `stateMachineArn`/`name`/`input` (KeyError → States.Runtime), and the result
    keeps camelCase where AWS returns `ExecutionArn`/`StartDate`. Top-level renames suffice:
    every Step Functions action the interpreter calls takes flat parameters.
    """
    verify_sfn_integration_fix()
    cls = _sfn_service_class()
    if getattr(cls._normalise_parameters, "__bridge_original__", None) is not None:
        return
    import botocore.session
    from botocore import xform_name

    model = botocore.session.get_session().get_service_model("stepfunctions")
    members_by_action = {
        xform_name(op): {m.lower(): m for m in (model.operation_model(op).input_shape.members or {})}
        for op in model.operation_names
        if model.operation_model(op).input_shape is not None
    }
    original_params = cls._normalise_parameters
    original_response = cls._normalise_response

    def normalise_parameters(
        self: Any,
        parameters: dict[str, Any],
        boto_service_name: str | None = None,
        service_action_name: str | None = None,
    ) -> None:
        original_params(self, parameters, boto_service_name, service_action_name)
        members = members_by_action.get(service_action_name or self._get_boto_service_action(), {})
        for key in list(parameters):
            target = members.get(key.lower())
            if target is not None and target != key:
                parameters[target] = parameters.pop(key)

    def normalise_response(
        self: Any, response: Any, boto_service_name: str | None = None, service_action_name: str | None = None
    ) -> None:
        original_response(self, response, boto_service_name, service_action_name)
        if not isinstance(response, dict):
            return
        for key in list(response):
            value = response.pop(key)
            if isinstance(value, datetime):
                value = int(value.timestamp() * 1000)  # AWS renders these dates as epoch millis
            response[key[:1].upper() + key[1:]] = value

    normalise_parameters.__bridge_original__ = original_params  # type: ignore[attr-defined]
    normalise_response.__bridge_original__ = original_response  # type: ignore[attr-defined]
    cls._normalise_parameters = normalise_parameters
    cls._normalise_response = normalise_response


# --------------------------------------------------------------------------- publishing faults

# The interpreter's service integrations whose sends can be made to fail: the outcome fan-out.
_FAULTABLE = {"sns": "Publish", "events": "PutEvents", "sqs": "SendMessage"}
_SERVICE_MODULE_PREFIX = "moto.stepfunctions.parser.asl.component.state.exec.state_task.service."


@dataclass
class PublishFaults:
    """Make the state machine's SNS, EventBridge and SQS sends fail some of the time.

    `rate` is the chance that one send fails; `lost_reply_share` of those failures happen after
    the send took effect (the reply is lost, as when a connection drops), so a retry sends it
    twice: receivers see the same event id again and must dedupe. The rest fail before sending.
    """

    rate: float = 0.0
    lost_reply_share: float = 0.5
    seed: int | None = None
    injected: dict[str, int] = field(default_factory=dict)
    _rng: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        import random

        self._rng = random.Random(self.seed)

    def roll(self, name: str) -> str | None:
        """None (send normally), "before" (fail without sending) or "after" (send, then fail)."""
        with self._lock:
            if self._rng.random() >= self.rate:
                return None
            mode = "after" if self._rng.random() < self.lost_reply_share else "before"
            key = f"{name}:{mode}"
            self.injected[key] = self.injected.get(key, 0) + 1
            return mode


_publish_faults: PublishFaults | None = None


def _injected_error(operation: str) -> Exception:
    from botocore.exceptions import ClientError

    # The interpreter's error mapping reads the request id and status, as botocore fills them in.
    response = {
        "Error": {"Code": "InternalFailure", "Message": "injected publishing fault"},
        "ResponseMetadata": {"HTTPStatusCode": 500, "RequestId": str(uuid.uuid4())},
    }
    return ClientError(response, operation)  # type: ignore[arg-type]


def _register_fault_hooks(client: Any, service: str) -> None:
    """Let `_publish_faults` fail this client's faultable sends (a no-op while it is None)."""
    operation = _FAULTABLE.get(service)
    if operation is None:
        return
    name = f"{service}:{operation}"

    def before(**kwargs: Any) -> None:
        if _publish_faults is not None and (mode := _publish_faults.roll(name)) is not None:
            kwargs["context"]["bridge_fault"] = mode
            if mode == "before":
                raise _injected_error(operation)

    def after(**kwargs: Any) -> None:
        if kwargs.get("context", {}).get("bridge_fault") == "after":
            raise _injected_error(operation)

    client.meta.events.register(f"before-call.{service}.{operation}", before)
    client.meta.events.register(f"after-call.{service}.{operation}", after)


def install_publish_faults(faults: PublishFaults | None) -> None:
    """Route the interpreter's SNS/EventBridge/SQS sends through `faults` (None turns them off)."""
    global _publish_faults
    install_client_reuse()
    _publish_faults = faults


# --------------------------------------------------------------------------- interpreter speed

# Every module of the interpreter that makes boto3 clients (they import the factory by name).
_CLIENT_USERS = (
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.lambda_eval_utils",
    *(
        _SERVICE_MODULE_PREFIX + f"state_task_service_{name}"
        for name in ("sns", "events", "sqs", "sfn", "dynamodb", "aws_sdk", "batch", "ecs", "glue", "unsupported")
    ),
)


# Connections each of the interpreter's clients keeps open (botocore's default is 10; beyond the
# pool every call opens and closes a connection of its own).
INTERPRETER_POOL_CONNECTIONS = 64


def install_client_reuse() -> None:
    """One boto3 client per service for the interpreter's tasks, instead of one per task.

    moto's interpreter builds a fresh client (and connection) for every Lambda invoke, publish
    and send; in a 200-job profile that was about 5% of the local stack's busy time, plus the
    connections opened and closed around it. Clients
    are thread-safe for calls. The key holds the emulator's port, so a client never outlives the
    server it talks to.
    """
    import importlib

    from botocore.config import Config
    from moto.core.models import botocore_stubber
    from moto.settings import moto_server_port
    from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSeconds
    from moto.stepfunctions.parser.asl.utils import boto_client as boto_client_module

    original = boto_client_module.boto_client_for
    if getattr(original, "__bridge_original__", None) is not None:
        return
    clients: dict[tuple[str, str, str, bool, str], Any] = {}
    lock = threading.Lock()

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        # Same parameter names as moto's function: the interpreter passes them by keyword. Made as
        # moto makes them (no retries, the task's own timeouts), signed with the execution's role
        # as Step Functions does (moto signs with dummy keys), with a pool for the hundreds of
        # executions that share each client.
        stubbed = botocore_stubber.enabled
        session = iam.session_for_role(getattr(state_credentials, "role_arn", None))
        key = (region, service, moto_server_port(), stubbed, session.access_key_id if session else "")
        with lock:
            client = clients.get(key)
            if client is None:
                client = clients[key] = boto3.client(
                    service,
                    region_name=region,
                    aws_access_key_id=session.access_key_id if session else iam.ADMIN_ACCESS_KEY,
                    aws_secret_access_key=session.secret_access_key if session else iam.ADMIN_ACCESS_KEY,
                    aws_session_token=session.session_token if session else None,
                    endpoint_url=None if stubbed else f"http://localhost:{key[2]}",
                    config=Config(
                        parameter_validation=False,
                        retries={"max_attempts": 0, "total_max_attempts": 1},
                        connect_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
                        read_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
                        max_pool_connections=INTERPRETER_POOL_CONNECTIONS,
                    ),
                )
                _register_fault_hooks(client, service)
        return client

    boto_client_for.__bridge_original__ = original  # type: ignore[attr-defined]
    boto_client_module.boto_client_for = boto_client_for
    for module_name in _CLIENT_USERS:
        module = importlib.import_module(module_name)
        # A module first imported just now already took the replacement.
        if getattr(module, "boto_client_for", None) not in (original, boto_client_for):
            raise RuntimeError(f"moto changed: {module_name} no longer uses boto_client_for")
        module.boto_client_for = boto_client_for


def install_jsonpath_cache() -> None:
    """Parse each of the state machine's JSONPaths once.

    The interpreter parses a path every time it reads one, and jsonpath_ng builds its whole
    parser (yacc tables) for each parse: a few milliseconds, many times per state.
    """
    from functools import lru_cache

    from moto.stepfunctions.parser.asl.component.common.path import result_path
    from moto.stepfunctions.parser.asl.utils import json_path

    for module in (json_path, result_path):
        if getattr(module.parse, "__bridge_original__", None) is None:
            cached = lru_cache(maxsize=4096)(module.parse)
            cached.__bridge_original__ = module.parse  # type: ignore[attr-defined]
            module.parse = cached


def install_dispatch_cache() -> None:
    """Remember which moto backend serves each host.

    moto's server finds it per request, under one lock, by listing its package directory on disk
    and matching hundreds of URL patterns: every AWS call of the local stack queued there.
    """
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    original = DomainDispatcherApplication.get_backend_for_host
    if getattr(original, "__bridge_original__", None) is not None:
        return
    found: dict[str | None, Any] = {}

    def get_backend_for_host(self: Any, host: str | None) -> Any:
        if host not in found:
            found[host] = original(self, host)
        return found[host]

    get_backend_for_host.__bridge_original__ = original  # type: ignore[attr-defined]
    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host


# --------------------------------------------------------------------------- DynamoDB requests

# moto's DynamoDB evaluates a write's condition and then applies the write with nothing held in
# between, so two concurrent conditional writes of one item can both pass (the fault run caught a
# cancel and a poll both recording an outcome; DynamoDB never lets both succeed), and a request
# that copies an item while another updates it fails ("dictionary changed size during
# iteration"). Here DynamoDB requests are handled one at a time: the process has one interpreter
# lock anyway, so little is lost.


def verify_dynamodb_request_lock() -> None:
    from moto.dynamodb.responses import DynamoHandler

    if not callable(DynamoHandler.__dict__.get("call_action")):
        raise RuntimeError("moto changed: DynamoHandler.call_action is gone")


def install_dynamodb_request_lock() -> None:
    """Make every DynamoDB request atomic, as each item operation is on AWS."""
    from moto.dynamodb.responses import DynamoHandler

    verify_dynamodb_request_lock()
    original = DynamoHandler.__dict__["call_action"]
    if getattr(original, "__bridge_original__", None) is not None:
        return
    lock = threading.Lock()

    def call_action(self: Any) -> Any:
        with lock:
            return original(self)

    call_action.__bridge_original__ = original  # type: ignore[attr-defined]
    DynamoHandler.call_action = call_action  # type: ignore[method-assign]


# --------------------------------------------------------------------------- JSONata


def install_jsonata() -> None:
    """Give moto's Step Functions interpreter a JSONata evaluator (it ships a JVM stub)."""
    import jsonata
    from moto.stepfunctions.parser.asl.jsonata import jsonata as moto_jsonata

    def evaluate(expression: str) -> Any:
        try:
            return jsonata.Jsonata(expression).evaluate(None)
        except Exception as exc:  # surfaced as States.QueryEvaluationError
            raise moto_jsonata.JSONataException("UNKNOWN", str(exc)) from exc

    moto_jsonata._eval_jsonata = evaluate


# --------------------------------------------------------------------------- the server


def _dummy_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", "def handler(event, context):\n    return event\n")
    return buf.getvalue()


DUMMY_ZIP = _dummy_zip()


def _apply_environ(values: dict[str, str | None]) -> None:
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


class EmbeddedAws:
    """A moto server on 127.0.0.1 that boto3 clients made later in this process will reach.

    moto's backends are process-global, so every EmbeddedAws in a process is a door into the
    same AWS: the state is wiped when the first one starts and when the last one stops. The
    environment (what boto3 clients made later reach) points at one live door at a time, so a
    client cached while a second emulator lives keeps working after that one stops.
    """

    _live: ClassVar[list[EmbeddedAws]] = []
    _live_lock: ClassVar[threading.Lock] = threading.Lock()
    _environ_owner: ClassVar[EmbeddedAws | None] = None
    _original_environ: ClassVar[dict[str, str | None]] = {}

    def __init__(self, region: str = DEFAULT_REGION, port: int = 0) -> None:
        self.region = region
        self._port = port
        self._server: ThreadedMotoServer | None = None
        self.endpoint_url = ""

    @property
    def port(self) -> int:
        return self._port

    def start(self) -> EmbeddedAws:
        if self._server is not None:
            return self
        install_lambda_routing()
        install_sfn_integration_fix()
        install_jsonata()
        install_client_reuse()
        install_jsonpath_cache()
        install_dispatch_cache()
        install_dynamodb_request_lock()
        install_quotas()
        iam.install_enforcement()
        iam.install_client_credentials()
        # Werkzeug logs every request at INFO; the local run wants to show events, not that.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=self._port, verbose=False)
        server.start()
        self._server = server
        self._port = server.get_host_and_port()[1]
        self.endpoint_url = f"http://127.0.0.1:{self._port}"
        with EmbeddedAws._live_lock:
            first = not EmbeddedAws._live
            EmbeddedAws._live.append(self)
            if first:
                # Remember what was there, so the last stop() leaves later code as it found it.
                EmbeddedAws._original_environ = {key: os.environ.get(key) for key in self._environ()}
                self._own_environ()
        if first:
            self.reset()
        else:
            self.ensure_role()
        return self

    def _environ(self) -> dict[str, str | None]:
        # The interpreter calls back to localhost:$MOTO_PORT, read per call: set before any execution.
        # (Binding port 0 first and then setting it avoids a pick-then-bind race.)
        return {
            "MOTO_PORT": str(self._port),
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_PROFILE": None,
            "AWS_SESSION_TOKEN": None,
            # The roles SAM generates attach AWS managed policies (AWSLambdaBasicExecutionRole and
            # others); moto knows their documents only when asked to load them.
            "MOTO_IAM_LOAD_MANAGED_POLICIES": "true",
        }

    def _own_environ(self) -> None:
        EmbeddedAws._environ_owner = self
        _apply_environ(self._environ())

    def ensure_role(self) -> str:
        """Create the one IAM role every local function and state machine uses."""
        iam = self.client("iam")
        try:
            iam.get_role(RoleName=ROLE_NAME)
        except iam.exceptions.NoSuchEntityException:
            iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(_TRUST_POLICY))
        return DUMMY_ROLE_ARN

    def stop(self) -> None:
        """Shut the server, forget every resource if no other emulator is live, restore the env."""
        if self._server is None:
            return
        with EmbeddedAws._live_lock:
            EmbeddedAws._live.remove(self)
            last = not EmbeddedAws._live
            if last:
                EmbeddedAws._environ_owner = None
                _apply_environ(EmbeddedAws._original_environ)
            elif EmbeddedAws._environ_owner is self:
                EmbeddedAws._live[0]._own_environ()
        if last:
            # Best effort: if this fails the state dies with the process anyway.
            with suppress(httpx.HTTPError):
                httpx.post(f"{self.endpoint_url}/moto-api/reset", timeout=10)
        self._server.stop()
        self._server = None

    def reset(self) -> None:
        """Forget every resource: moto's backends are process-global, so a new emulator starts empty."""
        httpx.post(f"{self.endpoint_url}/moto-api/reset", timeout=10).raise_for_status()
        # Config lives outside the backends; set it here so every start and reset runs state machines.
        httpx.post(f"{self.endpoint_url}/moto-api/config", json=MOTO_CONFIG, timeout=10).raise_for_status()
        self.ensure_role()

    def client(self, service: str) -> Any:
        return boto3.session.Session().client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def register_function(
        self,
        name: str,
        handler: Handler,
        *,
        memory_mb: int = 128,
        timeout_s: int = 30,
        environment: dict[str, str] | None = None,
        description: str = "",
    ) -> str:
        """Create (or keep) the function in moto and route its invokes to `handler`; return its ARN."""
        lam = self.client("lambda")
        try:
            arn: str = lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"]
        except lam.exceptions.ResourceNotFoundException:
            arn = lam.create_function(
                FunctionName=name,
                Runtime="python3.11",
                Role=DUMMY_ROLE_ARN,
                Handler="app.handler",
                Code={"ZipFile": DUMMY_ZIP},
                Description=description,
                MemorySize=memory_mb,
                Timeout=timeout_s,
                Environment={"Variables": environment or {}},
            )["FunctionArn"]
        registry.register(name, handler)
        return arn

    def __enter__(self) -> EmbeddedAws:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@contextmanager
def embedded_aws(region: str = DEFAULT_REGION) -> Iterator[EmbeddedAws]:
    with EmbeddedAws(region=region) as aws:
        yield aws
