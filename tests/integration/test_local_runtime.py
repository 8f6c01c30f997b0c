"""The local runtime itself: embedded AWS, Lambda routing, deployer, observers, API front, runner.

Stub handlers only (the real pipeline has its own tests): these prove the machinery works and
fail if moto changes under the Lambda routing patch.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge_local import emulator
from bridge_local.api_front import ApiFront, ApiRoute
from bridge_local.deployer import DEFAULT_TEMPLATE, DeployedStack, deploy
from bridge_local.emulator import DUMMY_ROLE_ARN, EmbeddedAws
from bridge_local.moto_patches.interpreter import verify_sfn_integration_fix
from bridge_local.moto_patches.lambda_routing import install_lambda_routing, verify_lambda_routing
from bridge_local.moto_patches.server import verify_dynamodb_request_lock
from bridge_local.tail import drain, format_event
from bridge_local.testing import environ_restored, run_execution, wait_for_execution

PROJECT_ROOT = Path(__file__).resolve().parents[2]
STACK = "runtime-test"


class SomeNamedError(Exception):
    pass


@pytest.fixture(scope="module")
def aws() -> Iterator[EmbeddedAws]:
    with environ_restored(), EmbeddedAws() as embedded:
        yield embedded


@pytest.fixture(scope="module")
def stack(aws: EmbeddedAws) -> DeployedStack:
    # Resources only: the real handlers are the pipeline tests' business. Its own stack name,
    # since moto's state is shared with any other emulator alive in this process.
    return deploy(
        aws,
        DEFAULT_TEMPLATE,
        {"PollIntervalSeconds": "3"},
        stack_name=STACK,
        import_handlers=False,
        apply_environment=False,
    )


def _lambda_task_machine(aws: EmbeddedAws, name: str, function_arn: str) -> str:
    definition = {
        "StartAt": "CallFunction",
        "States": {
            "CallFunction": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": function_arn, "Payload.$": "$"},
                "OutputPath": "$.Payload",
                "Retry": [{"ErrorEquals": ["SomeNamedError"], "IntervalSeconds": 1, "MaxAttempts": 1}],
                "Catch": [{"ErrorEquals": ["SomeNamedError"], "ResultPath": "$.caught", "Next": "Recovered"}],
                "End": True,
            },
            "Recovered": {"Type": "Pass", "End": True},
        },
    }
    sfn = aws.client("stepfunctions")
    return sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=DUMMY_ROLE_ARN)[
        "stateMachineArn"
    ]


# --------------------------------------------------------------------------- Lambda routing


def test_moto_still_has_what_the_local_patches_rely_on() -> None:
    verify_lambda_routing()
    verify_sfn_integration_fix()
    install_lambda_routing()
    from moto.awslambda_simple.models import LambdaSimpleBackend

    assert getattr(LambdaSimpleBackend.invoke, "__bridge_original__", None) is not None


def test_state_machine_lambda_task_runs_the_registered_python_handler(aws: EmbeddedAws) -> None:
    def double(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {
            "doubled": event["n"] * 2,
            "function": context.function_name,
            "left_ms": context.get_remaining_time_in_millis(),
        }

    arn = aws.register_function("stub-double", double, timeout_s=30)
    machine = _lambda_task_machine(aws, "stub-double-machine", arn)

    result = run_execution(aws.client("stepfunctions"), machine, {"n": 21})

    assert result["status"] == "SUCCEEDED"
    output = json.loads(result["output"])
    assert output["doubled"] == 42
    assert output["function"] == "stub-double"
    assert 0 < output["left_ms"] <= 30_000


def test_handler_error_is_retried_by_name_then_caught_by_name(aws: EmbeddedAws) -> None:
    calls: list[dict[str, Any]] = []

    def always_fails(event: dict[str, Any], context: Any) -> None:
        calls.append(event)
        raise SomeNamedError("upstream still unwell")

    arn = aws.register_function("stub-fails", always_fails)
    machine = _lambda_task_machine(aws, "stub-fails-machine", arn)

    result = run_execution(aws.client("stepfunctions"), machine, {"n": 1})

    assert result["status"] == "SUCCEEDED"
    assert len(calls) == 2  # the first attempt and one retry
    caught = json.loads(result["output"])["caught"]
    assert caught["Error"] == "SomeNamedError"
    assert json.loads(caught["Cause"])["errorMessage"] == "upstream still unwell"


def test_direct_invoke_reports_an_unhandled_function_error_like_lambda(aws: EmbeddedAws) -> None:
    def fails(event: dict[str, Any], context: Any) -> None:
        raise SomeNamedError("boom")

    aws.register_function("stub-direct-fails", fails)

    response = aws.client("lambda").invoke(FunctionName="stub-direct-fails", Payload=b'{"a": 1}')

    assert response["FunctionError"] == "Unhandled"
    payload = json.loads(response["Payload"].read())
    assert payload == {"errorType": "SomeNamedError", "errorMessage": "boom", "stackTrace": []}


def test_unregistered_functions_keep_moto_behaviour(aws: EmbeddedAws) -> None:
    lam = aws.client("lambda")
    lam.create_function(
        FunctionName="stub-unrouted",
        Runtime="python3.11",
        Role=DUMMY_ROLE_ARN,
        Handler="app.handler",
        Code={"ZipFile": emulator.DUMMY_ZIP},
    )

    response = lam.invoke(FunctionName="stub-unrouted", Payload=b'{"echo": true}')

    assert "FunctionError" not in response
    assert json.loads(response["Payload"].read()) == {"echo": True}


def test_start_execution_task_starts_the_named_child_with_its_input(aws: EmbeddedAws) -> None:
    sfn = aws.client("stepfunctions")
    child = sfn.create_state_machine(
        name="stub-child",
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}),
        roleArn=DUMMY_ROLE_ARN,
    )["stateMachineArn"]
    parent_definition = {
        "StartAt": "Continue",
        "States": {
            "Continue": {
                "Type": "Task",
                "Resource": "arn:aws:states:::states:startExecution",
                "Parameters": {"StateMachineArn": child, "Name.$": "$.next_name", "Input": {"task_id.$": "$.task_id"}},
                "End": True,
            }
        },
    }
    parent = sfn.create_state_machine(
        name="stub-parent", definition=json.dumps(parent_definition), roleArn=DUMMY_ROLE_ARN
    )["stateMachineArn"]

    result = run_execution(sfn, parent, {"task_id": "v_1", "next_name": "v_1--1"})

    assert result["status"] == "SUCCEEDED", result.get("cause")
    output = json.loads(result["output"])
    assert output["ExecutionArn"].endswith(":execution:stub-child:v_1--1")
    assert isinstance(output["StartDate"], int)
    child_run = wait_for_execution(sfn, output["ExecutionArn"])
    assert json.loads(child_run["input"]) == {"task_id": "v_1"}


# --------------------------------------------------------------------------- DynamoDB


def test_dynamodb_requests_are_handled_one_at_a_time_so_a_conditional_write_wins_once(
    aws: EmbeddedAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    # moto alone checks a write's condition and applies it with nothing held between: two writers
    # racing for one item could both win (as AWS never lets them).
    from moto.dynamodb.models import DynamoDBBackend

    verify_dynamodb_request_lock()
    real = DynamoDBBackend.update_item
    inside, most, counting = [0], [0], threading.Lock()

    def slow_update(self: Any, *args: Any, **kwargs: Any) -> Any:
        with counting:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        try:
            time.sleep(0.05)  # room for any other request to come in, were nothing keeping it out
            return real(self, *args, **kwargs)
        finally:
            with counting:
                inside[0] -= 1

    monkeypatch.setattr(DynamoDBBackend, "update_item", slow_update)
    table = "runtime-test-race"
    setup = aws.client("dynamodb")
    setup.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    setup.put_item(TableName=table, Item={"k": {"S": "job"}})
    writers = [aws.client("dynamodb") for _ in range(6)]
    start, won = threading.Barrier(len(writers)), []

    def record(n: int) -> None:
        start.wait()
        try:
            writers[n].update_item(
                TableName=table,
                Key={"k": {"S": "job"}},
                UpdateExpression="SET outcome = :n",
                ConditionExpression="attribute_not_exists(outcome)",
                ExpressionAttributeValues={":n": {"N": str(n)}},
            )
            won.append(n)
        except writers[n].exceptions.ConditionalCheckFailedException:
            pass

    threads = [threading.Thread(target=record, args=(n,)) for n in range(len(writers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert most[0] == 1
    assert len(won) == 1
    stored = setup.get_item(TableName=table, Key={"k": {"S": "job"}})["Item"]
    assert stored["outcome"] == {"N": str(won[0])}


# --------------------------------------------------------------------------- deployer


def test_deployer_creates_every_template_resource(aws: EmbeddedAws, stack: DeployedStack) -> None:
    table = aws.client("dynamodb").describe_table(TableName=stack.table_name)["Table"]
    assert table["KeySchema"] == [{"AttributeName": "task_id", "KeyType": "HASH"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    ttl = aws.client("dynamodb").describe_time_to_live(TableName=stack.table_name)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}

    assert aws.client("sns").get_topic_attributes(TopicArn=stack.topic_arn)["Attributes"]
    assert stack.event_bus_name == f"{STACK}-video-events"
    assert aws.client("events").describe_event_bus(Name=stack.event_bus_name)["Name"] == stack.event_bus_name
    secret = aws.client("secretsmanager").get_secret_value(SecretId=stack.secret_arn)
    assert json.loads(secret["SecretString"]) == {"api_key": ""}
    # Generated like Secrets Manager would: a 48-character key usable as a Standard Webhooks secret.
    signing = aws.client("secretsmanager").get_secret_value(SecretId=stack.resources["WebhookSigningSecret"])
    document = json.loads(signing["SecretString"])
    assert document["previous"] == "" and len(document["current"]) == 48 and document["current"].isalnum()
    sqs = aws.client("sqs")
    queue = sqs.get_queue_attributes(QueueUrl=stack.queue_urls["WebhookQueue"], AttributeNames=["All"])
    redrive = json.loads(queue["Attributes"]["RedrivePolicy"])
    dead_letter = sqs.get_queue_attributes(
        QueueUrl=stack.queue_urls["WebhookDeadLetterQueue"], AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    assert redrive["deadLetterTargetArn"] == dead_letter and int(redrive["maxReceiveCount"]) == 50
    [source] = [s for s in stack.event_sources if s.function_logical_id == "WebhookDeliveryFunction"]
    assert source.queue_url == stack.queue_urls["WebhookQueue"] and source.report_batch_item_failures
    # Schedule events become local timers (the reconciler's sweep every 5 minutes).
    assert [(s.function_logical_id, s.every_s) for s in stack.schedules] == [("ReconcileFunction", 300)]
    names = {f["FunctionName"] for f in aws.client("lambda").list_functions()["Functions"]}
    assert set(stack.function_names.values()) <= names


def test_deployer_applies_definition_substitutions(aws: EmbeddedAws, stack: DeployedStack) -> None:
    machine = aws.client("stepfunctions").describe_state_machine(stateMachineArn=stack.state_machine_arn)

    assert machine["name"] == f"{STACK}-job-tracker"
    assert "${" not in machine["definition"]
    definition = json.loads(machine["definition"])
    poll = definition["States"]["PollUpstream"]["Parameters"]["FunctionName"]
    assert poll == f"arn:aws:lambda:us-east-1:123456789012:function:{stack.function_names['PollFunction']}"
    copy = definition["States"]["KeepVideo"]["Parameters"]["FunctionName"]
    assert copy == f"arn:aws:lambda:us-east-1:123456789012:function:{stack.function_names['KeepVideoFunction']}"


def test_deployer_resolves_function_environment(stack: DeployedStack) -> None:
    api_env = stack.function_environments["ApiFunction"]
    assert api_env["STATE_MACHINE_ARN"] == stack.state_machine_arn
    assert api_env["JOBS_TABLE_NAME"] == stack.table_name
    assert api_env["ROUTER_ONE_API_KEY_SECRET"] == stack.secret_arn
    assert api_env["POLL_INTERVAL_SECONDS"] == "3"
    assert api_env["POWERTOOLS_LOG_LEVEL"] == "INFO"
    assert stack.api_function == "ApiFunction"
    assert {(r.method, r.resource) for r in stack.api_routes} == {
        ("POST", "/v1/videos/generations"),
        ("GET", "/v1/videos/generations/{task_id}"),
        ("GET", "/v1/videos/generations"),
        ("POST", "/v1/videos/generations/{task_id}/cancel"),
        ("GET", "/v1/videos/generations/{task_id}/webhooks"),
        ("POST", "/v1/videos/generations/{task_id}/webhooks/{event_id}/redeliver"),
        ("POST", "/v1/webhook-endpoints"),
        ("GET", "/v1/webhook-endpoints"),
        ("GET", "/v1/webhook-endpoints/{endpoint_id}"),
        ("PATCH", "/v1/webhook-endpoints/{endpoint_id}"),
        ("DELETE", "/v1/webhook-endpoints/{endpoint_id}"),
        ("POST", "/v1/webhook-endpoints/{endpoint_id}/rotate"),
        ("POST", "/v1/webhook-endpoints/{endpoint_id}/recover"),
        ("GET", "/v1/webhook-endpoints/{endpoint_id}/deliveries"),
        ("GET", "/v1/account"),
        ("GET", "/openapi.json"),
    }


def test_deployer_leaves_out_resources_whose_condition_is_false(stack: DeployedStack) -> None:
    # CallerRouterOneKeys defaults to disabled: no KMS key, an empty setting, no output, no policy.
    assert "CallerKeyEncryptionKey" not in stack.resources
    assert stack.function_environments["ApiFunction"]["CALLER_KEY_KMS_KEY_ID"] == ""
    assert "CallerKeyEncryptionKeyArn" not in stack.outputs


def test_deployer_creates_conditional_resources_when_their_condition_holds(aws: EmbeddedAws) -> None:
    allowed = deploy(
        aws,
        DEFAULT_TEMPLATE,
        {"CallerRouterOneKeys": "allowed"},
        stack_name=f"{STACK}-caller-keys",
        import_handlers=False,
        apply_environment=False,
    )
    key_id = allowed.resources["CallerKeyEncryptionKey"]
    kms = aws.client("kms")
    assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is True
    assert allowed.function_environments["PollFunction"]["CALLER_KEY_KMS_KEY_ID"] == key_id
    assert allowed.outputs["CallerKeyEncryptionKeyArn"] == kms.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"]


def test_deployer_imports_handlers_and_puts_layers_on_the_path(aws: EmbeddedAws, tmp_path: Path) -> None:
    (tmp_path / "layer" / "stubdomain").mkdir(parents=True)
    (tmp_path / "layer" / "stubdomain" / "__init__.py").write_text("GREETING = 'hello from the layer'\n")
    (tmp_path / "fn").mkdir()
    (tmp_path / "fn" / "app.py").write_text(
        textwrap.dedent(
            """
            import os
            from stubdomain import GREETING

            def handler(event, context):
                return {"greeting": GREETING, "table": os.environ["TABLE"], "event": event}
            """
        )
    )
    (tmp_path / "template.yaml").write_text(
        textwrap.dedent(
            """
            Transform: AWS::Serverless-2016-10-31
            Globals:
              Function:
                Runtime: python3.11
                Environment:
                  Variables:
                    TABLE: !Ref Table
            Resources:
              Layer:
                Type: AWS::Serverless::LayerVersion
                Properties:
                  ContentUri: layer/
              Table:
                Type: AWS::DynamoDB::Table
                Properties:
                  BillingMode: PAY_PER_REQUEST
                  AttributeDefinitions: [{AttributeName: id, AttributeType: S}]
                  KeySchema: [{AttributeName: id, KeyType: HASH}]
              Fn:
                Type: AWS::Serverless::Function
                Properties:
                  CodeUri: fn/
                  Handler: app.handler
                  Events:
                    Any:
                      Type: Api
                      Properties:
                        Path: /things/{id}
                        Method: any
            """
        )
    )
    with environ_restored():
        mini = deploy(aws, tmp_path / "template.yaml", stack_name="mini", observers=False)
        response = aws.client("lambda").invoke(FunctionName=mini.function_names["Fn"], Payload=b'{"x": 1}')

    assert json.loads(response["Payload"].read()) == {
        "greeting": "hello from the layer",
        "table": "mini-Table",
        "event": {"x": 1},
    }
    assert mini.api_routes == [ApiRoute(method="ANY", resource="/things/{id}")]
    assert mini.environment == {"TABLE": "mini-Table"}


# --------------------------------------------------------------------------- observers


def test_topic_and_bus_reach_the_observation_queues(aws: EmbeddedAws, stack: DeployedStack) -> None:
    envelope = {"id": "evt_1", "type": "video.generation.completed", "data": {"status": "completed"}}
    aws.client("sns").publish(
        TopicArn=stack.topic_arn,
        Message=json.dumps(envelope),
        MessageAttributes={"event_type": {"DataType": "String", "StringValue": "video.generation.completed"}},
    )
    aws.client("events").put_events(
        Entries=[
            {
                "EventBusName": stack.event_bus_name,
                "Source": stack.parameters["EventSource"],
                "DetailType": "Video Generation Completed",
                "Detail": json.dumps(envelope),
            },
            # Another source: the rule's pattern keeps it out.
            {"EventBusName": stack.event_bus_name, "Source": "other", "DetailType": "x", "Detail": "{}"},
        ]
    )

    sns_events = drain(stack.sns_queue_url, timeout=5, expect=1, sqs=aws.client("sqs"))
    bus_events = drain(stack.events_queue_url, timeout=5, expect=1, sqs=aws.client("sqs"))

    assert sns_events == [
        {
            "channel": "sns",
            "topic_arn": stack.topic_arn,
            "message_id": sns_events[0]["message_id"],
            "subject": None,
            "attributes": {"event_type": "video.generation.completed"},
            "event": envelope,
        }
    ]
    assert len(bus_events) == 1
    assert bus_events[0]["channel"] == "eventbridge"
    assert bus_events[0]["detail_type"] == "Video Generation Completed"
    assert bus_events[0]["source"] == "router-one.video-bridge"
    assert bus_events[0]["event"] == envelope
    assert "Video Generation Completed" in format_event(bus_events[0])
    assert drain(stack.events_queue_url, timeout=1.5, sqs=aws.client("sqs")) == []


# --------------------------------------------------------------------------- API front


@pytest.fixture()
def front() -> Iterator[tuple[ApiFront, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []

    def stub(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen.append(event)
        if event["pathParameters"] and event["pathParameters"].get("task_id") == "crash":
            raise RuntimeError("secret internals")
        if event["pathParameters"] and event["pathParameters"].get("task_id") == "binary":
            return {"statusCode": 200, "body": base64.b64encode(b"\x00\xff").decode(), "isBase64Encoded": True}
        return {
            "statusCode": 202 if event["httpMethod"] == "POST" else 200,
            "headers": {"Content-Type": "application/json"},
            "multiValueHeaders": {"X-Multi": ["a", "b"]},
            "body": json.dumps({"echo": event["body"], "function": context.function_name}),
        }

    routes = [
        ApiRoute("POST", "/v1/videos/generations"),
        ApiRoute("GET", "/v1/videos/generations/{task_id}"),
    ]
    with ApiFront(stub, routes, stage="dev", function_name="stub-api") as api:
        yield api, seen


def test_api_front_turns_a_get_into_a_rest_proxy_event(front: tuple[ApiFront, list[dict[str, Any]]]) -> None:
    api, seen = front

    response = httpx.get(f"{api.url}/v1/videos/generations/v_123?verbose=1&tag=a&tag=b", headers={"X-Trace": "t1"})

    assert response.status_code == 200
    assert response.json() == {"echo": None, "function": "stub-api"}
    assert response.headers.get_list("X-Multi") == ["a", "b"]
    event = seen[-1]
    assert event["resource"] == "/v1/videos/generations/{task_id}"
    assert event["path"] == "/v1/videos/generations/v_123"
    assert event["httpMethod"] == "GET"
    assert event["pathParameters"] == {"task_id": "v_123"}
    assert event["queryStringParameters"] == {"verbose": "1", "tag": "b"}
    assert event["multiValueQueryStringParameters"] == {"verbose": ["1"], "tag": ["a", "b"]}
    assert event["headers"]["X-Trace"] == "t1"
    assert event["multiValueHeaders"]["X-Trace"] == ["t1"]
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["stage"] == "dev"
    assert context["resourcePath"] == "/v1/videos/generations/{task_id}"
    assert context["path"] == "/v1/videos/generations/v_123"  # the URL as sent: no stage locally
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert context["requestId"]


def test_api_front_passes_post_bodies_and_round_trips_the_response(
    front: tuple[ApiFront, list[dict[str, Any]]],
) -> None:
    api, seen = front
    body = {"model": "video-default", "prompt": "a red fox running through snow"}

    response = httpx.post(f"{api.url}/v1/videos/generations", json=body, headers={"Idempotency-Key": "k1"})

    assert response.status_code == 202
    assert json.loads(response.json()["echo"]) == body
    event = seen[-1]
    assert event["pathParameters"] is None
    assert event["queryStringParameters"] is None
    assert event["headers"]["Idempotency-Key"] == "k1"
    assert event["headers"]["Content-Type"] == "application/json"


def test_api_front_base64_encodes_binary_bodies_both_ways(front: tuple[ApiFront, list[dict[str, Any]]]) -> None:
    api, seen = front

    response = httpx.request("GET", f"{api.url}/v1/videos/generations/binary", content=b"\xff\xfe")

    assert response.content == b"\x00\xff"
    assert seen[-1]["isBase64Encoded"] is True
    assert base64.b64decode(seen[-1]["body"]) == b"\xff\xfe"


def test_api_front_answers_unknown_routes_as_api_gateway_does(front: tuple[ApiFront, list[dict[str, Any]]]) -> None:
    api, seen = front

    # This front has no gateway responses: AWS's own answer (the template's: tests/unit/test_gateway_responses.py).
    for response in (httpx.get(f"{api.url}/v2/nothing"), httpx.delete(f"{api.url}/v1/videos/generations/v_1")):
        assert (response.status_code, response.json()) == (403, {"message": "Missing Authentication Token"})
    assert seen == []


def test_api_front_hides_handler_crashes_behind_a_500_envelope(front: tuple[ApiFront, list[dict[str, Any]]]) -> None:
    api, _ = front

    response = httpx.get(f"{api.url}/v1/videos/generations/crash")

    assert response.status_code == 500
    assert response.json() == {"error": {"message": "internal error", "type": "api_error", "code": "internal_error"}}
    assert "secret internals" not in response.text


def test_sqs_poller_delivers_batches_and_keeps_only_reported_failures(aws: EmbeddedAws) -> None:
    from bridge_local.deployer import SqsEventSource
    from bridge_local.sqs_poller import SqsPoller

    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName="poller-test", Attributes={"VisibilityTimeout": "1"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    batches: list[list[str]] = []

    def consumer(event: dict[str, Any], context: Any) -> dict[str, Any]:
        bodies = [record["body"] for record in event["Records"]]
        batches.append(bodies)
        assert all(record["eventSourceARN"] == arn for record in event["Records"])
        failed = [r["messageId"] for r in event["Records"] if r["body"] == "poison"]
        return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}

    aws.register_function("poller-consumer", consumer)
    for body in ("one", "two", "poison"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    source = SqsEventSource("Consumer", "poller-consumer", url, arn, batch_size=10, report_batch_item_failures=True)
    poller = SqsPoller(source, aws.region)
    session_sqs, session_lambda = aws.client("sqs"), aws.client("lambda")
    assert poller.poll_once(session_sqs, session_lambda) == 2
    assert sorted(batches[0]) == ["one", "poison", "two"]
    time.sleep(1.2)  # the failed message becomes visible again; the others are gone for good
    poller.poll_once(session_sqs, session_lambda)
    assert batches[-1] == ["poison"]


# --------------------------------------------------------------------------- the runner


def test_runner_serves_the_api_prints_events_and_webhooks_and_stops_on_sigint(tmp_path: Path) -> None:
    from bridge_local.simulator import RouterOneSimulator

    key = "sk-test-never-printed-4242"
    with RouterOneSimulator(api_key=key, queue_s=0, run_s=1) as sim:
        env = {
            **os.environ,
            "ROUTER_ONE_BASE_URL": sim.url,
            "ROUTER_ONE_API_KEY": key,
            "PYTHONPATH": f"{PROJECT_ROOT}{os.pathsep}{PROJECT_ROOT / 'layers' / 'bridge'}",
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("VIDEO_BRIDGE_API_KEY", None)
        for name in ("AWS_ENDPOINT_URL", "MOTO_PORT"):
            env.pop(name, None)
        out_path, err_path = tmp_path / "out.txt", tmp_path / "err.txt"
        keys_file = tmp_path / "keys.txt"
        keys_file.write_text("# a third tenant\nvb-runner-third-key\n\n")
        command = [sys.executable, "-m", "bridge_local.run", "--port", "0", "--receiver-port", "0"]
        command += [
            "--api-key",
            "vb-runner-test-key",
            "--api-key",
            "vb-runner-other-key",
            "--api-keys-file",
            str(keys_file),
        ]
        with out_path.open("w") as out, err_path.open("w") as err:
            proc = subprocess.Popen(
                command,
                cwd=PROJECT_ROOT,
                env=env,
                stdout=out,
                stderr=err,
            )
            try:
                api_url = _wait_for_line(out_path, "API: ", proc, timeout=60).split("API: ", 1)[1].strip()
                receiver_url = _wait_for_line(out_path, "Webhook receiver", proc, timeout=10).rsplit(" ", 1)[1]
                anonymous = httpx.get(f"{api_url}/v1/videos/generations", timeout=10)
                assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "invalid_api_key"
                submitted = httpx.post(
                    f"{api_url}/v1/videos/generations",
                    headers={"Authorization": "Bearer vb-runner-test-key"},
                    json={
                        "model": "video-default",
                        "prompt": "a red fox running through snow",
                        "callback_url": f"{receiver_url}/hooks/demo?fail=2",
                    },
                    timeout=30,
                )
                assert submitted.status_code == 202, submitted.text
                # Each key is a tenant: the other one does not see this job.
                task_url = f"{api_url}/v1/videos/generations/{submitted.json()['task_id']}"
                other = httpx.get(task_url, headers={"Authorization": "Bearer vb-runner-other-key"}, timeout=30)
                assert other.status_code == 404 and other.json()["error"]["code"] == "task_not_found"
                _wait_for_line(out_path, "── SNS", proc, timeout=60)
                _wait_for_line(out_path, "── EventBridge", proc, timeout=30)
                # Fails twice on purpose, then the third attempt (retries 2 s and 5 s later) is accepted.
                accepted = _wait_for_line(out_path, "answered 200", proc, timeout=40)
                # The printed tail command works as printed against this run.
                tail_line = _wait_for_line(out_path, "video-bridge tail --topic-arn", proc, timeout=5).strip()
                tail = subprocess.run(
                    [*shlex.split(tail_line), "--stop-after", "1"],
                    cwd=PROJECT_ROOT,
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
                assert tail.returncode == 0 and "following arn:aws:sns:" in tail.stderr, tail.stdout + tail.stderr
            finally:
                proc.send_signal(signal.SIGINT)
                returncode = proc.wait(timeout=30)

    output = out_path.read_text() + err_path.read_text()
    assert returncode == 0, output
    assert "curl -s -X POST" in output
    # Every key is printed with its owner id, and the owner ids differ.
    owners = {
        line.split()[0]: line.split("owner ")[1]
        for line in output.splitlines()
        if line.startswith("  vb-runner-") and " owner own_" in line
    }
    assert set(owners) == {"vb-runner-test-key", "vb-runner-other-key", "vb-runner-third-key"}
    assert len(set(owners.values())) == 3
    assert "video.generation.completed" in output
    assert key not in output
    webhook_lines = [line for line in output.splitlines() if line.startswith("[webhook /hooks/demo]")]
    assert [line.split("answered ")[1][:3] for line in webhook_lines] == ["500", "500", "200"]
    assert all("signature ok" in line for line in webhook_lines)
    assert len({line.split("id=")[1].split()[0] for line in webhook_lines}) == 1
    assert "signature ok" in accepted
    env_file = next(line for line in output.splitlines() if "Function environments for SAM local:" in line)
    functions = json.loads(Path(env_file.rsplit(": ", 1)[1]).read_text())
    assert {"ApiFunction", "PollFunction", "WebhookDeliveryFunction"} <= set(functions)
    # The printed sam local command sends the functions' SDK calls to this run's embedded AWS.
    endpoint = next(line for line in output.splitlines() if line.startswith("Embedded AWS: ")).split()[2]
    sam_local = next(line for line in output.splitlines() if "sam local invoke ApiFunction" in line)
    assert f"--parameter-overrides LocalAwsEndpointUrl={endpoint}" in sam_local
    assert f"--env-vars {env_file.rsplit(': ', 1)[1]}" in sam_local


def _wait_for_line(path: Path, marker: str, proc: subprocess.Popen[bytes], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in path.read_text().splitlines():
            if marker in line:
                return line
        if proc.poll() is not None:
            raise AssertionError(f"runner exited early ({proc.returncode})")
        time.sleep(0.2)
    raise AssertionError(f"no {marker!r} within {timeout}s: {path.read_text()}")
