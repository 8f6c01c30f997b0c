"""Step Functions task: poll Router One for a job (several times while the waits are short) and
return the loop's next state."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from bridge.errors import UpstreamTransientError
from bridge.observability import logger, metrics, tracer
from bridge.outbound.deadlines import lambda_budget
from bridge.settings import PollSettings, get_settings
from bridge.tracking.invocation import run_invocation

# Checked at cold start: a missing or invalid variable fails the first invocation, naming it.
get_settings(PollSettings)

# Router One must answer this long before the function's end: time to record what it said and
# send what is due.
RESERVE_S = 8.0


@logger.inject_lambda_context(correlation_id_path="task_id")
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    with lambda_budget(context, reserve_s=RESERVE_S):
        try:
            return run_invocation(event).state_output()
        except UpstreamTransientError:
            # Router One's hiccup, retried by name. Lambda counts it in Errors like any crash: this
            # count lets the crash alarm subtract it (a timeout or OOM kills before any metric).
            metrics.add_metric(name="PollUpstreamErrorsRaised", unit="Count", value=1)
            raise
        except Exception:
            # A crash of the bridge's own (the state machine retries it, then waits and polls again).
            metrics.add_metric(name="PollCrashes", unit="Count", value=1)
            logger.exception("poll crashed")
            raise
