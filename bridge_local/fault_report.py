"""The fault run's report: per job and channel its terminal events, each webhook's delivery against
what its receiver should get, the cancels' answers, the settings used, and the one verdict."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence, Sized
from dataclasses import dataclass, field
from typing import Any

from bridge_local.fault_injection import BridgeFaults
from bridge_local.fault_plan import FINAL_DELIVERY, RECEIVER_EXPECTATIONS, TERMINAL_TYPES, Events, JobPlan
from bridge_local.fault_setup import SchedulingLag


def attempt_class(attempt: dict[str, Any]) -> str:
    """Why one delivery attempt failed, in a word or two (or "2xx")."""
    code = attempt.get("status_code")
    if isinstance(code, int):
        return "2xx" if 200 <= code < 300 else f"HTTP {code // 100}xx"
    error = str(attempt.get("error") or "")
    if error.startswith("timed out"):
        return "timed out"
    if "CERTIFICATE_VERIFY_FAILED" in error or "SSL" in error or "TLS" in error:
        return "TLS"
    if error.startswith("connection failed"):
        return "refused" if "refused" in error.lower() else "connection failed"
    if error.startswith("could not attempt"):
        return "could not attempt"
    if error.startswith("refused:"):
        return "URL refused"
    return "other"


@dataclass
class Settings:
    """The settings the run's functions ran with (read from the bridge's own settings)."""

    poll_interval_s: int
    webhook_timeout_s: float
    webhook_retry_schedule: tuple[int, ...]
    outcome_check_delay_s: int
    reconcile_visibility_s: int | None = None

    @property
    def attempt_limit_ms(self) -> int:
        return int((self.webhook_timeout_s + 1) * 1000)

    @property
    def max_attempts(self) -> int:
        return len(self.webhook_retry_schedule) + 1

    def render(self) -> str:
        text = (
            f"PollIntervalSeconds {self.poll_interval_s}, WebhookTimeoutSeconds {self.webhook_timeout_s:g}, "
            f"WebhookRetrySchedule {','.join(map(str, self.webhook_retry_schedule))} "
            f"({self.max_attempts} attempts), OUTCOME_CHECK_DELAY_SECONDS {self.outcome_check_delay_s}"
        )
        if self.reconcile_visibility_s is not None:
            text += f", reconcile queue visibility {self.reconcile_visibility_s} s"
        return text

    @classmethod
    def current(cls, reconcile_visibility_s: int | None = None) -> Settings:
        from bridge.settings import OutcomeCheckSettings, PollingSettings, WebhookSendingSettings, get_settings

        sending = get_settings(WebhookSendingSettings)
        return cls(
            poll_interval_s=get_settings(PollingSettings).poll_interval_seconds,
            webhook_timeout_s=sending.webhook_timeout_seconds,
            webhook_retry_schedule=tuple(sending.webhook_retry_schedule),
            outcome_check_delay_s=get_settings(OutcomeCheckSettings).outcome_check_delay_seconds,
            reconcile_visibility_s=reconcile_visibility_s,
        )


@dataclass
class Report:
    submitted: int = 0
    accepted: list[str] = field(default_factory=list)
    refused: Counter[int] = field(default_factory=Counter)
    terminal_by_status: Counter[str] = field(default_factory=Counter)
    events_by_channel: Counter[str] = field(default_factory=Counter)
    duplicates_by_channel: Counter[str] = field(default_factory=Counter)
    lost: list[str] = field(default_factory=list)  # accepted, yet no terminal event on some channel
    not_exactly_one: list[str] = field(default_factory=list)  # more than one distinct terminal event id
    wall_s: float = 0.0
    injected: dict[str, int] = field(default_factory=dict)  # publish faults
    injected_bridge: dict[str, int] = field(default_factory=dict)  # the bridge's own faults and receivers
    settings: Settings | None = None
    # Cancels: (answer code, what it means) -> count; a cancel that got an answer it should not have.
    cancel_answers: Counter[str] = field(default_factory=Counter)
    cancel_unexpected: list[str] = field(default_factory=list)
    wrong_outcome: list[str] = field(default_factory=list)  # canceled when it should not be, or the reverse
    # Webhooks: one delivery per job with a callback, for its terminal event.
    deliveries: int = 0
    delivered: int = 0
    dead_lettered_by_cause: Counter[str] = field(default_factory=Counter)
    unfinished: list[str] = field(default_factory=list)  # left pending/retrying, or missing
    without_reason: list[str] = field(default_factory=list)  # a final row that does not say why
    by_receiver: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    receiver_mismatch: list[str] = field(default_factory=list)  # e.g. an ordinary receiver dead-lettered
    first_attempt_delivered: int = 0
    longest_attempt: dict[str, Any] | None = None
    over_time: list[str] = field(default_factory=list)  # attempts longer than the timeout + 1 s
    outcome_check_executions: Counter[str] = field(default_factory=Counter)  # by status
    scheduling_lag: SchedulingLag | None = None

    def failures(self) -> list[str]:
        failed = [] if self.accepted else ["nothing accepted"]
        checks: list[tuple[Sized, str]] = [
            (self.lost, "lost"),
            (self.not_exactly_one, "with more than one terminal event id"),
            (self.wrong_outcome, "with the wrong outcome after a cancel"),
            (self.cancel_unexpected, "unexpected cancel answers"),
            (self.unfinished, "webhooks neither delivered nor dead-lettered"),
            (self.without_reason, "final webhook rows without a reason"),
            (self.receiver_mismatch, "deliveries not as their receiver should get them"),
            (self.over_time, "attempts over their timeout + 1 s"),
        ]
        return failed + [f"{len(found)} {what}" for found, what in checks if found]

    @property
    def ok(self) -> bool:
        return not self.failures()

    def render(self) -> str:
        channels = sorted(self.events_by_channel)
        lines = [
            f"jobs submitted          {self.submitted}",
            f"accepted                {len(self.accepted)}"
            + (f"  (refused: {dict(self.refused)})" if self.refused else ""),
            "terminal by status      "
            + ", ".join(f"{status} {n}" for status, n in sorted(self.terminal_by_status.items())),
            "events per channel      "
            + ", ".join(
                f"{c} {self.events_by_channel[c]} ({self.duplicates_by_channel[c]} duplicates)" for c in channels
            ),
            f"lost jobs               {len(self.lost)}" + (f"  {self.lost[:5]}" if self.lost else ""),
            f"not exactly one event   {len(self.not_exactly_one)}"
            + (f"  {self.not_exactly_one[:5]}" if self.not_exactly_one else ""),
        ]
        if self.cancel_answers:
            lines.append(
                f"cancels                 {sum(self.cancel_answers.values())}: "
                + ", ".join(f"{answer} {n}" for answer, n in sorted(self.cancel_answers.items()))
            )
            lines.append(
                f"  wrong outcome         {len(self.wrong_outcome)}"
                + (f"  {self.wrong_outcome[:5]}" if self.wrong_outcome else "")
                + (f"; unexpected answers {self.cancel_unexpected[:5]}" if self.cancel_unexpected else "")
            )
        if self.deliveries:
            dead = sum(self.dead_lettered_by_cause.values())
            lines += [
                f"webhooks                {self.deliveries}: delivered {self.delivered} "
                f"({self.first_attempt_delivered} at the first attempt), dead-lettered {dead}, "
                f"left unfinished {len(self.unfinished)}" + (f"  {self.unfinished[:5]}" if self.unfinished else ""),
                "  dead-lettered by cause "
                + (", ".join(f"{cause} {n}" for cause, n in sorted(self.dead_lettered_by_cause.items())) or "-"),
                "  by receiver           "
                + ", ".join(
                    f"{kind} " + "/".join(f"{status} {n}" for status, n in sorted(counts.items()))
                    for kind, counts in sorted(self.by_receiver.items())
                ),
                f"  not as expected       {len(self.receiver_mismatch)}"
                + (f"  {self.receiver_mismatch[:3]}" if self.receiver_mismatch else "")
                + (f"; rows without a reason {self.without_reason[:3]}" if self.without_reason else ""),
            ]
            if self.longest_attempt is not None and self.settings is not None:
                longest = self.longest_attempt
                lines.append(
                    f"longest attempt         {longest['latency_ms']} ms ({longest['receiver']}: "
                    f"{longest['error'] or longest['status_code']}); timeout "
                    f"{self.settings.webhook_timeout_s:g} s, limit {self.settings.attempt_limit_ms} ms plus the longest stall, "
                    f"over it {len(self.over_time)}" + (f"  {self.over_time[:3]}" if self.over_time else "")
                )
        lines.append(
            f"published by the check  {self.outcome_check_executions.get('SUCCEEDED', 0)} outcomes "
            f"(executions <task>--outcome-<n>: {dict(sorted(self.outcome_check_executions.items()))})"
        )
        lines.append(f"injected publish faults {sum(self.injected.values())}  {dict(sorted(self.injected.items()))}")
        if self.injected_bridge:
            lines.append(f"injected bridge faults  {sum(self.injected_bridge.values())}")
            lines += [f"  {kind:<58} {n}" for kind, n in sorted(self.injected_bridge.items())]
        if self.settings is not None:
            lines.append(f"settings                {self.settings.render()}")
        if self.scheduling_lag is not None:
            lines.append(f"scheduling lag          {self.scheduling_lag.render()}")
        lines.append(f"wall time               {self.wall_s:.1f} s")
        failures = self.failures()
        lines.append(
            "result                  "
            + (
                "OK: 0 lost, exactly one terminal event per job per channel"
                + (
                    ", every webhook delivered or dead-lettered with its reason, no attempt over its timeout + 1 s"
                    if self.deliveries
                    else ""
                )
                if not failures
                else "FAILED: " + "; ".join(failures)
            )
        )
        return "\n".join(lines)


def tally(report: Report, events_for: Callable[[str], Events], channels: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Count terminal events per job and channel; return each job's one terminal event (if it has one)."""
    terminal_event: dict[str, dict[str, Any]] = {}
    for task_id in report.accepted:
        seen = events_for(task_id)
        statuses = set()
        for channel in channels:
            terminal = [e for e in seen.get(channel, []) if (e.get("event") or {}).get("type") in TERMINAL_TYPES]
            ids = {e["event"]["id"] for e in terminal}
            report.events_by_channel[channel] += len(terminal)
            report.duplicates_by_channel[channel] += len(terminal) - len(ids)
            if not ids:
                report.lost.append(task_id)
                break
            if len(ids) > 1:
                report.not_exactly_one.append(task_id)
            statuses.update(e["event"]["data"]["status"] for e in terminal)
            terminal_event.setdefault(task_id, terminal[0]["event"])
        else:
            report.terminal_by_status[",".join(sorted(statuses))] += 1
    return terminal_event


def tally_deliveries(
    report: Report,
    rows_of: dict[str, list[dict[str, Any]]],
    receiver_of: dict[str, str],
    terminal_event: dict[str, dict[str, Any]],
    settings: Settings,
) -> None:
    """Each job with a callback: its terminal event's delivery, final, saying why, as its receiver should get it."""
    for task_id, kind in receiver_of.items():
        report.deliveries += 1
        event = terminal_event.get(task_id)
        rows = [r for r in rows_of.get(task_id, []) if event is not None and r["event_id"] == event["id"]]
        if not rows:
            report.unfinished.append(f"{task_id}: no delivery of its terminal event")
            continue
        row = rows[0]
        status = row["status"]
        attempts = row.get("attempts") or []
        report.by_receiver[kind][status] += 1
        for attempt in attempts:
            if report.longest_attempt is None or attempt["latency_ms"] > report.longest_attempt["latency_ms"]:
                report.longest_attempt = attempt | {"receiver": kind}
            # An attempt in flight while the whole process stalled (a full collection of the shared
            # heap) is late by that stall, which a deployed function, alone in its process, never sees.
            stall_ms = report.scheduling_lag.longest_stall_ms() if report.scheduling_lag else 0
            if attempt["latency_ms"] > settings.attempt_limit_ms + stall_ms:
                report.over_time.append(f"{task_id} ({kind}): attempt {attempt['attempt']} {attempt['latency_ms']} ms")
        if status not in FINAL_DELIVERY:
            report.unfinished.append(f"{task_id} ({kind}): {status}")
            continue
        last = attempts[-1] if attempts else {}
        if status == "delivered":
            report.delivered += 1
            report.first_attempt_delivered += int(len(attempts) == 1)
            if attempt_class(last) != "2xx":
                report.without_reason.append(f"{task_id}: delivered without a 2xx attempt")
        elif status == "dead_lettered":
            reason = row.get("dead_letter_reason")
            report.dead_lettered_by_cause[f"{reason} / {attempt_class(last)}"] += 1
            if not reason or not last.get("error"):
                report.without_reason.append(f"{task_id}: dead-lettered, reason {reason!r}, last error {last}")
        expected_status, expected_class = RECEIVER_EXPECTATIONS[kind]
        if status != expected_status:
            report.receiver_mismatch.append(f"{task_id} ({kind}): {status}, expected {expected_status}")
        elif expected_class is not None:
            classes = {attempt_class(a) for a in attempts}
            if classes != {expected_class} or len(attempts) != settings.max_attempts:
                report.receiver_mismatch.append(
                    f"{task_id} ({kind}): {len(attempts)} attempts of {sorted(classes)}, expected "
                    f"{settings.max_attempts} of {expected_class}"
                )


def tally_cancels(
    report: Report,
    cancels: dict[str, tuple[JobPlan, int]],
    terminal_event: dict[str, dict[str, Any]],
    bridge_faults: BridgeFaults | None,
) -> None:
    for task_id, (_plan, code) in cancels.items():
        faulted = bridge_faults is not None and bridge_faults.cancel_was_faulted(task_id)
        event = terminal_event.get(task_id)
        outcome = event["data"]["status"] if event else None
        if code == 200:
            report.cancel_answers["200 canceled"] += 1
            should_be_canceled: bool | None = True
        elif code == 409:
            report.cancel_answers["409 already ended"] += 1
            should_be_canceled = False
        elif code >= 500 and faulted:
            report.cancel_answers[f"{code} api died before the publish (injected)"] += 1
            should_be_canceled = True
        else:
            report.cancel_answers[f"{code} unexpected"] += 1
            report.cancel_unexpected.append(f"{task_id}: {code}")
            should_be_canceled = None
        if outcome is not None and should_be_canceled is not None and (outcome == "canceled") != should_be_canceled:
            report.wrong_outcome.append(f"{task_id}: cancel answered {code}, outcome {outcome}")
