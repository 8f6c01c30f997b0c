"""What CloudWatch sends an alarm's SNS topics when its state changes, and a way to read it locally.

`notification()` builds the JSON message CloudWatch publishes (AlarmName, NewStateValue,
NewStateReason as `reason()` words it, OldStateValue, StateChangeTime, Trigger, ...) and
`subject()` its subject line;
`publish()` sends both to every SNS topic among the actions of the new state. `AlarmInbox`
subscribes a queue of its own to alarm topics, as an operator's email or pager subscription
would, and hands back the notifications that arrive there.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from bridge_local.http_server import Service

REGION_NAMES = {
    "us-east-1": "US East (N. Virginia)",
    "us-east-2": "US East (Ohio)",
    "us-west-2": "US West (Oregon)",
    "eu-west-1": "Europe (Ireland)",
    "eu-central-1": "Europe (Frankfurt)",
}
COMPARISON_WORDS = {
    "GreaterThanOrEqualToThreshold": "greater than or equal to",
    "GreaterThanThreshold": "greater than",
    "LessThanThreshold": "less than",
    "LessThanOrEqualToThreshold": "less than or equal to",
}
ACTIONS_OF_STATE = {"ALARM": "AlarmActions", "OK": "OKActions", "INSUFFICIENT_DATA": "InsufficientDataActions"}


def _timestamp(when: datetime) -> str:
    """CloudWatch's notification timestamps: 2024-05-12T10:15:03.123+0000."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


def _region_of(alarm_arn: str) -> str:
    return alarm_arn.split(":")[3]


def subject(alarm_name: str, new_state: str, alarm_arn: str) -> str:
    region = _region_of(alarm_arn)
    return f'{new_state}: "{alarm_name}" in {REGION_NAMES.get(region, region)}'[:100]  # SNS's limit


def reason(
    alarm: Mapping[str, Any],
    points: Sequence[tuple[datetime, float]],
    periods: int,
    breaching: int,
    old_state: str,
    new_state: str,
) -> str:
    """CloudWatch's NewStateReason, in its words (`points`: each period's start and datapoint)."""
    words = COMPARISON_WORDS.get(alarm["ComparisonOperator"], alarm["ComparisonOperator"])
    threshold = float(alarm["Threshold"])
    listed = ", ".join(f"{value} ({start:%d/%m/%y %H:%M:%S})" for start, value in points)
    if new_state == "INSUFFICIENT_DATA":
        return f"Insufficient Data: {periods} datapoints were unknown."
    if not points:
        treated = "Breaching" if new_state == "ALARM" else "NonBreaching"
        return (
            f"Threshold Crossed: no datapoints were received for {periods} periods and {periods} missing "
            f"datapoints were treated as [{treated}]."
        )
    if new_state == "ALARM":
        needed = int(alarm.get("DatapointsToAlarm") or alarm["EvaluationPeriods"])
        return (
            f"Threshold Crossed: {breaching} out of the last {periods} datapoints [{listed}] was {words} the "
            f"threshold ({threshold}) (minimum {needed} datapoint for {old_state} -> ALARM transition)."
        )
    return f"Threshold Crossed: {len(points)} datapoints [{listed}] was not {words} the threshold ({threshold})."


def notification(
    alarm: Mapping[str, Any], old_state: str, new_state: str, reason: str, when: datetime
) -> dict[str, Any]:
    """The message CloudWatch publishes for a single-metric alarm (`alarm` as DescribeAlarms gives it)."""
    arn = alarm["AlarmArn"]
    updated = alarm.get("AlarmConfigurationUpdatedTimestamp")
    return {
        "AlarmName": alarm["AlarmName"],
        "AlarmDescription": alarm.get("AlarmDescription"),
        "AWSAccountId": arn.split(":")[4],
        "AlarmConfigurationUpdatedTimestamp": _timestamp(updated) if isinstance(updated, datetime) else None,
        "NewStateValue": new_state,
        "NewStateReason": reason,
        "StateChangeTime": _timestamp(when),
        "Region": REGION_NAMES.get(_region_of(arn), _region_of(arn)),
        "AlarmArn": arn,
        "OldStateValue": old_state,
        "OKActions": list(alarm.get("OKActions", [])),
        "AlarmActions": list(alarm.get("AlarmActions", [])),
        "InsufficientDataActions": list(alarm.get("InsufficientDataActions", [])),
        "Trigger": {
            "MetricName": alarm.get("MetricName"),
            "Namespace": alarm.get("Namespace"),
            "StatisticType": "Statistic",
            "Statistic": str(alarm.get("Statistic", "")).upper(),
            "Unit": alarm.get("Unit"),
            "Dimensions": [{"value": d["Value"], "name": d["Name"]} for d in alarm.get("Dimensions", [])],
            "Period": alarm.get("Period"),
            "EvaluationPeriods": alarm.get("EvaluationPeriods"),
            "DatapointsToAlarm": alarm.get("DatapointsToAlarm", alarm.get("EvaluationPeriods")),
            "ComparisonOperator": alarm.get("ComparisonOperator"),
            "Threshold": alarm.get("Threshold"),
            "TreatMissingData": alarm.get("TreatMissingData", "missing"),
            "EvaluateLowSampleCountPercentile": "",
        },
    }


def publish(sns: Any, alarm: Mapping[str, Any], message: Mapping[str, Any]) -> list[str]:
    """Send `message` to each SNS topic among the actions of its new state; return those topics.

    Nothing is sent when the alarm's actions are disabled; actions that are no SNS topic (Auto
    Scaling, EC2, Systems Manager) are not emulated and only named on stderr.
    """
    if not alarm.get("ActionsEnabled", True):
        return []
    new_state = message["NewStateValue"]
    sent = []
    for action in alarm.get(ACTIONS_OF_STATE[new_state], []):
        if not action.startswith("arn:aws:sns:"):
            print(f"[alarm] {alarm['AlarmName']}: action {action} is not emulated", file=sys.stderr)
            continue
        sns.publish(
            TopicArn=action,
            Subject=subject(alarm["AlarmName"], new_state, alarm["AlarmArn"]),
            Message=json.dumps(message),
        )
        sent.append(action)
    return sent


class AlarmInbox(Service):
    """A queue subscribed to alarm topics: what an email or pager subscription would receive."""

    def __init__(self, sqs: Any, sns: Any, topic_arns: Iterable[str]) -> None:
        self.sqs, self.sns = sqs, sns
        self.topic_arns = tuple(topic_arns)
        self.queue_url = ""
        self._subscriptions: list[str] = []
        self.received: list[dict[str, Any]] = []  # every notification read so far, oldest first

    def start(self) -> AlarmInbox:
        if self.queue_url:
            return self
        self.queue_url = self.sqs.create_queue(QueueName=f"alarm-inbox-{uuid.uuid4().hex[:12]}")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"]
        for topic in self.topic_arns:
            answer = self.sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn["QueueArn"])
            self._subscriptions.append(answer["SubscriptionArn"])
        return self

    def stop(self) -> None:
        for subscription in self._subscriptions:
            self.sns.unsubscribe(SubscriptionArn=subscription)
        self._subscriptions.clear()
        if self.queue_url:
            self.sqs.delete_queue(QueueUrl=self.queue_url)
            self.queue_url = ""

    def read(self, wait_s: int = 0) -> list[dict[str, Any]]:
        """The notifications that arrived since the last read (each with its SNS `Subject` added)."""
        answer = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_s)
        new = []
        for message in answer.get("Messages", []):
            envelope = json.loads(message["Body"])
            new.append(json.loads(envelope["Message"]) | {"Subject": envelope.get("Subject")})
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        self.received.extend(new)
        return new

    def wait_for(self, alarm_name: str, state: str = "ALARM", timeout: float = 10.0) -> dict[str, Any]:
        """The first notification of `alarm_name` entering `state` (raises AssertionError on timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            for message in self.received:
                if message["AlarmName"] == alarm_name and message["NewStateValue"] == state:
                    return message
            if time.monotonic() > deadline:
                seen = [(m["AlarmName"], m["NewStateValue"]) for m in self.received]
                raise AssertionError(f"no {state} notification of {alarm_name} after {timeout}s; got {seen}")
            self.read(wait_s=1)
