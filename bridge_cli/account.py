"""The `account` command: who this API key is, as the bridge sees it."""

from __future__ import annotations

import argparse

from bridge_cli import format as fmt
from bridge_cli.common import EXIT_OK, AddCommand, open_api, out, print_json


def add_account(command: AddCommand) -> None:
    command("account", cmd_account, "show this API key's owner id (for SNS filters and EventBridge rules)")


def cmd_account(args: argparse.Namespace) -> int:
    with open_api(args) as api:
        account = api.account()
    if args.json:
        print_json(account)
    else:
        rows = [("owner_id", str(account.get("owner_id"))), ("operator", "yes" if account.get("operator") else "no")]
        out(fmt.key_values(rows))
    return EXIT_OK
