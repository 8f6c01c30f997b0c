"""Step Functions quotas: execution names and input at StartExecution, state and task payloads
(States.DataLimitExceeded, which no Catch of States.ALL catches) and the Wait state's range."""

from __future__ import annotations

import importlib
import json
import uuid
from typing import Any

from bridge_local.moto_patches.quotas.limits import (
    STATES_NAME_MAX_CHARS,
    STATES_PAYLOAD_BYTES,
    WAIT_SECONDS_MAX,
    execution_name_problem,
    json_size,
    seen,
    utf8_len,
)
from bridge_local.moto_patches.quotas.moto_surface import (
    ERROR_EQUALS,
    PARAMETER_EVALUATORS,
    SECONDS_PATH,
    SFN_BACKENDS,
    SIZE_CHECK_USERS,
    patch_method,
)


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
        seen("states.input", size, lambda: execution_input)
        if size > STATES_PAYLOAD_BYTES:
            # The value is sensitive: AWS leaves it out of the message.
            raise exceptions.ValidationException(
                "1 validation error detected: Value at 'input' failed to satisfy constraint: "
                f"Member must have size less than or equal to {STATES_PAYLOAD_BYTES} bytes in UTF-8 encoding"
            )
    if name is not None and execution_name_problem(name) is not None:
        raise exceptions.InvalidName(f"Invalid Name: '{name}'")


def install_execution_start() -> None:
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
    patch_method(*SFN_BACKENDS[0], "start_execution", make_plain)
    patch_method(*SFN_BACKENDS[1], "start_execution", make_interpreting)


def state_within_quota(value: Any) -> bool:
    """A state's input, output or task result: at most 262,144 bytes (256 KiB) as UTF-8 JSON.

    Over it, the execution fails with States.DataLimitExceeded. Replaces moto's check, which
    counted escaped, spaced JSON and refused exactly 256 KiB.
    """
    size = json_size(value)
    seen("states.payload", size, lambda: value if isinstance(value, str) else json.dumps(value, default=str))
    return size <= STATES_PAYLOAD_BYTES


def install_state_size() -> None:
    quotas_module = importlib.import_module("moto.stepfunctions.parser.quotas")
    if getattr(quotas_module.is_within_size_quota, "__bridge_quota__", False):
        return
    original = quotas_module.is_within_size_quota

    def is_within_size_quota(value: Any) -> bool:
        return state_within_quota(value)

    is_within_size_quota.__bridge_original__ = original  # type: ignore[attr-defined]
    is_within_size_quota.__bridge_quota__ = True  # type: ignore[attr-defined]
    quotas_module.is_within_size_quota = is_within_size_quota
    for module in SIZE_CHECK_USERS:
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


def install_task_parameters() -> None:
    def make(original: Any) -> Any:
        def _eval_parameters(self: Any, env: Any) -> dict[str, Any]:
            """A task's input after Parameters: at most 262,144 bytes (256 KiB), else
            States.DataLimitExceeded (moto checks only task results)."""
            parameters: dict[str, Any] = original(self, env)
            size = json_size(parameters)
            seen("states.parameters", size, lambda: json.dumps(parameters, default=str))
            if size > STATES_PAYLOAD_BYTES:
                raise _data_limit_exceeded(
                    env,
                    f"The state/task '{self.name}' provided parameters with a size exceeding "
                    "the maximum number of bytes service limit.",
                )
            return parameters

        return _eval_parameters

    for module, cls_name in PARAMETER_EVALUATORS:
        patch_method(module, cls_name, "_eval_parameters", make)


def install_terminal_errors() -> None:
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

    patch_method(*ERROR_EQUALS, "_eval_body", make)


def install_wait_range() -> None:
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

    patch_method(*SECONDS_PATH, "_validate_seconds_value", make)
