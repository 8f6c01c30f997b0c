"""Reconciler: records and tracks jobs whose submit stopped half-way and publishes outcomes a crash left
unpublished (queue); sweeps pending jobs (schedule)."""

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.typing import LambdaContext

from bridge.observability import logger, metrics, tracer
from bridge.outcomes.reconcile import reconcile_record, sweep
from bridge.settings import ReconcileSettings, get_settings

# Checked at cold start: a missing or invalid variable fails the first invocation, naming it.
get_settings(ReconcileSettings)

processor = BatchProcessor(event_type=EventType.SQS)


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Two triggers: the reconcile queue brings SQS records, the schedule an EventBridge event.
    if "Records" in event:
        return process_partial_response(
            event=event, record_handler=reconcile_record, processor=processor, context=context
        )
    # Stops in time and resumes from where it stopped on the next run.
    return {"swept": sweep(remaining_ms=context.get_remaining_time_in_millis)}
