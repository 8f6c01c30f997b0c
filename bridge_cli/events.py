"""The `tail` command: print outcome events as the bridge publishes them (the queue work is in `tail`)."""

from __future__ import annotations

import argparse
import json
import signal
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from bridge_cli import format as fmt
from bridge_cli.api import CliError
from bridge_cli.common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    OUTCOME_STATUSES,
    AddCommand,
    err,
    out,
    positive_float,
    positive_int,
)


def _outcomes(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in OUTCOME_STATUSES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown outcome {', '.join(unknown) or text!r}; choose from {', '.join(OUTCOME_STATUSES)}"
        )
    return list(dict.fromkeys(names))


def add_tail(command: AddCommand, env: Mapping[str, str]) -> None:
    tail = command(
        "tail",
        cmd_tail,
        "print outcome events as they are published, through a temporary SQS queue subscribed to the topic",
    )
    tail.add_argument("--topic-arn", required=True, metavar="ARN", help="the stack's EventTopicArn output")
    tail.add_argument("--region", help="AWS region (default: the topic ARN's)")
    tail.add_argument(
        "--endpoint-url",
        default=env.get("AWS_ENDPOINT_URL") or None,
        metavar="URL",
        help="AWS endpoint, e.g. the local emulator (default: $AWS_ENDPOINT_URL)",
    )
    tail.add_argument(
        "--status",
        dest="statuses",
        type=_outcomes,
        metavar="LIST",
        help=f"only these outcomes, comma-separated: {','.join(OUTCOME_STATUSES)}",
    )
    tail.add_argument(
        "--model", dest="models", action="append", metavar="MODEL", help="only events of this model (repeatable)"
    )
    tail.add_argument(
        "--owner",
        dest="owners",
        action="append",
        metavar="OWNER_ID",
        help="only events of jobs of this owner (repeatable; `account` prints yours)",
    )
    tail.add_argument("--count", type=positive_int, metavar="N", help="stop after N events")
    tail.add_argument("--stop-after", type=positive_float, metavar="SECONDS", help="stop after this long")


@contextmanager
def _termination_as_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP (`kill`, `timeout`, a closed terminal) stop like Ctrl-C, so cleanup runs.

    Signal handlers belong to the main thread; elsewhere (tests) nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    wanted = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    previous = {sig: signal.signal(sig, interrupt) for sig in wanted}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def cmd_tail(args: argparse.Namespace) -> int:
    # Imported here: only this command needs the queue code and the AWS SDK.
    from bridge_cli import tail

    region = args.region or tail.region_of(args.topic_arn)
    if region is None:
        raise CliError(f"cannot tell the region from {args.topic_arn!r}: pass --region", 2)

    def show(event: dict[str, Any]) -> None:
        out(json.dumps(event, ensure_ascii=False) if args.json else fmt.event_line(event))

    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    queue: tail.TemporaryQueue | None = None
    with _termination_as_interrupt():
        try:
            session = boto3.session.Session(region_name=region)
            sns = session.client("sns", endpoint_url=args.endpoint_url)
            sqs = session.client("sqs", endpoint_url=args.endpoint_url)
            policy = tail.filter_policy(statuses=args.statuses, models=args.models, owners=args.owners)
            queue = tail.TemporaryQueue(sns, sqs, args.topic_arn, policy)
            queue_url = queue.open()
            err(f"following {args.topic_arn} through temporary queue {queue.name} (Ctrl-C to stop)")
            tail.follow(sqs, queue_url, show, count=args.count, stop_after_s=args.stop_after)
        except (BotoCoreError, ClientError) as exc:
            raise tail.aws_error(exc, args.endpoint_url) from None
        except KeyboardInterrupt:
            err("stopped")
            return EXIT_INTERRUPTED
        finally:
            # Whatever open() got to is removed, also when it failed half way or Ctrl-C came.
            if queue is not None:
                for problem in queue.close():
                    err(f"warning: {problem}")
    return EXIT_OK
