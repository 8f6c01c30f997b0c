"""The `account` command: who this API key is, as the bridge sees it."""

from __future__ import annotations

import argparse
from typing import Any

from bridge_cli import format as fmt
from bridge_cli.common import AddCommand, open_api, show


def add_account(command: AddCommand) -> None:
    command("account", cmd_account, "show this API key's owner id (for SNS filters and EventBridge rules)")


def cmd_account(args: argparse.Namespace) -> int:
    with open_api(args) as api:
        account = api.account()
    return show(args, account, _account_rows)


def _account_rows(account: dict[str, Any]) -> str:
    return fmt.key_values(
        [("owner_id", str(account.get("owner_id"))), ("operator", "yes" if account.get("operator") else "no")]
    )
