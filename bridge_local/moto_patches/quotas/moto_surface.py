"""The moto internals the quota checks patch or use, checked against the pinned moto version
(`verify_quotas`), and the one way a method is patched (`patch_method`, idempotent)."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

SFN_BACKENDS = (
    ("moto.stepfunctions.models", "StepFunctionBackend"),
    ("moto.stepfunctions.parser.models", "StepFunctionsParserBackend"),
)
STATE_PREFIX = "moto.stepfunctions.parser.asl.component.state."
# Every module of the interpreter that imported moto's size check by name.
SIZE_CHECK_USERS = (
    STATE_PREFIX + "state",
    STATE_PREFIX + "exec.state_task.state_task_lambda",
    STATE_PREFIX + "exec.state_task.service.state_task_service",
)
# Every Task state class that evaluates its own Parameters.
PARAMETER_EVALUATORS = (
    (STATE_PREFIX + "exec.state_task.state_task", "StateTask"),
    (STATE_PREFIX + "exec.state_task.state_task_lambda", "StateTaskLambda"),
    (STATE_PREFIX + "exec.state_task.state_task_activitiy", "StateTaskActivity"),
)
ERROR_EQUALS = ("moto.stepfunctions.parser.asl.component.common.error_name.error_equals_decl", "ErrorEqualsDecl")
SECONDS_PATH = (STATE_PREFIX + "wait.wait_function.seconds_path", "SecondsPath")

# Parameter names each patched method is written against; a moto upgrade that changes them fails here.
_EXPECTED: dict[tuple[str, str, str], list[str]] = {
    ("moto.stepfunctions.models", "StepFunctionBackend", "start_execution"): [
        "self",
        "state_machine_arn",
        "name",
        "execution_input",
    ],
    ("moto.stepfunctions.parser.models", "StepFunctionsParserBackend", "start_execution"): [
        "self",
        "state_machine_arn",
        "name",
        "execution_input",
        "trace_header",
    ],
    (*ERROR_EQUALS, "_eval_body"): ["self", "env"],
    (*SECONDS_PATH, "_validate_seconds_value"): ["self", "env", "seconds"],
    **{(module, cls, "_eval_parameters"): ["self", "env"] for module, cls in PARAMETER_EVALUATORS},
    ("moto.sqs.models", "SQSBackend", "send_message"): [
        "self",
        "queue_name",
        "message_body",
        "message_attributes",
        "delay_seconds",
        "deduplication_id",
        "group_id",
        "system_attributes",
        "validate_group_id",
    ],
    ("moto.sqs.models", "SQSBackend", "send_message_batch"): ["self", "queue_name", "entries"],
    ("moto.sns.models", "SNSBackend", "publish"): [
        "self",
        "message",
        "arn",
        "phone_number",
        "subject",
        "message_attributes",
        "group_id",
        "deduplication_id",
        "message_structure",
    ],
    ("moto.events.models", "EventsBackend", "put_events"): ["self", "events"],
    ("moto.dynamodb.models.dynamo_type", "LimitedSizeDict", "__setitem__"): ["self", "key", "value"],
    ("moto.dynamodb.models", "DynamoDBBackend", "update_item"): [
        "self",
        "table_name",
        "key",
        "update_expression",
        "expression_attribute_names",
        "expression_attribute_values",
        "attribute_updates",
        "expected",
        "condition_expression",
        "return_values_on_condition_check_failure",
    ],
}

# Names the checks use besides the patched methods.
_NEEDED: tuple[tuple[str, str], ...] = (
    ("moto.stepfunctions.exceptions", "ValidationException"),
    ("moto.stepfunctions.exceptions", "InvalidName"),
    ("moto.stepfunctions.parser.quotas", "is_within_size_quota"),
    ("moto.stepfunctions.parser.api", "ExecutionFailedEventDetails"),
    ("moto.stepfunctions.parser.api", "TaskFailedEventDetails"),
    ("moto.stepfunctions.parser.api", "HistoryEventType"),
    ("moto.stepfunctions.parser.asl.component.common.error_name.failure_event", "FailureEvent"),
    ("moto.stepfunctions.parser.asl.component.common.error_name.failure_event", "FailureEventException"),
    ("moto.stepfunctions.parser.asl.component.common.error_name.states_error_name", "StatesErrorName"),
    ("moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type", "StatesErrorNameType"),
    ("moto.stepfunctions.parser.asl.eval.event.event_detail", "EventDetails"),
    ("moto.sqs.exceptions", "InvalidParameterValue"),
    ("moto.sqs.exceptions", "BatchRequestTooLong"),
    ("moto.sqs.exceptions", "SQSException"),
    ("moto.sns.exceptions", "InvalidParameterValue"),
    ("moto.sns.exceptions", "SNSNotFoundError"),
    ("moto.sns.models", "MAXIMUM_MESSAGE_LENGTH"),
    ("moto.events.exceptions", "ValidationException"),
    ("moto.dynamodb.exceptions", "ItemSizeTooLarge"),
    ("moto.dynamodb.exceptions", "ItemSizeToUpdateTooLarge"),
    ("moto.dynamodb.exceptions", "DynamodbException"),
    ("moto.dynamodb.models.dynamo_type", "DynamoType"),
)


def moto_attr(module: str, name: str) -> Any:
    return getattr(importlib.import_module(module), name)


def original_of(function: Any) -> Any:
    return getattr(function, "__bridge_original__", function)


def verify_quotas() -> None:
    """Raise if a moto internal the quota checks rely on is gone or changed shape."""
    for module, name in _NEEDED:
        if not hasattr(importlib.import_module(module), name):
            raise RuntimeError(f"moto changed: {module}.{name} is gone; the quota checks cannot work")
    for (module, cls_name, method), expected in _EXPECTED.items():
        cls = moto_attr(module, cls_name)
        function = cls.__dict__.get(method)
        if function is None:
            raise RuntimeError(f"moto changed: {cls_name}.{method} is gone; the quota checks cannot work")
        params = list(inspect.signature(original_of(function)).parameters)
        if params != expected:
            raise RuntimeError(f"moto changed: {cls_name}.{method}{params} != {expected}")
    original_check = original_of(moto_attr("moto.stepfunctions.parser.quotas", "is_within_size_quota"))
    for module in SIZE_CHECK_USERS:
        if original_of(getattr(importlib.import_module(module), "is_within_size_quota", None)) is not original_check:
            raise RuntimeError(f"moto changed: {module} no longer uses quotas.is_within_size_quota")
    error_types = moto_attr(
        "moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type", "StatesErrorNameType"
    )
    for member in ("StatesStatesDataLimitExceeded", "StatesRuntime", "StatesALL"):
        if not hasattr(error_types, member):
            raise RuntimeError(f"moto changed: StatesErrorNameType.{member} is gone")
    if not hasattr(moto_attr(*ERROR_EQUALS), "_STATE_ALL_ERROR"):
        raise RuntimeError("moto changed: ErrorEqualsDecl._STATE_ALL_ERROR is gone")


def patch_method(module: str, cls_name: str, method: str, make: Callable[[Any], Any]) -> None:
    cls = moto_attr(module, cls_name)
    current = cls.__dict__[method]
    if getattr(current, "__bridge_quota__", False):
        return
    replacement = make(current)
    replacement.__bridge_original__ = current
    replacement.__bridge_quota__ = True
    setattr(cls, method, replacement)
