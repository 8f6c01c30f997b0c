"""The `endpoints` commands: register webhook endpoints that get every job's events, and manage them.

`endpoints create`, `list`, `get`, `update`, `delete`, `rotate` (new signing keys), `recover` (send
again what failed since a time) and `deliveries` (an endpoint's log across jobs). The signing secret
is printed by `create` and `rotate` only: the bridge shows it in no other answer.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from bridge_cli import format as fmt
from bridge_cli.common import (
    EXIT_OK,
    AddCommand,
    command_prefix,
    err,
    open_api,
    out,
    positive_int,
    print_json,
    show,
    whole_number_at_least,
)
from bridge_cli.jobs import WEBHOOK_EVENTS

SIGNATURE_VERSIONS = ("v1", "v1a")
DELIVERY_STATUSES = ("pending", "retrying", "delivered", "gone", "dead_lettered", "stopped")


# --------------------------------------------------------------------------- argument types


def _event_type(text: str) -> str:
    return text.strip().removeprefix("video.generation.")


def _iso_time(text: str) -> str:
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time, such as 2026-11-24T21:00:00Z: {text!r}") from None
    return text


def _endpoint_options(parser: argparse.ArgumentParser, *, url_required: bool) -> None:
    parser.add_argument("--url", required=url_required, metavar="URL", help="https URL that receives the signed POSTs")
    parser.add_argument(
        "--event-type",
        dest="event_types",
        type=_event_type,
        choices=WEBHOOK_EVENTS,
        nargs="+",
        action="extend",
        metavar="TYPE",
        help=f"events to send, one or more of {', '.join(WEBHOOK_EVENTS)} "
        "(on create, default: completed failed timed_out canceled)",
    )
    parser.add_argument("--description", metavar="TEXT", help="a note for people, up to 512 characters")
    parser.add_argument(
        "--signature",
        dest="signature_versions",
        choices=SIGNATURE_VERSIONS,
        nargs="+",
        action="extend",
        metavar="VERSION",
        help="v1 (HMAC-SHA256 with the secret), v1a (Ed25519 with the public key), or both (on create, default: v1)",
    )


def endpoint_body(args: argparse.Namespace) -> dict[str, Any]:
    """The create or update body: only the fields given on the command line."""
    fields = {
        "url": args.url,
        "event_types": list(dict.fromkeys(args.event_types)) if args.event_types else None,
        "description": args.description,
        "signature_versions": list(dict.fromkeys(args.signature_versions)) if args.signature_versions else None,
        "enabled": getattr(args, "enabled", None),
    }
    return {key: value for key, value in fields.items() if value is not None}


def add_endpoints(command: AddCommand) -> None:
    """Every `endpoints` subcommand; `command` adds one under `endpoints`."""
    create = command("create", cmd_create, "register a webhook endpoint and print its signing secret (shown once)")
    _endpoint_options(create, url_required=True)

    command("list", cmd_list, "list your webhook endpoints")

    get = command("get", cmd_get, "show one webhook endpoint")
    get.add_argument("endpoint_id", metavar="ENDPOINT_ID")

    update = command("update", cmd_update, "change a webhook endpoint (only the options given)")
    update.add_argument("endpoint_id", metavar="ENDPOINT_ID")
    _endpoint_options(update, url_required=False)
    enabled = update.add_mutually_exclusive_group()
    enabled.add_argument(
        "--enable", dest="enabled", action="store_const", const=True, help="re-enable it (its health starts afresh)"
    )
    enabled.add_argument("--disable", dest="enabled", action="store_const", const=False, help="stop sending to it")

    delete = command("delete", cmd_delete, "delete a webhook endpoint")
    delete.add_argument("endpoint_id", metavar="ENDPOINT_ID")

    rotate = command("rotate", cmd_rotate, "give a webhook endpoint new signing keys and print the new secret")
    rotate.add_argument("endpoint_id", metavar="ENDPOINT_ID")
    rotate.add_argument(
        "--overlap-seconds",
        type=whole_number_at_least(0),
        metavar="N",
        help="how long the previous keys keep signing beside the new ones (default: 86400, at most 7 days)",
    )

    recover = command("recover", cmd_recover, "send again every delivery to an endpoint that failed since a time")
    recover.add_argument("endpoint_id", metavar="ENDPOINT_ID")
    recover.add_argument(
        "--since",
        required=True,
        type=_iso_time,
        metavar="ISO",
        help="such as 2026-11-24T21:00:00Z (at most 14 days ago)",
    )

    deliveries = command("deliveries", cmd_deliveries, "list an endpoint's deliveries from every job, newest first")
    deliveries.add_argument("endpoint_id", metavar="ENDPOINT_ID")
    deliveries.add_argument("--status", choices=DELIVERY_STATUSES, help="only deliveries in this status")
    deliveries.add_argument(
        "--limit", type=positive_int, metavar="N", help="deliveries per page, 1 to 100 (default: 20)"
    )
    deliveries.add_argument("--cursor", metavar="CURSOR", help="start at this next_cursor of an earlier page")


# --------------------------------------------------------------------------- the commands


def cmd_create(args: argparse.Namespace) -> int:
    with open_api(args) as api:
        endpoint = api.create_endpoint(endpoint_body(args))
    show(args, endpoint, fmt.endpoint_block)
    if not args.json:
        err("keep the secret now: the bridge never shows it again (rotate gives a new one)")
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    with open_api(args) as api:
        answer = api.list_endpoints()
    return show(args, answer, _endpoints_text)


def _endpoints_text(page: dict[str, Any]) -> str:
    endpoints = page.get("data") or []
    return fmt.endpoints_table(endpoints) if endpoints else "no webhook endpoints"


def cmd_get(args: argparse.Namespace) -> int:
    with open_api(args) as api:
        endpoint = api.get_endpoint(args.endpoint_id)
    return show(args, endpoint, fmt.endpoint_block)


def cmd_update(args: argparse.Namespace) -> int:
    body = endpoint_body(args)
    if not body:
        args.command_parser.error(
            "nothing to change: give --url, --event-type, --description, --signature, --enable or --disable"
        )
    with open_api(args) as api:
        endpoint = api.update_endpoint(args.endpoint_id, body)
    return show(args, endpoint, fmt.endpoint_block)


def cmd_delete(args: argparse.Namespace) -> int:
    with open_api(args) as api:
        answer = api.delete_endpoint(args.endpoint_id)
    return show(args, answer, lambda deleted: f"{deleted.get('id', args.endpoint_id)} deleted")


def cmd_rotate(args: argparse.Namespace) -> int:
    with open_api(args) as api:
        endpoint = api.rotate_endpoint(args.endpoint_id, args.overlap_seconds)
    show(args, endpoint, fmt.endpoint_block)
    if not args.json:
        err("the new keys sign at once; the previous ones sign beside them until the expiry shown")
    return EXIT_OK


def cmd_recover(args: argparse.Namespace) -> int:
    with open_api(args) as api:
        answer = api.recover_endpoint(args.endpoint_id, args.since)
    show(args, answer, fmt.recovery_text)
    if not args.json:
        err(f"follow it with: {command_prefix(args)} endpoints deliveries {args.endpoint_id}")
    return EXIT_OK


def cmd_deliveries(args: argparse.Namespace) -> int:
    with open_api(args) as api:
        page = api.endpoint_deliveries(args.endpoint_id, status=args.status, limit=args.limit, cursor=args.cursor)
    if args.json:
        print_json(page)
        return EXIT_OK
    rows = page.get("data") or []
    if rows:
        out(fmt.endpoint_deliveries_table(rows))
    else:
        # With a status filter a page may be empty and still have more after it.
        where = " on this page" if page.get("has_more") else ""
        out("no deliveries" + (f" with status {args.status}" if args.status else "") + where)
    if page.get("has_more") and page.get("next_cursor"):
        err(f"more deliveries: add --cursor {page['next_cursor']}")
    return EXIT_OK
