"""The local IAM's arithmetic: which action and resource each request is checked for, and the
per-role report of grants used and unused."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from bridge_local import iam_report
from bridge_local.iam_resources import Where, requested
from bridge_local.sam import translate

WHERE = Where(region="us-east-1", account="123456789012")
TABLE = "arn:aws:dynamodb:us-east-1:123456789012:table/jobs"


@pytest.mark.parametrize(
    ("service", "operation", "params", "moto_resource", "expected"),
    [
        ("dynamodb", "GetItem", {"TableName": "jobs"}, "*", [("dynamodb:GetItem", TABLE)]),
        (
            "dynamodb",
            "Query",
            {"TableName": "jobs", "IndexName": "by_owner"},
            "*",
            [("dynamodb:Query", f"{TABLE}/index/by_owner")],
        ),
        (
            "dynamodb",
            "BatchGetItem",
            {"RequestItems": {"jobs": {}, "other": {}}},
            "*",
            [("dynamodb:BatchGetItem", TABLE), ("dynamodb:BatchGetItem", TABLE.replace("jobs", "other"))],
        ),
        (
            "dynamodb",
            "TransactWriteItems",
            {"TransactItems": [{"Put": {"TableName": "jobs"}}, {"ConditionCheck": {"TableName": "jobs"}}]},
            "*",
            [("dynamodb:PutItem", TABLE), ("dynamodb:ConditionCheckItem", TABLE)],
        ),
        (
            "events",
            "PutEvents",
            {"Entries": [{"Source": "s"}]},
            "*",
            [("events:PutEvents", "arn:aws:events:us-east-1:123456789012:event-bus/default")],
        ),
        (
            "awslambda",
            "Invoke",
            {"FunctionName": "poll", "Qualifier": "live"},
            "*",
            [("lambda:InvokeFunction", "arn:aws:lambda:us-east-1:123456789012:function:poll:live")],
        ),
        (
            "sqs",
            "SendMessageBatch",
            {"QueueUrl": "http://x/123456789012/q"},
            "arn:aws:sqs:us-east-1:123456789012:q",
            [("sqs:SendMessage", "arn:aws:sqs:us-east-1:123456789012:q")],
        ),
        (
            "sns",
            "PublishBatch",
            {"TopicArn": "arn:aws:sns:us-east-1:1:t"},
            "*",
            [("sns:Publish", "arn:aws:sns:us-east-1:1:t")],
        ),
        (
            "stepfunctions",
            "StopExecution",
            {"executionArn": "arn:aws:states:us-east-1:1:execution:m:x"},
            "*",
            [("states:StopExecution", "arn:aws:states:us-east-1:1:execution:m:x")],
        ),
        ("s3", "CreateMultipartUpload", {}, "arn:aws:s3:::b/k", [("s3:PutObject", "arn:aws:s3:::b/k")]),
    ],
)
def test_each_request_is_checked_for_the_action_and_resource_aws_authorizes(
    service: str, operation: str, params: dict[str, object], moto_resource: str, expected: list[tuple[str, str]]
) -> None:
    assert requested(service, operation, params, moto_resource, WHERE) == expected


@pytest.fixture(scope="module")
def grants() -> list[iam_report.Grant]:
    translated = translate(
        iam_report.DEFAULT_TEMPLATE,
        {"CallerRouterOneKeys": "allowed"},
        region="us-east-1",
        account_id="123456789012",
        stack_name="report-test",
    )
    return iam_report.grants_of(translated.template)


def test_grants_cover_inline_statements_policy_templates_and_managed_policies(grants: list[iam_report.Grant]) -> None:
    by_role = {(g.role, g.action) for g in grants}
    assert ("PollFunctionRole", "dynamodb:UpdateItem") in by_role  # an inline statement
    assert ("PollFunctionRole", "sns:Publish") in by_role  # SAM's SNSPublishMessagePolicy
    assert ("WebhookDeliveryFunctionRole", "sqs:GetQueueAttributes") in by_role  # SAM's managed SQS role
    [unseal] = [g for g in grants if g.role == "PollFunctionRole" and g.action == "kms:Decrypt"]
    assert unseal.condition == "CallerKeysAllowed"


def write_usage(directory: Path, records: list[dict[str, object]]) -> None:
    directory.mkdir()
    lines = [json.dumps({"count": 1, "allowed": True} | record) for record in records]
    (directory / "usage-1.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_a_grant_is_used_when_a_call_matches_its_pattern_and_unused_ones_need_a_reason(
    grants: list[iam_report.Grant], tmp_path: Path
) -> None:
    write_usage(
        tmp_path / "usage",
        [
            {"role_name": "stack-PollFunctionRole", "action": "sqs:SendMessage", "resource": "q"},
            {"role_name": "stack-PollFunctionRole", "action": "sns:Publish", "resource": "t"},
            {"role_name": "stack-PollFunctionRole", "action": "sns:Publish", "resource": "t", "allowed": False},
            {"role_name": "someone-elses-Role", "action": "s3:GetObject", "resource": "x"},
        ],
    )
    roles = {g.role for g in grants}
    usage = iam_report.load_usage(tmp_path / "usage", roles)
    reasons = {"*": {"xray:*": "traces"}, "PollFunctionRole": {"kms:Decrypt": "pass-through keys"}}

    [machine] = [r for r in iam_report.build(grants, usage, reasons) if r.role == "PollFunctionRole"]

    assert machine.used == {"sns:Publish": 1, "sqs:SendMessage": 1}
    assert machine.denied == {"sns:Publish": 1}
    unused = {grant.action: reason for grant, reason in machine.unused}
    assert "sqs:SendMessage*" not in unused  # SAM's wildcard grant, matched by the call
    assert unused["xray:PutTraceSegments"] == "traces"  # the "*" scope
    assert unused["kms:Decrypt"] == "pass-through keys"  # the role's own scope
    assert unused["events:PutEvents"] is None  # unexplained: a strict run fails on it
    assert "someone-elses-Role" not in usage.allowed


def test_the_repository_gives_a_reason_for_every_grant_it_expects_no_local_call_to_use(
    grants: list[iam_report.Grant],
) -> None:
    reasons = iam_report.load_reasons()
    no_calls = iam_report.Usage()
    unexplained = Counter(
        g.action.split(":")[0]
        for report in iam_report.build(grants, no_calls, reasons)
        for g, reason in report.unused
        if reason is None
    )
    # Without any call everything is unused; the reasons cover exactly the platform's own grants.
    assert "logs" not in unexplained and "xray" not in unexplained
    assert unexplained["dynamodb"] > 0
