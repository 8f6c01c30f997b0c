"""Small DynamoDB helpers shared by the job store and the delivery log."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botocore.exceptions import ClientError


def is_conditional_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def plain(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal; give JSON-ready ints and floats."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def storable(value: Any) -> Any:
    """DynamoDB refuses floats; round-trip through JSON with Decimal."""
    return json.loads(json.dumps(value), parse_float=Decimal)
