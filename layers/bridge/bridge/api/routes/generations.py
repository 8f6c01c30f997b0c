"""The generations resource: submit a video generation, list jobs, read one job, cancel one."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Header, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from bridge.api import schema
from bridge.api.request_body import read_generation_request
from bridge.api.routes.common import (
    MAX_CURSOR_LENGTH,
    check_list_query,
    checked_task_id,
    json_response,
    request_caller,
)
from bridge.models import JobStatus
from bridge.outcomes import lifecycle
from bridge.store import cursors as paging
from bridge.store import jobs
from bridge.submit.idempotent import MAX_KEY_LENGTH as MAX_IDEMPOTENCY_KEY_LENGTH
from bridge.submit.idempotent import submit_with_key
from bridge.upstream import caller_keys

# Submit reads its own body (see `bridge.api.request_body`), so the document names the body's model here.
GENERATION_REQUEST_BODY = schema.request_body("GenerationRequest")

router = APIGatewayRouter()


@router.post(
    "/v1/videos/generations",
    summary="Submit a video generation",
    description="Router One's submit, plus the bridge's callback_url, webhook_events_filter and metadata.",
    operation_id="submitGeneration",
    tags=["generations"],
    responses=schema.responses(
        202,
        schema.GenerationAccepted,
        "Accepted: Router One has the job and the bridge tracks it",
        e400="A field is missing or invalid, the body is not JSON, or Router One refused the request",
        e401="No or an unknown API key; or, in pass-through mode, Router One refused X-Router-One-Key",
        e402="Router One: the account is out of balance (`insufficient_balance`)",
        e409="A request with this Idempotency-Key is still in progress (`idempotency_in_progress`)",
        e413="The body is larger than 256 KiB (`request_too_large`)",
        e415="The body is not application/json (`unsupported_media_type`)",
        e422="This Idempotency-Key was used with another body (`idempotency_key_reused`)",
    ),
    openapi_extensions={"requestBody": GENERATION_REQUEST_BODY},
)
def submit_generation(
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=MAX_IDEMPOTENCY_KEY_LENGTH,
            description="Makes a retried submit safe: the same key and body within 24 h answer the first result",
        ),
    ] = None,
) -> Response[dict[str, Any]]:
    event = router.current_event
    caller = request_caller(event)
    request = read_generation_request(event)
    # Read here, not as a route argument: Powertools logs route arguments at DEBUG.
    caller_key = caller_keys.seal(event.headers.get(caller_keys.CALLER_KEY_HEADER))
    return json_response(202, submit_with_key(request, idempotency_key, caller, router.lambda_context, caller_key))


@router.get(
    "/v1/videos/generations",
    summary="List your jobs, newest first",
    description="Only the jobs submitted with this API key (an operator key: every owner's).",
    operation_id="listGenerations",
    tags=["generations"],
    responses=schema.responses(
        200,
        schema.JobPage,
        "A page of jobs",
        e400="An unknown parameter, or a bad status, limit or cursor",
    ),
)
def list_generations(
    status: Annotated[JobStatus | None, Query(description="Only jobs in this status")] = None,
    limit: Annotated[int | None, Query(ge=1, le=paging.MAX_PAGE_SIZE, description="Page size, 20 by default")] = None,
    cursor: Annotated[
        str | None, Query(max_length=MAX_CURSOR_LENGTH, description="`next_cursor` of the previous page")
    ] = None,
) -> Response[dict[str, Any]]:
    check_list_query(router.current_event, limit)
    caller = request_caller(router.current_event)
    return json_response(200, lifecycle.list_jobs(caller, status=status, limit=limit, cursor=cursor))


@router.post(
    "/v1/videos/generations/<task_id>/cancel",
    summary="Cancel a job",
    description="Router One has no cancel: the bridge stops tracking and publishes `canceled`.",
    operation_id="cancelGeneration",
    tags=["generations"],
    responses=schema.responses(
        200,
        schema.Job,
        "The job, now canceled",
        e404="No job of this API key with this task_id (`task_not_found`)",
        e409="The job already ended (`job_already_finished`)",
    ),
)
def cancel_generation(task_id: str) -> Response[dict[str, Any]]:
    return json_response(200, lifecycle.cancel(checked_task_id(task_id), request_caller(router.current_event)))


@router.get(
    "/v1/videos/generations/<task_id>",
    summary="A job's status",
    operation_id="getGeneration",
    tags=["generations"],
    responses=schema.responses(
        200, schema.Job, "The job", e404="No job of this API key with this task_id (`task_not_found`)"
    ),
)
def get_generation(task_id: str) -> Response[dict[str, Any]]:
    job = jobs.find_job(checked_task_id(task_id), owner_id=request_caller(router.current_event).read_scope())
    return json_response(200, job.public_view())
