"""Sending a job's events: the stack's topic and bus, and the webhook queue for their deliveries.

The poll function sends them itself, right after recording what it saw. In the state machine each
send was a state of its own (a Parallel of three branches, then a step clearing the mark: seven
transitions an outcome, three a running event), and a transition costs as much as 12 s of the poll
function running (docs/cost.md).

An outcome is all or nothing: a send that fails raises `OutcomeNotPublished`, the row keeps its
unpublished mark, and the state machine retries the poll (which publishes the recorded outcome
again, same event id), then fails the execution so the outcome check takes over. A running event
is worth less than the job: a failed send is logged and polling goes on.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from bridge.clients import eventbridge, sns, sqs
from bridge.errors import OutcomeNotPublished
from bridge.models import JobStatus
from bridge.observability import logger, metrics
from bridge.outcomes.events import detail_type
from bridge.settings import EventChannelSettings, WebhookLogSettings, get_settings
from bridge.store import jobs
from bridge.store.job_record import JobRecord
from bridge.webhooks import dispatch


def send_event(event: dict[str, Any], *, detail_type: str, attributes: dict[str, str]) -> None:
    """Publish `event` on the topic (with `attributes` for subscription filters) and the bus; raises
    if either refuses it."""
    settings = get_settings(EventChannelSettings)
    body = json.dumps(event, separators=(",", ":"))
    sns().publish(
        TopicArn=settings.event_topic_arn,
        Message=body,
        MessageAttributes={name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()},
    )
    answer = eventbridge().put_events(
        Entries=[
            {
                "EventBusName": settings.event_bus_name,
                "Source": settings.event_source,
                "DetailType": detail_type,
                "Detail": body,
            }
        ]
    )
    if answer.get("FailedEntryCount"):
        raise RuntimeError(f"EventBridge refused event {event['id']}: {answer.get('Entries')}")


def job_event_attributes(event: dict[str, Any]) -> dict[str, str]:
    """The SNS message attributes of a job's event: what subscription filter policies match on."""
    data = event["data"]
    return {
        "event_type": str(event["type"]),
        "status": str(data["status"]),
        "model": str(data["model"]),
        "owner_id": str(data["owner_id"]),
    }


def queue_webhook(message: dict[str, Any] | None) -> None:
    """Queue the delivery message `dispatch.prepare_delivery` made (None: nobody wants the event)."""
    if message is not None:
        queue_url = get_settings(WebhookLogSettings).webhook_queue_url
        sqs().send_message(QueueUrl=queue_url, MessageBody=json.dumps(message, separators=(",", ":")))


def publish_outcome(job: JobRecord, event: dict[str, Any], now: datetime) -> None:
    """Send a recorded outcome to every channel, then clear its unpublished mark."""
    status = JobStatus(event["data"]["status"])
    try:
        send_event(event, detail_type=detail_type(status), attributes=job_event_attributes(event))
        queue_webhook(dispatch.prepare_delivery(job, event, now, requeue_existing=True))
    except Exception as exc:
        metrics.add_metric(name="OutcomeSendFailures", unit="Count", value=1)
        logger.warning(
            "an outcome's send failed; the poll is retried",
            extra={"task_id": job.task_id, "event_id": event["id"], "reason": type(exc).__name__},
        )
        raise OutcomeNotPublished(
            f"the outcome {event['id']} of {job.task_id} was not sent: {type(exc).__name__}"
        ) from exc
    try:
        jobs.mark_published(job.task_id, event["id"])
    except Exception:
        # Published all the same: the outcome check finds the execution succeeded and clears the mark.
        logger.warning("could not clear the unpublished mark", extra={"task_id": job.task_id})


def publish_running(
    task_id: str, event: dict[str, Any] | None, detail: str | None, webhook: dict[str, Any] | None
) -> None:
    """Send a `started` or `progress` event where it is due; a failure only loses this one event."""
    try:
        if event is not None and detail is not None:
            send_event(event, detail_type=detail, attributes=job_event_attributes(event))
        queue_webhook(webhook)
    except Exception as exc:
        metrics.add_metric(name="RunningEventSendFailures", unit="Count", value=1)
        logger.warning("a running event was not sent", extra={"task_id": task_id, "reason": type(exc).__name__})
