"""SQS, SNS and EventBridge quotas: message and request sizes with their attributes, as each
service counts them and refuses them."""

from __future__ import annotations

import importlib
import re
from typing import Any

from bridge_local.moto_patches.quotas.limits import (
    EVENTS_REQUEST_BYTES,
    SNS_DEFAULT_MESSAGE_BYTES,
    SNS_MAX_MESSAGE_BYTES,
    SQS_MESSAGE_BYTES,
    message_attributes_size,
    put_events_entry_size,
    seen,
    utf8_len,
)
from bridge_local.moto_patches.quotas.moto_surface import patch_method

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
    seen("sqs.message", size, lambda: body)
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


def install_sqs() -> None:
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

    patch_method("moto.sqs.models", "SQSBackend", "send_message", make_send)
    patch_method("moto.sqs.models", "SQSBackend", "send_message_batch", make_batch)


def check_sns_message(max_bytes: int, message: str, attributes: dict[str, Any] | None) -> None:
    """Publish to a topic: message plus attributes at most the topic's MaximumMessageSize
    (262,144 bytes, 256 KiB, unless raised), else InvalidParameter "Message too long" (HTTP 400)."""
    size = utf8_len(message) + message_attributes_size(attributes)
    seen("sns.message", size, lambda: message)
    if size > max_bytes:
        exceptions = importlib.import_module("moto.sns.exceptions")
        raise exceptions.InvalidParameterValue("Invalid parameter: Message too long")


def install_sns() -> None:
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

    patch_method("moto.sns.models", "SNSBackend", "publish", make)


def check_put_events(entries: list[dict[str, Any]]) -> None:
    """PutEvents: the entries' total size, by EventBridge's formula, at most 1,048,576 bytes
    (1 MB; 256 KB before 2026), else ValidationException for the whole request (HTTP 400)."""
    total = sum(put_events_entry_size(entry) for entry in entries)
    seen("events.request", total, lambda: " ".join(str(entry.get("Detail") or "") for entry in entries))
    if total > EVENTS_REQUEST_BYTES:
        exceptions = importlib.import_module("moto.events.exceptions")
        raise exceptions.ValidationException("Total size of the entries in the request is over the limit.")


def install_events() -> None:
    def make(original: Any) -> Any:
        def put_events(self: Any, events: list[dict[str, Any]]) -> Any:
            # More than 10 entries is moto's own refusal; let it answer that first.
            if len(events) <= 10:
                check_put_events(events)
            return original(self, events)

        return put_events

    patch_method("moto.events.models", "EventsBackend", "put_events", make)
