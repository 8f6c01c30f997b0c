"""`submit --wait`: polling a job until it ends, and showing its progress meanwhile."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from typing import Any, TextIO

from bridge_cli import format as fmt
from bridge_cli.api import EXIT_UNAVAILABLE, BridgeApi, CliError
from bridge_cli.common import OUTCOME_STATUSES

TERMINAL_STATUSES = frozenset(OUTCOME_STATUSES)
# `submit --wait` rides out this many failed polls in a row (bridge restarting, network blip).
MAX_POLL_FAILURES = 5


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
