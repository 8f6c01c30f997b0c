"""The `video-bridge` CLI against the local bridge: called in-process, output read with capsys."""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import pytest

from bridge_cli.main import main

from .conftest import TENANT_B_API_KEY, LocalBridge

pytestmark = pytest.mark.integration

MODEL = "video-default"


@pytest.fixture
def api(bridge: LocalBridge) -> str:
    return str(bridge.api.base_url)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def long_job(bridge: LocalBridge) -> str:
    response = bridge.submit(run_s=60, queue_s=0.1)
    assert response.status_code == 202, response.text
    return response.json()["task_id"]


def test_submit_wait_shows_progress_and_ends_with_the_url(
    bridge: LocalBridge, api: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bridge.simulator.queue_next(run_s=4, queue_s=0.2)

    code, out, err = run(capsys, "--api", api, "submit", "--model", MODEL, "--prompt", "a fox in snow", "--wait")

    assert code == 0, err
    task_id = out.splitlines()[0]
    assert task_id.startswith("v_")
    # Not a terminal: one progress line per change, ending at 100 %.
    progress = [line for line in err.splitlines() if line.startswith("[")]
    assert any("processing" in line for line in progress), err
    assert progress[-1].startswith("[####################] 100%  completed")
    assert f"url:      {bridge.simulator.url}/files/{task_id}.mp4" in out
    assert "expires:" in out


def test_submit_wait_on_a_failed_job_exits_1_with_the_error(
    bridge: LocalBridge, api: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bridge.simulator.queue_next(outcome="failed", run_s=1)

    code, out, _ = run(capsys, "--api", api, "submit", "--model", MODEL, "--prompt", "a fox", "--wait", "--json")

    assert code == 1
    job = json.loads(out)
    assert job["status"] == "failed"
    assert job["error"]["code"] == "generation_failed"


def test_submit_sends_every_option_in_the_body(
    bridge: LocalBridge, api: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bridge.simulator.queue_next(run_s=60)
    code, out, err = run(
        capsys,
        "submit",
        "--api",  # global options work after the command too
        api,
        "--model",
        MODEL,
        "--prompt",
        "a fox",
        "--duration",
        "5",
        "--aspect-ratio",
        "9:16",
        "--negative-prompt",
        "blurry, text",
        "--input-reference",
        "ref_42",
        "--metadata",
        '{"order_id": "A-1017"}',
        "--callback-url",
        f"{bridge.receiver.url}/hooks/cli",
        "--events",
        "started,completed",
    )
    assert code == 0, err
    task_id = out.strip()

    code, out, _ = run(capsys, "--api", api, "--json", "status", task_id)

    job = json.loads(out)
    assert job["metadata"] == {"order_id": "A-1017"}
    assert job["webhook_events_filter"] == ["started", "completed"]
    assert job["callback_url"] == f"{bridge.receiver.url}/hooks/cli"
    # Router One gets the model fields (not the bridge's own).
    upstream = bridge.simulator.task(task_id)["request"]
    assert upstream["negative_prompt"] == "blurry, text" and upstream["input_reference"] == "ref_42"
    assert run(capsys, "--api", api, "cancel", task_id)[0] == 0


def test_status_prints_aligned_key_value_lines(
    bridge: LocalBridge, api: str, capsys: pytest.CaptureFixture[str]
) -> None:
    task_id = long_job(bridge)

    code, out, _ = run(capsys, "--api", api, "status", task_id)

    assert code == 0
    fields = dict(line.split(None, 1) for line in out.splitlines() if len(line.split(None, 1)) == 2)
    assert fields["task_id"] == task_id
    assert fields["status"] in {"pending", "processing"}
    assert fields["model"] == MODEL
    value_columns = {line.index(line.split(None, 1)[1], line.index(" ")) for line in out.splitlines()}
    assert len(value_columns) == 1, out
    run(capsys, "--api", api, "cancel", task_id)


def test_account_names_the_keys_owner_and_each_key_sees_only_its_own_jobs(
    bridge: LocalBridge, api: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "--api", api, "account")
    assert code == 0
    assert dict(line.split(None, 1) for line in out.splitlines()) == {"owner_id": bridge.owner_id, "operator": "no"}

    task_id = long_job(bridge)
    code, out, err = run(capsys, "--api", api, "--api-key", TENANT_B_API_KEY, "status", task_id)
    assert (code, out) == (2, "") and err.rstrip().endswith("(task_not_found)")
    code, out, _ = run(capsys, "--api", api, "--api-key", TENANT_B_API_KEY, "--json", "account")
    assert code == 0 and json.loads(out)["owner_id"] != bridge.owner_id
    run(capsys, "--api", api, "cancel", task_id)


def test_status_of_an_unknown_task_exits_2_with_the_envelope(api: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--api", api, "status", "v_" + "0" * 32)

    assert code == 2
    assert out == ""
    assert err.startswith("error: ") and err.rstrip().endswith("(task_not_found)")


def test_list_shows_a_table_and_json(bridge: LocalBridge, api: str, capsys: pytest.CaptureFixture[str]) -> None:
    task_id = long_job(bridge)

    code, out, _ = run(capsys, "--api", api, "list", "--limit", "5")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["TASK", "ID", "STATUS", "MODEL", "PROGRESS", "CREATED", "(UTC)"]
    [row] = [row.split() for row in rows if row.split()[0] == task_id]
    assert row[1] in {"pending", "processing"} and row[2] == MODEL

    code, out, _ = run(capsys, "--api", api, "--json", "list", "--status", "pending", "--limit", "2", "--all")
    assert code == 0
    page = json.loads(out)
    assert page["has_more"] is False
    assert all(job["status"] == "pending" for job in page["data"])
    run(capsys, "--api", api, "cancel", task_id)


def test_cancel_of_a_running_job_and_of_a_finished_one(
    bridge: LocalBridge, api: str, capsys: pytest.CaptureFixture[str]
) -> None:
    running = long_job(bridge)
    code, out, err = run(capsys, "--api", api, "cancel", running)
    assert code == 0, err
    assert out.strip() == f"{running} canceled"
    assert "Router One has no cancel" in err
    assert bridge.api.get(f"/v1/videos/generations/{running}").json()["status"] == "canceled"

    finished = bridge.submit(run_s=0.5, queue_s=0.1).json()["task_id"]
    bridge.events.wait_for(finished)
    code, out, err = run(capsys, "--api", api, "cancel", finished)
    assert code == 2
    assert "already ended as completed" in err
    assert err.rstrip().endswith("(job_already_finished)")


def test_reusing_an_idempotency_key_with_another_body_exits_2(
    bridge: LocalBridge, api: str, capsys: pytest.CaptureFixture[str]
) -> None:
    key = f"cli-{uuid.uuid4()}"
    submit = ["--api", api, "submit", "--model", MODEL, "--idempotency-key", key, "--prompt"]
    code, out, _ = run(capsys, *submit, "a fox [sim duration=60]")
    assert code == 0
    first = out.strip()
    code, out, _ = run(capsys, *submit, "a fox [sim duration=60]")
    assert (code, out.strip()) == (0, first)

    code, out, err = run(capsys, *submit, "another fox")

    assert code == 2
    assert out == ""
    assert "(idempotency_key_reused)" in err
    run(capsys, "--api", api, "cancel", first)


def test_webhooks_and_redeliver(bridge: LocalBridge, api: str, capsys: pytest.CaptureFixture[str]) -> None:
    bridge.simulator.queue_next(run_s=0.5, queue_s=0.1)
    code, out, _ = run(
        capsys,
        "--api",
        api,
        "submit",
        "--model",
        MODEL,
        "--prompt",
        "x",
        "--callback-url",
        f"{bridge.receiver.url}/hooks/cli-redeliver",
    )
    task_id = out.strip()
    delivery = bridge.wait_for_delivery_status(task_id, "delivered")

    code, out, _ = run(capsys, "--api", api, "webhooks", task_id)
    assert code == 0
    assert f"{delivery['event_id']}  video.generation.completed  delivered  round 1  1 attempt" in out
    assert "round 1 attempt 1  HTTP 200" in out

    code, out, _ = run(capsys, "--api", api, "redeliver", task_id, delivery["event_id"])
    assert code == 0
    assert "round 2" in out
    code, _, err = run(capsys, "--api", api, "redeliver", task_id, "evt_unknown")
    assert code == 2 and "(webhook_delivery_not_found)" in err


def test_endpoints_create_list_get_delete(bridge: LocalBridge, api: str, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"{bridge.receiver.url}/hooks/cli-endpoint?status=200"
    create = ["endpoints", "create", "--url", url, "--event-type", "failed", "--description", "from the cli"]
    code, out, err = run(capsys, "--api", api, "--json", *create)
    assert code == 0, err
    created = json.loads(out)
    endpoint_id = created["id"]
    try:
        assert created["secret"].startswith("whsec_") and created["event_types"] == ["failed"]

        code, out, _ = run(capsys, "--api", api, "endpoints", "list")
        assert code == 0
        header, *rows = out.splitlines()
        assert header.split() == ["ENDPOINT", "ID", "STATE", "EVENTS", "URL"]
        assert [row.split() for row in rows if row.split()[0] == endpoint_id] == [
            [endpoint_id, "enabled", "failed", url]
        ]

        code, out, _ = run(capsys, "--api", api, "endpoints", "get", endpoint_id)
        assert code == 0
        fields = dict(line.split(None, 1) for line in out.splitlines())
        assert (fields["id"], fields["url"], fields["description"]) == (endpoint_id, url, "from the cli")
        assert fields["public_keys"] == created["public_keys"][0]["key"] and "secret" not in fields

        # Another key's endpoint is as unknown as one that does not exist.
        code, out, err = run(capsys, "--api", api, "--api-key", TENANT_B_API_KEY, "endpoints", "get", endpoint_id)
        assert (code, out) == (2, "") and err.rstrip().endswith("(webhook_endpoint_not_found)")
    finally:
        code, out, err = run(capsys, "--api", api, "endpoints", "delete", endpoint_id)
    assert (code, out.strip()) == (0, f"{endpoint_id} deleted"), err
    code, out, err = run(capsys, "--api", api, "endpoints", "get", endpoint_id)
    assert (code, out) == (2, "") and err.rstrip().endswith("(webhook_endpoint_not_found)")


@pytest.mark.parametrize(
    "argv",
    [
        ["submit", "--model", MODEL, "--prompt", "x", "--metadata", "[1, 2]"],
        ["submit", "--model", MODEL, "--prompt", "x", "--metadata", "{not json"],
        ["submit", "--model", MODEL, "--prompt", "x", "--wait", "--poll-every", "1"],
        ["submit", "--model", MODEL, "--prompt", "x", "--events", "started"],
        ["submit", "--model", MODEL, "--prompt", "x", "--events", "finished", "--callback-url", "https://x.example"],
        ["list", "--limit", "0"],
        ["--api", "localhost:8000", "list"],
    ],
)
def test_bad_input_is_an_argparse_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_an_unreachable_bridge_exits_3_with_a_clear_message(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--api", "http://127.0.0.1:9", "--timeout", "5", "list")

    assert code == 3
    assert out == ""
    assert err.startswith("error: cannot reach the bridge at http://127.0.0.1:9: ")
    assert "Traceback" not in err


def test_tail_prints_the_outcome_of_a_job_submitted_while_tailing_then_cleans_up(
    bridge: LocalBridge, capsys: pytest.CaptureFixture[str]
) -> None:
    sns, sqs = bridge.aws.client("sns"), bridge.aws.client("sqs")
    # A model of its own: jobs other tests left running publish on the same topic.
    model = f"video-cli-{uuid.uuid4().hex[:8]}"
    result: dict[str, Any] = {}

    def tail() -> None:
        result["code"] = main(
            [
                "tail",
                "--topic-arn",
                bridge.stack.topic_arn,
                "--endpoint-url",
                bridge.aws.endpoint_url,
                "--model",
                model,
                "--owner",
                bridge.owner_id,
                "--count",
                "1",
                "--stop-after",
                "60",
            ]
        )

    def tail_subscriptions() -> list[dict[str, Any]]:
        found = sns.list_subscriptions_by_topic(TopicArn=bridge.stack.topic_arn)["Subscriptions"]
        return [s for s in found if ":video-bridge-tail-" in s["Endpoint"]]

    thread = threading.Thread(target=tail, name="cli-tail", daemon=True)
    thread.start()
    [subscription] = bridge.wait_until(tail_subscriptions, timeout=20, what="the tail's subscription")
    attributes = sns.get_subscription_attributes(SubscriptionArn=subscription["SubscriptionArn"])["Attributes"]
    assert attributes["RawMessageDelivery"] == "true"
    assert json.loads(attributes["FilterPolicy"]) == {"model": [model], "owner_id": [bridge.owner_id]}

    response = bridge.submit({"model": model, "prompt": "a fox in snow"}, run_s=1, queue_s=0.1)
    task_id = response.json()["task_id"]
    thread.join(timeout=60)

    assert not thread.is_alive(), "tail did not stop after one event"
    assert result["code"] == 0
    out, err = capsys.readouterr()
    [line] = out.splitlines()
    assert line.split("  ")[1:4] == ["video.generation.completed", task_id, "completed"]
    assert f"/files/{task_id}.mp4" in line
    assert "temporary queue video-bridge-tail-" in err
    assert not tail_subscriptions()
    assert not sqs.list_queues(QueueNamePrefix="video-bridge-tail-").get("QueueUrls")


def test_submit_on_the_callers_own_router_one_key(
    bridge: LocalBridge, api: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from bridge_local.simulator import account_of

    own_key = "sk-cli-own-account-42"
    bridge.simulator.configure(account_keys=[own_key])
    monkeypatch.setenv("VIDEO_BRIDGE_ROUTER_ONE_KEY", own_key)
    try:
        code, out, err = run(capsys, "--api", api, "submit", "--model", MODEL, "--prompt", "a fox [sim duration=60]")
        assert code == 0, err
        task_id = out.strip()
        assert bridge.simulator.task(task_id)["account"] == account_of(own_key)
        assert own_key not in out + err
    finally:
        bridge.simulator.configure(account_keys=[])
    run(capsys, "--api", api, "cancel", task_id)
