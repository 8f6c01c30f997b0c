"""The one Logger, Metrics and Tracer every module shares."""

import logging

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
metrics = Metrics()
tracer = Tracer()

# botocore logs whole request and response bodies at DEBUG, Secrets Manager answers included:
# whatever level the function runs at, those two never go below INFO.
for _name in ("botocore.parsers", "botocore.endpoint"):
    logging.getLogger(_name).setLevel(logging.INFO)
