"""Step Functions task: poll Router One once for a job and return the loop's next state."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from bridge.observability import logger, metrics, tracer
from bridge.tracking import poll_once


@logger.inject_lambda_context(correlation_id_path="task_id")
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return poll_once(event).state_output()
