"""DynamoDB's item size quota, on every write that makes or grows an item (put and update)."""

from __future__ import annotations

import copy
import importlib
from typing import Any

from bridge_local.moto_patches.quotas.limits import (
    DYNAMODB_ITEM_BYTES,
    dynamodb_value_size,
    seen,
    typed_value,
    utf8_len,
)
from bridge_local.moto_patches.quotas.moto_surface import patch_method


def install_dynamodb() -> None:
    exceptions = importlib.import_module("moto.dynamodb.exceptions")

    def make(original: Any) -> Any:
        def __setitem__(self: Any, key: str, value: Any) -> None:
            """An item is at most 409,600 bytes (400 KB) by DynamoDB's size rules, else
            ValidationException "Item size has exceeded the maximum allowed size" (UpdateItem:
            "Item size to update has exceeded ..."), HTTP 400. moto measured numbers as text,
            left out list and map overhead, stopped at 405,000, and counted a replaced value twice."""
            others = sum(utf8_len(name) + dynamodb_value_size(item) for name, item in self.items() if name != key)
            size = others + utf8_len(key) + dynamodb_value_size(value)
            seen(
                "dynamodb.item",
                size,
                lambda: " ".join(
                    str(typed_value(item)[1]) for item in [*self.values(), value] if typed_value(item)[0] == "S"
                ),
            )
            if size > DYNAMODB_ITEM_BYTES:
                raise exceptions.ItemSizeTooLarge
            dict.__setitem__(self, key, value)

        return __setitem__

    patch_method("moto.dynamodb.models.dynamo_type", "LimitedSizeDict", "__setitem__", make)

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

    patch_method("moto.dynamodb.models", "DynamoDBBackend", "update_item", make_update)
