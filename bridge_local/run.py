"""Run the whole bridge on this machine: `python -m bridge_local.run`.

Embedded AWS (moto) + the template's resources + an API Gateway look-alike in front of the
real api handler + (unless given a real one) the Router One simulator + a webhook receiver
that checks signatures; then every outcome published to SNS and EventBridge, and every webhook
the receiver gets, is printed as it arrives. Ctrl-C stops it all.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from bridge_local.deployer import DEFAULT_STACK_NAME, DEFAULT_TEMPLATE
from bridge_local.local_stack import RealRouterOne, SimulatorSettings, StackOptions, running_stack
from bridge_local.ports import PortInUse, check_free
from bridge_local.receiver import ReceivedWebhook, format_delivery
from bridge_local.tail import format_event, format_event_line

SAMPLE_REQUEST = {"model": "video-default", "prompt": "a red fox running through snow"}
# The embedded AWS accepts these throwaway keys as the account's administrator; they work nowhere else.
LOCAL_ACCESS_KEY = "testing"
LOCAL_SECRET_KEY = "testing"
# Under the project's build/ (git-ignored), whatever directory the run was started from.
LOCAL_ENV_FILE = Path(__file__).resolve().parent.parent / "build" / "local-env.json"


@dataclass(frozen=True)
class LocalAws:
    """What a second terminal needs to reach the local run's AWS resources."""

    endpoint_url: str
    region: str
    topic_arn: str
    event_bus_name: str
    env_file: Path | None = None  # `sam local invoke --env-vars` file, when written

    def environment(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": LOCAL_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": LOCAL_SECRET_KEY,
            "AWS_DEFAULT_REGION": self.region,
        }

    def sam_local_command(self) -> str:
        """`sam local invoke` of the api function, its SDK calls sent here with the throwaway keys."""
        keys = f"AWS_ACCESS_KEY_ID={LOCAL_ACCESS_KEY} AWS_SECRET_ACCESS_KEY={LOCAL_SECRET_KEY} AWS_DEFAULT_REGION={self.region}"
        return (
            f"env -u AWS_PROFILE -u AWS_SESSION_TOKEN {keys} sam local invoke ApiFunction -e events/api_submit.json "
            f"--env-vars {self.env_file} --docker-network host "
            f"--parameter-overrides LocalAwsEndpointUrl={self.endpoint_url}"
        )

    def tail_command(self) -> str:
        """A `video-bridge tail` that works as printed, from the project directory, in any shell."""
        env = " ".join(f"{name}={value}" for name, value in self.environment().items())
        # -u: a profile or session token in the user's shell must not mix with these keys.
        return f"env -u AWS_PROFILE -u AWS_SESSION_TOKEN {env} .venv/bin/video-bridge tail --topic-arn {self.topic_arn}"


def write_sam_env_vars(function_environments: Mapping[str, Mapping[str, str]], path: Path) -> Path:
    """The local stack's function environments, in the shape `sam local invoke --env-vars` reads:
    one object per function logical id (SAM applies only variables the template declares)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {function: dict(env) for function, env in sorted(function_environments.items())}
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bridge_local.run", description=__doc__)
    parser.add_argument("--port", type=int, default=8000, help="port of the local API (default 8000)")
    parser.add_argument(
        "--router-one-url",
        default=os.environ.get("ROUTER_ONE_BASE_URL"),
        help="real Router One base URL (env ROUTER_ONE_BASE_URL); default: start the simulator",
    )
    parser.add_argument(
        "--router-one-key",
        default=os.environ.get("ROUTER_ONE_API_KEY"),
        help="Router One API key (env ROUTER_ONE_API_KEY; prefer the env: argv is visible to ps)",
    )
    parser.add_argument(
        "--api-key",
        action="append",
        default=[],
        help="a key callers may send as Authorization: Bearer; give it again for more callers, each its own "
        "tenant (env VIDEO_BRIDGE_API_KEY; default: two new ones)",
    )
    parser.add_argument(
        "--api-keys-file",
        type=Path,
        help="more caller keys, one per line (blank lines and # comments ignored)",
    )
    parser.add_argument("--poll-interval", type=int, default=3, help="seconds between polls (min 3)")
    parser.add_argument("--sim-run-s", type=float, default=8.0, help="simulated generation time in seconds")
    parser.add_argument(
        "--receiver-port",
        type=int,
        default=8001,
        help="port of the built-in webhook receiver (default 8001; -1 to not start it)",
    )
    parser.add_argument(
        "--aws-port",
        type=int,
        default=0,
        help="port of the embedded AWS endpoint (default 0: any free port; the banner prints it)",
    )
    parser.add_argument(
        "--webhook-retry-schedule",
        default="2,5,10,30,60",
        help="seconds between webhook retries (default 2,5,10,30,60; a deployed stack waits hours)",
    )
    parser.add_argument(
        "--endpoint-disable-after",
        type=int,
        default=600,
        help="seconds of failing deliveries before a registered endpoint is disabled (default 600; deployed: 5 days)",
    )
    parser.add_argument(
        "--verbose-events",
        action="store_true",
        help="print each event's whole JSON body (default: one line per event)",
    )
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="handlers' log level (default WARNING, so events stand out)",
    )
    parser.add_argument("--template", default=str(DEFAULT_TEMPLATE), help=argparse.SUPPRESS)
    parser.add_argument("--stack-name", default=DEFAULT_STACK_NAME, help=argparse.SUPPRESS)
    return parser


def caller_keys(args: argparse.Namespace) -> list[str]:
    """The keys callers may use: --api-key (repeated), the file, the env; else two new ones."""
    keys = list(args.api_key)
    if args.api_keys_file is not None:
        lines = args.api_keys_file.read_text(encoding="utf-8").splitlines()
        keys += [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not keys and os.environ.get("VIDEO_BRIDGE_API_KEY"):
        keys.append(os.environ["VIDEO_BRIDGE_API_KEY"])
    if not keys:
        # Two tenants, so a newcomer can see one key's jobs stay invisible to the other.
        keys = [f"vb-local-{secrets.token_hex(12)}" for _ in range(2)]
    return list(dict.fromkeys(keys))


def stack_options(args: argparse.Namespace, api_keys: Sequence[str]) -> StackOptions:
    """The local run's stack: its ports, the upstream it was given, schedules on, settings for a terminal."""
    router_one = RealRouterOne(args.router_one_url, args.router_one_key) if args.router_one_url else None
    return StackOptions(
        parameters={
            "PollIntervalSeconds": str(args.poll_interval),
            "LogLevel": args.log_level,
            "WebhookRetrySchedule": args.webhook_retry_schedule,
            "EndpointDisableAfterSeconds": str(args.endpoint_disable_after),
            # The built-in receiver is on loopback over http; a deployed stack refuses both.
            "WebhookAllowLoopback": "true",
            # Finished videos are copied into the local bucket; the event carries where.
            "KeepVideos": "true",
            # Callers may send their own Router One key (X-Router-One-Key), sealed with KMS.
            "CallerRouterOneKeys": "allowed",
        },
        router_one=router_one,
        simulator=SimulatorSettings(run_s=args.sim_run_s),
        api_keys=tuple(api_keys),
        receiver=args.receiver_port >= 0,
        receiver_port=max(args.receiver_port, 0),
        schedules=True,
        api_port=args.port,
        aws_port=args.aws_port,
        template=Path(args.template),
        stack_name=args.stack_name,
    )


def owners_of(api_url: str, keys: Sequence[str]) -> dict[str, str]:
    """Each key's owner id, asked of the running API (through the real authorizer)."""
    owners = {}
    with httpx.Client(base_url=api_url, timeout=30) as client:
        for key in keys:
            answer = client.get("/v1/account", headers={"Authorization": f"Bearer {key}"})
            owners[key] = (
                str(answer.json().get("owner_id")) if answer.status_code == 200 else f"refused ({answer.status_code})"
            )
    return owners


def _aws_lines(aws: LocalAws) -> list[str]:
    lines = [
        "",
        f"Embedded AWS: {aws.endpoint_url}  region {aws.region}",
        f"  keys: AWS_ACCESS_KEY_ID={LOCAL_ACCESS_KEY} AWS_SECRET_ACCESS_KEY={LOCAL_SECRET_KEY} (throwaway, local only)",
        f"  topic: {aws.topic_arn}",
        f"  event bus: {aws.event_bus_name}",
        "Follow outcome events from another terminal (in this directory):",
        f"  {aws.tail_command()}",
    ]
    if aws.env_file is not None:
        lines += [
            f"Function environments for SAM local: {aws.env_file}",
            "SAM local against this embedded AWS (needs Docker; host network, so Linux):",
            f"  {aws.sam_local_command()}",
        ]
    return lines


def _banner(
    api_url: str,
    upstream: str,
    stack_name: str,
    receiver_url: str | None,
    owners: dict[str, str],
    aws: LocalAws | None = None,
) -> str:
    api_key = next(iter(owners))
    body = json.dumps(SAMPLE_REQUEST, separators=(",", ":"))
    auth = f"    -H 'Authorization: Bearer {api_key}' \\"
    other_tenant = []
    if len(owners) > 1:
        other = list(owners)[1]
        other_tenant = [
            "The same with another key answers 404: each key sees only its own jobs.",
            f"  curl -s -H 'Authorization: Bearer {other}' {api_url}/v1/videos/generations/<task_id>",
        ]
    webhook_lines = []
    if receiver_url:
        hooked = json.dumps(SAMPLE_REQUEST | {"callback_url": f"{receiver_url}/hooks/demo"}, separators=(",", ":"))
        webhook_lines = [
            "",
            f"Webhook receiver (checks every signature): {receiver_url}",
            "Submit a job whose outcome is also POSTed, signed, to the receiver:",
            f"  curl -s -X POST {api_url}/v1/videos/generations \\",
            auth,
            "    -H 'Content-Type: application/json' \\",
            f"    -d '{hooked}'",
            "  (?fail=2 on the callback URL fails twice before accepting; ?status=410 stops the retries)",
            "List a job's deliveries:",
            f"  curl -s -H 'Authorization: Bearer {api_key}' {api_url}/v1/videos/generations/<task_id>/webhooks",
        ]
    return "\n".join(
        [
            f"Video bridge running locally ({stack_name}); Router One: {upstream}",
            f"API: {api_url}",
            "API keys (send one as Authorization: Bearer); each is a tenant that sees only its own jobs:",
            *(f"  {key}  owner {owner_id}" for key, owner_id in owners.items()),
            "",
            "Submit a job:",
            f"  curl -s -X POST {api_url}/v1/videos/generations \\",
            auth,
            "    -H 'Content-Type: application/json' \\",
            f"    -d '{body}'",
            "",
            "Ask for its status (task_id from the answer above):",
            f"  curl -s -H 'Authorization: Bearer {api_key}' {api_url}/v1/videos/generations/<task_id>",
            *other_tenant,
            "",
            "Or with the CLI (installed in .venv), watching progress until the end:",
            f"  export VIDEO_BRIDGE_API={api_url} VIDEO_BRIDGE_API_KEY={api_key}",
            "  .venv/bin/video-bridge submit --model video-default --prompt 'a fox' --wait",
            *webhook_lines,
            *(_aws_lines(aws) if aws is not None else []),
            "",
            "Outcome events (SNS, EventBridge, webhooks) appear below, one line each (--verbose-events: the"
            " whole JSON). Ctrl-C stops everything.",
            "",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.router_one_url and not args.router_one_key:
        print("--router-one-url needs a key: set ROUTER_ONE_API_KEY (or --router-one-key)", file=sys.stderr)
        return 2

    try:
        # Before the deploy (about 16 s), so a taken port is named at once, not after it.
        check_free([(args.port, "--port"), (args.receiver_port, "--receiver-port"), (args.aws_port, "--aws-port")])
    except PortInUse as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 1

    stop = threading.Event()
    try:
        api_keys = caller_keys(args)
    except OSError as exc:
        print(f"cannot read --api-keys-file: {exc}", file=sys.stderr)
        return 2

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    print_lock = threading.Lock()

    def show(event: dict[str, Any]) -> None:
        # One line each by default: a job's events (SNS and EventBridge) stay readable in a terminal.
        text = format_event(event) + "\n" if args.verbose_events else format_event_line(event)
        with print_lock:
            print(text, flush=True)

    options = stack_options(args, api_keys)

    def show_webhook(record: ReceivedWebhook) -> None:
        # The first line has the type, task, answer and signature check; the rest is detail.
        text = format_delivery(record)
        text = text + "\n" if args.verbose_events else text.splitlines()[0]
        with print_lock:
            print(text, flush=True)

    try:
        with running_stack(options, on_event=show, on_delivery=show_webhook) as running:
            stack = running.stack
            local_aws = LocalAws(
                running.aws.endpoint_url,
                stack.region,
                stack.topic_arn,
                stack.event_bus_name,
                write_sam_env_vars(stack.function_environments, LOCAL_ENV_FILE),
            )
            receiver_url = running.receiver.url if options.receiver else None
            with print_lock:
                owners = owners_of(running.api_url, api_keys)
                banner = _banner(
                    running.api_url,
                    running.upstream_url if args.router_one_url else f"simulator at {running.upstream_url}",
                    stack.stack_name,
                    receiver_url,
                    owners,
                    local_aws,
                )
                print(banner, flush=True)
            while not stop.wait(0.5):
                pass
            with print_lock:
                print("Stopping…", flush=True)
    except OSError as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
