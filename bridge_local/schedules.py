"""Schedule events, locally: invoke a function every so often with an EventBridge scheduled event."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterable
from datetime import UTC, datetime

import boto3

from bridge_local.deployer import ScheduledInvoke


def scheduled_event(region: str) -> dict[str, object]:
    return {
        "version": "0",
        "id": "local-schedule",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [],
        "detail": {},
    }


class Scheduler:
    def __init__(self, schedule: ScheduledInvoke, region: str, every_s: float | None = None) -> None:
        self.schedule = schedule
        self.region = region
        self.every_s = every_s if every_s is not None else schedule.every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"schedule-{schedule.function_name}", daemon=True)

    def start(self) -> Scheduler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        lam = boto3.session.Session().client("lambda")
        while not self._stop.wait(self.every_s):
            try:
                lam.invoke(FunctionName=self.schedule.function_name, Payload=json.dumps(scheduled_event(self.region)))
            except Exception as exc:  # keep the schedule alive through a local hiccup
                print(f"[schedule {self.schedule.function_name}] {type(exc).__name__}: {exc}", file=sys.stderr)


def start_schedulers(schedules: Iterable[ScheduledInvoke], region: str) -> list[Scheduler]:
    return [Scheduler(schedule, region).start() for schedule in schedules]
