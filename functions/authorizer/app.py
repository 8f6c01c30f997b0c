"""API Gateway REQUEST authorizer: `Authorization: Bearer <key>` → the API key of the usage plan."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from bridge.api.authorizer import authorize
from bridge.observability import logger


@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return authorize(event)
