"""CloudWatch's part of the local stack: the handlers' metrics reach the emulated CloudWatch, and a
template alarm fires, changes state and notifies the alarm topic as it would on AWS."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bridge_local.alarms import LocalAlarms, alarms_of
from bridge_local.queue_metrics import queue_name

from .conftest import LocalBridge
from .test_webhooks import submit_with_callback

pytestmark = pytest.mark.integration

SERVICE = [{"Name": "service", "Value": "video-bridge"}]


@pytest.fixture
def alarms(bridge: LocalBridge) -> LocalAlarms:
    return alarms_of(bridge.stack)


def statistic(bridge: LocalBridge, namespace: str, metric: str, dimensions: Any, stat: str, since: datetime) -> float:
    """The metric's `stat` since `since` (0.0 without data), exactly in `namespace`."""
    end = datetime.now(UTC) + timedelta(seconds=1)
    answer = bridge.aws.client("cloudwatch").get_metric_statistics(
        Namespace=namespace,
        MetricName=metric,
        Dimensions=dimensions,
        StartTime=since,
        EndTime=end,
        Period=int((end - since).total_seconds()) + 60,
        Statistics=[stat],
    )
    return float(sum(point[stat] for point in answer["Datapoints"]))


def test_a_handlers_metrics_reach_the_emulated_cloudwatch(bridge: LocalBridge, alarms: LocalAlarms) -> None:
    since = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    alarms.evaluate_now()  # drains the sink: what earlier tests emitted is in
    before = statistic(bridge, "VideoBridge", "JobsSubmitted", SERVICE, "Sum", since)

    response = bridge.submit(run_s=1.0, queue_s=0.2)
    assert response.status_code == 202, response.text
    alarms.evaluate_now()

    # The api handler's EMF, with the template's namespace and Powertools' service dimension.
    assert statistic(bridge, "VideoBridge", "JobsSubmitted", SERVICE, "Sum", since) >= before + 1
    assert statistic(bridge, "VideoBridgeTests", "JobsSubmitted", SERVICE, "Sum", since) == 0


def test_webhook_dead_letters_alarm_fires_and_notifies_the_alarm_topic(
    bridge: LocalBridge, alarms: LocalAlarms
) -> None:
    name = alarms.name_of("WebhookDeadLettersAlarm")
    dead_letters = bridge.stack.queue_urls["WebhookDeadLetterQueue"]
    dimensions = [{"Name": "QueueName", "Value": queue_name(dead_letters)}]
    cloudwatch, sqs = bridge.aws.client("cloudwatch"), bridge.aws.client("sqs")

    with alarms.inbox() as inbox:
        # The session stack is shared: start from OK, as after an operator's reset. Unless an earlier
        # test's dead letter still counts in the alarm's 5-minute window, the alarm stays quiet.
        cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="test: start from OK")
        alarms.evaluate_now()  # samples the queue now
        since = datetime.now(UTC) - timedelta(seconds=300)
        if statistic(bridge, "AWS/SQS", "ApproximateNumberOfMessagesVisible", dimensions, "Maximum", since) == 0:
            assert name not in alarms.evaluate_now()
            assert alarms.state("WebhookDeadLettersAlarm") == "OK"

        task_id = submit_with_callback(bridge, "/hooks/alarm-down", query="?status=500")
        delivery = bridge.wait_for_delivery_status(task_id, "dead_lettered", timeout=60)
        assert delivery["dead_letter_reason"] == "retries_exhausted"

        assert name in alarms.evaluate_now()
        assert alarms.state("WebhookDeadLettersAlarm") == "ALARM"
        message = inbox.wait_for(name, "ALARM")

    assert message["AlarmActions"] == [bridge.stack.resources["AlarmTopic"]]
    assert message["OldStateValue"] == "OK"
    assert message["NewStateReason"].startswith("Threshold Crossed: 1 out of the last 1 datapoints [")
    assert message["Subject"] == f'ALARM: "{name}" in US East (N. Virginia)'
    trigger = message["Trigger"]
    assert (trigger["Namespace"], trigger["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert trigger["Dimensions"] == [{"value": queue_name(dead_letters), "name": "QueueName"}]
    assert trigger["Statistic"] == "MAXIMUM" and trigger["TreatMissingData"] == "notBreaching"

    # Leave the queue as found: take this test's dead letter out again.
    def taken() -> bool:
        for received in sqs.receive_message(QueueUrl=dead_letters, MaxNumberOfMessages=10).get("Messages", []):
            if json.loads(received["Body"]).get("event_id") == delivery["event_id"]:
                sqs.delete_message(QueueUrl=dead_letters, ReceiptHandle=received["ReceiptHandle"])
                return True
        return False

    bridge.wait_until(taken, 10, "this test's dead letter taken out")
