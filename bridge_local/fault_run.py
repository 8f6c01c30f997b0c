"""Fault run: many jobs through the local stack while upstream, publishing, the bridge itself and
webhook receivers misbehave.

    python -m bridge_local.fault_run --jobs 1000

What goes wrong:
- upstream: each job gets a random mix of Router One faults (the simulator's prompt directive);
- publishing: the bridge's SNS, EventBridge and webhook-queue sends fail some of the time
  (`publish_faults.PublishFaults`), half of them after the send took effect;
- the bridge's own steps (`BridgeFaults`): a poll killed right after recording the outcome (as
  AWS reports a timeout, running out of memory or an unknown error), some of them with their
  execution stopped too, so only the outcome check can publish; a poll killed while its Router One
  request is out (the answer drips); the api dying between cancel's write and its publish (a share
  of jobs is canceled shortly after submit); preparing the webhook failing, before or after its
  row is written;
- receivers: a share of the jobs' callbacks drip, hang or stream an endless 500 body, and an https
  receiver whose certificate names `localhost` only is called as `https://localhost:<port>`
  (delivered) and as `https://127.0.0.1:<port>` (the same address: the TLS check must fail every
  time).

At the end it prints what was submitted, how the jobs ended, the events per channel, duplicates
by event id, lost jobs, the cancels' answers, the webhooks delivered and dead-lettered by cause,
the longest attempt, the outcomes the outcome check published, every injected fault, the settings
and how late this process's threads woke (the local stack runs in one process). It exits
1 unless: no job is lost, every job has exactly one terminal event id per channel (a cancel that
answered 200 or died before its publish: `canceled`; one refused with 409: the real outcome),
every webhook is delivered or dead-lettered with its row saying why (none left pending or
retrying), each receiver got what it should, and no attempt took longer than its timeout + 1 s.
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

import httpx

from bridge_local.fault_injection import BridgeFaults
from bridge_local.fault_plan import (
    DEFAULT_UPSTREAM_FAULTS,
    FINAL_DELIVERY,
    TERMINAL_TYPES,
    Events,
    FaultMix,
    JobPlan,
    plan_jobs,
)
from bridge_local.fault_report import Report, Settings, tally, tally_cancels, tally_deliveries
from bridge_local.fault_setup import (
    Receivers,
    SchedulingLag,
    execution_lister,
    reconcile_visibility,
    start_fault_receivers,
    tune_gc,
)

# What tests and other runs import from the fault run.
__all__ = [
    "BridgeFaults",
    "FaultMix",
    "Receivers",
    "Report",
    "execution_lister",
    "main",
    "reconcile_visibility",
    "run",
    "start_fault_receivers",
]


def run(
    *,
    api_url: str,
    api_key: str,
    jobs: int,
    events_for: Callable[[str], Events],
    channels: Sequence[str] = ("sns", "eventbridge"),
    callback_url: str | None = None,
    receivers: Receivers | None = None,
    bridge_faults: BridgeFaults | None = None,
    executions: Callable[[], Iterable[dict[str, Any]]] | None = None,
    upstream_faults: Sequence[str] = DEFAULT_UPSTREAM_FAULTS,
    submit_concurrency: int = 8,
    timeout_s: float = 600.0,
    seed: int = 7,
) -> Report:
    """Submit `jobs` jobs, cancel some, wait until each has its terminal events and its webhook has
    ended (or time runs out), and count.

    `receivers` and `bridge_faults` bring the receivers and the bridge's own faults (their mix);
    without them, a share of jobs calls back `callback_url` (a receiver that answers), as before.
    """
    rng = random.Random(seed)
    mix = bridge_faults.mix if bridge_faults else FaultMix.upstream_and_publishing_only()
    plans = plan_jobs(
        rng, jobs, upstream_faults=upstream_faults, mix=mix, with_callbacks=bool(receivers or callback_url)
    )
    for n, plan in enumerate(plans):
        if plan.receiver is not None:
            plan.body["callback_url"] = receivers.url(plan.receiver, n) if receivers else callback_url
    report = Report(submitted=jobs)
    receiver_of: dict[str, str] = {}
    cancels: dict[str, tuple[JobPlan, int]] = {}  # task -> (plan, answer)
    started = time.monotonic()
    lock = threading.Lock()
    report.scheduling_lag = lag = SchedulingLag().start()
    with (
        httpx.Client(base_url=api_url, timeout=60, headers={"Authorization": f"Bearer {api_key}"}) as client,
        ThreadPoolExecutor(max_workers=submit_concurrency, thread_name_prefix="fault-cancel") as cancellers,
    ):

        def cancel_later(task_id: str, plan: JobPlan, due: float) -> None:
            time.sleep(max(0.0, due - time.monotonic()))
            answer = client.post(f"/v1/videos/generations/{task_id}/cancel")
            with lock:
                cancels[task_id] = (plan, answer.status_code)

        def submit(plan: JobPlan) -> None:
            response = client.post("/v1/videos/generations", json=plan.body)
            if response.status_code != 202:
                with lock:
                    report.refused[response.status_code] += 1
                return
            task_id = response.json()["task_id"]
            if bridge_faults is not None:
                bridge_faults.doom(task_id, plan)
            with lock:
                report.accepted.append(task_id)
                if plan.receiver is not None:
                    receiver_of[task_id] = plan.receiver
            if plan.cancel_after_s is not None and bridge_faults is not None:
                cancellers.submit(cancel_later, task_id, plan, time.monotonic() + plan.cancel_after_s)

        with ThreadPoolExecutor(max_workers=submit_concurrency) as pool:
            list(pool.map(submit, plans))

        deadline = started + timeout_s
        pending = set(report.accepted)
        while pending and time.monotonic() < deadline:
            for task_id in list(pending):
                seen = events_for(task_id)
                if all(
                    any((e.get("event") or {}).get("type") in TERMINAL_TYPES for e in seen.get(c, [])) for c in channels
                ):
                    pending.discard(task_id)
            if pending:
                time.sleep(1.0)

        # Every webhook must end: delivered, gone or dead-lettered through its retry schedule.
        rows_of: dict[str, list[dict[str, Any]]] = {}
        waiting = set(receiver_of)
        while waiting:
            for task_id in list(waiting):
                answer = client.get(f"/v1/videos/generations/{task_id}/webhooks")
                rows_of[task_id] = answer.json().get("deliveries", []) if answer.status_code == 200 else []
                if rows_of[task_id] and all(r["status"] in FINAL_DELIVERY for r in rows_of[task_id]):
                    waiting.discard(task_id)
            if not waiting or time.monotonic() >= deadline:
                break
            time.sleep(2.0)

    time.sleep(3.0)  # let late duplicates (retried sends) arrive before counting
    lag.stop()
    report.wall_s = time.monotonic() - started
    terminal_event = tally(report, events_for, channels)
    report.settings = Settings.current()
    if receiver_of:
        tally_deliveries(report, rows_of, receiver_of, terminal_event, report.settings)
    tally_cancels(report, cancels, terminal_event, bridge_faults)
    if executions is not None:
        accepted = set(report.accepted)
        for execution in executions():
            task_id, marker, _ = execution["name"].partition("--outcome-")
            if marker and task_id in accepted:
                report.outcome_check_executions[execution["status"]] += 1
    if bridge_faults is not None:
        report.injected_bridge = dict(bridge_faults.injected)
        for kind, n in Counter(receiver_of.values()).items():
            if kind != "ok":
                report.injected_bridge[f"receiver: {kind}"] = n
    return report


class _EventIndex:
    def __init__(self) -> None:
        self._by_task: dict[str, Events] = defaultdict(lambda: defaultdict(list))
        self._lock = threading.Lock()

    def add(self, event: dict[str, Any]) -> None:
        body = event.get("event") if isinstance(event.get("event"), dict) else {}
        task_id = (body.get("data") or {}).get("task_id")
        with self._lock:
            self._by_task[task_id or "?"][event["channel"]].append(event)

    def for_task(self, task_id: str) -> Events:
        with self._lock:
            return {channel: list(events) for channel, events in self._by_task[task_id].items()}


# Short settings, so a retry schedule and an outcome check take seconds instead of hours and minutes.
RUN_PARAMETERS = {
    "PollIntervalSeconds": "3",
    "PollingPolicy": "fixed",
    "LogLevel": "ERROR",
    "WebhookAllowLoopback": "true",
    "WebhookRetrySchedule": "1,2,4",
    "WebhookTimeoutSeconds": "2",
}
OUTCOME_CHECK_DELAY_S = 3
RECONCILE_VISIBILITY_S = 10


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bridge_local.fault_run", description=__doc__)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--publish-fault-rate", type=float, default=0.2, help="share of sends that fail (0-1)")
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds to wait for every outcome")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    from bridge_local.local_stack import StackOptions, running_stack
    from bridge_local.publish_faults import PublishFaults, install_publish_faults

    index = _EventIndex()
    options = StackOptions(
        name="fault",
        parameters=RUN_PARAMETERS,
        environment={"OUTCOME_CHECK_DELAY_SECONDS": str(OUTCOME_CHECK_DELAY_S)},
    )
    with running_stack(options, on_event=index.add) as local, ExitStack() as cleanup:
        cleanup.enter_context(
            reconcile_visibility(
                local.aws.client("sqs"), local.stack.queue_urls["ReconcileQueue"], RECONCILE_VISIBILITY_S
            )
        )
        faults = PublishFaults(rate=args.publish_fault_rate, seed=args.seed)
        install_publish_faults(faults)
        cleanup.callback(install_publish_faults, None)
        bridge_faults = BridgeFaults(FaultMix()).install(cleanup)
        receivers = start_fault_receivers(cleanup, http_url=local.receiver.url, signing_secret=local.signing_secret)
        settings = Settings.current(RECONCILE_VISIBILITY_S)
        collector = tune_gc(cleanup)
        print(
            f"fault run: {args.jobs} jobs, publish fault rate {args.publish_fault_rate}; {FaultMix().describe()}\n"
            f"short settings: {settings.render()}\n{collector}",
            flush=True,
        )
        report = run(
            api_url=local.api_url,
            api_key=local.api_key,
            jobs=args.jobs,
            events_for=index.for_task,
            receivers=receivers,
            bridge_faults=bridge_faults,
            executions=execution_lister(local.aws.client("stepfunctions"), local.stack.state_machine_arn),
            timeout_s=args.timeout,
            seed=args.seed,
        )
        report.injected = dict(faults.injected)
        report.settings = settings
        print(report.render(), flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
