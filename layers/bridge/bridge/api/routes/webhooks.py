"""The webhooks of a job: its delivery log with every attempt, and sending one event again."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from bridge.api import schema
from bridge.api.routes.common import checked_task_id, json_response, request_caller, storable_id
from bridge.errors import TaskNotFound
from bridge.store import jobs
from bridge.webhooks import dispatch

router = APIGatewayRouter()


@router.get(
    "/v1/videos/generations/<task_id>/webhooks",
    summary="A job's webhook deliveries and their attempts",
    operation_id="listWebhookDeliveries",
    tags=["webhooks"],
    responses=schema.responses(
        200,
        schema.WebhookDeliveries,
        "The deliveries",
        e404="No job of this API key with this task_id (`task_not_found`)",
    ),
)
def list_webhook_deliveries(task_id: str) -> Response[dict[str, Any]]:
    return json_response(200, dispatch.deliveries_of(checked_task_id(task_id), request_caller(router.current_event)))


@router.post(
    "/v1/videos/generations/<task_id>/webhooks/<event_id>/redeliver",
    summary="Send a webhook event again, with the same webhook-id",
    operation_id="redeliverWebhook",
    tags=["webhooks"],
    responses=schema.responses(
        202,
        schema.Redelivery,
        "Queued for a new round of attempts",
        e404="No job of this API key with that task_id, or no delivery of that event (`task_not_found`, `webhook_delivery_not_found`)",
        e409="The event was already sent in 10 rounds (`redelivery_limit_reached`)",
    ),
)
def redeliver_webhook(task_id: str, event_id: str) -> Response[dict[str, Any]]:
    task_id, caller = checked_task_id(task_id), request_caller(router.current_event)
    if not storable_id(event_id):
        jobs.find_job(task_id, owner_id=caller.owner_id)  # an unknown task is still a task_not_found
        raise TaskNotFound(
            f"job '{task_id}' has no webhook delivery for that event_id",
            code="webhook_delivery_not_found",
            param="event_id",
        )
    return json_response(202, dispatch.redeliver(task_id, event_id, caller))
