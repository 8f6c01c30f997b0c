"""IAM is enforced locally: each function's calls go out under its own translated role, the state
machine's under its role, and what a role does not allow fails as AWS fails it.

The whole suite runs this way (every other integration test is also a test of the grants); here a
grant is taken out of a copy of the template to show the pipeline then fails with AccessDenied.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from bridge_local import iam
from bridge_local.deployer import DEFAULT_TEMPLATE
from bridge_local.sam import load_template

from .conftest import LocalBridge

pytestmark = pytest.mark.integration

PROJECT_ROOT = DEFAULT_TEMPLATE.parent


def template_without(tmp_path: Path, resource: str, is_gone: Callable[[Any], bool]) -> Path:
    """A copy of template.yaml without the one policy entry or statement of `resource` that `is_gone` picks."""
    template = load_template(DEFAULT_TEMPLATE)
    policies = template["Resources"][resource]["Properties"]["Policies"]
    gone = 0
    for entry in list(policies):
        if is_gone(entry):
            policies.remove(entry)
            gone += 1
        for statement in list(entry.get("Statement") or []) if isinstance(entry, dict) else []:
            if is_gone(statement):
                entry["Statement"].remove(statement)
                gone += 1
    assert gone == 1, "exactly one grant should go"
    for folder in ("functions", "layers", "statemachine"):
        (tmp_path / folder).symlink_to(PROJECT_ROOT / folder)
    path = tmp_path / "template.json"
    path.write_text(json.dumps(template), encoding="utf-8")
    return path


def probe(template: Path, role: str, action: str) -> tuple[dict[str, Any], str]:
    """One job on a stack from `template`, in a process of its own: (its report, what it printed)."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.integration.iam_probe", str(template), role, action],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # The report is the probe's JSON line; the functions' own logs may come after it.
    reports = [line for line in done.stdout.splitlines() if line.startswith('{"role_name"')]
    assert reports, done.stdout[-3000:]
    return json.loads(reports[-1]), done.stderr


def test_without_the_poll_functions_sns_grant_the_outcome_never_reaches_the_topic(tmp_path: Path) -> None:
    template = template_without(tmp_path, "PollFunction", lambda entry: "SNSPublishMessagePolicy" in entry)

    report, printed = probe(template, "PollFunctionRole", "sns:Publish")

    assert report["denied_resources"] == [report["topic_arn"]]
    line = f"[iam] AccessDenied role={report['role_name']} action=sns:Publish resource={report['topic_arn']}"
    assert line in printed  # said as it happens, where a developer looks
    # The refused send fails the poll by name, for the state machine's retries and then the outcome check.
    assert "OutcomeNotPublished" in report["task_errors"], report


def test_without_the_poll_table_grant_the_job_is_never_seen_to_end(tmp_path: Path) -> None:
    # The JobRecords statement alone: its neighbours grant the delivery log and the outcome check.
    template = template_without(tmp_path, "PollFunction", lambda grant: grant.get("Sid") == "JobRecords")

    report, printed = probe(template, "PollFunctionRole", "dynamodb:GetItem")

    table_arn = f"arn:aws:dynamodb:us-east-1:123456789012:table/{report['table_name']}"
    assert report["denied_resources"] == [table_arn]
    assert f"[iam] AccessDenied role={report['role_name']} action=dynamodb:GetItem resource={table_arn}" in printed
    assert report["job_status"] != "completed"


def client_as(bridge: LocalBridge, role: str, service: str) -> Any:
    session = bridge.stack.roles[role]
    return boto3.session.Session().client(
        service,  # type: ignore[call-overload]
        endpoint_url=bridge.aws.endpoint_url,
        region_name=bridge.aws.region,
        aws_access_key_id=session.access_key_id,
        aws_secret_access_key=session.secret_access_key,
        aws_session_token=session.session_token,
    )


# The authorizer's role may read the owner-id secret and nothing of the bridge's data.
REFUSED: dict[str, tuple[str, int, Callable[[Any, LocalBridge], Any]]] = {
    "dynamodb": (
        "AccessDeniedException",
        400,
        lambda c, s: c.get_item(TableName=s.stack.table_name, Key={"task_id": {"S": "x"}}),
    ),
    "sns": ("AuthorizationError", 403, lambda c, s: c.publish(TopicArn=s.stack.topic_arn, Message="{}")),
    "sqs": (
        "AccessDenied",
        403,
        lambda c, s: c.send_message(QueueUrl=s.stack.queue_urls["WebhookQueue"], MessageBody="{}"),
    ),
    "stepfunctions": (
        "AccessDeniedException",
        400,
        lambda c, s: c.start_execution(stateMachineArn=s.stack.state_machine_arn, input="{}"),
    ),
    "secretsmanager": ("AccessDeniedException", 400, lambda c, s: c.get_secret_value(SecretId=s.stack.secret_arn)),
    "lambda": (
        "AccessDeniedException",
        403,
        lambda c, s: c.invoke(FunctionName=s.stack.function_names["PollFunction"], Payload=b"{}"),
    ),
    "events": (
        "AccessDeniedException",
        400,
        lambda c, s: c.put_events(
            Entries=[{"Source": "x", "DetailType": "x", "Detail": "{}", "EventBusName": s.stack.event_bus_name}]
        ),
    ),
    "s3": (
        "AccessDenied",
        403,
        lambda c, s: c.put_object(Bucket=s.stack.resources["VideoBucket"], Key="videos/x.mp4", Body=b"x"),
    ),
}


@pytest.mark.parametrize("service", sorted(REFUSED))
def test_a_call_the_role_does_not_allow_fails_as_that_service_refuses_it(bridge: LocalBridge, service: str) -> None:
    code, status, call = REFUSED[service]
    with pytest.raises(ClientError) as refused:
        call(client_as(bridge, "AuthorizerFunctionRole", service), bridge)

    error = refused.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == (code, status)
    assert "AuthorizerFunctionRole" in error["Error"]["Message"]


def test_a_call_the_role_allows_goes_through(bridge: LocalBridge) -> None:
    secrets = client_as(bridge, "AuthorizerFunctionRole", "secretsmanager")
    secret = secrets.get_secret_value(SecretId=bridge.stack.resources["OwnerIdSecret"])
    assert secret["SecretString"]


def test_each_function_calls_with_its_own_role(bridge: LocalBridge) -> None:
    from aws_lambda_powertools.utilities import parameters

    roles = {role: session.role_name for role, session in bridge.stack.roles.items()}
    before = iam.usage.snapshot()
    assert bridge.submit(run_s=1.0, queue_s=0.2).status_code == 202
    # One process holds every function here, and so one secret cache: forget what the api function
    # read, so the poll reads the Router One key itself, as its own instance on Lambda would.
    parameters.clear_caches()
    bridge.wait_until(
        lambda: any(
            d.role_name == roles["PollFunctionRole"] and d.action == "sns:Publish"
            for d in iam.usage.snapshot() - before
        )
    )

    by_name = {name: role for role, name in roles.items()}
    used = {
        (by_name[d.role_name], d.action) for d in iam.usage.snapshot() - before if d.allowed and d.role_name in by_name
    }
    assert ("ApiFunctionRole", "states:StartExecution") in used
    assert ("PollFunctionRole", "dynamodb:UpdateItem") in used
    assert ("PollFunctionRole", "secretsmanager:GetSecretValue") in used
    assert ("JobStateMachineRole", "lambda:InvokeFunction") in used
    assert ("PollFunctionRole", "sns:Publish") in used and ("PollFunctionRole", "events:PutEvents") in used
    # Nobody else publishes the outcome, and the api function never touches the poll's grants.
    assert not any(role != "PollFunctionRole" and action == "sns:Publish" for role, action in used)
