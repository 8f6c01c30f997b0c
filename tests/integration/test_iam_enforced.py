"""IAM is enforced locally: each function's calls go out under its own translated role, the state
machine's under its role, and what a role does not allow fails as AWS fails it.

The whole suite runs this way (every other integration test is also a test of the grants); here a
grant is taken out of a copy of the template to show the pipeline then fails with AccessDenied.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError

from bridge_local import iam
from bridge_local.deployer import DEFAULT_TEMPLATE
from bridge_local.local_stack import LocalStack, start_local_stack
from bridge_local.sam import load_template
from bridge_local.testing import environ_restored

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


def denials(local: LocalStack, role: str, action: str) -> list[iam.Decision]:
    role_name = local.stack.roles[role].role_name
    return [d for d in iam.usage.snapshot() if not d.allowed and d.role_name == role_name and d.action == action]


def wait_until(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.2)
    return check()


@pytest.fixture
def local_with(tmp_path: Path) -> Iterator[Callable[[Path], LocalStack]]:
    with environ_restored(), ExitStack() as cleanup:

        def start(template: Path) -> LocalStack:
            # A stack name of its own: another test file's stack may live in this process too.
            return start_local_stack(
                cleanup,
                parameters={"PollIntervalSeconds": "3"},
                template=template,
                stack_name=f"iam-{uuid.uuid4().hex[:6]}",
            )

        yield start


def submit(local: LocalStack) -> str:
    local.simulator.queue_next(run_s=1.0, queue_s=0.2)
    answer = httpx.post(
        f"{local.api_url}/v1/videos/generations",
        headers={"Authorization": f"Bearer {local.api_key}"},
        json={"model": "video-default", "prompt": "a fox in snow"},
        timeout=30,
    )
    assert answer.status_code == 202, answer.text
    return str(answer.json()["task_id"])


def test_without_the_state_machine_sns_grant_the_outcome_never_reaches_the_topic(
    tmp_path: Path, local_with: Callable[[Path], LocalStack], capfd: pytest.CaptureFixture[str]
) -> None:
    template = template_without(tmp_path, "JobStateMachine", lambda entry: "SNSPublishMessagePolicy" in entry)
    local = local_with(template)
    task_id = submit(local)

    [denied, *_] = wait_until(lambda: denials(local, "JobStateMachineRole", "sns:Publish"), timeout=40)

    assert denied.resource == local.stack.topic_arn
    printed = capfd.readouterr().err
    assert f"[iam] AccessDenied role={denied.role_name} action=sns:Publish resource={local.stack.topic_arn}" in printed
    sfn = local.aws.client("stepfunctions")
    [execution] = sfn.list_executions(stateMachineArn=local.stack.state_machine_arn)["executions"]
    assert execution["name"] == task_id
    history = sfn.get_execution_history(executionArn=execution["executionArn"], maxResults=1000)["events"]
    failures = [e["taskFailedEventDetails"] for e in history if e["type"] == "TaskFailed"]
    assert any("AuthorizationError" in f.get("error", "") for f in failures), failures


def test_without_the_poll_table_grant_the_job_is_never_seen_to_end(
    tmp_path: Path, local_with: Callable[[Path], LocalStack]
) -> None:
    # The JobRecords statement alone: its neighbours grant the delivery log and the outcome check.
    template = template_without(tmp_path, "PollFunction", lambda grant: grant.get("Sid") == "JobRecords")
    local = local_with(template)
    task_id = submit(local)

    [denied, *_] = wait_until(lambda: denials(local, "PollFunctionRole", "dynamodb:GetItem"), timeout=40)

    assert denied.resource.endswith(f":table/{local.stack.table_name}")
    time.sleep(4)  # the simulated job has ended; a poll with its grant would have recorded that by now
    status = httpx.get(
        f"{local.api_url}/v1/videos/generations/{task_id}",
        headers={"Authorization": f"Bearer {local.api_key}"},
        timeout=30,
    ).json()
    assert status["status"] != "completed"


@pytest.fixture(scope="module")
def local() -> Iterator[LocalStack]:
    with environ_restored(), ExitStack() as cleanup:
        yield start_local_stack(cleanup, parameters={}, name="iam", stack_name="iam-grants")


def client_as(local: LocalStack, role: str, service: str) -> Any:
    session = local.stack.roles[role]
    return boto3.session.Session().client(
        service,  # type: ignore[call-overload]
        endpoint_url=local.aws.endpoint_url,
        region_name=local.aws.region,
        aws_access_key_id=session.access_key_id,
        aws_secret_access_key=session.secret_access_key,
        aws_session_token=session.session_token,
    )


# The authorizer's role may read the owner-id secret and nothing of the bridge's data.
REFUSED: dict[str, tuple[str, int, Callable[[Any, LocalStack], Any]]] = {
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
def test_a_call_the_role_does_not_allow_fails_as_that_service_refuses_it(local: LocalStack, service: str) -> None:
    code, status, call = REFUSED[service]
    with pytest.raises(ClientError) as refused:
        call(client_as(local, "AuthorizerFunctionRole", service), local)

    error = refused.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == (code, status)
    assert "AuthorizerFunctionRole" in error["Error"]["Message"]


def test_a_call_the_role_allows_goes_through(local: LocalStack) -> None:
    secrets = client_as(local, "AuthorizerFunctionRole", "secretsmanager")
    secret = secrets.get_secret_value(SecretId=local.stack.resources["OwnerIdSecret"])
    assert secret["SecretString"]


def test_each_function_calls_with_its_own_role(local: LocalStack) -> None:
    roles = {role: session.role_name for role, session in local.stack.roles.items()}
    before = iam.usage.snapshot()
    submit(local)
    wait_until(
        lambda: any(
            d.role_name == roles["JobStateMachineRole"] and d.action == "sns:Publish"
            for d in iam.usage.snapshot() - before
        )
    )

    by_name = {name: role for role, name in roles.items()}
    used = {
        (by_name[d.role_name], d.action) for d in iam.usage.snapshot() - before if d.allowed and d.role_name in by_name
    }
    assert ("ApiFunctionRole", "states:StartExecution") in used
    assert ("AuthorizerFunctionRole", "secretsmanager:GetSecretValue") in used
    assert ("PollFunctionRole", "dynamodb:UpdateItem") in used
    assert ("JobStateMachineRole", "lambda:InvokeFunction") in used
    assert ("JobStateMachineRole", "sns:Publish") in used
    # Nobody else publishes the outcome, and the api function never touches the poll's grants.
    assert not any(role != "JobStateMachineRole" and action == "sns:Publish" for role, action in used)
