"""What IAM checks for one request: the action(s) and the resource ARN(s), as AWS authorizes them.

moto hands its authorizer "*" as the resource for most services, so a policy naming a table or a
topic could never match. This works the ARNs out from the request's parameters, the way each
service documents its resource types, for the services the bridge uses. Names that AWS would turn
into ARNs from its own records (a secret's name, a KMS alias) are looked up in moto's backends.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# moto's service name → IAM's action prefix, where they differ.
IAM_PREFIX = {"awslambda": "lambda", "stepfunctions": "states", "cloudwatch": "cloudwatch", "logs": "logs"}

# Operations authorized under another action's name.
_ACTION_ALIASES = {
    "lambda": {"Invoke": "InvokeFunction", "InvokeAsync": "InvokeFunction"},
    "sqs": {
        "SendMessageBatch": "SendMessage",
        "DeleteMessageBatch": "DeleteMessage",
        "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
    },
    "sns": {"PublishBatch": "Publish"},
    "s3": {
        "CreateMultipartUpload": "PutObject",
        "UploadPart": "PutObject",
        "CompleteMultipartUpload": "PutObject",
        "HeadObject": "GetObject",
        "ListParts": "ListMultipartUploadParts",
        "ListObjectsV2": "ListBucket",
        "ListObjects": "ListBucket",
        "HeadBucket": "ListBucket",
    },
}

_TRANSACT_WRITE_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


@dataclass(frozen=True)
class Where:
    region: str
    account: str
    partition: str = "aws"

    def arn(self, service: str, resource: str) -> str:
        return f"arn:{self.partition}:{service}:{self.region}:{self.account}:{resource}"


def _table(name: str, where: Where, index: str | None = None) -> str:
    arn = name if name.startswith("arn:") else where.arn("dynamodb", f"table/{name}")
    return f"{arn}/index/{index}" if index else arn


def _dynamodb(operation: str, params: Mapping[str, Any], where: Where) -> list[tuple[str, str]]:
    if operation in ("BatchGetItem", "BatchWriteItem"):
        return [(f"dynamodb:{operation}", _table(name, where)) for name in params.get("RequestItems") or {}]
    if operation == "TransactWriteItems":
        checks = []
        for item in params.get("TransactItems") or []:
            for kind, action in _TRANSACT_WRITE_ACTIONS.items():
                if kind in item:
                    checks.append((f"dynamodb:{action}", _table(item[kind]["TableName"], where)))
        return checks
    if operation == "TransactGetItems":
        return [
            ("dynamodb:GetItem", _table(item["Get"]["TableName"], where)) for item in params.get("TransactItems") or []
        ]
    if "TableName" in params:
        index = params.get("IndexName") if operation in ("Query", "Scan") else None
        return [(f"dynamodb:{operation}", _table(str(params["TableName"]), where, index))]
    return [(f"dynamodb:{operation}", "*")]


def _bus(name: str | None, where: Where) -> str:
    name = name or "default"
    return name if name.startswith("arn:") else where.arn("events", f"event-bus/{name}")


def _events(operation: str, params: Mapping[str, Any], where: Where) -> list[tuple[str, str]]:
    if operation == "PutEvents":
        buses = {_bus(entry.get("EventBusName"), where) for entry in params.get("Entries") or []}
        return [("events:PutEvents", bus) for bus in sorted(buses)] or [("events:PutEvents", _bus(None, where))]
    if operation in ("PutRule", "PutTargets", "DescribeRule", "DeleteRule", "RemoveTargets", "ListTargetsByRule"):
        rule = params.get("Name") or params.get("Rule") or "*"
        bus = params.get("EventBusName")
        path = f"rule/{rule}" if not bus or bus == "default" else f"rule/{bus}/{rule}"
        return [(f"events:{operation}", where.arn("events", path))]
    if "Name" in params and operation.endswith("EventBus"):
        return [(f"events:{operation}", _bus(str(params["Name"]), where))]
    return [(f"events:{operation}", "*")]


def _secret_arn(secret_id: str, where: Where) -> str:
    if secret_id.startswith("arn:"):
        return secret_id
    from moto.secretsmanager.models import secretsmanager_backends

    backend = secretsmanager_backends[where.account][where.region]
    try:
        return str(backend.describe_secret(secret_id).arn)
    except Exception:  # unknown: the service answers ResourceNotFound after the check
        return where.arn("secretsmanager", f"secret:{secret_id}")


def _kms_key_arn(params: Mapping[str, Any], where: Where) -> str:
    from moto.kms.models import kms_backends

    backend = kms_backends[where.account][where.region]
    key_id = params.get("KeyId")
    if not key_id and params.get("CiphertextBlob"):
        from moto.kms.utils import _deserialize_ciphertext_blob

        blob = params["CiphertextBlob"]
        key_id = _deserialize_ciphertext_blob(blob if isinstance(blob, bytes) else str(blob).encode()).key_id
    if not key_id:
        return "*"
    try:
        return str(backend.describe_key(backend.any_id_to_key_id(str(key_id))).arn)
    except Exception:
        return str(key_id) if str(key_id).startswith("arn:") else where.arn("kms", f"key/{key_id}")


def _states(operation: str, params: Mapping[str, Any], where: Where) -> list[tuple[str, str]]:
    for key in ("executionArn", "stateMachineArn", "mapRunArn", "activityArn"):
        if params.get(key):
            return [(f"states:{operation}", str(params[key]))]
    return [(f"states:{operation}", "*")]


def _lambda(operation: str, params: Mapping[str, Any], where: Where) -> list[tuple[str, str]]:
    name = str(params.get("FunctionName") or "")
    if not name:
        return [(f"lambda:{operation}", "*")]
    if not name.startswith("arn:"):
        base, _, qualifier = name.partition(":")
        qualifier = qualifier or str(params.get("Qualifier") or "")
        name = where.arn("lambda", f"function:{base}") + (f":{qualifier}" if qualifier else "")
    elif params.get("Qualifier") and name.count(":") == 6:
        name = f"{name}:{params['Qualifier']}"
    return [(f"lambda:{operation}", name)]


def requested(
    service: str, operation: str, params: Mapping[str, Any], moto_resource: str, where: Where
) -> list[tuple[str, str]]:
    """The (action, resource ARN) pairs IAM must allow for this request."""
    prefix = IAM_PREFIX.get(service, service)
    operation = _ACTION_ALIASES.get(prefix, {}).get(operation, operation)
    if prefix == "dynamodb":
        return _dynamodb(operation, params, where)
    if prefix == "events":
        return _events(operation, params, where)
    if prefix == "states":
        return _states(operation, params, where)
    if prefix == "lambda":
        return _lambda(operation, params, where)
    if prefix == "sns" and params.get("TopicArn"):
        return [(f"sns:{operation}", str(params["TopicArn"]))]
    if prefix == "secretsmanager" and params.get("SecretId"):
        return [(f"secretsmanager:{operation}", _secret_arn(str(params["SecretId"]), where))]
    if prefix == "kms":
        return [(f"kms:{operation}", _kms_key_arn(params, where))]
    # sqs and s3: moto works the resource out itself (the queue, the bucket or object).
    return [(f"{prefix}:{operation}", moto_resource)]
