"""API Gateway entry point: submit and status, shaped like Router One's own API."""

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from bridge.api.http_api import app
from bridge.observability import logger, metrics, tracer
from bridge.outbound.deadlines import lambda_budget
from bridge.settings import ApiSettings, get_settings

# Checked at cold start: a missing or invalid variable fails the first invocation, naming it.
get_settings(ApiSettings)

# Router One must answer this long before the function's end: time to record the job and start its
# loop, or hand it to the reconciler (the submit's own deadline, 20 s, usually ends it first).
RESERVE_S = 9.0


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    with lambda_budget(context, reserve_s=RESERVE_S):
        return app.resolve(event, context)
