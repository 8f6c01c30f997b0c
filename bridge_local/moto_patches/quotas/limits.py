"""AWS's payload quotas as numbers, how AWS measures a payload against them (UTF-8 bytes, message
attributes, EventBridge entries, DynamoDB items, execution names), and `observe()` to watch sizes."""

from __future__ import annotations

import base64
import binascii
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

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


def seen(key: str, size: int, text: Callable[[], str]) -> None:
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


def binary_len(value: Any) -> int:
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
            size += binary_len(attribute.get("BinaryValue", attribute.get("Value", b"")))
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


def typed_value(value: Any) -> tuple[str, Any]:
    # moto's DynamoType, the wire form {"S": "..."}, or (as moto allows) a bare value.
    if isinstance(value, dict):
        return next(iter(value.items()))
    if hasattr(value, "type") and hasattr(value, "value"):
        return value.type, value.value
    return "S", str(value)


def dynamodb_value_size(value: Any) -> int:
    """One attribute value, by DynamoDB's item-size rules (lists and maps: 3 bytes, plus 1 per element)."""
    kind, raw = typed_value(value)
    if kind == "S":
        return utf8_len(raw)
    if kind == "N":
        return _number_size(str(raw))
    if kind == "B":
        return binary_len(raw)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(utf8_len(item) for item in raw)
    if kind == "NS":
        return sum(_number_size(str(item)) for item in raw)
    if kind == "BS":
        return sum(binary_len(item) for item in raw)
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
