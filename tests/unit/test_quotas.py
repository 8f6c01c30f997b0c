"""The embedded AWS refuses what AWS refuses: each payload quota just above its limit, and accepts
it at the limit, with the error code and HTTP status AWS answers with (`bridge_local/moto_patches/quotas/`).
How sizes are measured is in test_quota_sizes.py."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from bridge_local.emulator import DUMMY_ROLE_ARN, EmbeddedAws
from bridge_local.moto_patches import quotas
from bridge_local.testing import environ_restored, wait_for_execution

KIB_256 = 262_144
MIB_1 = 1_048_576


@pytest.fixture
def aws() -> Iterator[EmbeddedAws]:
    with environ_restored(), EmbeddedAws() as embedded:
        yield embedded


def unique(prefix: str) -> str:
    # moto's state is process-wide: another live emulator (the integration stack) may share it.
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def refusal(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, int, str]:
    response: dict[str, Any] = excinfo.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Message"]


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def machine(aws: EmbeddedAws, definition: dict[str, Any]) -> str:
    sfn = aws.client("stepfunctions")
    arn: str = sfn.create_state_machine(
        name=unique("quota"), definition=json.dumps(definition), roleArn=DUMMY_ROLE_ARN
    )["stateMachineArn"]
    return arn


def run(aws: EmbeddedAws, arn: str, payload: Any, timeout: float = 30.0) -> dict[str, Any]:
    sfn = aws.client("stepfunctions")
    started = sfn.start_execution(stateMachineArn=arn, input=compact(payload))["executionArn"]
    return wait_for_execution(sfn, started, timeout)


PASS_THROUGH = {"StartAt": "Keep", "States": {"Keep": {"Type": "Pass", "End": True}}}


# --------------------------------------------------------------------------- Step Functions


def test_execution_input_is_refused_one_byte_over_256_kib(aws: EmbeddedAws) -> None:
    sfn = aws.client("stepfunctions")
    arn = machine(aws, PASS_THROUGH)
    # Two-byte characters: the quota counts UTF-8 bytes, not characters.
    at_limit = compact({"s": "é" * ((KIB_256 - len('{"s":""}')) // 2)})
    assert len(at_limit.encode()) == KIB_256
    description = wait_for_execution(sfn, sfn.start_execution(stateMachineArn=arn, input=at_limit)["executionArn"])
    assert description["status"] == "SUCCEEDED"

    with pytest.raises(ClientError) as excinfo:
        sfn.start_execution(stateMachineArn=arn, input=at_limit[:-2] + ' "}')
    code, status, message = refusal(excinfo)
    assert (code, status) == ("ValidationException", 400)
    assert "Member must have size less than or equal to 262144 bytes in UTF-8 encoding" in message


def test_execution_names_are_1_to_80_characters_without_forbidden_ones(aws: EmbeddedAws) -> None:
    sfn = aws.client("stepfunctions")
    arn = machine(aws, PASS_THROUGH)
    sfn.start_execution(stateMachineArn=arn, name="n" * 80, input="{}")

    with pytest.raises(ClientError) as excinfo:
        sfn.start_execution(stateMachineArn=arn, name="n" * 81, input="{}")
    code, status, message = refusal(excinfo)
    assert (code, status) == ("ValidationException", 400)
    assert "Member must have length less than or equal to 80" in message

    for name in ("task 1", "task\u00a01", "task[1]", "task:1", "task\x7f1"):
        with pytest.raises(ClientError) as excinfo:
            sfn.start_execution(stateMachineArn=arn, name=name, input="{}")
        assert refusal(excinfo)[:2] == ("InvalidName", 400), name

    # botocore refuses an empty name itself; the interpreter's clients skip that check, AWS does not.
    unchecked = boto3.client(
        "stepfunctions",
        endpoint_url=aws.endpoint_url,
        region_name=aws.region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(parameter_validation=False),
    )
    with pytest.raises(ClientError) as excinfo:
        unchecked.start_execution(stateMachineArn=arn, name="", input="{}")
    assert refusal(excinfo)[:2] == ("ValidationException", 400)


def test_a_state_output_over_256_kib_fails_the_execution(aws: EmbeddedAws) -> None:
    def grow_to(size: int) -> dict[str, Any]:
        pad = size - len('{"r":{"s":""}}')
        grow = {"Type": "Pass", "Result": {"s": "x" * pad}, "ResultPath": "$.r", "End": True}
        return {"StartAt": "Grow", "States": {"Grow": grow}}

    at_limit = run(aws, machine(aws, grow_to(KIB_256)), {})
    assert at_limit["status"] == "SUCCEEDED", at_limit
    # As compact JSON, which is how the quota counts it (moto renders the output with spaces).
    assert len(compact(json.loads(at_limit["output"])).encode()) == KIB_256

    over = run(aws, machine(aws, grow_to(KIB_256 + 1)), {})
    assert (over["status"], over["error"]) == ("FAILED", "States.DataLimitExceeded")


def test_a_task_result_over_256_kib_fails_the_execution_despite_a_catch_all(aws: EmbeddedAws) -> None:
    function = aws.register_function(unique("big-result"), lambda event, context: {"s": "x" * (KIB_256 + 1)})
    arn = machine(
        aws,
        {
            "StartAt": "Call",
            "States": {
                "Call": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {"FunctionName": function, "Payload.$": "$"},
                    "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1, "MaxAttempts": 1}],
                    "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.caught", "Next": "Caught"}],
                    "End": True,
                },
                "Caught": {"Type": "Pass", "End": True},
            },
        },
    )
    # On AWS, States.ALL does not catch States.DataLimitExceeded.
    description = run(aws, arn, {})
    assert (description["status"], description["error"]) == ("FAILED", "States.DataLimitExceeded")


def test_task_parameters_over_256_kib_fail_before_the_call(aws: EmbeddedAws) -> None:
    calls: list[Any] = []

    def echo(event: Any, context: Any) -> Any:
        calls.append(event)
        return {}

    function = aws.register_function(unique("echo"), echo)
    arn = machine(
        aws,
        {
            "StartAt": "Call",
            "States": {
                "Call": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::lambda:invoke",
                    # The input twice: under the quota as state input, over it as the task's input.
                    "Parameters": {"FunctionName": function, "Payload": {"a.$": "$.s", "b.$": "$.s"}},
                    "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
                    "End": True,
                },
                "Caught": {"Type": "Pass", "End": True},
            },
        },
    )
    description = run(aws, arn, {"s": "x" * (KIB_256 // 2)})
    assert (description["status"], description["error"]) == ("FAILED", "States.DataLimitExceeded")
    assert "provided parameters with a size exceeding" in description["cause"]
    assert calls == []

    assert run(aws, arn, {"s": "x" * 1000})["status"] == "SUCCEEDED"
    assert len(calls) == 1


WAIT_FOR_S = {"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "SecondsPath": "$.s", "End": True}}}


@pytest.mark.parametrize("seconds", [100_000_000, -1, 1.5, True, "5"])
def test_seconds_path_out_of_range_fails_with_states_runtime(aws: EmbeddedAws, seconds: Any) -> None:
    description = run(aws, machine(aws, WAIT_FOR_S), {"s": seconds})
    assert (description["status"], description["error"]) == ("FAILED", "States.Runtime")


def test_seconds_path_takes_0_to_99999999(aws: EmbeddedAws) -> None:
    sfn = aws.client("stepfunctions")
    arn = machine(aws, WAIT_FOR_S)
    assert run(aws, arn, {"s": 0})["status"] == "SUCCEEDED"
    longest = sfn.start_execution(stateMachineArn=arn, input=compact({"s": quotas.WAIT_SECONDS_MAX}))["executionArn"]
    time.sleep(1.0)
    assert sfn.describe_execution(executionArn=longest)["status"] == "RUNNING"
    sfn.stop_execution(executionArn=longest)


# --------------------------------------------------------------------------- SQS


def test_sqs_messages_count_utf8_bytes_and_attributes_up_to_the_queue_maximum(aws: EmbeddedAws) -> None:
    sqs = aws.client("sqs")
    queue = sqs.create_queue(QueueName=unique("quota"))["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody="x" * MIB_1)
    attribute = {"k": {"DataType": "String", "StringValue": "v"}}  # 1 + 6 + 1 bytes
    sqs.send_message(QueueUrl=queue, MessageBody="x" * (MIB_1 - 8), MessageAttributes=attribute)

    for body, attributes in (("x" * (MIB_1 + 1), {}), ("x" * (MIB_1 - 7), attribute)):
        with pytest.raises(ClientError) as excinfo:
            sqs.send_message(QueueUrl=queue, MessageBody=body, MessageAttributes=attributes)
        code, status, message = refusal(excinfo)
        assert (code, status) == ("InvalidParameterValue", 400)
        assert "Message must be shorter than 1048576 bytes" in message

    # A queue whose MaximumMessageSize is the former default: 256 KiB, counted in bytes.
    small = sqs.create_queue(QueueName=unique("quota-256k"), Attributes={"MaximumMessageSize": str(KIB_256)})
    sqs.send_message(QueueUrl=small["QueueUrl"], MessageBody="é" * (KIB_256 // 2))
    with pytest.raises(ClientError) as excinfo:
        sqs.send_message(QueueUrl=small["QueueUrl"], MessageBody="é" * (KIB_256 // 2) + "x")
    assert refusal(excinfo)[:2] == ("InvalidParameterValue", 400)


@pytest.mark.parametrize("char", ["\x01", "\x0b", "\x1f", "\ufffe", "\uffff"])
def test_sqs_refuses_bodies_with_characters_xml_forbids(aws: EmbeddedAws, char: str) -> None:
    sqs = aws.client("sqs")
    queue = sqs.create_queue(QueueName=unique("quota"))["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody="tab\t cr\r lf\n del\x7f \ufffd \U0001f98a")
    with pytest.raises(ClientError) as excinfo:
        sqs.send_message(QueueUrl=queue, MessageBody=f"a{char}b")
    code, status, message = refusal(excinfo)
    assert (code, status) == ("InvalidMessageContents", 400)
    assert f"'#x{ord(char):X}'" in message


def test_sqs_batches_are_refused_over_1_mib_in_all(aws: EmbeddedAws) -> None:
    sqs = aws.client("sqs")
    queue = sqs.create_queue(QueueName=unique("quota"))["QueueUrl"]
    half = MIB_1 // 2
    sqs.send_message_batch(
        QueueUrl=queue, Entries=[{"Id": "a", "MessageBody": "x" * half}, {"Id": "b", "MessageBody": "y" * half}]
    )
    with pytest.raises(ClientError) as excinfo:
        sqs.send_message_batch(
            QueueUrl=queue,
            Entries=[{"Id": "a", "MessageBody": "x" * half}, {"Id": "b", "MessageBody": "é" * (half // 2) + "z"}],
        )
    # SQS's JSON protocol carries the query-style code, which botocore reports.
    assert refusal(excinfo)[:2] == ("AWS.SimpleQueueService.BatchRequestTooLong", 400)


# --------------------------------------------------------------------------- SNS


def test_sns_messages_are_refused_over_256_kib_with_their_attributes(aws: EmbeddedAws) -> None:
    sns = aws.client("sns")
    topic = sns.create_topic(Name=unique("quota"))["TopicArn"]
    sns.publish(TopicArn=topic, Message="é" * (KIB_256 // 2))
    attribute = {"k": {"DataType": "String", "StringValue": "v"}}
    sns.publish(TopicArn=topic, Message="x" * (KIB_256 - 8), MessageAttributes=attribute)

    for message, attributes in (("é" * (KIB_256 // 2) + "x", {}), ("x" * (KIB_256 - 7), attribute)):
        with pytest.raises(ClientError) as excinfo:
            sns.publish(TopicArn=topic, Message=message, MessageAttributes=attributes)
        code, status, text = refusal(excinfo)
        assert (code, status, text) == ("InvalidParameter", 400, "Invalid parameter: Message too long")


def test_a_topic_with_a_raised_maximum_takes_larger_messages(aws: EmbeddedAws) -> None:
    sns = aws.client("sns")
    topic = sns.create_topic(Name=unique("quota-1m"))["TopicArn"]
    sns.set_topic_attributes(TopicArn=topic, AttributeName="MaximumMessageSize", AttributeValue=str(MIB_1))
    sns.publish(TopicArn=topic, Message="x" * MIB_1)
    with pytest.raises(ClientError) as excinfo:
        sns.publish(TopicArn=topic, Message="x" * (MIB_1 + 1))
    assert refusal(excinfo)[:2] == ("InvalidParameter", 400)


# --------------------------------------------------------------------------- EventBridge


def test_put_events_is_refused_as_a_whole_over_1_mb_of_entries(aws: EmbeddedAws) -> None:
    events = aws.client("events")

    def entry(size: int, **extra: Any) -> dict[str, Any]:
        # Source "s", DetailType "t", then a JSON Detail filling the rest.
        pad = size - 2 - len('{"p":""}') - quotas.put_events_entry_size({**extra, "Source": "", "DetailType": ""})
        return {"Source": "s", "DetailType": "t", "Detail": compact({"p": "x" * pad}), **extra}

    assert quotas.put_events_entry_size(entry(MIB_1)) == MIB_1
    assert events.put_events(Entries=[entry(MIB_1)])["FailedEntryCount"] == 0
    half = entry(MIB_1 // 2)
    assert events.put_events(Entries=[half, half])["FailedEntryCount"] == 0

    for entries in ([entry(MIB_1 + 1)], [half, entry(MIB_1 // 2 + 1)], [entry(MIB_1) | {"Time": 1_700_000_000}]):
        assert sum(quotas.put_events_entry_size(e) for e in entries) == MIB_1 + (14 if "Time" in entries[0] else 1)
        with pytest.raises(ClientError) as excinfo:
            events.put_events(Entries=entries)
        code, status, message = refusal(excinfo)
        assert (code, status) == ("ValidationException", 400)
        assert message == "Total size of the entries in the request is over the limit."


# --------------------------------------------------------------------------- DynamoDB


@pytest.fixture
def table(aws: EmbeddedAws) -> str:
    name = unique("quota")
    aws.client("dynamodb").create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


ITEM_LIMIT = 409_600
KEY = {"pk": {"S": "k"}}  # 2 + 1 bytes


def test_items_are_refused_over_400_kb(aws: EmbeddedAws, table: str) -> None:
    ddb = aws.client("dynamodb")
    # "body" (4) plus its value, "n" (1) plus a 38-digit number (20), "l" (1) plus a list (3 + 2 * 2).
    fixed = 3 + 4 + (1 + 20) + (1 + 3 + 2 * 2)
    item = KEY | {"n": {"N": "1" * 38}, "l": {"L": [{"BOOL": True}, {"NULL": True}]}}
    at_limit = item | {"body": {"S": "é" * ((ITEM_LIMIT - fixed) // 2)}}
    assert quotas.dynamodb_item_size(at_limit) == ITEM_LIMIT
    ddb.put_item(TableName=table, Item=at_limit)

    over = item | {"body": {"S": "é" * ((ITEM_LIMIT - fixed) // 2) + "x"}}
    with pytest.raises(ClientError) as excinfo:
        ddb.put_item(TableName=table, Item=over)
    assert refusal(excinfo) == ("ValidationException", 400, "Item size has exceeded the maximum allowed size")


def test_updates_are_refused_when_the_item_would_pass_400_kb(aws: EmbeddedAws, table: str) -> None:
    ddb = aws.client("dynamodb")
    near = ITEM_LIMIT - 3 - len("body")
    ddb.put_item(TableName=table, Item=KEY | {"body": {"S": "x" * near}})

    def set_body(value: dict[str, Any], extra: str = "") -> None:
        ddb.update_item(
            TableName=table,
            Key=KEY,
            UpdateExpression=f"SET #b = :b{extra}",
            ExpressionAttributeNames={"#b": "body"},
            ExpressionAttributeValues={":b": value} | ({":c": {"S": "c"}} if extra else {}),
        )

    # Replacing a value counts the new one only (moto counted both).
    set_body({"S": "y" * near})
    with pytest.raises(ClientError) as excinfo:
        set_body({"S": "y" * near}, extra=", c = :c")
    assert refusal(excinfo) == ("ValidationException", 400, "Item size to update has exceeded the maximum allowed size")


def test_an_update_refused_for_its_size_changes_nothing(aws: EmbeddedAws, table: str) -> None:
    ddb = aws.client("dynamodb")
    ddb.put_item(TableName=table, Item=KEY | {"status": {"S": "running"}})
    with pytest.raises(ClientError):
        ddb.update_item(
            TableName=table,
            Key=KEY,
            UpdateExpression="SET #s = :s, big = :big",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": {"S": "failed"}, ":big": {"S": "x" * ITEM_LIMIT}},
        )
    assert ddb.get_item(TableName=table, Key=KEY)["Item"] == KEY | {"status": {"S": "running"}}

    # Nor does one that would have made the item.
    other = {"pk": {"S": "new"}}
    with pytest.raises(ClientError):
        ddb.update_item(
            TableName=table,
            Key=other,
            UpdateExpression="SET big = :big",
            ExpressionAttributeValues={":big": {"S": "x" * ITEM_LIMIT}},
        )
    assert "Item" not in ddb.get_item(TableName=table, Key=other)


# --------------------------------------------------------------------------- watching sizes


def test_observers_see_each_measured_payload(aws: EmbeddedAws) -> None:
    seen: list[tuple[str, int]] = []
    sqs = aws.client("sqs")
    queue = sqs.create_queue(QueueName=unique("quota"))["QueueUrl"]
    with quotas.observe(lambda key, size, text: seen.append((key, size)) if "marker" in text else None):
        sqs.send_message(QueueUrl=queue, MessageBody="marker é")
    sqs.send_message(QueueUrl=queue, MessageBody="marker after")
    assert seen == [("sqs.message", 9)]
