"""`video-bridge`: submit video jobs, watch them, and follow their outcomes from a terminal.

Exit codes: 0 success (and a completed job under `submit --wait`), 1 a job that ended without
a video (failed, timed_out, canceled), 2 bad input or a request the bridge refused (4xx),
3 the bridge failed (5xx) or could not be reached, 130 interrupted with Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import urlsplit

from bridge_cli import format as fmt
from bridge_cli.api import EXIT_UNAVAILABLE, BridgeApi, CliError

PROG = "video-bridge"
DEFAULT_API = "http://127.0.0.1:8000"
API_ENV = "VIDEO_BRIDGE_API"
API_KEY_ENV = "VIDEO_BRIDGE_API_KEY"
MIN_POLL_S = 3.0  # Router One asks for at least 3 s between polls; the bridge keeps to it too
EXIT_OK = 0
EXIT_JOB_UNSUCCESSFUL = 1
EXIT_INTERRUPTED = 130
OUTCOME_STATUSES = ("completed", "failed", "timed_out", "canceled")
TERMINAL_STATUSES = frozenset(OUTCOME_STATUSES)
STATUSES = ("pending", "processing", "completed", "failed", "timed_out", "canceled")
WEBHOOK_EVENTS = ("started", "progress", "completed", "failed", "timed_out", "canceled")
ASPECT_RATIOS = ("16:9", "9:16", "1:1")
# `submit --wait` rides out this many failed polls in a row (bridge restarting, network blip).
MAX_POLL_FAILURES = 5

Handler = Callable[[argparse.Namespace], int]


# --------------------------------------------------------------------------- argument types


def _api_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"not an http(s) URL: {text!r}")
    return text.rstrip("/")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return value


def _poll_every(text: str) -> float:
    value = _positive_float(text)
    if value < MIN_POLL_S:
        raise argparse.ArgumentTypeError(f"must be at least {MIN_POLL_S:g} seconds, not {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {text!r}")
    return value


def _metadata(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError('must be a JSON object, such as \'{"order_id": "A-1017"}\'')
    return value


def _outcomes(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in OUTCOME_STATUSES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown outcome {', '.join(unknown) or text!r}; choose from {', '.join(OUTCOME_STATUSES)}"
        )
    return list(dict.fromkeys(names))


def _events(text: str) -> list[str]:
    names = [part.strip().removeprefix("video.generation.") for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in WEBHOOK_EVENTS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown event {', '.join(unknown) or text!r}; choose from {', '.join(WEBHOOK_EVENTS)}"
        )
    return list(dict.fromkeys(names))


# --------------------------------------------------------------------------- the parser


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
        type=_api_url,
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
        type=_positive_float,
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
        sub = commands.add_parser(name, help=help_text, description=help_text)
        _global_options(sub, defaults=None)
        sub.set_defaults(handler=handler, command_parser=sub)
        return sub

    submit = command("submit", cmd_submit, "submit a video generation and print its task id")
    submit.add_argument("--model", required=True, help="a Router One model id with video capability")
    submit.add_argument("--prompt", required=True, help="scene, camera movement, style")
    submit.add_argument("--duration", type=_positive_int, metavar="SECONDS", help="video length in seconds")
    submit.add_argument("--size", help="resolution, such as 720p or 1080p")
    submit.add_argument("--aspect-ratio", choices=ASPECT_RATIOS)
    submit.add_argument("--negative-prompt", metavar="TEXT", help="what the video should avoid")
    submit.add_argument(
        "--image-url",
        dest="image_urls",
        nargs="+",
        action="extend",
        metavar="URL",
        help="reference image(s), http(s); one is sent as image_url, two or three as image_urls",
    )
    submit.add_argument(
        "--input-reference", metavar="ID", help="a model-specific reference id, only where the model asks for one"
    )
    submit.add_argument("--callback-url", metavar="URL", help="https URL that receives signed webhooks for this job")
    submit.add_argument(
        "--events",
        type=_events,
        metavar="LIST",
        help=f"webhook events to send, comma-separated: {','.join(WEBHOOK_EVENTS)} (needs --callback-url)",
    )
    submit.add_argument("--metadata", type=_metadata, metavar="JSON", help="a JSON object echoed in every event")
    submit.add_argument("--idempotency-key", metavar="KEY", help="retrying with the same key never submits twice")
    submit.add_argument(
        "--router-one-key",
        default=os.environ.get("VIDEO_BRIDGE_ROUTER_ONE_KEY"),
        metavar="KEY",
        help="run the job on your own Router One key, if the bridge allows it (env VIDEO_BRIDGE_ROUTER_ONE_KEY; "
        "prefer the env: argv is visible to ps)",
    )
    submit.add_argument("--wait", action="store_true", help="show progress until the job ends, then its outcome")
    submit.add_argument(
        "--poll-every",
        type=_poll_every,
        default=MIN_POLL_S,
        metavar="SECONDS",
        help=f"with --wait: seconds between status checks (default and minimum: {MIN_POLL_S:g})",
    )

    command("account", cmd_account, "show this API key's owner id (for SNS filters and EventBridge rules)")

    status = command("status", cmd_status, "show one job")
    status.add_argument("task_id", metavar="TASK_ID")

    listing = command("list", cmd_list, "list jobs, newest first")
    listing.add_argument("--status", choices=STATUSES, help="only jobs in this status")
    listing.add_argument("--limit", type=_positive_int, metavar="N", help="jobs per page, 1 to 100 (default: 20)")
    listing.add_argument("--cursor", metavar="CURSOR", help="start at this next_cursor of an earlier page")
    listing.add_argument("--all", action="store_true", help="follow next_cursor through every page")

    cancel = command(
        "cancel", cmd_cancel, "stop tracking a job and publish video.generation.canceled (Router One has no cancel)"
    )
    cancel.add_argument("task_id", metavar="TASK_ID")

    webhooks = command("webhooks", cmd_webhooks, "show a job's webhook deliveries and every attempt")
    webhooks.add_argument("task_id", metavar="TASK_ID")

    redeliver = command("redeliver", cmd_redeliver, "send a webhook event again, as a new round")
    redeliver.add_argument("task_id", metavar="TASK_ID")
    redeliver.add_argument("event_id", metavar="EVENT_ID")

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
    tail.add_argument("--count", type=_positive_int, metavar="N", help="stop after N events")
    tail.add_argument("--stop-after", type=_positive_float, metavar="SECONDS", help="stop after this long")
    return parser


def _api_url_or_default(text: str | None) -> str:
    try:
        return _api_url(text or DEFAULT_API)
    except argparse.ArgumentTypeError:
        return DEFAULT_API


# --------------------------------------------------------------------------- output


def _out(text: str = "") -> None:
    print(text, file=sys.stdout, flush=True)


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _print_json(value: Any) -> None:
    _out(json.dumps(value, indent=2, ensure_ascii=False))


def _now() -> datetime:
    return datetime.now(UTC)


def _api(args: argparse.Namespace) -> BridgeApi:
    return BridgeApi(args.api, args.timeout, api_key=args.api_key)


def _command_prefix(args: argparse.Namespace) -> str:
    """How to call this CLI again against the same bridge (for hints)."""
    env_api = _api_url_or_default(os.environ.get(API_ENV))
    return PROG if args.api == env_api else f"{PROG} --api {args.api}"


# --------------------------------------------------------------------------- submit --wait


class ProgressDisplay:
    """Progress while waiting: one redrawn line on a terminal, one line per change otherwise."""

    def __init__(self, stream: TextIO, started: float, *, tty: bool | None = None) -> None:
        self.stream = stream
        self.started = started
        self.tty = stream.isatty() if tty is None else tty
        self.status = "pending"
        self.progress: Any = None
        self._last_printed: tuple[str, Any] | None = None
        self._drawn = 0

    def _line(self) -> str:
        return fmt.progress_line(self.status, self.progress, time.monotonic() - self.started)

    def _draw(self) -> None:
        columns = shutil.get_terminal_size((80, 24)).columns
        line = fmt.fit(self._line(), columns)
        # Pad over what the previous, possibly longer, line left on screen.
        self.stream.write("\r" + line + " " * max(0, self._drawn - len(line)))
        self.stream.flush()
        self._drawn = len(line)

    def update(self, status: str, progress: Any) -> None:
        self.status, self.progress = status, progress
        if self.tty:
            self._draw()
        elif self._last_printed != (status, fmt.percent(progress)):
            self._last_printed = (status, fmt.percent(progress))
            self.stream.write(self._line() + "\n")
            self.stream.flush()

    def tick(self) -> None:
        """Time passed without news: a terminal line shows the new elapsed time."""
        if self.tty and self._drawn:
            self._draw()

    def note(self, text: str) -> None:
        """A message of its own, without mangling the progress line."""
        self.finish()
        self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = 0


def wait_for_outcome(
    api: BridgeApi,
    task_id: str,
    *,
    poll_every: float,
    display: ProgressDisplay,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Poll the job until it ends; returns the final job.

    Failures of the bridge itself (5xx, unreachable) are ridden out up to MAX_POLL_FAILURES in
    a row; a refusal (such as 404) ends the wait at once.
    """
    failures = 0
    while True:
        try:
            job = api.get(task_id)
        except CliError as exc:
            failures += 1
            if exc.exit_code != EXIT_UNAVAILABLE or failures > MAX_POLL_FAILURES:
                display.finish()
                raise
            display.note(f"warning: {exc}; trying again ({failures}/{MAX_POLL_FAILURES})")
        else:
            failures = 0
            display.update(str(job.get("status")), job.get("progress"))
            if job.get("status") in TERMINAL_STATUSES:
                display.finish()
                return job
        next_poll = clock() + poll_every
        while (left := next_poll - clock()) > 0:
            sleep(min(1.0, left))
            display.tick()


def _submit_body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"model": args.model, "prompt": args.prompt}
    optional = {
        "duration": args.duration,
        "size": args.size,
        "aspect_ratio": args.aspect_ratio,
        "negative_prompt": args.negative_prompt,
        "input_reference": args.input_reference,
        "callback_url": args.callback_url,
        "webhook_events_filter": args.events,
        "metadata": args.metadata,
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    if args.image_urls:
        if len(args.image_urls) == 1:
            body["image_url"] = args.image_urls[0]
        else:
            body["image_urls"] = args.image_urls
    return body


def cmd_submit(args: argparse.Namespace) -> int:
    started = time.monotonic()
    with _api(args) as api:
        accepted = api.submit(_submit_body(args), args.idempotency_key, args.router_one_key)
        task_id = accepted.get("task_id")
        if not isinstance(task_id, str) or not task_id:
            raise CliError(f"the bridge at {args.api} accepted the job but sent no task_id", EXIT_UNAVAILABLE)
        if not args.wait:
            if args.json:
                _print_json(accepted)
            else:
                _out(task_id)
            return EXIT_OK
        if not args.json:
            _out(task_id)
        display = ProgressDisplay(sys.stderr, started)
        try:
            job = wait_for_outcome(api, task_id, poll_every=args.poll_every, display=display)
        except KeyboardInterrupt:
            display.finish()
            prefix = _command_prefix(args)
            _err(
                f"stopped waiting; job {task_id} goes on (the bridge still tracks it).\n"
                f"  check it:   {prefix} status {task_id}\n"
                f"  cancel it:  {prefix} cancel {task_id}"
            )
            return EXIT_INTERRUPTED
    if args.json:
        _print_json(job)
    else:
        for line in fmt.outcome_lines(job, _now()):
            _out(line)
    return EXIT_OK if job.get("status") == "completed" else EXIT_JOB_UNSUCCESSFUL


# --------------------------------------------------------------------------- the other commands


def cmd_account(args: argparse.Namespace) -> int:
    with _api(args) as api:
        account = api.account()
    if args.json:
        _print_json(account)
    else:
        rows = [("owner_id", str(account.get("owner_id"))), ("operator", "yes" if account.get("operator") else "no")]
        _out(fmt.key_values(rows))
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    with _api(args) as api:
        job = api.get(args.task_id)
    if args.json:
        _print_json(job)
    else:
        _out(fmt.job_block(job, _now()))
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    jobs: list[dict[str, Any]] = []
    with _api(args) as api:
        page = api.list_jobs(status=args.status, limit=args.limit, cursor=args.cursor)
        jobs.extend(page.get("data") or [])
        while args.all and page.get("has_more") and page.get("next_cursor"):
            page = api.list_jobs(status=args.status, limit=args.limit, cursor=page["next_cursor"])
            jobs.extend(page.get("data") or [])
    if args.all:
        page = {"object": "list", "data": jobs, "has_more": False, "next_cursor": None}
    if args.json:
        _print_json(page)
        return EXIT_OK
    if not jobs:
        _out("no jobs" + (f" with status {args.status}" if args.status else ""))
    else:
        _out(fmt.jobs_table(jobs))
    if page.get("has_more") and page.get("next_cursor"):
        _err(f"more jobs: add --all, or --cursor {page['next_cursor']}")
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace) -> int:
    with _api(args) as api:
        job = api.cancel(args.task_id)
    if args.json:
        _print_json(job)
    else:
        _out(f"{job.get('task_id', args.task_id)} {job.get('status')}")
        _err(
            "the bridge stopped tracking it and published video.generation.canceled; "
            "Router One has no cancel, so the generation itself may still run and be billed there"
        )
    return EXIT_OK


def cmd_webhooks(args: argparse.Namespace) -> int:
    with _api(args) as api:
        answer = api.webhooks(args.task_id)
    if args.json:
        _print_json(answer)
    else:
        _out(fmt.deliveries_block(answer))
    return EXIT_OK


def cmd_redeliver(args: argparse.Namespace) -> int:
    with _api(args) as api:
        answer = api.redeliver(args.task_id, args.event_id)
    if args.json:
        _print_json(answer)
    else:
        _out(
            f"event {answer.get('event_id', args.event_id)} of {answer.get('task_id', args.task_id)} "
            f"queued for redelivery (round {answer.get('round', '?')}, {answer.get('status', 'pending')})"
        )
        _err(f"follow it with: {_command_prefix(args)} webhooks {args.task_id}")
    return EXIT_OK


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
    from bridge_cli import tail

    region = args.region or tail.region_of(args.topic_arn)
    if region is None:
        raise CliError(f"cannot tell the region from {args.topic_arn!r}: pass --region", 2)

    def show(event: dict[str, Any]) -> None:
        _out(json.dumps(event, ensure_ascii=False) if args.json else fmt.event_line(event))

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
            _err(f"following {args.topic_arn} through temporary queue {queue.name} (Ctrl-C to stop)")
            tail.follow(sqs, queue_url, show, count=args.count, stop_after_s=args.stop_after)
        except (BotoCoreError, ClientError) as exc:
            raise tail.aws_error(exc, args.endpoint_url) from None
        except KeyboardInterrupt:
            _err("stopped")
            return EXIT_INTERRUPTED
        finally:
            # Whatever open() got to is removed, also when it failed half way or Ctrl-C came.
            if queue is not None:
                for problem in queue.close():
                    _err(f"warning: {problem}")
    return EXIT_OK


# --------------------------------------------------------------------------- entry point


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "submit" and args.events and not args.callback_url:
        args.command_parser.error("--events needs --callback-url (webhook events go to that URL)")
    try:
        return int(args.handler(args))
    except CliError as exc:
        _err(f"error: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`video-bridge list --all | head`): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
