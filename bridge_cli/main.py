"""`video-bridge`: submit video jobs, watch them, and follow their outcomes from a terminal.

This module is the entry point: the global options, the parser of every command (each command's
options and handler live with its group: `jobs`, `account`, `webhooks`, `endpoints`, `events`) and
`main`. A command with subcommands of its own (`endpoints create`, `endpoints list`, ...) adds them
the way the top level adds commands.
Exit codes are listed in `bridge_cli.common`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from bridge_cli import account, endpoints, events, jobs, webhooks
from bridge_cli.api import CliError
from bridge_cli.common import (
    API_ENV,
    API_KEY_ENV,
    DEFAULT_API,
    EXIT_INTERRUPTED,
    EXIT_OK,
    PROG,
    AddCommand,
    Handler,
    api_url,
    err,
    positive_float,
)


def _runnable(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str, handler: Handler, help_text: str
) -> argparse.ArgumentParser:
    """A command that runs `handler`, with the global options after its name too."""
    sub = commands.add_parser(name, help=help_text, description=help_text)
    _global_options(sub, defaults=None)
    sub.set_defaults(handler=handler, command_parser=sub)
    return sub


def _global_options(parser: argparse.ArgumentParser, *, defaults: Mapping[str, Any] | None) -> None:
    """The options every command takes; given before or after the command name.

    Subcommand parsers get them with SUPPRESS as default, so an option left out after the
    command does not overwrite the one given before it.
    """

    def default(name: str) -> Any:
        return argparse.SUPPRESS if defaults is None else defaults[name]

    group = parser.add_argument_group("global options")
    group.add_argument(
        "--api",
        type=api_url,
        default=default("api"),
        metavar="URL",
        help=f"the bridge's base URL (default: ${API_ENV}, else {DEFAULT_API}, the local run)",
    )
    group.add_argument(
        "--api-key",
        default=default("api_key"),
        metavar="KEY",
        help=f"the bridge's API key, sent as Authorization: Bearer (default: ${API_KEY_ENV}; prefer the env: "
        "argv is visible to ps)",
    )
    group.add_argument(
        "--timeout",
        type=positive_float,
        default=default("timeout"),
        metavar="SECONDS",
        help="timeout of each HTTP call (default: 30)",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=default("json"),
        help="print the API's JSON instead of text for people",
    )


def build_parser(environ: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    env = os.environ if environ is None else environ
    # A string default goes through `type` too: a bad $VIDEO_BRIDGE_API is an argparse error.
    defaults = {"api": env.get(API_ENV) or DEFAULT_API, "api_key": env.get(API_KEY_ENV), "timeout": 30.0, "json": False}
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Submit video generations to the Router One video bridge, watch them, follow their outcomes.",
        epilog="exit codes: 0 ok, 1 job failed/timed out/canceled (submit --wait), 2 refused or bad input, "
        "3 bridge failed or unreachable, 130 interrupted",
    )
    _global_options(parser, defaults=defaults)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        return _runnable(commands, name, handler, help_text)

    def group(name: str, help_text: str) -> AddCommand:
        """A command of subcommands (`endpoints create`): returns what adds one under it."""
        parent = commands.add_parser(name, help=help_text, description=help_text)
        _global_options(parent, defaults=None)
        subcommands = parent.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)

        def subcommand(sub_name: str, handler: Handler, sub_help: str) -> argparse.ArgumentParser:
            return _runnable(subcommands, sub_name, handler, sub_help)

        return subcommand

    # In the order `--help` lists them.
    jobs.add_submit(command)
    account.add_account(command)
    jobs.add_status(command)
    jobs.add_list(command)
    jobs.add_cancel(command)
    webhooks.add_webhooks(command)
    webhooks.add_redeliver(command)
    endpoints.add_endpoints(group("endpoints", "register webhook endpoints for every job's events, and manage them"))
    events.add_tail(command, env)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "submit":
        jobs.check_submit(args)
    try:
        return int(args.handler(args))
    except CliError as exc:
        err(f"error: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        err("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`video-bridge list --all | head`): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
