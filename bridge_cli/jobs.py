"""The job commands: `submit` (optionally waiting for the outcome), `status`, `list` and `cancel`."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from bridge_cli import format as fmt
from bridge_cli.api import EXIT_UNAVAILABLE, CliError
from bridge_cli.common import (
    EXIT_INTERRUPTED,
    EXIT_JOB_UNSUCCESSFUL,
    EXIT_OK,
    AddCommand,
    command_prefix,
    err,
    now,
    open_api,
    out,
    positive_float,
    positive_int,
    print_json,
    show,
)
from bridge_cli.progress import ProgressDisplay, wait_for_outcome

MIN_POLL_S = 3.0  # Router One asks for at least 3 s between polls; the bridge keeps to it too
STATUSES = ("pending", "processing", "completed", "failed", "timed_out", "canceled")
WEBHOOK_EVENTS = ("started", "progress", "completed", "failed", "timed_out", "canceled")
ASPECT_RATIOS = ("16:9", "9:16", "1:1")


# --------------------------------------------------------------------------- argument types


def _poll_every(text: str) -> float:
    value = positive_float(text)
    if value < MIN_POLL_S:
        raise argparse.ArgumentTypeError(f"must be at least {MIN_POLL_S:g} seconds, not {text!r}")
    return value


def _metadata(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError('must be a JSON object, such as \'{"order_id": "A-1017"}\'')
    return value


def _events(text: str) -> list[str]:
    names = [part.strip().removeprefix("video.generation.") for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in WEBHOOK_EVENTS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown event {', '.join(unknown) or text!r}; choose from {', '.join(WEBHOOK_EVENTS)}"
        )
    return list(dict.fromkeys(names))


# --------------------------------------------------------------------------- submit


def add_submit(command: AddCommand) -> None:
    """`submit`: one option per field of Router One's request, plus the bridge's own."""
    submit = command("submit", cmd_submit, "submit a video generation and print its task id")
    submit.add_argument("--model", required=True, help="a Router One model id with video capability")
    submit.add_argument("--prompt", required=True, help="scene, camera movement, style")
    submit.add_argument("--duration", type=positive_int, metavar="SECONDS", help="video length in seconds")
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


def check_submit(args: argparse.Namespace) -> None:
    """What the parser alone cannot refuse; exits as argparse does."""
    if args.events and not args.callback_url:
        args.command_parser.error("--events needs --callback-url (webhook events go to that URL)")


def submit_body(args: argparse.Namespace) -> dict[str, Any]:
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
    with open_api(args) as api:
        accepted = api.submit(submit_body(args), args.idempotency_key, args.router_one_key)
        task_id = accepted.get("task_id")
        if not isinstance(task_id, str) or not task_id:
            raise CliError(f"the bridge at {args.api} accepted the job but sent no task_id", EXIT_UNAVAILABLE)
        if not args.wait:
            if args.json:
                print_json(accepted)
            else:
                out(task_id)
            return EXIT_OK
        if not args.json:
            out(task_id)
        display = ProgressDisplay(sys.stderr, started)
        try:
            job = wait_for_outcome(api, task_id, poll_every=args.poll_every, display=display)
        except KeyboardInterrupt:
            display.finish()
            prefix = command_prefix(args)
            err(
                f"stopped waiting; job {task_id} goes on (the bridge still tracks it).\n"
                f"  check it:   {prefix} status {task_id}\n"
                f"  cancel it:  {prefix} cancel {task_id}"
            )
            return EXIT_INTERRUPTED
    if args.json:
        print_json(job)
    else:
        for line in fmt.outcome_lines(job, now()):
            out(line)
    return EXIT_OK if job.get("status") == "completed" else EXIT_JOB_UNSUCCESSFUL


# --------------------------------------------------------------------------- status, list, cancel


def add_status(command: AddCommand) -> None:
    status = command("status", cmd_status, "show one job")
    status.add_argument("task_id", metavar="TASK_ID")


def cmd_status(args: argparse.Namespace) -> int:
    with open_api(args) as api:
        job = api.get(args.task_id)
    return show(args, job, lambda shown: fmt.job_block(shown, now()))


def add_list(command: AddCommand) -> None:
    listing = command("list", cmd_list, "list jobs, newest first")
    listing.add_argument("--status", choices=STATUSES, help="only jobs in this status")
    listing.add_argument("--limit", type=positive_int, metavar="N", help="jobs per page, 1 to 100 (default: 20)")
    listing.add_argument("--cursor", metavar="CURSOR", help="start at this next_cursor of an earlier page")
    listing.add_argument("--all", action="store_true", help="follow next_cursor through every page")


def cmd_list(args: argparse.Namespace) -> int:
    jobs: list[dict[str, Any]] = []
    with open_api(args) as api:
        page = api.list_jobs(status=args.status, limit=args.limit, cursor=args.cursor)
        jobs.extend(page.get("data") or [])
        while args.all and page.get("has_more") and page.get("next_cursor"):
            page = api.list_jobs(status=args.status, limit=args.limit, cursor=page["next_cursor"])
            jobs.extend(page.get("data") or [])
    if args.all:
        page = {"object": "list", "data": jobs, "has_more": False, "next_cursor": None}
    if args.json:
        print_json(page)
        return EXIT_OK
    if not jobs:
        out("no jobs" + (f" with status {args.status}" if args.status else ""))
    else:
        out(fmt.jobs_table(jobs))
    if page.get("has_more") and page.get("next_cursor"):
        err(f"more jobs: add --all, or --cursor {page['next_cursor']}")
    return EXIT_OK


def add_cancel(command: AddCommand) -> None:
    cancel = command(
        "cancel", cmd_cancel, "stop tracking a job and publish video.generation.canceled (Router One has no cancel)"
    )
    cancel.add_argument("task_id", metavar="TASK_ID")


def cmd_cancel(args: argparse.Namespace) -> int:
    with open_api(args) as api:
        job = api.cancel(args.task_id)
    if args.json:
        print_json(job)
    else:
        out(f"{job.get('task_id', args.task_id)} {job.get('status')}")
        err(
            "the bridge stopped tracking it and published video.generation.canceled; "
            "Router One has no cancel, so the generation itself may still run and be billed there"
        )
    return EXIT_OK
