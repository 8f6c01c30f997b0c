"""Local alarm evaluation: the template's CloudWatch alarms judged against the emulated CloudWatch.

Owns deciding each alarm's state and changing it as CloudWatch does. An alarm on a single metric
(MetricName, Namespace, Dimensions, Statistic, Period, EvaluationPeriods, DatapointsToAlarm,
Threshold, ComparisonOperator, TreatMissingData, Unit) is evaluated over its last
EvaluationPeriods periods, the newest ending at the evaluation; on a change of state its state is
set (`set_alarm_state`) and CloudWatch's notification goes to each SNS topic among the new state's
actions (`alarm_notifications`). `LocalAlarms` does that for a deployed stack every `interval_s`
on a thread and on demand (`evaluate_now()`), first draining the metric sink and sampling SQS's
queue depths, so what happened before the call counts.

Datapoints come from `get_metric_data`, which in moto matches dimensions exactly, as CloudWatch
does (moto's `get_metric_statistics` also counts metrics with more dimensions than the alarm's: an
alarm could fire here and never on AWS). It skips the namespace: `list_metrics` checks that the
metric is in the alarm's (the same name and dimensions in another namespace would still add up).

Not evaluated (skipped, with the reason logged and kept in `skipped`): metric math alarms
(`Metrics`), percentile statistics (`ExtendedStatistic`) and anomaly detection bands. No
AWS/Lambda or AWS/States metric is published locally, so alarms on those never see data. Periods
slide with the evaluation instead of CloudWatch's minute-aligned ones.
"""

from __future__ import annotations

import json
import logging
import operator
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from bridge_local.alarm_notifications import AlarmInbox, notification, publish, reason
from bridge_local.cfn.stack import DeployedStack
from bridge_local.emulator import EmbeddedAws
from bridge_local.http_server import Service
from bridge_local.metric_sink import MetricSink
from bridge_local.queue_metrics import sample_queue_depths

log = logging.getLogger(__name__)

COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanOrEqualToThreshold": operator.ge,
    "GreaterThanThreshold": operator.gt,
    "LessThanThreshold": operator.lt,
    "LessThanOrEqualToThreshold": operator.le,
}
STATISTICS = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")
Values = Sequence[float | None]  # one per evaluation period, oldest first; None: no datapoint


def unsupported(alarm: Mapping[str, Any]) -> str | None:
    """Why this alarm is not evaluated locally, or None if it is."""
    if alarm.get("Metrics"):
        return "metric math alarm (Metrics): not evaluated locally"
    if alarm.get("ExtendedStatistic") or alarm.get("Statistic") not in STATISTICS:
        return f"statistic {alarm.get('ExtendedStatistic') or alarm.get('Statistic')}: not evaluated locally"
    if alarm.get("ComparisonOperator") not in COMPARISONS:
        return f"{alarm.get('ComparisonOperator')} (anomaly detection): not evaluated locally"
    return None


def breaching_count(alarm: Mapping[str, Any], values: Values) -> int:
    """How many of the datapoints cross the threshold."""
    compare, threshold = COMPARISONS[alarm["ComparisonOperator"]], float(alarm["Threshold"])
    return sum(1 for value in values if value is not None and compare(value, threshold))


def decide(alarm: Mapping[str, Any], values: Values) -> str | None:
    """The state `values` put the alarm in, or None to keep its state (TreatMissingData=ignore, no data)."""
    treat = alarm.get("TreatMissingData") or "missing"
    needed = int(alarm.get("DatapointsToAlarm") or alarm["EvaluationPeriods"])
    present = [value for value in values if value is not None]
    if not present and treat in ("missing", "ignore"):
        return None if treat == "ignore" else "INSUFFICIENT_DATA"
    breaching = breaching_count(alarm, values)
    if treat == "breaching":
        breaching += len(values) - len(present)
    return "ALARM" if breaching >= needed else "OK"


class AlarmEvaluator:
    """Evaluates the named alarms through boto3 clients of CloudWatch and SNS, one evaluation at a time."""

    def __init__(
        self, cloudwatch: Any, sns: Any, alarm_names: Iterable[str], before: Callable[[], None] | None = None
    ) -> None:
        self.cloudwatch, self.sns = cloudwatch, sns
        self.alarm_names = tuple(alarm_names)
        self.before = before  # runs first in every evaluation (drain the sink, sample the queues)
        self.skipped: dict[str, str] = {}  # alarm name → why it is not evaluated
        self.notifications: list[dict[str, Any]] = []  # every message published, oldest first
        self._lock = threading.Lock()

    def evaluate_now(self, at: datetime | None = None) -> list[str]:
        """Evaluate every alarm as of `at` (now); return the names of those now in ALARM."""
        with self._lock:
            if self.before is not None:
                self.before()
            now = at or datetime.now(UTC)
            states = {alarm["AlarmName"]: self._evaluate(alarm, now) for alarm in self.describe()}
            return sorted(name for name, state in states.items() if state == "ALARM")

    def describe(self) -> list[dict[str, Any]]:
        """The alarms as CloudWatch has them now (DescribeAlarms takes 100 names a call)."""
        batches = [list(self.alarm_names[n : n + 100]) for n in range(0, len(self.alarm_names), 100)]
        return [
            alarm for names in batches for alarm in self.cloudwatch.describe_alarms(AlarmNames=names)["MetricAlarms"]
        ]

    def _exists(self, alarm: Mapping[str, Any]) -> bool:
        """Whether the alarm's metric, with exactly its dimensions, is in its namespace."""
        dimensions = alarm.get("Dimensions", [])
        wanted = {(d["Name"], d["Value"]) for d in dimensions}
        pages = self.cloudwatch.get_paginator("list_metrics").paginate(
            Namespace=alarm["Namespace"], MetricName=alarm["MetricName"], Dimensions=dimensions
        )
        return any(
            {(d["Name"], d["Value"]) for d in metric.get("Dimensions", [])} == wanted
            for page in pages
            for metric in page["Metrics"]
        )

    def _values(self, alarm: Mapping[str, Any], now: datetime) -> tuple[list[float | None], list[datetime]]:
        period, count = int(alarm["Period"]), int(alarm["EvaluationPeriods"])
        # Whole seconds (moto drops the fraction), rounded up: a datapoint of this very second counts.
        end = (now.astimezone(UTC) + timedelta(seconds=1)).replace(microsecond=0)
        starts = [end - timedelta(seconds=period * (count - n)) for n in range(count)]
        if not self._exists(alarm):
            return [None] * count, starts
        stat: dict[str, Any] = {
            "Metric": {k: alarm[k] for k in ("Namespace", "MetricName", "Dimensions") if k in alarm},
            "Period": period,
            "Stat": alarm["Statistic"],
        }
        if alarm.get("Unit"):
            stat["Unit"] = alarm["Unit"]
        answer = self.cloudwatch.get_metric_data(
            MetricDataQueries=[{"Id": "m", "MetricStat": stat, "ReturnData": True}], StartTime=starts[0], EndTime=end
        )
        values: list[float | None] = [None] * count
        for result in answer["MetricDataResults"]:
            for timestamp, value in zip(result["Timestamps"], result["Values"], strict=True):
                index = int((timestamp - starts[0]).total_seconds() // period)
                if 0 <= index < count:
                    values[index] = float(value)
        return values, starts

    def _evaluate(self, alarm: Mapping[str, Any], now: datetime) -> str:
        """Evaluate one alarm (or skip it); change its state if it changed; return its state."""
        why_not = unsupported(alarm)
        if why_not is not None:
            if alarm["AlarmName"] not in self.skipped:
                log.info("alarm %s skipped: %s", alarm["AlarmName"], why_not)
            self.skipped[alarm["AlarmName"]] = why_not
            return str(alarm["StateValue"])
        values, starts = self._values(alarm, now)
        old, new = alarm["StateValue"], decide(alarm, values)
        if new is None or new == old:
            return old
        points = [(start, value) for start, value in zip(starts, values, strict=True) if value is not None]
        why = reason(alarm, points, len(values), breaching_count(alarm, values), old, new)
        data = {
            "version": "1.0",
            "queryDate": now.isoformat(),
            "startDate": starts[0].isoformat(),
            "statistic": alarm["Statistic"],
            "period": int(alarm["Period"]),
            "recentDatapoints": [value for _, value in points],
            "threshold": float(alarm["Threshold"]),
        }
        self.cloudwatch.set_alarm_state(
            AlarmName=alarm["AlarmName"], StateValue=new, StateReason=why[:1023], StateReasonData=json.dumps(data)
        )
        message = notification(alarm, old, new, why, now)
        topics = publish(self.sns, alarm, message)
        self.notifications.append(message)
        print(f"[alarm] {alarm['AlarmName']} {old} -> {new} (notified {len(topics)} topics): {why}", file=sys.stderr)
        return new


class LocalAlarms(Service):
    """The deployed stack's alarms, evaluated every `interval_s` (0: only on demand) and on demand."""

    live: ClassVar[list[LocalAlarms]] = []

    def __init__(
        self, aws: EmbeddedAws, stack: DeployedStack, sink: MetricSink | None = None, interval_s: float = 5.0
    ) -> None:
        self.stack, self.sink, self.interval_s = stack, sink, interval_s
        resources = stack.template.get("Resources", {})
        self.names = {  # logical id → alarm name
            logical_id: stack.resources[logical_id]
            for logical_id, resource in resources.items()
            if resource.get("Type") == "AWS::CloudWatch::Alarm" and logical_id in stack.resources
        }
        self._cloudwatch, self._sqs = aws.client("cloudwatch"), aws.client("sqs")
        self.evaluator = AlarmEvaluator(self._cloudwatch, aws.client("sns"), self.names.values(), before=self._gather)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> LocalAlarms:
        if self._thread is None and self not in LocalAlarms.live:
            LocalAlarms.live.append(self)
            if self.interval_s > 0:
                self._thread = threading.Thread(target=self._run, name="alarm-evaluator", daemon=True)
                self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        if self in LocalAlarms.live:
            LocalAlarms.live.remove(self)

    def evaluate_now(self) -> list[str]:
        """Drain the metric sink, sample the queues, evaluate every alarm; the names now in ALARM."""
        return self.evaluator.evaluate_now()

    def name_of(self, alarm: str) -> str:
        """The alarm's name, from its logical id in the template (or its name)."""
        return self.names.get(alarm, alarm)

    def state(self, alarm: str) -> str:
        """The alarm's state in CloudWatch (`alarm`: logical id or name)."""
        found = self._cloudwatch.describe_alarms(AlarmNames=[self.name_of(alarm)])["MetricAlarms"]
        return str(found[0]["StateValue"])

    def inbox(self) -> AlarmInbox:
        """A queue subscribed to every SNS topic the alarms notify (start it, or use it as `with`)."""
        topics = {
            action
            for alarm in self.evaluator.describe()
            for key in ("AlarmActions", "OKActions", "InsufficientDataActions")
            for action in alarm.get(key, [])
            if action.startswith("arn:aws:sns:")
        }
        return AlarmInbox(self._sqs, self.evaluator.sns, sorted(topics))

    def _gather(self) -> None:
        if self.sink is not None:
            self.sink.flush()
        sample_queue_depths(self._sqs, self._cloudwatch, self.stack.queue_urls.values())

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.evaluate_now()
            except Exception as exc:  # keep evaluating through a local hiccup
                if not self._stop.is_set():
                    print(f"[alarms] evaluation failed: {type(exc).__name__}: {exc}", file=sys.stderr)


def alarms_of(stack: DeployedStack) -> LocalAlarms:
    """The running alarm evaluator of a deployed stack (for code that holds the stack, not the RunningStack)."""
    for alarms in reversed(LocalAlarms.live):
        if alarms.stack is stack:
            return alarms
    raise LookupError(f"no alarm evaluator runs for stack {stack.stack_name}")
