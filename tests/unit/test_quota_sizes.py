"""How AWS measures a payload against its quotas, as the embedded AWS measures it
(`bridge_local/moto_patches/quotas/limits.py`): DynamoDB items, EventBridge entries, message
attributes, execution names. No AWS needed; the refusals themselves are in test_quotas.py."""

from __future__ import annotations

import pytest

from bridge_local.moto_patches import quotas


def test_dynamodb_sizes_follow_the_documented_rules() -> None:
    # Strings and names in UTF-8 bytes; numbers 1 byte per 2 significant digits plus 1; lists and
    # maps 3 bytes plus 1 per element; null and booleans 1 byte; binary by its raw bytes.
    assert quotas.dynamodb_item_size({"id": {"S": "é"}}) == 2 + 2
    assert quotas.dynamodb_value_size({"N": "12345"}) == 4
    assert quotas.dynamodb_value_size({"N": "1" * 38}) == 20
    assert quotas.dynamodb_value_size({"N": "1200.00"}) == quotas.dynamodb_value_size({"N": "12"}) == 2
    assert quotas.dynamodb_value_size({"L": [{"S": "xy"}, {"BOOL": True}]}) == 3 + (1 + 2) + (1 + 1)
    assert quotas.dynamodb_value_size({"M": {"k": {"NULL": True}}}) == 3 + (1 + 1 + 1)
    assert quotas.dynamodb_value_size({"B": "AAEC"}) == 3  # base64 of three bytes
    assert quotas.dynamodb_value_size({"SS": ["a", "bc"]}) == 3


def test_put_events_entries_are_sized_by_eventbridges_formula() -> None:
    entry = {"Source": "src", "DetailType": "type", "Detail": '{"a":"é"}', "Resources": ["r1", "r2"]}
    assert quotas.put_events_entry_size(entry) == 3 + 4 + 10 + 2 + 2
    # A Time counts 14 bytes, whatever it says.
    assert quotas.put_events_entry_size(entry | {"Time": 1_700_000_000}) == 21 + 14


def test_message_attributes_count_name_type_and_value() -> None:
    sqs_shape = {
        "kind": {"DataType": "String", "StringValue": "ab"},
        "raw": {"DataType": "Binary", "BinaryValue": b"xyz"},
    }
    assert quotas.message_attributes_size(sqs_shape) == (4 + 6 + 2) + (3 + 6 + 3)
    sns_shape = {"kind": {"Type": "String", "Value": "ab"}}
    assert quotas.message_attributes_size(sns_shape) == 4 + 6 + 2


# One of each kind AWS forbids: whitespace, brackets, wildcards, specials, control characters.
FORBIDDEN_IN_NAMES = '\t \u00a0\u2028<>{}[]?*"#%\\^|~`$&,;:/\x00\x1f\x7f\x9f\ufffe\U0010ffff'


@pytest.mark.parametrize("char", list(FORBIDDEN_IN_NAMES))
def test_execution_names_without_forbidden_characters(char: str) -> None:
    assert quotas.execution_name_problem(f"a{char}b") is not None


def test_execution_names_may_use_dashes_dots_and_other_punctuation() -> None:
    assert quotas.execution_name_problem("v_3f2a--outcome-1.(ok)!'@=+é") is None
