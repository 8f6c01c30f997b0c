"""The SAM template and the state machine definition agree with each other and lint clean."""

import json
import re
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint_all
from cfnlint.decode import decode

from tools.asl_lint import Unfillable, filled, substitutions_by_definition

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


def template() -> dict:
    parsed, problems = decode(str(TEMPLATE))
    assert not problems, problems
    return parsed


def test_template_passes_cfn_lint_including_the_sam_transform() -> None:
    findings = lint_all(TEMPLATE.read_text())
    # Informational rules too, as `./dev lint` runs them (--include-checks I); like the CLI, not the
    # experimental ones lint_all adds.
    assert [str(f) for f in findings if f.rule.id[0] in "EWI" and not f.rule.experimental] == []


def test_every_definition_substitution_is_used_and_every_placeholder_is_provided() -> None:
    machine = template()["Resources"]["JobStateMachine"]["Properties"]
    definition = (ROOT / machine["DefinitionUri"]).read_text()
    placeholders = set(re.findall(r"\$\{(\w+)\}", definition))
    assert placeholders == set(machine["DefinitionSubstitutions"])
    json.loads(definition)  # valid JSON as written


def test_wait_state_reads_the_poll_result_and_transient_errors_are_retried_by_name() -> None:
    states = json.loads((ROOT / "statemachine" / "job_tracker.asl.json").read_text())["States"]
    assert states["WaitBeforePoll"]["SecondsPath"] == "$.next_wait_s"
    retried = [name for rule in states["PollUpstream"]["Retry"] for name in rule["ErrorEquals"]]
    assert "UpstreamTransientError" in retried


def test_functions_use_python_311_with_the_powertools_and_domain_layers() -> None:
    globals_ = template()["Globals"]["Function"]
    assert globals_["Runtime"] == "python3.11"
    layers = json.dumps(globals_["Layers"])
    assert "PowertoolsLayerParameter" in layers and "BridgeLayer" in layers


def test_powertools_layer_comes_from_the_public_parameter_of_the_functions_runtime_unless_pinned() -> None:
    parsed = template()
    globals_ = parsed["Globals"]["Function"]
    parameters = parsed["Parameters"]
    public = parameters["PowertoolsLayerParameter"]
    assert public["Type"] == "AWS::SSM::Parameter::Value<String>"
    # /aws/service/powertools/python/<architecture>/<runtime>/latest, as the functions run.
    [architecture] = globals_["Architectures"]
    assert public["Default"] == f"/aws/service/powertools/python/{architecture}/{globals_['Runtime']}/latest"
    assert parameters["PowertoolsLayerArn"]["Default"] == ""
    assert globals_["Layers"][0] == {
        "Fn::If": ["PowertoolsLayerPinned", {"Ref": "PowertoolsLayerArn"}, {"Ref": "PowertoolsLayerParameter"}]
    }
    pattern = parameters["PowertoolsLayerArn"]["AllowedPattern"]
    assert re.fullmatch(pattern, "")
    assert re.fullmatch(
        pattern, "arn:aws-cn:lambda:cn-north-1:017000801446:layer:AWSLambdaPowertoolsPythonV3-python311-x86_64:27"
    )


def _statements(node: object) -> list[dict]:
    if isinstance(node, dict):
        found = [s for s in node.get("Statement", []) if isinstance(s, dict)] if "Statement" in node else []
        return found + [s for value in node.values() for s in _statements(value)]
    if isinstance(node, list):
        return [s for value in node for s in _statements(value)]
    return []


def test_no_policy_grants_wildcard_actions() -> None:
    statements = _statements(template()["Resources"])
    assert statements
    for statement in statements:
        if statement.get("Effect") != "Allow":
            continue  # a wildcard in a Deny (such as the bucket's TLS-only rule) narrows access
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert not [a for a in actions if a == "*" or a.endswith(":*")], statement


def test_webhook_defaults_in_the_template_match_the_code() -> None:
    from bridge.settings import DEFAULT_WEBHOOK_RETRY_SCHEDULE, WebhookSendingSettings

    parameters = template()["Parameters"]
    schedule = tuple(int(part) for part in parameters["WebhookRetrySchedule"]["Default"].split(","))
    assert schedule == DEFAULT_WEBHOOK_RETRY_SCHEDULE
    assert (
        float(parameters["WebhookTimeoutSeconds"]["Default"])
        == WebhookSendingSettings.model_fields["webhook_timeout_seconds"].default
    )
    # Loopback callbacks are for the local run; a deployed stack refuses them unless told otherwise.
    assert parameters["WebhookAllowLoopback"]["Default"] == "false"


def test_webhook_queue_has_a_dead_letter_queue_and_a_visibility_above_the_function_timeout() -> None:
    resources = template()["Resources"]
    queue = resources["WebhookQueue"]["Properties"]
    function = resources["WebhookDeliveryFunction"]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["WebhookDeadLetterQueue", "Arn"]}
    assert queue["VisibilityTimeout"] >= 6 * function["Timeout"]
    event = function["Events"]["Deliveries"]["Properties"]
    assert "ReportBatchItemFailures" in event["FunctionResponseTypes"]
    # Every attempt of a batch must fit in one invocation.
    assert event["BatchSize"] * 15 < function["Timeout"]


def _watched(alarm: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(namespace, metric, first dimension's value) of every metric an alarm reads, math included."""
    metrics = [query["MetricStat"]["Metric"] for query in alarm.get("Metrics", []) if "MetricStat" in query]
    metrics = metrics or [alarm]
    return [(m["Namespace"], m["MetricName"], json.dumps(m["Dimensions"][0]["Value"])) for m in metrics]


def test_alarms_watch_failed_executions_crashes_late_outcomes_delivery_failures_and_dead_letters() -> None:
    resources = template()["Resources"]
    alarms = {name: r["Properties"] for name, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    watched = {metric for alarm in alarms.values() for metric in _watched(alarm)}
    service = json.dumps("video-bridge")
    assert ("AWS/States", "ExecutionsFailed", json.dumps({"Ref": "JobStateMachine"})) in watched
    # Poll crashes: Lambda's errors less the Router One hiccups raised on purpose.
    assert ("AWS/Lambda", "Errors", json.dumps({"Ref": "PollFunction"})) in watched
    assert ("VideoBridge", "PollUpstreamErrorsRaised", service) in watched
    assert alarms["PollCrashesAlarm"]["Metrics"][0]["Expression"] == "errors - FILL(hiccups, 0)"
    assert ("VideoBridge", "OutcomesPublishedBySweep", service) in watched
    assert ("VideoBridge", "WebhookDeliveryFailures", service) in watched
    assert ("AWS/Lambda", "Errors", json.dumps({"Ref": "WebhookDeliveryFunction"})) in watched
    dead_letter_queues = {
        name
        for name, r in resources.items()
        if r["Type"] == "AWS::SQS::Queue" and "RedrivePolicy" not in r.get("Properties", {})
    }
    assert dead_letter_queues == {"WebhookDeadLetterQueue", "ReconcileDeadLetterQueue"}
    for queue in dead_letter_queues:
        assert (
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            json.dumps({"Fn::GetAtt": [queue, "QueueName"]}),
        ) in watched
    assert all(a["AlarmActions"] == [{"Ref": "AlarmTopic"}] for a in alarms.values())
    # Every alarm points at its runbook line, and the runbook has one for every alarm.
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    for name, alarm in alarms.items():
        assert "docs/runbook.md" in alarm["AlarmDescription"], name
        assert f"`{name}`" in runbook, name


def test_every_metric_an_alarm_reads_from_the_bridge_is_emitted_by_its_code() -> None:
    """An alarm on a misspelt metric would never fire: each custom metric is added somewhere."""
    globals_env = template()["Globals"]["Function"]["Environment"]["Variables"]
    source = "\n".join(path.read_text() for path in (ROOT / "layers" / "bridge" / "bridge").rglob("*.py"))
    source += "\n".join(path.read_text() for path in (ROOT / "functions").glob("*/app.py"))
    alarms = [r["Properties"] for r in template()["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    custom = {metric for alarm in alarms for metric in _watched(alarm) if not metric[0].startswith("AWS/")}
    assert custom
    for namespace, name, service in custom:
        assert namespace == globals_env["POWERTOOLS_METRICS_NAMESPACE"]
        assert json.loads(service) == globals_env["POWERTOOLS_SERVICE_NAME"]  # Powertools' default dimension
        assert f'add_metric(name="{name}"' in source, name


def test_every_skipped_checkov_check_says_why() -> None:
    skips = [
        (name, skip)
        for name, r in template()["Resources"].items()
        for skip in (r.get("Metadata", {}).get("checkov", {}).get("skip") or [])
    ]
    assert skips
    for name, skip in skips:
        assert skip["id"].startswith("CKV_"), name
        assert len(skip.get("comment", "")) >= 40, f"{name} skips {skip['id']} without a reason"


def test_each_checkov_skip_reason_is_written_once() -> None:
    """A skip shared by several resources is an anchor on its first use and an alias elsewhere."""
    text = TEMPLATE.read_text()
    reasons = {
        skip["comment"]
        for r in template()["Resources"].values()
        for skip in (r.get("Metadata", {}).get("checkov", {}).get("skip") or [])
    }
    assert reasons
    for reason in reasons:
        assert text.count(reason) == 1, reason


def test_sections_come_in_order_and_every_parameter_is_in_exactly_one_console_group() -> None:
    parsed = template()
    sections = [
        key for key in parsed if key in {"Parameters", "Metadata", "Conditions", "Globals", "Resources", "Outputs"}
    ]
    assert sections == ["Parameters", "Metadata", "Conditions", "Globals", "Resources", "Outputs"]
    interface = parsed["Metadata"]["AWS::CloudFormation::Interface"]
    grouped = [name for group in interface["ParameterGroups"] for name in group["Parameters"]]
    assert sorted(grouped) == sorted(parsed["Parameters"])  # every parameter, each once, nothing unknown
    assert all(group["Label"]["default"] for group in interface["ParameterGroups"])
    assert set(interface["ParameterLabels"]) <= set(parsed["Parameters"])
    assert all(label["default"] for label in interface["ParameterLabels"].values())


def _machine() -> dict:
    return json.loads((ROOT / "statemachine" / "job_tracker.asl.json").read_text())["States"]


def test_no_lambda_death_in_the_loop_fails_the_execution() -> None:
    states = _machine()
    # A timeout, running out of memory or an unknown error (Sandbox.Timedout, Lambda.Unknown, ...)
    # sends a poll back to waiting; the copy step publishes without the copy.
    assert {"ErrorEquals": ["States.ALL"], "ResultPath": "$.last_error", "Next": "AfterCrash"}.items() <= (
        states["PollUpstream"]["Catch"][-1].items()
    )
    assert states["AfterCrash"]["Default"] == "WaitBeforePoll"
    assert states["KeepVideo"]["Catch"][-1]["ErrorEquals"] == ["States.ALL"]
    assert states[states["KeepVideo"]["Catch"][-1]["Next"]] == {
        "Comment": states["PublishWithoutCopy"]["Comment"],
        "Type": "Pass",
        "Result": "publish",
        "ResultPath": "$.action",
        "Next": "PollUpstream",
    }
    retried = {name for rule in states["PollUpstream"]["Retry"] for name in rule["ErrorEquals"]}
    # What AWS advises retrying for a Lambda task.
    assert {
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
        "Lambda.ClientExecutionTimeoutException",
    } <= retried


def test_an_outcome_whose_sends_keep_failing_fails_the_execution_for_its_outcome_check() -> None:
    states = _machine()
    poll = states["PollUpstream"]
    # Matched before the catch-alls: retried a few times, then the execution fails, the outcome still marked.
    assert poll["Retry"][0]["ErrorEquals"] == ["OutcomeNotPublished"] and poll["Retry"][0]["MaxAttempts"] > 0
    assert poll["Catch"][0]["ErrorEquals"] == ["OutcomeNotPublished"]
    assert states[poll["Catch"][0]["Next"]]["Type"] == "Fail"
    # A publish-only execution that keeps dying fails the same way instead of looping at a 0 s wait.
    [publish] = states["AfterCrash"]["Choices"]
    assert publish["StringEquals"] == "publish" and states[publish["Next"]]["Type"] == "Fail"


def test_every_send_is_the_functions_and_a_turn_is_three_states() -> None:
    """No SNS, EventBridge, SQS or DynamoDB step: each would be transitions on every job (docs/cost.md)."""
    states = _machine()
    resources = {s["Resource"] for s in _all_states(states) if "Resource" in s}
    assert resources == {"arn:${Partition}:states:::lambda:invoke", "arn:${Partition}:states:::states:startExecution"}
    assert states["WaitBeforePoll"]["Next"] == "PollUpstream"
    assert states["PollUpstream"]["Next"] == "RouteOnPollResult"
    [wait] = [c for c in states["RouteOnPollResult"]["Choices"] if c["StringEquals"] == "wait"]
    assert wait["Next"] == "WaitBeforePoll"
    assert states[states["RouteOnPollResult"]["Default"]]["Type"] == "Succeed"


def test_new_states_read_only_fields_every_older_input_has() -> None:
    # An execution of this definition may start from a continuation an older definition started, or
    # from the input the code builds today; a path to anything else would fail it with States.Runtime.
    states = _machine()

    def read(node: object) -> set[str]:
        if isinstance(node, dict):
            own = {v for k, v in node.items() if (k.endswith(".$") or k == "Variable") and isinstance(v, str)}
            return own.union(*(read(v) for v in node.values()))
        if isinstance(node, list):
            return set().union(*(read(v) for v in node))
        return set()

    at_start = {path for path in read([states["WaitBeforePoll"], states["PollUpstream"]]) if path.startswith("$.")}
    older_continuation = {
        "task_id", "model", "submitted_at", "deadline_at", "next_wait_s", "generation", "polls_in_execution",
        "action", "poll_memory",
    }  # fmt: skip
    assert {path.removeprefix("$.") for path in at_start} <= older_continuation
    assert "$.next_wait_s" in at_start and "$.action" in at_start


def test_the_reconciler_may_do_what_an_outcome_check_needs() -> None:
    resources = template()["Resources"]
    reconcile = json.dumps(resources["ReconcileFunction"]["Properties"]["Policies"])
    for action in ("states:DescribeExecution", "states:StartExecution", "sqs:SendMessage", "dynamodb:UpdateItem"):
        assert action in reconcile
    poll = resources["PollFunction"]["Properties"]
    assert poll["Environment"]["Variables"]["RECONCILE_QUEUE_URL"] == {"Ref": "ReconcileQueue"}
    assert "sqs:SendMessage" in json.dumps(poll["Policies"])
    # The poll function sends every event and clears the unpublished mark itself.
    grants = json.dumps(poll["Policies"])
    for policy in (
        "SNSPublishMessagePolicy",
        "EventBridgePutEventsPolicy",
        "SQSSendMessagePolicy",
        "dynamodb:UpdateItem",
    ):
        assert policy in grants


# Deliberately not retained; docs/operations.md's "Deleting the stack" says the same. Everything else of these
# types keeps its data when the stack is deleted or the resource replaced.
NOT_RETAINED = {
    # Dedupes retries to this stack's API for a day; the jobs themselves are in JobsTable.
    "IdempotencyTable",
    # A copy of a key Router One issued; kept, it would be a live credential outliving the stack.
    "RouterOneApiKeySecret",
    # Seals only running jobs' caller keys; its deletion makes leftovers on retained rows unreadable.
    "CallerKeyEncryptionKey",
}
STATEFUL_TYPES = {"AWS::DynamoDB::Table", "AWS::SecretsManager::Secret", "AWS::KMS::Key", "AWS::S3::Bucket"}


def test_tables_secrets_keys_and_buckets_are_retained_unless_listed() -> None:
    resources = template()["Resources"]
    stateful = {name: r for name, r in resources.items() if r["Type"] in STATEFUL_TYPES}
    assert set(stateful) >= NOT_RETAINED
    for name, resource in stateful.items():
        policy = "Delete" if name in NOT_RETAINED else "Retain"
        # Stated either way, so a reader (and cfn-lint's I3011) sees it was decided.
        assert (resource.get("DeletionPolicy"), resource.get("UpdateReplacePolicy")) == (policy, policy), name
    operations = (ROOT / "docs" / "operations.md").read_text()
    teardown = operations[operations.index("## Deleting the stack") :]
    for name in stateful:
        assert f"`{name}`" in teardown, f"docs/operations.md's teardown section does not say what happens to {name}"


def test_no_arn_is_written_for_the_aws_partition_only() -> None:
    """China (aws-cn) and GovCloud (aws-us-gov) deploys need ${AWS::Partition} (or ${Partition} in the ASL)."""
    files = [TEMPLATE, *sorted((ROOT / "statemachine").iterdir())]
    assert len(files) > 1
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            assert "arn:aws:" not in line, f"{path.name}:{number}: {line.strip()}"


def test_the_state_machine_gets_its_partition() -> None:
    machine = template()["Resources"]["JobStateMachine"]["Properties"]
    assert machine["DefinitionSubstitutions"]["Partition"] == {"Ref": "AWS::Partition"}
    resources = [s["Resource"] for s in _all_states(_machine()) if "Resource" in s]
    assert resources and all(r.startswith("arn:${Partition}:states:::") for r in resources)


def _all_states(states: dict) -> list[dict]:
    """Every state, those inside Parallel branches and Map iterators included."""
    found = []
    for state in states.values():
        found.append(state)
        for branch in state.get("Branches", []):
            found += _all_states(branch["States"])
        for key in ("Iterator", "ItemProcessor"):
            if key in state:
                found += _all_states(state[key]["States"])
    return found


def test_the_asl_lint_fills_every_placeholder_with_a_value_of_the_deployed_shape() -> None:
    definition = ROOT / "statemachine" / "job_tracker.asl.json"
    values = substitutions_by_definition(template())[definition]
    machine = json.loads(filled(definition, values))
    assert "${" not in json.dumps(machine)
    states = _all_states(machine["States"])
    assert all(s["Resource"].startswith("arn:aws:states:::") for s in states if "Resource" in s)
    poll = machine["States"]["PollUpstream"]["Parameters"]["FunctionName"]
    assert re.fullmatch(r"arn:aws:lambda:us-east-1:\d{12}:function:[\w-]+", poll)
    copy = machine["States"]["KeepVideo"]["Parameters"]["FunctionName"]
    assert re.fullmatch(r"arn:aws:lambda:us-east-1:\d{12}:function:[\w-]+", copy)


def test_the_asl_lint_reports_a_placeholder_nobody_fills(tmp_path: Path) -> None:
    definition = tmp_path / "extra.asl.json"
    definition.write_text('{"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": "${Nobody}", "End": true}}}')
    with pytest.raises(Unfillable, match="Nobody"):
        filled(definition, {})


def test_functions_reach_aws_itself_unless_sam_local_is_given_an_endpoint() -> None:
    """`LocalAwsEndpointUrl` (sam local only) sets the SDK's AWS_ENDPOINT_URL; left empty, as in a
    deploy, the variable is not there at all (an empty one would break every SDK client)."""
    from bridge_local.cfn.intrinsics import Resolver, parameter_values
    from bridge_local.sam import load_template

    source = load_template(ROOT / "template.yaml")
    variables = source["Globals"]["Function"]["Environment"]["Variables"]

    def resolved(**parameters: str) -> dict[str, str]:
        resolver = Resolver("tests", "us-east-1", parameter_values(source, parameters))
        resolver.evaluate_conditions(source["Conditions"])
        return resolver.resolve({name: value for name, value in variables.items() if name.startswith("AWS_")})

    assert resolved() == {}
    assert resolved(LocalAwsEndpointUrl="http://127.0.0.1:4566") == {"AWS_ENDPOINT_URL": "http://127.0.0.1:4566"}
