"""Step Functions task: copy a finished video into the stack's bucket and note it in the event."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from bridge.observability import logger, metrics, tracer
from bridge.outbound.deadlines import lambda_budget
from bridge.outcomes.video_copy import keep_video
from bridge.settings import KeepVideoSettings, get_settings

# Checked at cold start: a missing or invalid variable fails the first invocation, naming it.
get_settings(KeepVideoSettings)

# The copy stops this long before the function would be: time to abort the upload and note why.
RESERVE_S = 60.0


@logger.inject_lambda_context(correlation_id_path="task_id")
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    with lambda_budget(context, reserve_s=RESERVE_S):
        return keep_video(event)
