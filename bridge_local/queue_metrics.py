"""SQS's own CloudWatch metrics, locally: the queue depths AWS publishes for every queue by itself.

The template's dead-letter alarms watch `AWS/SQS ApproximateNumberOfMessagesVisible` per
`QueueName`. AWS samples each active queue once a minute; here `sample_queue_depths` samples the
stack's queues whenever the alarm evaluator is about to evaluate (every few seconds, and on
demand), so a message that reached a dead-letter queue counts at the next evaluation. Only the
depth metrics are published; `ApproximateAgeOfOldestMessage` and the message counters are not.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

NAMESPACE = "AWS/SQS"
# CloudWatch metric name → the queue attribute it is sampled from.
DEPTH_METRICS = {
    "ApproximateNumberOfMessagesVisible": "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible": "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed": "ApproximateNumberOfMessagesDelayed",
}
GONE = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")


def queue_name(queue_url: str) -> str:
    return queue_url.rstrip("/").rsplit("/", 1)[-1]


def sample_queue_depths(sqs: Any, cloudwatch: Any, queue_urls: Iterable[str], at: datetime | None = None) -> int:
    """Put each queue's depths into CloudWatch as SQS would; return how many queues were sampled.

    A queue that is gone (deleted by a test, or its stack stopped) is skipped.
    """
    when = at or datetime.now(UTC)
    data: list[dict[str, Any]] = []
    for url in queue_urls:
        try:
            attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(DEPTH_METRICS.values()))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in GONE:
                continue
            raise
        values = attributes.get("Attributes", {})
        dimensions = [{"Name": "QueueName", "Value": queue_name(url)}]
        data.extend(
            {
                "MetricName": metric,
                "Dimensions": dimensions,
                "Timestamp": when,
                "Value": float(values.get(attribute, 0)),
                "Unit": "Count",
            }
            for metric, attribute in DEPTH_METRICS.items()
        )
    if data:
        cloudwatch.put_metric_data(Namespace=NAMESPACE, MetricData=data)
    return len(data) // len(DEPTH_METRICS)
