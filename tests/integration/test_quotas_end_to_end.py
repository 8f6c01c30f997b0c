"""The largest request the API accepts, through the whole loop, inside every AWS payload quota.

The embedded AWS refuses what AWS refuses (`bridge_local/moto_patches/quotas/`), so a job that finishes here
would not hit a quota on AWS either. Every payload the quota checks measure for this job is
recorded, and the largest of each kind is printed against its limit: the headroom in
docs/limits.md ("Payload quotas") comes from this test's output (run it with -s).
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from bridge.models import (
    MAX_IMAGE_URLS,
    MAX_INPUT_REFERENCE_LENGTH,
    MAX_METADATA_BYTES,
    MAX_MODEL_LENGTH,
    MAX_PROMPT_LENGTH,
    MAX_SIZE_LENGTH,
    MAX_URL_LENGTH,
    WebhookEvent,
)
from bridge.outcomes import ending
from bridge.store import jobs
from bridge.submit.idempotent import MAX_KEY_LENGTH
from bridge.upstream.caller_keys import CALLER_KEY_HEADER, MAX_CALLER_KEY_LENGTH
from bridge_local.moto_patches import quotas

from .conftest import LocalBridge, bridge_settings

pytestmark = pytest.mark.integration

HOOK_PATH = "/hooks/quotas"
# Four UTF-8 bytes and a twelve-byte JSON escape each (a surrogate pair): the most any one
# character can weigh, in a DynamoDB row or in a JSON message alike.
HEAVIEST = "\U0001f98a"


def padded_url(prefix: str) -> str:
    """An http(s) URL of exactly MAX_URL_LENGTH characters."""
    return prefix + "a" * (MAX_URL_LENGTH - len(prefix))


def metadata_of_max_size(marker: str) -> dict[str, Any]:
    """Metadata of exactly MAX_METADATA_BYTES as compact JSON (the measure the API applies)."""
    metadata: dict[str, Any] = {"marker": marker, "pad": ""}
    used = len(json.dumps(metadata, separators=(",", ":")))
    metadata["pad"] = "m" * (MAX_METADATA_BYTES - used)
    assert len(json.dumps(metadata, separators=(",", ":"))) == MAX_METADATA_BYTES
    return metadata


def largest_request(bridge: LocalBridge, marker: str) -> dict[str, Any]:
    """Every field at the most the API accepts, in the heaviest characters each field allows."""
    model = f"video-{marker}-"
    return {
        "model": model + HEAVIEST * (MAX_MODEL_LENGTH - len(model)),
        "prompt": HEAVIEST * MAX_PROMPT_LENGTH,
        "negative_prompt": HEAVIEST * MAX_PROMPT_LENGTH,
        "duration": 3600,
        "size": HEAVIEST * MAX_SIZE_LENGTH,
        "aspect_ratio": "16:9",
        "image_url": padded_url("https://images.example.com/reference/0/"),
        "image_urls": [padded_url(f"https://images.example.com/reference/{i}/") for i in range(1, MAX_IMAGE_URLS + 1)],
        "input_reference": HEAVIEST * MAX_INPUT_REFERENCE_LENGTH,
        "callback_url": padded_url(f"{bridge.receiver.url}{HOOK_PATH}?pad="),
        "webhook_events_filter": [event.value for event in WebhookEvent],
        "metadata": metadata_of_max_size(marker),
    }


@pytest.fixture
def caller_key(bridge: LocalBridge) -> Iterator[str]:
    """The longest pass-through key the API takes, known to the simulator as an account of its own."""
    key = "sk-" + "k" * (MAX_CALLER_KEY_LENGTH - 3)
    bridge.simulator.configure(account_keys=[key])
    yield key
    bridge.simulator.configure(account_keys=[])


def terminal(bridge: LocalBridge, task_id: str) -> dict[str, dict[str, Any]] | None:
    seen = bridge.events.for_task(task_id)
    found = {
        channel: next((e for e in seen.get(channel, []) if e["event"]["type"] == "video.generation.completed"), None)
        for channel in ("sns", "eventbridge")
    }
    return found if all(found.values()) else None  # type: ignore[return-value]


def test_the_largest_request_runs_the_whole_loop_inside_every_quota(bridge: LocalBridge, caller_key: str) -> None:
    marker = uuid.uuid4().hex[:12]
    body = largest_request(bridge, marker)
    headers = {CALLER_KEY_HEADER: caller_key, "Idempotency-Key": "i" * MAX_KEY_LENGTH}
    measured: list[tuple[str, int, str]] = []

    # One poll per invocation: every poll's answer then travels through the state machine.
    with (
        quotas.observe(lambda key, size, text: measured.append((key, size, text))),
        bridge_settings(POLL_INVOCATION_SECONDS="0"),
    ):
        # Long enough to be polled several times, in more than one execution, with progress on the way.
        bridge.simulator.queue_next(queue_s=0.5, run_s=11.0)
        response = bridge.api.post("/v1/videos/generations", json=body, headers=headers)
        assert response.status_code == 202, response.text
        task_id = response.json()["task_id"]

        outcome = bridge.wait_until(lambda: terminal(bridge, task_id), timeout=90, what=f"the outcome of {task_id}")
        webhook = bridge.wait_until(
            lambda: [
                r
                for r in bridge.receiver.deliveries(HOOK_PATH)
                if r.event and r.event["data"]["task_id"] == task_id and r.event["type"] == "video.generation.completed"
            ],
            timeout=60,
            what="the completed webhook",
        )[0]
        executions = bridge.wait_for_executions_to_end(task_id, timeout=60)

    # It finished normally: every execution succeeded (none failed on States.DataLimitExceeded), and
    # the same outcome reached the topic, the bus and the receiver, metadata and all.
    assert [e["status"] for e in executions] == ["SUCCEEDED"] * len(executions), executions
    assert len(executions) >= 2, "the loop should have continued in a new execution at least once"
    event = outcome["sns"]["event"]
    assert outcome["eventbridge"]["event"] == event
    assert event["data"]["status"] == "completed" and event["data"]["model"] == body["model"]
    assert event["data"]["metadata"] == body["metadata"]
    assert webhook.verified and webhook.event == event
    assert outcome["sns"]["attributes"]["model"] == body["model"]
    stored = bridge.api.get(f"/v1/videos/generations/{task_id}").json()
    assert stored["metadata"] == body["metadata"] and stored["callback_url"] == body["callback_url"]
    assert stored["video"], "the stack keeps videos: the copy step ran too"
    kinds = {r.event["type"] for r in bridge.receiver.deliveries(HOOK_PATH) if r.event["data"]["task_id"] == task_id}
    assert {"video.generation.started", "video.generation.completed"} <= kinds

    # The largest payload of each kind this job produced, against its quota.
    largest: dict[str, tuple[int, str]] = {}
    counts: dict[str, int] = defaultdict(int)
    for key, size, text in measured:
        if task_id in text or marker in text:
            counts[key] += 1
            if size > largest.get(key, (-1, ""))[0]:
                largest[key] = (size, text)
    limits = {quota.key: quota for quota in quotas.QUOTAS}
    print(f"\nlargest request: {len(response.request.content):,} bytes of JSON body")
    print(f"{'quota':<18} {'payloads':>8} {'largest':>10} {'limit':>10} {'headroom':>10}")
    for key, quota in limits.items():
        if key not in largest:
            continue
        size = largest[key][0]
        headroom = quota.limit_bytes - size
        print(
            f"{key:<18} {counts[key]:>8} {size:>10,} {quota.limit_bytes:>10,} {headroom:>10,} "
            f"({headroom / quota.limit_bytes:.0%})  {largest[key][1][:40]!r}"
        )
        assert size <= quota.limit_bytes, f"{key}: {size} > {quota.limit_bytes}"
    # Every kind of payload the loop makes was measured: the quotas were in the path.
    assert {"states.input", "states.payload", "states.parameters", "sqs.message", "sns.message"} <= set(largest)
    assert {"events.request", "dynamodb.item"} <= set(largest)
    # The job's row, the largest item, holds the whole request (and, while it runs, the sealed key).
    assert largest["dynamodb.item"][0] > 2 * len((HEAVIEST * MAX_PROMPT_LENGTH).encode())


def test_the_local_run_refuses_an_execution_input_over_256_kib_as_aws_does(bridge: LocalBridge) -> None:
    sfn = bridge.aws.client("stepfunctions")
    loop_input = {"task_id": "v_" + uuid.uuid4().hex, "pad": "x" * (300 * 1024)}
    with pytest.raises(ClientError) as excinfo:
        sfn.start_execution(
            stateMachineArn=bridge.stack.state_machine_arn, name=loop_input["task_id"], input=json.dumps(loop_input)
        )
    error = excinfo.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "Member must have size less than or equal to 262144 bytes" in error["Message"]
    assert bridge.executions(loop_input["task_id"]) == []


def test_the_largest_request_deferred_to_the_reconciler_fits_a_256_kib_queue(
    bridge: LocalBridge, caller_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When recording the job fails, submit hands the whole record to the reconcile queue.

    Escaped as JSON the record was 272 KB: over the 256 KiB a queue made before SQS's 1 MiB limit
    may still have. As UTF-8 it fits even that, with U+FFFE and U+FFFF (which SQS refuses) escaped.
    """
    real = jobs.create_job
    calls: list[int] = []

    def failing_once(record: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "injected"}}, "PutItem")
        return real(record)

    monkeypatch.setattr(jobs, "create_job", failing_once)
    marker = uuid.uuid4().hex[:12]
    body = largest_request(bridge, marker)
    body["negative_prompt"] = body["negative_prompt"][:-2] + "\ufffe\uffff"
    measured: list[tuple[str, int]] = []
    with quotas.observe(lambda key, size, text: measured.append((key, size)) if marker in text else None):
        bridge.simulator.queue_next(queue_s=0.1, run_s=1.0)
        response = bridge.api.post("/v1/videos/generations", json=body, headers={CALLER_KEY_HEADER: caller_key})
        assert response.status_code == 202, response.text
        task_id = response.json()["task_id"]
        bridge.wait_until(lambda: terminal(bridge, task_id), timeout=90, what=f"the outcome of {task_id}")
    assert len(calls) == 2, "the reconciler should have recorded the job"
    deferred = max(size for key, size in measured if key == "sqs.message")
    print(f"\nreconcile message of the largest request: {deferred:,} bytes")
    assert deferred <= 256 * 1024
    row = bridge.job_row(task_id) or {}
    assert row["request"]["M"]["negative_prompt"]["S"] == body["negative_prompt"]


def test_an_upstream_error_too_long_for_the_quotas_ends_the_job_with_its_head(bridge: LocalBridge) -> None:
    """Router One's error goes into the row and the event; a 300 KB one would fit neither DynamoDB's
    item (it is stored twice) nor SNS's message nor a Step Functions state."""
    long_message = "upstream said: " + "e" * (300 * 1024)
    bridge.simulator.queue_next(queue_s=0.1, run_s=1.0, outcome="failed", error_message=long_message)
    response = bridge.submit({"model": "video-default", "prompt": "a fox with a long story"})
    assert response.status_code == 202, response.text
    task_id = response.json()["task_id"]

    def failed_everywhere() -> dict[str, Any] | None:
        seen = bridge.events.for_task(task_id)
        found = [e for channel in ("sns", "eventbridge") for e in seen.get(channel, [])]
        return found[0]["event"] if len(found) == 2 else None

    event = bridge.wait_until(failed_everywhere, timeout=60, what=f"the failure of {task_id}")
    error = event["data"]["error"]
    assert event["data"]["status"] == "failed" and error["truncated"] is True
    assert long_message.startswith(error["message"]) and len(error["message"]) == ending.MAX_ERROR_MESSAGE_BYTES
    assert [e["status"] for e in bridge.wait_for_executions_to_end(task_id)] == ["SUCCEEDED"]
    assert bridge.api.get(f"/v1/videos/generations/{task_id}").json()["error"] == error
