"""Pass-through mode: a job runs on the caller's own Router One key, held only KMS-encrypted, and only
until the job ends.

The simulator keeps Router One's accounts apart (a task is visible only to the key that submitted
it), so a job that completes proves every poll used the caller's key.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bridge_local.simulator import account_of

from .conftest import ROUTER_ONE_KEY, LocalBridge, bridge_settings

pytestmark = pytest.mark.integration

CALLER_KEY = "sk-caller-account-7f3a0c"
HEADER = "X-Router-One-Key"
FOX = {"model": "video-default", "prompt": "a fox in snow"}


@pytest.fixture
def caller_account(bridge: LocalBridge) -> Iterator[None]:
    bridge.simulator.configure(account_keys=[CALLER_KEY])
    yield
    bridge.simulator.configure(account_keys=[])


def submit_as_caller(bridge: LocalBridge, key: str = CALLER_KEY, **sim: Any) -> httpx.Response:
    if sim:
        bridge.simulator.queue_next(**sim)
    return bridge.api.post("/v1/videos/generations", json=FOX, headers={HEADER: key})


def sealed_value(bridge: LocalBridge, task_id: str) -> str | None:
    row = bridge.job_row(task_id) or {}
    return row.get("caller_key_ciphertext", {}).get("S")


def test_a_job_runs_on_the_callers_key_sealed_with_kms_until_it_ends(bridge: LocalBridge, caller_account: None) -> None:
    response = submit_as_caller(bridge, run_s=4.0, queue_s=0.2)
    assert response.status_code == 202, response.text
    task_id = response.json()["task_id"]
    # Router One got the job on the caller's account, not the stack's.
    assert bridge.simulator.task(task_id)["account"] == account_of(CALLER_KEY) != account_of(ROUTER_ONE_KEY)

    # While it runs, the row holds only KMS ciphertext, which opens to the key under its context.
    sealed = sealed_value(bridge, task_id)
    assert sealed and CALLER_KEY not in sealed
    blob = base64.b64decode(sealed)
    assert CALLER_KEY.encode() not in blob
    opened = bridge.aws.client("kms").decrypt(
        CiphertextBlob=blob, EncryptionContext={"purpose": "router-one-caller-key"}
    )["Plaintext"]
    assert opened == CALLER_KEY.encode()
    # The state machine never carries the key or its ciphertext, only a flag (beside the owner).
    sfn = bridge.aws.client("stepfunctions")
    [execution] = bridge.executions(task_id)
    loop_input = sfn.describe_execution(executionArn=execution["executionArn"])["input"]
    assert CALLER_KEY not in loop_input and sealed not in loop_input
    assert json.loads(loop_input)["poll_memory"] == {"caller_key": True, "owner_id": bridge.owner_id}

    # Completed: every poll reached the caller's task (another account's key would get a 404).
    events = bridge.events.wait_for(task_id)
    assert events["sns"][0]["event"]["data"]["status"] == "completed"
    assert bridge.simulator.task(task_id)["polls"] >= 1
    # The sealed key went with the write that recorded the end.
    assert sealed_value(bridge, task_id) is None
    view = bridge.api.get(f"/v1/videos/generations/{task_id}").json()
    assert view["status"] == "completed" and "caller_key_ciphertext" not in view


def test_canceling_a_pass_through_job_deletes_its_sealed_key(bridge: LocalBridge, caller_account: None) -> None:
    task_id = submit_as_caller(bridge, run_s=60.0, queue_s=0.2).json()["task_id"]
    assert sealed_value(bridge, task_id)
    canceled = bridge.api.post(f"/v1/videos/generations/{task_id}/cancel")
    assert canceled.status_code == 200, canceled.text
    assert sealed_value(bridge, task_id) is None


def test_a_key_router_one_refuses_is_a_401_naming_the_header_and_nothing_is_recorded(
    bridge: LocalBridge, caller_account: None
) -> None:
    before = bridge.simulator.task_count()
    response = submit_as_caller(bridge, key="sk-not-an-account-of-router-one")
    assert response.status_code == 401, response.text
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_router_one_key", HEADER)
    assert "sk-not-an-account" not in response.text
    assert bridge.simulator.task_count() == before


@pytest.mark.parametrize("key", ["", "sk with spaces", "sk-\u00e9", "k" * 513])
def test_a_malformed_key_is_a_400_before_router_one_is_asked(bridge: LocalBridge, key: str) -> None:
    before = bridge.simulator.task_count()
    response = bridge.api.post("/v1/videos/generations", json=FOX, headers={HEADER: key.encode("utf-8")})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == HEADER
    assert bridge.simulator.task_count() == before


def test_with_pass_through_off_a_caller_key_is_refused(bridge: LocalBridge) -> None:
    before = bridge.simulator.task_count()
    with bridge_settings(CALLER_KEY_KMS_KEY_ID=""):
        response = submit_as_caller(bridge)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "caller_keys_disabled"
    assert bridge.simulator.task_count() == before


def test_a_pass_through_job_whose_write_failed_reaches_the_reconciler_with_its_key_still_sealed(
    bridge: LocalBridge, caller_account: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError

    from bridge.store import jobs

    real_create = jobs.create_job
    calls = {"n": 0}

    def fails_once(record: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            # What the reconcile queue would carry: the ciphertext, never the key.
            assert record.caller_key_ciphertext and CALLER_KEY not in record.caller_key_ciphertext
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "injected"}}, "PutItem")
        return real_create(record)

    monkeypatch.setattr(jobs, "create_job", fails_once)
    response = submit_as_caller(bridge, run_s=1.0, queue_s=0.1)
    assert response.status_code == 202, response.text
    task_id = response.json()["task_id"]
    # Recorded by the reconciler, then polled on the caller's account to the end.
    assert bridge.events.wait_for(task_id, timeout=60)["sns"][0]["event"]["data"]["status"] == "completed"
    assert calls["n"] == 2 and sealed_value(bridge, task_id) is None
