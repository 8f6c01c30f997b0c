"""Creating the template's data and messaging: DynamoDB tables, SNS topics, event buses, secrets,
KMS keys, SQS queues, S3 buckets and their policies, CloudWatch alarms."""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Mapping
from typing import Any

from bridge_local.cfn.compute import Creator
from bridge_local.cfn.state import DeployState


def _generated_secret(spec: Mapping[str, Any]) -> str:
    """What Secrets Manager's GenerateSecretString would make (the subset the template uses)."""
    alphabet = string.ascii_letters + string.digits
    if not spec.get("ExcludePunctuation"):
        alphabet += "!#$%&()*+,-.:;<=>?@[]^_{|}~"
    value = "".join(secrets.choice(alphabet) for _ in range(int(spec.get("PasswordLength", 32))))
    if "GenerateStringKey" not in spec:
        return value
    document = json.loads(spec.get("SecretStringTemplate") or "{}")
    document[spec["GenerateStringKey"]] = value
    return json.dumps(document)


def _lifecycle_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """CloudFormation's lifecycle rule shape, in the S3 API's (the parts the template uses)."""
    api: dict[str, Any] = {"ID": rule.get("Id", "rule"), "Status": rule["Status"], "Filter": {"Prefix": ""}}
    if "ExpirationInDays" in rule:
        api["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    if "AbortIncompleteMultipartUpload" in rule:
        days = int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])
        api["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": days}
    return api


def _metric_query(query: Mapping[str, Any]) -> dict[str, Any]:
    """A metric math alarm's query as PutMetricAlarm takes it (CloudFormation's strings made numbers)."""
    shaped = dict(query)
    if "ReturnData" in shaped:
        shaped["ReturnData"] = str(shaped["ReturnData"]).lower() == "true"
    if "MetricStat" in shaped:
        shaped["MetricStat"] = dict(shaped["MetricStat"]) | {"Period": int(shaped["MetricStat"]["Period"])}
    return shaped


def create_table(state: DeployState, logical_id: str, props: Mapping[str, Any]) -> None:
    p = state.resolver.resolve(dict(props))
    name = p.get("TableName") or state.physical_name(logical_id, limit=255)
    ddb = state.aws.client("dynamodb")
    kwargs: dict[str, Any] = {
        "TableName": name,
        "KeySchema": p["KeySchema"],
        "AttributeDefinitions": p["AttributeDefinitions"],
        "BillingMode": p.get("BillingMode", "PROVISIONED"),
    }
    if kwargs["BillingMode"] == "PROVISIONED":
        kwargs["ProvisionedThroughput"] = {
            k: int(v)
            for k, v in p.get("ProvisionedThroughput", {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}).items()
        }
    for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes", "StreamSpecification", "SSESpecification"):
        if key in p:
            kwargs[key] = p[key]
    if "SSESpecification" in kwargs:
        kwargs["SSESpecification"] = {"Enabled": bool(kwargs["SSESpecification"].get("SSEEnabled", False))}
    table = ddb.create_table(**kwargs)["TableDescription"]
    ttl = p.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        ddb.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
        )
    state.resolver.refs[logical_id] = name
    state.resolver.attrs[logical_id] = {"Arn": table["TableArn"], "StreamArn": table.get("LatestStreamArn", "")}


def create_topic(state: DeployState, logical_id: str, props: Mapping[str, Any]) -> None:
    p = state.resolver.resolve(dict(props))
    name = p.get("TopicName") or state.physical_name(logical_id, limit=256)
    attributes = {"DisplayName": p["DisplayName"]} if "DisplayName" in p else {}
    arn = state.aws.client("sns").create_topic(Name=name, Attributes=attributes)["TopicArn"]
    state.resolver.refs[logical_id] = arn
    state.resolver.attrs[logical_id] = {"TopicArn": arn, "TopicName": name}


def create_event_bus(state: DeployState, logical_id: str, props: Mapping[str, Any]) -> None:
    p = state.resolver.resolve(dict(props))
    name = p["Name"]
    arn = state.aws.client("events").create_event_bus(Name=name)["EventBusArn"]
    state.resolver.refs[logical_id] = name
    state.resolver.attrs[logical_id] = {"Arn": arn, "Name": name}


def create_secret(state: DeployState, logical_id: str, props: Mapping[str, Any]) -> None:
    p = state.resolver.resolve(dict(props))
    name = p.get("Name") or state.physical_name(logical_id, limit=512)
    value = p.get("SecretString", "")
    if "GenerateSecretString" in p:
        value = _generated_secret(p["GenerateSecretString"])
    kwargs: dict[str, Any] = {"Name": name, "SecretString": value}
    if "Description" in p:
        kwargs["Description"] = p["Description"]
    arn = state.aws.client("secretsmanager").create_secret(**kwargs)["ARN"]
    state.resolver.refs[logical_id] = arn
    state.resolver.attrs[logical_id] = {"Id": arn}


def create_kms_key(state: DeployState, logical_id: str, props: Mapping[str, Any]) -> None:
    p = state.resolver.resolve(dict(props))
    kms = state.aws.client("kms")
    kwargs: dict[str, Any] = {"Description": p.get("Description", logical_id), "KeyUsage": "ENCRYPT_DECRYPT"}
    if "KeyPolicy" in p:
        kwargs["Policy"] = json.dumps(p["KeyPolicy"])
    metadata = kms.create_key(**kwargs)["KeyMetadata"]
    if p.get("EnableKeyRotation"):
        kms.enable_key_rotation(KeyId=metadata["KeyId"])
    state.resolver.refs[logical_id] = metadata["KeyId"]
    state.resolver.attrs[logical_id] = {"Arn": metadata["Arn"], "KeyId": metadata["KeyId"]}


def create_queue(state: DeployState, logical_id: str, props: Mapping[str, Any]) -> None:
    p = state.resolver.resolve(dict(props))
    name = p.get("QueueName") or state.physical_name(logical_id, limit=80)
    attributes: dict[str, str] = {}
    for key in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "ReceiveMessageWaitTimeSeconds"):
        if key in p:
            attributes[key] = str(p[key])
    if "RedrivePolicy" in p:
        attributes["RedrivePolicy"] = json.dumps(p["RedrivePolicy"])
    sqs = state.aws.client("sqs")
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    state.queue_urls[logical_id] = url
    state.queue_arns[arn] = url
    state.resolver.refs[logical_id] = url
    state.resolver.attrs[logical_id] = {"Arn": arn, "QueueName": name, "QueueUrl": url}


def create_bucket(state: DeployState, logical_id: str, props: Mapping[str, Any]) -> None:
    p = state.resolver.resolve(dict(props))
    name = str(p.get("BucketName") or state.physical_name(logical_id)).lower()[:63]
    s3 = state.aws.client("s3")
    s3.create_bucket(Bucket=name)
    if "LifecycleConfiguration" in p:
        s3.put_bucket_lifecycle_configuration(
            Bucket=name,
            LifecycleConfiguration={"Rules": [_lifecycle_rule(r) for r in p["LifecycleConfiguration"]["Rules"]]},
        )
    state.resolver.refs[logical_id] = name
    state.resolver.attrs[logical_id] = {"Arn": f"arn:aws:s3:::{name}", "DomainName": f"{name}.s3.amazonaws.com"}


def create_bucket_policy(state: DeployState, logical_id: str, props: Mapping[str, Any]) -> None:
    p = state.resolver.resolve(dict(props))
    document = dict(p["PolicyDocument"])
    # The embedded AWS speaks plain http, and moto enforces bucket policies: a TLS-only rule
    # would refuse every local request, so it is left out here (and only here).
    document["Statement"] = [
        statement
        for statement in document.get("Statement", [])
        if "aws:SecureTransport" not in json.dumps(statement.get("Condition", {}))
    ]
    if document["Statement"]:
        state.aws.client("s3").put_bucket_policy(Bucket=p["Bucket"], Policy=json.dumps(document))
    state.resolver.refs[logical_id] = p["Bucket"]


def create_alarm(state: DeployState, logical_id: str, props: Mapping[str, Any]) -> None:
    p = state.resolver.resolve(dict(props))
    name = p.get("AlarmName") or state.physical_name(logical_id, limit=255)
    keys = (
        "AlarmDescription",
        "Namespace",
        "MetricName",
        "Dimensions",
        "Statistic",
        "Period",
        "EvaluationPeriods",
        "Threshold",
        "ComparisonOperator",
        "TreatMissingData",
        "AlarmActions",
    )
    kwargs = {key: p[key] for key in keys if key in p}
    if "Metrics" in p:  # a metric math alarm
        kwargs["Metrics"] = [_metric_query(query) for query in p["Metrics"]]
    for key in ("Period", "EvaluationPeriods"):
        if key in kwargs:
            kwargs[key] = int(kwargs[key])
    if "Threshold" in kwargs:
        kwargs["Threshold"] = float(kwargs["Threshold"])
    state.aws.client("cloudwatch").put_metric_alarm(AlarmName=name, **kwargs)
    state.resolver.refs[logical_id] = name


DATA_CREATORS: dict[str, Creator] = {
    "AWS::DynamoDB::Table": create_table,
    "AWS::SNS::Topic": create_topic,
    "AWS::Events::EventBus": create_event_bus,
    "AWS::SecretsManager::Secret": create_secret,
    "AWS::KMS::Key": create_kms_key,
    "AWS::SQS::Queue": create_queue,
    "AWS::S3::Bucket": create_bucket,
    "AWS::S3::BucketPolicy": create_bucket_policy,
    "AWS::CloudWatch::Alarm": create_alarm,
}
