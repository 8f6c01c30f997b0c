"""SQS consumer: one signed webhook attempt per message; failures come back as batch item failures."""

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.typing import LambdaContext

from bridge.observability import logger, metrics, tracer
from bridge.settings import DeliverySettings, get_settings
from bridge.webhooks.sender import deliver_record

# Checked at cold start: a missing or invalid variable fails the first invocation, naming it.
get_settings(DeliverySettings)

# Records it cannot take (too little time left) are reported, even when that is all of them: a
# function error would send back the ones already delivered too.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=deliver_record, processor=processor, context=context)
