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

from bridge_local.moto_patches.quotas.dynamodb import install_dynamodb
from bridge_local.moto_patches.quotas.limits import (
    QUOTAS,
    WAIT_SECONDS_MAX,
    Quota,
    dynamodb_item_size,
    dynamodb_value_size,
    execution_name_problem,
    json_size,
    message_attributes_size,
    observe,
    put_events_entry_size,
    utf8_len,
)
from bridge_local.moto_patches.quotas.messaging import install_events, install_sns, install_sqs
from bridge_local.moto_patches.quotas.moto_surface import verify_quotas
from bridge_local.moto_patches.quotas.step_functions import (
    install_execution_start,
    install_state_size,
    install_task_parameters,
    install_terminal_errors,
    install_wait_range,
)

__all__ = [
    "QUOTAS",
    "WAIT_SECONDS_MAX",
    "Quota",
    "dynamodb_item_size",
    "dynamodb_value_size",
    "execution_name_problem",
    "install_quotas",
    "json_size",
    "message_attributes_size",
    "observe",
    "put_events_entry_size",
    "utf8_len",
    "verify_quotas",
]


def install_quotas() -> None:
    """Patch moto once so the embedded AWS refuses what AWS refuses (see the module docstring)."""
    verify_quotas()
    install_execution_start()
    install_state_size()
    install_task_parameters()
    install_terminal_errors()
    install_wait_range()
    install_sqs()
    install_sns()
    install_events()
    install_dynamodb()
