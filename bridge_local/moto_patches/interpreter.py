"""moto's Step Functions interpreter: the startExecution integration as AWS runs it, its clients
signed with the execution's role and reused, parsed JSONPaths kept."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

import boto3

from bridge_local import iam


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


_SERVICE_MODULE_PREFIX = "moto.stepfunctions.parser.asl.component.state.exec.state_task.service."


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


def verify_client_reuse() -> None:
    """Raise if the interpreter no longer makes its clients through `boto_client_for`."""
    import importlib
    import inspect

    from moto.stepfunctions.parser.asl.utils import boto_client as boto_client_module

    factory = getattr(boto_client_module, "boto_client_for", None)
    if factory is None:
        raise RuntimeError("moto changed: asl.utils.boto_client.boto_client_for is gone")
    params = list(inspect.signature(getattr(factory, "__bridge_original__", factory)).parameters)
    if params != ["region", "service", "state_credentials"]:
        raise RuntimeError(f"moto changed: boto_client_for{params}")
    for module_name in _CLIENT_USERS:
        if not hasattr(importlib.import_module(module_name), "boto_client_for"):
            raise RuntimeError(f"moto changed: {module_name} no longer uses boto_client_for")


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
        return client

    boto_client_for.__bridge_original__ = original  # type: ignore[attr-defined]
    boto_client_module.boto_client_for = boto_client_for
    for module_name in _CLIENT_USERS:
        module = importlib.import_module(module_name)
        # A module first imported just now already took the replacement.
        if getattr(module, "boto_client_for", None) not in (original, boto_client_for):
            raise RuntimeError(f"moto changed: {module_name} no longer uses boto_client_for")
        module.boto_client_for = boto_client_for


def verify_jsonpath_cache() -> None:
    from moto.stepfunctions.parser.asl.component.common.path import result_path
    from moto.stepfunctions.parser.asl.utils import json_path

    for module in (json_path, result_path):
        if not callable(getattr(module, "parse", None)):
            raise RuntimeError(f"moto changed: {module.__name__}.parse is gone")


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
