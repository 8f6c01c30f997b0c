"""``python -m bridge_local.simulator``: the simulator in the foreground, configured by flags."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType

from bridge_local.simulator.options import (
    DEFAULT_API_KEY,
    DEFAULT_ERROR_CODE,
    DEFAULT_ERROR_MESSAGE,
    OUTCOMES,
    PROGRESS_MODES,
    ApiError,
)
from bridge_local.simulator.scripting import parse_faults
from bridge_local.simulator.server import RouterOneSimulator


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bridge_local.simulator",
        description="Serve a local simulation of Router One's video-generation API.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8010, help="0 picks a free port")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help="key clients must send")
    parser.add_argument("--queue-s", type=float, default=1.0, help="seconds spent pending")
    parser.add_argument("--run-s", type=float, default=8.0, help="seconds spent processing")
    parser.add_argument("--outcome", choices=OUTCOMES, default="completed")
    parser.add_argument("--progress", choices=PROGRESS_MODES, default="linear")
    parser.add_argument("--error-code", default=DEFAULT_ERROR_CODE)
    parser.add_argument("--error-message", default=DEFAULT_ERROR_MESSAGE)
    parser.add_argument("--insufficient-balance", action="store_true", help="answer every submit with 402")
    parser.add_argument(
        "--faults",
        default="",
        metavar="OPTIONS",
        help='fault options for every job, as in a [sim ...] directive, e.g. "malformed=1 slow_s=2 slow_polls=1"',
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log each request to stderr")
    return parser


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        faults = parse_faults(args.faults)
    except ApiError as exc:
        parser.error(f"--faults: {exc.message}")
    try:
        sim = RouterOneSimulator(
            args.host,
            args.port,
            api_key=args.api_key,
            queue_s=args.queue_s,
            run_s=args.run_s,
            outcome=args.outcome,
            progress=args.progress,
            error_code=args.error_code,
            error_message=args.error_message,
            insufficient_balance=args.insufficient_balance,
            faults=faults,
            verbose=args.verbose,
        )
    except ValueError as exc:
        parser.error(str(exc))
    try:
        sim.start()
    except OSError as exc:
        print(
            f"cannot listen on {args.host}:{args.port} ({exc.strerror}); pick another with --port PORT", file=sys.stderr
        )
        return 1
    if threading.current_thread() is threading.main_thread():
        # `docker stop` / `kill` should shut down as cleanly as Ctrl-C.
        signal.signal(signal.SIGTERM, _interrupt)
    print(f"Router One simulator listening on {sim.url} (Ctrl-C to stop)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    print("Router One simulator stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
