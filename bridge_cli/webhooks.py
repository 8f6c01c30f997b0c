"""The webhook commands: `webhooks` (a job's deliveries and their attempts) and `redeliver`."""

from __future__ import annotations

import argparse

from bridge_cli import format as fmt
from bridge_cli.common import EXIT_OK, AddCommand, command_prefix, err, open_api, out, print_json, show


def add_webhooks(command: AddCommand) -> None:
    webhooks = command("webhooks", cmd_webhooks, "show a job's webhook deliveries and every attempt")
    webhooks.add_argument("task_id", metavar="TASK_ID")


def cmd_webhooks(args: argparse.Namespace) -> int:
    with open_api(args) as api:
        answer = api.webhooks(args.task_id)
    return show(args, answer, fmt.deliveries_block)


def add_redeliver(command: AddCommand) -> None:
    redeliver = command("redeliver", cmd_redeliver, "send a webhook event again, as a new round")
    redeliver.add_argument("task_id", metavar="TASK_ID")
    redeliver.add_argument("event_id", metavar="EVENT_ID")


def cmd_redeliver(args: argparse.Namespace) -> int:
    with open_api(args) as api:
        answer = api.redeliver(args.task_id, args.event_id)
    if args.json:
        print_json(answer)
    else:
        out(
            f"event {answer.get('event_id', args.event_id)} of {answer.get('task_id', args.task_id)} "
            f"queued for redelivery (round {answer.get('round', '?')}, {answer.get('status', 'pending')})"
        )
        err(f"follow it with: {command_prefix(args)} webhooks {args.task_id}")
    return EXIT_OK
