"""The local metric sink and alarm evaluator on an embedded AWS of their own: Powertools' EMF output
reaches CloudWatch, and an alarm changes state, and notifies its topic, as CloudWatch's would."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

from bridge_local.alarm_notifications import AlarmInbox
from bridge_local.alarms import AlarmEvaluator, decide
from bridge_local.emulator import EmbeddedAws
from bridge_local.metric_sink import MetricSink, emf_document, metric_data
from bridge_local.testing import environ_restored


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmbeddedAws]:
    # moto's state is process-global: every test below uses names of its own.
    with environ_restored(), EmbeddedAws() as embedded:
        yield embedded


@pytest.fixture
def namespace() -> str:
    # A metric name of its own too: moto's get_metric_data (which the evaluator reads) does not
    # tell namespaces apart, so metrics of two tests must differ in name or dimensions.
    return f"Test{uuid.uuid4().hex[:10]}"


@pytest.fixture
def topic(emulator: EmbeddedAws) -> str:
    return str(emulator.client("sns").create_topic(Name=f"alarms-{uuid.uuid4().hex[:10]}")["TopicArn"])


@pytest.fixture
def inbox(emulator: EmbeddedAws, topic: str) -> Iterator[AlarmInbox]:
    with AlarmInbox(emulator.client("sqs"), emulator.client("sns"), [topic]) as started:
        yield started


def put_alarm(emulator: EmbeddedAws, namespace: str, topic: str, **overrides: Any) -> str:
    """An alarm shaped like the template's OutcomesPublishedBySweepAlarm."""
    name = f"alarm-{uuid.uuid4().hex[:10]}"
    spec: dict[str, Any] = {
        "Namespace": namespace,
        "MetricName": f"Failures{namespace}",
        "Dimensions": [{"Name": "service", "Value": "video-bridge"}],
        "Statistic": "Sum",
        "Period": 300,
        "EvaluationPeriods": 1,
        "Threshold": 1.0,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "TreatMissingData": "notBreaching",
        "AlarmActions": [topic],
    }
    emulator.client("cloudwatch").put_metric_alarm(AlarmName=name, **(spec | overrides))
    return name


def put_value(emulator: EmbeddedAws, namespace: str, value: float, **dimensions: str) -> None:
    emulator.client("cloudwatch").put_metric_data(
        Namespace=namespace,
        MetricData=[
            {
                "MetricName": f"Failures{namespace}",
                "Dimensions": [{"Name": k, "Value": v} for k, v in ({"service": "video-bridge"} | dimensions).items()],
                "Timestamp": datetime.now(UTC) - timedelta(seconds=2),
                "Value": value,
                "Unit": "Count",
            }
        ],
    )


def evaluator(emulator: EmbeddedAws, *names: str) -> AlarmEvaluator:
    return AlarmEvaluator(emulator.client("cloudwatch"), emulator.client("sns"), names)


def state_of(emulator: EmbeddedAws, name: str) -> str:
    return str(emulator.client("cloudwatch").describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["StateValue"])


ALARM = {"ComparisonOperator": "GreaterThanOrEqualToThreshold", "Threshold": 1, "EvaluationPeriods": 3}


@pytest.mark.parametrize(
    ("overrides", "values", "state"),
    [
        ({}, [0.0, 1.0, 2.0], "OK"),  # 3 of 3 needed
        ({}, [1.0, 1.0, 5.0], "ALARM"),
        ({"DatapointsToAlarm": 2}, [None, 1.0, 1.0], "ALARM"),
        ({"DatapointsToAlarm": 2}, [None, None, 1.0], "OK"),
        ({"TreatMissingData": "breaching"}, [None, 1.0, None], "ALARM"),
        ({"TreatMissingData": "notBreaching"}, [None, None, None], "OK"),
        ({"TreatMissingData": "missing"}, [None, None, None], "INSUFFICIENT_DATA"),
        ({}, [None, None, None], "INSUFFICIENT_DATA"),  # missing is the default
        ({"TreatMissingData": "ignore"}, [None, None, None], None),  # the state stays
        ({"ComparisonOperator": "LessThanThreshold", "TreatMissingData": "breaching"}, [0.0, 0.5, None], "ALARM"),
        ({"ComparisonOperator": "GreaterThanThreshold"}, [1.0, 1.0, 1.0], "OK"),
    ],
)
def test_decide_follows_cloudwatch_rules(overrides: dict[str, Any], values: list[float | None], state: str) -> None:
    assert decide(ALARM | overrides, values) == state


def test_an_emf_document_becomes_one_metric_per_dimension_set() -> None:
    provider = AmazonCloudWatchEMFProvider(namespace="VideoBridge", service="video-bridge")
    provider.add_metric(name="JobsSubmitted", unit="Count", value=1)
    provider.add_metric(name="JobsSubmitted", unit="Count", value=2)
    provider.add_metric(name="Latency", unit="Milliseconds", value=12.5, resolution=1)
    provider.add_dimensions(route="submit")
    when = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    provider.set_timestamp(when)
    document = emf_document(json.dumps(provider.serialize_metric_set()))
    assert document is not None and emf_document("[INFO] not a metric") is None

    [(namespace, data)] = metric_data(document)
    assert namespace == "VideoBridge"
    by_key = {(d["MetricName"], tuple(x["Name"] for x in d["Dimensions"])): d for d in data}
    assert set(by_key) == {
        ("JobsSubmitted", ("service",)),
        ("JobsSubmitted", ("route",)),  # Powertools' extra set: its own keys only
        ("Latency", ("service",)),
        ("Latency", ("route",)),
    }
    submitted = by_key[("JobsSubmitted", ("service",))]
    assert submitted["Values"] == [1.0, 2.0] and submitted["Unit"] == "Count"
    assert submitted["Timestamp"] == when
    assert by_key[("Latency", ("service",))]["StorageResolution"] == 1


def test_a_handlers_flushed_metrics_reach_cloudwatch_not_stdout(
    emulator: EmbeddedAws, namespace: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")  # as in a deployed function
    # A provider of its own: Metrics() alone shares its pending set with every Metrics in the process.
    metrics = Metrics(provider=AmazonCloudWatchEMFProvider(namespace=namespace, service="video-bridge"))

    @metrics.log_metrics
    def handler(event: dict[str, Any], context: Any) -> None:
        metrics.add_metric(name="Failures", unit="Count", value=event["failures"])

    with MetricSink(emulator.client("cloudwatch")) as sink:
        handler({"failures": 2}, None)
        handler({"failures": 3}, None)
        sink.flush()
        assert sink.failures == 0
    assert namespace not in capsys.readouterr().out

    end = datetime.now(UTC) + timedelta(seconds=1)
    answer = emulator.client("cloudwatch").get_metric_statistics(
        Namespace=namespace,
        MetricName="Failures",
        Dimensions=[{"Name": "service", "Value": "video-bridge"}],
        StartTime=end - timedelta(minutes=5),
        EndTime=end,
        Period=300,
        Statistics=["Sum", "SampleCount"],
    )
    [point] = answer["Datapoints"]
    assert (point["Sum"], point["SampleCount"], point["Unit"]) == (5.0, 2.0, "Count")


def test_an_alarm_fires_once_notifies_its_topic_and_recovers(
    emulator: EmbeddedAws, namespace: str, topic: str, inbox: AlarmInbox
) -> None:
    name = put_alarm(emulator, namespace, topic, AlarmDescription="failures happened")
    alarms = evaluator(emulator, name)
    assert alarms.evaluate_now() == []
    assert state_of(emulator, name) == "OK" and inbox.read() == []

    put_value(emulator, namespace, 2.0)
    assert alarms.evaluate_now() == [name]
    assert state_of(emulator, name) == "ALARM"
    message = inbox.wait_for(name, "ALARM")
    assert message["Subject"] == f'ALARM: "{name}" in US East (N. Virginia)'
    assert (message["OldStateValue"], message["NewStateValue"]) == ("OK", "ALARM")
    assert message["AlarmDescription"] == "failures happened" and message["AlarmActions"] == [topic]
    assert message["NewStateReason"].startswith("Threshold Crossed: 1 out of the last 1 datapoints [2.0 (")
    assert message["Trigger"]["MetricName"] == f"Failures{namespace}" and message["Trigger"]["Statistic"] == "SUM"
    assert message["Trigger"]["Dimensions"] == [{"value": "video-bridge", "name": "service"}]

    # Still breaching: no second notification. Ten minutes on, the period holds nothing: OK again,
    # which the alarm has no action for.
    assert alarms.evaluate_now() == [name]
    assert alarms.evaluate_now(at=datetime.now(UTC) + timedelta(minutes=10)) == []
    assert state_of(emulator, name) == "OK"
    assert [m["NewStateValue"] for m in alarms.notifications] == ["ALARM", "OK"]
    assert inbox.read(wait_s=1) == []


def test_dimensions_match_exactly_as_on_cloudwatch(emulator: EmbeddedAws, namespace: str, topic: str) -> None:
    name = put_alarm(emulator, namespace, topic)
    # The same metric with one more dimension is another metric: on AWS this alarm never sees it.
    put_value(emulator, namespace, 5.0, function_name="poll")
    alarms = evaluator(emulator, name)
    assert alarms.evaluate_now() == []
    put_value(emulator, namespace, 1.0)
    assert alarms.evaluate_now() == [name]


def test_a_metric_math_alarm_is_skipped_with_its_reason(emulator: EmbeddedAws, namespace: str, topic: str) -> None:
    stat = {
        "Metric": {"Namespace": namespace, "MetricName": f"Failures{namespace}"},
        "Period": 300,
        "Stat": "Sum",
    }
    name = f"math-{uuid.uuid4().hex[:10]}"
    emulator.client("cloudwatch").put_metric_alarm(
        AlarmName=name,
        Metrics=[
            {"Id": "total", "Expression": "FILL(failures, 0)"},
            {"Id": "failures", "MetricStat": stat, "ReturnData": False},
        ],
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        AlarmActions=[topic],
    )
    put_value(emulator, namespace, 3.0)
    alarms = evaluator(emulator, name)
    assert alarms.evaluate_now() == []
    assert "metric math" in alarms.skipped[name]
