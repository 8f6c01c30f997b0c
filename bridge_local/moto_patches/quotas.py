"""AWS payload quotas in the embedded AWS: moto refuses what AWS refuses where a job could reach it.

moto 5.2.5 enforces some of these loosely (characters instead of UTF-8 bytes, message attributes
left out, DynamoDB items measured by a rough formula at 405,000) and others not at all (execution
names, execution input, Step Functions task parameters, the Wait state's upper bound, EventBridge
entry sizes). The checks below run inside the moto server, so every caller meets them: handler
code, the Step Functions interpreter's service integrations and tests alike.

The numbers are AWS's published ones (AWS docs and the botocore 1.44 service models). Since January
2026 SQS messages and EventBridge PutEvents requests may be up to 1 MiB; SNS topics still default
to 256 KiB and Step Functions payloads are 256 KiB, so the bridge's events, which go out on every
channel, are bounded by 256 KiB. `verify_quotas()` fails loudly if the moto internals patched here
move or change shape.

`observe()` lets a test see the size of every payload measured, so headroom is measured, not guessed.
"""

from __future__ import annotations

import base64
import binascii
import copy
import importlib
import inspect
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

# --------------------------------------------------------------------------- the numbers

# Step Functions: input or result data of a task, state or execution, as UTF-8 (StartExecution's
# `input` has "Maximum length of 262144", in bytes).
STATES_PAYLOAD_BYTES = 256 * 1024
STATES_NAME_MAX_CHARS = 80
# The Wait state's Seconds: "an integer value from 0 up to 99999999".
WAIT_SECONDS_MAX = 99_999_999
# SQS: one message, or all of a SendMessageBatch, body plus attributes (the queue's
# MaximumMessageSize defaults to this maximum).
SQS_MESSAGE_BYTES = 1_048_576
# SNS: a topic's MaximumMessageSize defaults to 256 KiB (it may be raised to 1 MiB).
SNS_DEFAULT_MESSAGE_BYTES = 262_144
SNS_MAX_MESSAGE_BYTES = 1_048_576
# EventBridge: the total entry size of one PutEvents request ("must be less than 1MB").
EVENTS_REQUEST_BYTES = 1_048_576
# PutEvents counts a given `Time` as 14 bytes, whatever its value.
EVENTS_TIME_BYTES = 14
# DynamoDB: 400 KB per item, names and values together, KB being 1,024 bytes.
DYNAMODB_ITEM_BYTES = 400 * 1024


@dataclass(frozen=True)
class Quota:
    """One AWS quota the embedded AWS enforces, as the docs table lists it."""

    key: str
    service: str
    what: str
    limit_bytes: int
    refusal: str


QUOTAS: tuple[Quota, ...] = (
    Quota("states.input", "Step Functions", "StartExecution input", STATES_PAYLOAD_BYTES, "ValidationException"),
    Quota(
        "states.payload",
        "Step Functions",
        "a state's input, output or task result",
        STATES_PAYLOAD_BYTES,
        "execution fails: States.DataLimitExceeded",
    ),
    Quota(
        "states.parameters",
        "Step Functions",
        "a task's input after Parameters",
        STATES_PAYLOAD_BYTES,
        "execution fails: States.DataLimitExceeded",
    ),
    Quota("sqs.message", "SQS", "SendMessage body + attributes", SQS_MESSAGE_BYTES, "InvalidParameterValue"),
    Quota("sns.message", "SNS", "Publish message + attributes", SNS_DEFAULT_MESSAGE_BYTES, "InvalidParameter"),
    Quota("events.request", "EventBridge", "PutEvents entries", EVENTS_REQUEST_BYTES, "ValidationException"),
    Quota("dynamodb.item", "DynamoDB", "one item", DYNAMODB_ITEM_BYTES, "ValidationException"),
)

# --------------------------------------------------------------------------- watching sizes

Observer = Callable[[str, int, str], None]
_observers: list[Observer] = []
_observers_lock = threading.Lock()


@contextmanager
def observe(callback: Observer) -> Iterator[None]:
    """Call `callback(quota_key, size, text)` for every payload a check measures, while inside.

    The text is what was measured (a message, a state as JSON, an item's string values), so a test
    can keep only its own job's payloads. Made only while someone observes: checks stay cheap.
    """
    with _observers_lock:
        _observers.append(callback)
    try:
        yield
    finally:
        with _observers_lock:
            _observers.remove(callback)


def _seen(key: str, size: int, text: Callable[[], str]) -> None:
    if not _observers:
        return
    with _observers_lock:
        watching = list(_observers)
    made = text()
    for callback in watching:
        callback(key, size, made)


# --------------------------------------------------------------------------- sizes, as AWS counts them


def utf8_len(value: str) -> int:
    return len(value.encode("utf-8", "surrogatepass"))


def _binary_len(value: Any) -> int:
    # Binary values travel base64-encoded; every quota counts the raw bytes.
    if isinstance(value, bytes | bytearray):
        return len(value)
    try:
        return len(base64.b64decode(str(value), validate=True))
    except (binascii.Error, ValueError):
        return utf8_len(str(value))


def json_size(value: Any) -> int:
    """A state as Step Functions holds it: compact JSON in UTF-8 (a bare string as itself)."""
    if isinstance(value, str):
        return utf8_len(value)
    return utf8_len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str))


def message_attributes_size(attributes: dict[str, Any] | None) -> int:
    """SQS and SNS count every part of a message attribute: its name, data type and value."""
    size = 0
    for name, attribute in (attributes or {}).items():
        size += utf8_len(name)
        # SQS keeps the request's shape (DataType, StringValue/BinaryValue), SNS its own (Type, Value).
        data_type = attribute.get("DataType", attribute.get("Type", ""))
        size += utf8_len(str(data_type))
        if "BinaryValue" in attribute or str(data_type).startswith("Binary"):
            size += _binary_len(attribute.get("BinaryValue", attribute.get("Value", b"")))
        else:
            size += utf8_len(str(attribute.get("StringValue", attribute.get("Value", ""))))
    return size


def put_events_entry_size(entry: dict[str, Any]) -> int:
    """EventBridge's documented formula: 14 bytes for a Time, then the UTF-8 bytes of Source,
    DetailType, Detail and each of Resources."""
    size = EVENTS_TIME_BYTES if entry.get("Time") is not None else 0
    for field in ("Source", "DetailType", "Detail"):
        size += utf8_len(str(entry.get(field) or ""))
    size += sum(utf8_len(str(resource)) for resource in entry.get("Resources") or [] if resource is not None)
    return size


def _number_size(text: str) -> int:
    # About one byte per two significant digits, plus one; leading and trailing zeros do not count.
    try:
        digits = "".join(map(str, Decimal(text).as_tuple().digits)).strip("0") or "0"
    except InvalidOperation:
        digits = text
    return (len(digits) + 1) // 2 + 1


def _typed(value: Any) -> tuple[str, Any]:
    # moto's DynamoType, the wire form {"S": "..."}, or (as moto allows) a bare value.
    if isinstance(value, dict):
        return next(iter(value.items()))
    if hasattr(value, "type") and hasattr(value, "value"):
        return value.type, value.value
    return "S", str(value)


def dynamodb_value_size(value: Any) -> int:
    """One attribute value, by DynamoDB's item-size rules (lists and maps: 3 bytes, plus 1 per element)."""
    kind, raw = _typed(value)
    if kind == "S":
        return utf8_len(raw)
    if kind == "N":
        return _number_size(str(raw))
    if kind == "B":
        return _binary_len(raw)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(utf8_len(item) for item in raw)
    if kind == "NS":
        return sum(_number_size(str(item)) for item in raw)
    if kind == "BS":
        return sum(_binary_len(item) for item in raw)
    if kind == "L":
        return 3 + sum(1 + dynamodb_value_size(item) for item in raw)
    if kind == "M":
        return 3 + sum(1 + utf8_len(name) + dynamodb_value_size(item) for name, item in raw.items())
    raise ValueError(f"unknown DynamoDB type {kind!r}")


def dynamodb_item_size(attributes: dict[str, Any]) -> int:
    """An item's size: each attribute's name (UTF-8) plus its value."""
    return sum(utf8_len(name) + dynamodb_value_size(value) for name, value in attributes.items())


# Whitespace as any Unicode engine sees it, plus the characters AWS lists for execution names.
_NAME_FORBIDDEN = frozenset('<>{}[]?*"#%\\^|~`$&,;:/')


def execution_name_problem(name: str) -> str | None:
    """Why Step Functions refuses this execution name's characters, or None.

    No whitespace, brackets < > { } [ ], wildcards ? *, specials " # % \\ ^ | ~ ` $ & , ; : /,
    control characters (U+0000-001F, U+007F-009F, U+FFFE-FFFF), surrogates or U+10FFFF.
    """
    for char in name:
        code = ord(char)
        if char.isspace():
            return "whitespace"
        if char in _NAME_FORBIDDEN:
            return f"the character {char!r}"
        if code <= 0x1F or 0x7F <= code <= 0x9F or 0xFFFE <= code <= 0xFFFF or code == 0x10FFFF:
            return f"the control character U+{code:04X}"
        if 0xD800 <= code <= 0xDFFF:
            return f"the surrogate U+{code:04X}"
    return None


# --------------------------------------------------------------------------- what is patched

_SFN_BACKENDS = (
    ("moto.stepfunctions.models", "StepFunctionBackend"),
    ("moto.stepfunctions.parser.models", "StepFunctionsParserBackend"),
)
_STATE_PREFIX = "moto.stepfunctions.parser.asl.component.state."
# Every module of the interpreter that imported moto's size check by name.
_SIZE_CHECK_USERS = (
    _STATE_PREFIX + "state",
    _STATE_PREFIX + "exec.state_task.state_task_lambda",
    _STATE_PREFIX + "exec.state_task.service.state_task_service",
)
# Every Task state class that evaluates its own Parameters.
_PARAMETER_EVALUATORS = (
    (_STATE_PREFIX + "exec.state_task.state_task", "StateTask"),
    (_STATE_PREFIX + "exec.state_task.state_task_lambda", "StateTaskLambda"),
    (_STATE_PREFIX + "exec.state_task.state_task_activitiy", "StateTaskActivity"),
)
_ERROR_EQUALS = ("moto.stepfunctions.parser.asl.component.common.error_name.error_equals_decl", "ErrorEqualsDecl")
_SECONDS_PATH = (_STATE_PREFIX + "wait.wait_function.seconds_path", "SecondsPath")

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
    (*_ERROR_EQUALS, "_eval_body"): ["self", "env"],
    (*_SECONDS_PATH, "_validate_seconds_value"): ["self", "env", "seconds"],
    **{(module, cls, "_eval_parameters"): ["self", "env"] for module, cls in _PARAMETER_EVALUATORS},
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


def _attr(module: str, name: str) -> Any:
    return getattr(importlib.import_module(module), name)


def _original(function: Any) -> Any:
    return getattr(function, "__bridge_original__", function)


def verify_quotas() -> None:
    """Raise if a moto internal the quota checks rely on is gone or changed shape."""
    for module, name in _NEEDED:
        if not hasattr(importlib.import_module(module), name):
            raise RuntimeError(f"moto changed: {module}.{name} is gone; the quota checks cannot work")
    for (module, cls_name, method), expected in _EXPECTED.items():
        cls = _attr(module, cls_name)
        function = cls.__dict__.get(method)
        if function is None:
            raise RuntimeError(f"moto changed: {cls_name}.{method} is gone; the quota checks cannot work")
        params = list(inspect.signature(_original(function)).parameters)
        if params != expected:
            raise RuntimeError(f"moto changed: {cls_name}.{method}{params} != {expected}")
    original_check = _original(_attr("moto.stepfunctions.parser.quotas", "is_within_size_quota"))
    for module in _SIZE_CHECK_USERS:
        if _original(getattr(importlib.import_module(module), "is_within_size_quota", None)) is not original_check:
            raise RuntimeError(f"moto changed: {module} no longer uses quotas.is_within_size_quota")
    error_types = _attr(
        "moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type", "StatesErrorNameType"
    )
    for member in ("StatesStatesDataLimitExceeded", "StatesRuntime", "StatesALL"):
        if not hasattr(error_types, member):
            raise RuntimeError(f"moto changed: StatesErrorNameType.{member} is gone")
    if not hasattr(_attr(*_ERROR_EQUALS), "_STATE_ALL_ERROR"):
        raise RuntimeError("moto changed: ErrorEqualsDecl._STATE_ALL_ERROR is gone")


def _patch_method(module: str, cls_name: str, method: str, make: Callable[[Any], Any]) -> None:
    cls = _attr(module, cls_name)
    current = cls.__dict__[method]
    if getattr(current, "__bridge_quota__", False):
        return
    replacement = make(current)
    replacement.__bridge_original__ = current
    replacement.__bridge_quota__ = True
    setattr(cls, method, replacement)


def install_quotas() -> None:
    """Patch moto once so the embedded AWS refuses what AWS refuses (see the module docstring)."""
    verify_quotas()
    _install_execution_start()
    _install_state_size()
    _install_task_parameters()
    _install_terminal_errors()
    _install_wait_range()
    _install_sqs()
    _install_sns()
    _install_events()
    _install_dynamodb()


# --------------------------------------------------------------------------- Step Functions


def check_execution_start(name: str | None, execution_input: str | None) -> None:
    """StartExecution, before anything else (AWS checks its model's constraints first).

    Mirrors: `name` is 1 to 80 characters (ValidationException) without whitespace, brackets,
    wildcards, special or control characters (InvalidName); `input` is at most 262,144 bytes of
    UTF-8 (256 KiB; ValidationException). HTTP 400 for each.
    """
    exceptions = importlib.import_module("moto.stepfunctions.exceptions")
    if name is not None:
        if not name:
            raise exceptions.ValidationException(
                "1 validation error detected: Value '' at 'name' failed to satisfy constraint: "
                "Member must have length greater than or equal to 1"
            )
        if len(name) > STATES_NAME_MAX_CHARS:
            raise exceptions.ValidationException(
                f"1 validation error detected: Value '{name}' at 'name' failed to satisfy constraint: "
                f"Member must have length less than or equal to {STATES_NAME_MAX_CHARS}"
            )
    if execution_input is not None:
        size = utf8_len(execution_input)
        _seen("states.input", size, lambda: execution_input)
        if size > STATES_PAYLOAD_BYTES:
            # The value is sensitive: AWS leaves it out of the message.
            raise exceptions.ValidationException(
                "1 validation error detected: Value at 'input' failed to satisfy constraint: "
                f"Member must have size less than or equal to {STATES_PAYLOAD_BYTES} bytes in UTF-8 encoding"
            )
    if name is not None and execution_name_problem(name) is not None:
        raise exceptions.InvalidName(f"Invalid Name: '{name}'")


def _install_execution_start() -> None:
    def make_plain(original: Any) -> Any:
        def start_execution(self: Any, state_machine_arn: str, name: str | None, execution_input: str | None) -> Any:
            check_execution_start(name, execution_input)
            return original(self, state_machine_arn, name, execution_input)

        return start_execution

    def make_interpreting(original: Any) -> Any:
        def start_execution(
            self: Any,
            state_machine_arn: str,
            name: str | None = None,
            execution_input: str | None = None,
            trace_header: str | None = None,
        ) -> Any:
            check_execution_start(name, execution_input)
            if name is None:
                # AWS names an unnamed execution with a UUID; moto named them all "None", so a
                # second one on the same machine was refused as ExecutionAlreadyExists.
                name = str(uuid.uuid4())
            return original(self, state_machine_arn, name, execution_input, trace_header)

        return start_execution

    # Both backends: the one that runs state machines (MOTO_CONFIG) and the one that only records.
    _patch_method(*_SFN_BACKENDS[0], "start_execution", make_plain)
    _patch_method(*_SFN_BACKENDS[1], "start_execution", make_interpreting)


def state_within_quota(value: Any) -> bool:
    """A state's input, output or task result: at most 262,144 bytes (256 KiB) as UTF-8 JSON.

    Over it, the execution fails with States.DataLimitExceeded. Replaces moto's check, which
    counted escaped, spaced JSON and refused exactly 256 KiB.
    """
    size = json_size(value)
    _seen("states.payload", size, lambda: value if isinstance(value, str) else json.dumps(value, default=str))
    return size <= STATES_PAYLOAD_BYTES


def _install_state_size() -> None:
    quotas_module = importlib.import_module("moto.stepfunctions.parser.quotas")
    if getattr(quotas_module.is_within_size_quota, "__bridge_quota__", False):
        return
    original = quotas_module.is_within_size_quota

    def is_within_size_quota(value: Any) -> bool:
        return state_within_quota(value)

    is_within_size_quota.__bridge_original__ = original  # type: ignore[attr-defined]
    is_within_size_quota.__bridge_quota__ = True  # type: ignore[attr-defined]
    quotas_module.is_within_size_quota = is_within_size_quota
    for module in _SIZE_CHECK_USERS:
        importlib.import_module(module).is_within_size_quota = is_within_size_quota


def _data_limit_exceeded(env: Any, cause: str) -> Exception:
    api = importlib.import_module("moto.stepfunctions.parser.api")
    failure = importlib.import_module("moto.stepfunctions.parser.asl.component.common.error_name.failure_event")
    names = importlib.import_module("moto.stepfunctions.parser.asl.component.common.error_name.states_error_name")
    types = importlib.import_module("moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type")
    details = importlib.import_module("moto.stepfunctions.parser.asl.eval.event.event_detail")
    error_type = types.StatesErrorNameType.StatesStatesDataLimitExceeded
    return failure.FailureEventException(
        failure_event=failure.FailureEvent(
            env=env,
            error_name=names.StatesErrorName(typ=error_type),
            event_type=api.HistoryEventType.TaskFailed,
            event_details=details.EventDetails(
                taskFailedEventDetails=api.TaskFailedEventDetails(error=error_type.to_name(), cause=cause)
            ),
        )
    )


def _install_task_parameters() -> None:
    def make(original: Any) -> Any:
        def _eval_parameters(self: Any, env: Any) -> dict[str, Any]:
            """A task's input after Parameters: at most 262,144 bytes (256 KiB), else
            States.DataLimitExceeded (moto checks only task results)."""
            parameters: dict[str, Any] = original(self, env)
            size = json_size(parameters)
            _seen("states.parameters", size, lambda: json.dumps(parameters, default=str))
            if size > STATES_PAYLOAD_BYTES:
                raise _data_limit_exceeded(
                    env,
                    f"The state/task '{self.name}' provided parameters with a size exceeding "
                    "the maximum number of bytes service limit.",
                )
            return parameters

        return _eval_parameters

    for module, cls_name in _PARAMETER_EVALUATORS:
        _patch_method(module, cls_name, "_eval_parameters", make)


def _install_terminal_errors() -> None:
    types = importlib.import_module("moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type")
    names = importlib.import_module("moto.stepfunctions.parser.asl.component.common.error_name.states_error_name")
    data_limit = types.StatesErrorNameType.StatesStatesDataLimitExceeded

    def make(original: Any) -> Any:
        def _eval_body(self: Any, env: Any) -> None:
            """States.ALL in a Retry or Catch does not match States.DataLimitExceeded: on AWS an
            oversized payload always fails the execution (moto's wildcard took it, so a loop that
            catches everything, like the poll loop, went round for ever).

            AWS's wildcard skips States.Runtime too; moto also names its own unhandled exceptions
            (a connection to the emulator that failed) States.Runtime, which AWS would report as
            a catchable error, so that one stays as moto has it.
            """
            error_name = env.stack[-1]
            wildcard = type(self)._STATE_ALL_ERROR in self.error_names
            if wildcard and isinstance(error_name, names.StatesErrorName) and error_name.typ == data_limit:
                env.stack.pop()
                env.stack.append(False)
                return
            original(self, env)

        return _eval_body

    _patch_method(*_ERROR_EQUALS, "_eval_body", make)


def _install_wait_range() -> None:
    api = importlib.import_module("moto.stepfunctions.parser.api")
    failure = importlib.import_module("moto.stepfunctions.parser.asl.component.common.error_name.failure_event")
    names = importlib.import_module("moto.stepfunctions.parser.asl.component.common.error_name.states_error_name")
    types = importlib.import_module("moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type")
    details = importlib.import_module("moto.stepfunctions.parser.asl.eval.event.event_detail")

    def make(original: Any) -> Any:
        def _validate_seconds_value(self: Any, env: Any, seconds: Any) -> None:
            """A Wait state's SecondsPath must give an integer from 0 to 99,999,999; anything else
            fails the execution with States.Runtime (moto let through true and huge numbers)."""
            if isinstance(seconds, bool) or (isinstance(seconds, int) and seconds > WAIT_SECONDS_MAX):
                error_type = types.StatesErrorNameType.StatesRuntime
                assignment = f"{self.string_sampler.literal_value} == {json.dumps(seconds)}"
                cause = (
                    f"The SecondsPath parameter cannot be parsed as a long value: {assignment}"
                    if isinstance(seconds, bool)
                    else f"The SecondsPath parameter references a value over {WAIT_SECONDS_MAX}: {assignment}"
                )
                raise failure.FailureEventException(
                    failure_event=failure.FailureEvent(
                        env=env,
                        error_name=names.StatesErrorName(typ=error_type),
                        event_type=api.HistoryEventType.ExecutionFailed,
                        event_details=details.EventDetails(
                            executionFailedEventDetails=api.ExecutionFailedEventDetails(
                                error=error_type.to_name(), cause=cause
                            )
                        ),
                    )
                )
            original(self, env, seconds)

        return _validate_seconds_value

    _patch_method(*_SECONDS_PATH, "_validate_seconds_value", make)


# --------------------------------------------------------------------------- SQS, SNS, EventBridge


# What XML 1.0 allows, SQS's rule for message bodies: anything else fails as InvalidMessageContents.
_SQS_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def check_sqs_message(max_bytes: int, body: str, attributes: dict[str, Any] | None) -> None:
    """SendMessage: body plus attributes at most the queue's MaximumMessageSize (by default and
    at most 1,048,576 bytes, 1 MiB), else InvalidParameterValue; a body only of the characters
    XML 1.0 allows (#x9, #xA, #xD, #x20-#xD7FF, #xE000-#xFFFD, #x10000-#x10FFFF), else
    InvalidMessageContents. HTTP 400 for both."""
    exceptions = importlib.import_module("moto.sqs.exceptions")
    forbidden = _SQS_FORBIDDEN.search(body)
    if forbidden is not None:
        raise exceptions.SQSException(
            "InvalidMessageContents",
            f"Invalid binary character '#x{ord(forbidden.group()):X}' was found in the message body, the set of "
            "allowed characters is #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF].",
        )
    size = utf8_len(body) + message_attributes_size(attributes)
    _seen("sqs.message", size, lambda: body)
    if size > max_bytes:
        raise exceptions.InvalidParameterValue(
            f"One or more parameters are invalid. Reason: Message must be shorter than {max_bytes} bytes."
        )


def check_sqs_batch(max_bytes: int, entries: list[dict[str, Any]]) -> None:
    """SendMessageBatch: all bodies plus attributes at most 1,048,576 bytes (1 MiB), else
    BatchRequestTooLong; each entry as SendMessage (both HTTP 400)."""
    total = 0
    for entry in entries:
        total += utf8_len(entry["MessageBody"]) + message_attributes_size(entry.get("MessageAttributes"))
    if total > SQS_MESSAGE_BYTES:
        exceptions = importlib.import_module("moto.sqs.exceptions")
        raise exceptions.BatchRequestTooLong(total)
    for entry in entries:
        check_sqs_message(max_bytes, entry["MessageBody"], entry.get("MessageAttributes"))


def _install_sqs() -> None:
    def make_send(original: Any) -> Any:
        def send_message(
            self: Any,
            queue_name: str,
            message_body: str,
            message_attributes: dict[str, Any] | None = None,
            delay_seconds: int | None = None,
            deduplication_id: str | None = None,
            group_id: str | None = None,
            system_attributes: dict[str, Any] | None = None,
            validate_group_id: bool = True,
        ) -> Any:
            queue = self.get_queue(queue_name)
            check_sqs_message(int(queue.maximum_message_size), message_body, message_attributes)
            return original(
                self,
                queue_name,
                message_body,
                message_attributes,
                delay_seconds,
                deduplication_id,
                group_id,
                system_attributes,
                validate_group_id,
            )

        return send_message

    def make_batch(original: Any) -> Any:
        def send_message_batch(self: Any, queue_name: str, entries: dict[str, dict[str, Any]]) -> Any:
            queue = self.get_queue(queue_name)
            check_sqs_batch(int(queue.maximum_message_size), list(entries.values()))
            return original(self, queue_name, entries)

        return send_message_batch

    _patch_method("moto.sqs.models", "SQSBackend", "send_message", make_send)
    _patch_method("moto.sqs.models", "SQSBackend", "send_message_batch", make_batch)


def check_sns_message(max_bytes: int, message: str, attributes: dict[str, Any] | None) -> None:
    """Publish to a topic: message plus attributes at most the topic's MaximumMessageSize
    (262,144 bytes, 256 KiB, unless raised), else InvalidParameter "Message too long" (HTTP 400)."""
    size = utf8_len(message) + message_attributes_size(attributes)
    _seen("sns.message", size, lambda: message)
    if size > max_bytes:
        exceptions = importlib.import_module("moto.sns.exceptions")
        raise exceptions.InvalidParameterValue("Invalid parameter: Message too long")


def _install_sns() -> None:
    exceptions = importlib.import_module("moto.sns.exceptions")
    # moto's own check (256 KiB of characters) would refuse what a raised topic takes; the check
    # below enforces each topic's own maximum.
    importlib.import_module("moto.sns.models").MAXIMUM_MESSAGE_LENGTH = SNS_MAX_MESSAGE_BYTES

    def make(original: Any) -> Any:
        def publish(
            self: Any,
            message: str,
            arn: str | None,
            phone_number: str | None = None,
            subject: str | None = None,
            message_attributes: dict[str, Any] | None = None,
            group_id: str | None = None,
            deduplication_id: str | None = None,
            message_structure: str | None = None,
        ) -> Any:
            topic = None
            if arn and not phone_number:
                try:
                    topic = self.get_topic(arn)
                except exceptions.SNSNotFoundError:
                    topic = None  # a platform endpoint: its own limits, moto's own answer
            if topic is not None:
                # moto keeps each topic attribute as a snake_case attribute of its topic.
                limit = int(getattr(topic, "maximum_message_size", SNS_DEFAULT_MESSAGE_BYTES))
                check_sns_message(limit, message, message_attributes)
            return original(
                self,
                message,
                arn,
                phone_number,
                subject,
                message_attributes,
                group_id,
                deduplication_id,
                message_structure,
            )

        return publish

    _patch_method("moto.sns.models", "SNSBackend", "publish", make)


def check_put_events(entries: list[dict[str, Any]]) -> None:
    """PutEvents: the entries' total size, by EventBridge's formula, at most 1,048,576 bytes
    (1 MB; 256 KB before 2026), else ValidationException for the whole request (HTTP 400)."""
    total = sum(put_events_entry_size(entry) for entry in entries)
    _seen("events.request", total, lambda: " ".join(str(entry.get("Detail") or "") for entry in entries))
    if total > EVENTS_REQUEST_BYTES:
        exceptions = importlib.import_module("moto.events.exceptions")
        raise exceptions.ValidationException("Total size of the entries in the request is over the limit.")


def _install_events() -> None:
    def make(original: Any) -> Any:
        def put_events(self: Any, events: list[dict[str, Any]]) -> Any:
            # More than 10 entries is moto's own refusal; let it answer that first.
            if len(events) <= 10:
                check_put_events(events)
            return original(self, events)

        return put_events

    _patch_method("moto.events.models", "EventsBackend", "put_events", make)


# --------------------------------------------------------------------------- DynamoDB


def _install_dynamodb() -> None:
    exceptions = importlib.import_module("moto.dynamodb.exceptions")

    def make(original: Any) -> Any:
        def __setitem__(self: Any, key: str, value: Any) -> None:
            """An item is at most 409,600 bytes (400 KB) by DynamoDB's size rules, else
            ValidationException "Item size has exceeded the maximum allowed size" (UpdateItem:
            "Item size to update has exceeded ..."), HTTP 400. moto measured numbers as text,
            left out list and map overhead, stopped at 405,000, and counted a replaced value twice."""
            others = sum(utf8_len(name) + dynamodb_value_size(item) for name, item in self.items() if name != key)
            size = others + utf8_len(key) + dynamodb_value_size(value)
            _seen(
                "dynamodb.item",
                size,
                lambda: " ".join(str(_typed(item)[1]) for item in [*self.values(), value] if _typed(item)[0] == "S"),
            )
            if size > DYNAMODB_ITEM_BYTES:
                raise exceptions.ItemSizeTooLarge
            dict.__setitem__(self, key, value)

        return __setitem__

    _patch_method("moto.dynamodb.models.dynamo_type", "LimitedSizeDict", "__setitem__", make)

    def make_update(original: Any) -> Any:
        def update_item(
            self: Any,
            table_name: str,
            key: dict[str, dict[str, Any]],
            update_expression: str,
            expression_attribute_names: dict[str, Any],
            expression_attribute_values: dict[str, Any],
            attribute_updates: dict[str, Any] | None = None,
            expected: dict[str, Any] | None = None,
            condition_expression: str | None = None,
            return_values_on_condition_check_failure: str | None = None,
        ) -> Any:
            """An UpdateItem refused for its size changes nothing, as on AWS: moto applies the
            update's actions one by one, so those before the one that went over stayed."""
            hash_value: Any = None
            range_value: Any = None
            try:
                table = self.get_table(table_name)
                hash_value, range_value = self.get_keys_value(table, key)
            except exceptions.DynamodbException:
                table = None  # moto's own call below answers that
            before = table.get_item(hash_value, range_value) if table is not None else None
            snapshot = copy.deepcopy(before) if before is not None else None
            try:
                return original(
                    self,
                    table_name,
                    key,
                    update_expression,
                    expression_attribute_names,
                    expression_attribute_values,
                    attribute_updates,
                    expected,
                    condition_expression,
                    return_values_on_condition_check_failure,
                )
            except (exceptions.ItemSizeTooLarge, exceptions.ItemSizeToUpdateTooLarge):
                if before is not None and snapshot is not None:
                    before.attrs = snapshot.attrs
                elif table is not None:
                    table.delete_item(hash_value, range_value)  # the key-only item moto made first
                raise

        return update_item

    _patch_method("moto.dynamodb.models", "DynamoDBBackend", "update_item", make_update)
