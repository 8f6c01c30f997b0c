"""API Gateway REQUEST authorizer: `Authorization: Bearer <key>` → the API key of the usage plan."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from bridge.api.authorizer import authorize
from bridge.observability import logger
from bridge.settings import AuthorizerSettings, get_settings

# Checked at cold start: a missing or invalid variable fails the first invocation, naming it.
get_settings(AuthorizerSettings)


@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return authorize(event)
