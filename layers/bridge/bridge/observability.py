"""The one Logger, Metrics and Tracer every module shares."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer


class LambdaLevelTracing:
    """Stands in for Powertools' Tracer when X-Ray subsegments are off (`TraceSubsegments=false`).

    Lambda's active tracing still records every invocation and the state machine's trace; what is
    skipped is loading the X-Ray SDK, which Powertools' Tracer imports even when disabled and which
    is the largest single import of a cold start (see benchmarks/cold_start.py).
    """

    def capture_lambda_handler(
        self, lambda_handler: Callable[..., Any] | None = None, **options: Any
    ) -> Callable[..., Any]:
        if lambda_handler is None:
            return lambda handler: handler
        return lambda_handler


def _tracer() -> Tracer | LambdaLevelTracing:
    if os.environ.get("POWERTOOLS_TRACE_DISABLED", "").strip().lower() in ("1", "true", "yes", "on"):
        return LambdaLevelTracing()
    from aws_lambda_powertools import Tracer

    return Tracer()


logger = Logger()
metrics = Metrics()
tracer = _tracer()

# botocore logs whole request and response bodies at DEBUG, Secrets Manager answers included:
# whatever level the function runs at, those two never go below INFO.
for _name in ("botocore.parsers", "botocore.endpoint"):
    logging.getLogger(_name).setLevel(logging.INFO)
