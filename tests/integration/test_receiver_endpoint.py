"""`./dev receiver-endpoint` against the session stack: the command registers the built-in receiver
over HTTP with a caller's key, hands it the keys, and the receiver's log line of the next job's
events says `v1 ok (current), v1a ok (current)`; after `--rotate`, both keys verify."""

from __future__ import annotations

import re
from typing import Any

import pytest

from bridge.models import WebhookEvent
from bridge_local.receiver import ReceivedWebhook, format_delivery
from bridge_local.receiver_endpoint import main

from .conftest import BRIDGE_API_KEY, LocalBridge

pytestmark = pytest.mark.integration

PATH = "/hooks/receiver-endpoint-command"
ENDPOINTS = "/v1/webhook-endpoints"


def run(bridge: LocalBridge, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code = main(
        ["--api", str(bridge.api.base_url), "--receiver", bridge.receiver.url, *args],
        environ={"VIDEO_BRIDGE_API_KEY": BRIDGE_API_KEY},
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def completed_delivery(bridge: LocalBridge) -> ReceivedWebhook:
    """Submit a job and return the receiver's record of its completed event at PATH."""
    submitted = bridge.submit(run_s=0.5)
    assert submitted.status_code == 202, submitted.text
    task_id = submitted.json()["task_id"]

    def arrived() -> ReceivedWebhook | None:
        return next(
            (
                r
                for r in bridge.receiver.deliveries(PATH)
                if isinstance(r.event, dict)
                and r.event.get("type") == "video.generation.completed"
                and r.event.get("data", {}).get("task_id") == task_id
            ),
            None,
        )

    return bridge.wait_until(arrived, 60, f"the completed event of {task_id} at {PATH}")


def test_the_command_registers_the_receiver_and_its_log_shows_v1_and_v1a(
    bridge: LocalBridge, capsys: pytest.CaptureFixture[str]
) -> None:
    out = run(bridge, capsys, "--path", PATH)
    found = re.search(r"webhook endpoint (ep_[0-9a-f]+)", out)
    assert found, out
    endpoint_id = found.group(1)
    try:
        endpoint: dict[str, Any] = bridge.api.get(f"{ENDPOINTS}/{endpoint_id}").json()
        assert endpoint["url"] == bridge.receiver.url + PATH
        assert endpoint["signature_versions"] == ["v1", "v1a"]
        assert sorted(endpoint["event_types"]) == sorted(str(kind) for kind in WebhookEvent)
        [public_key] = endpoint["public_keys"]
        assert f"public key: {public_key['key']}  (current)" in out
        assert "whsec_" in out and not re.search(r"whsec_[A-Za-z0-9+/=]{8,}", out)  # masked

        record = completed_delivery(bridge)
        assert record.verified and record.answered == 200
        assert record.signatures == "v1 ok (current), v1a ok (current)"
        assert "signature ok: v1 ok (current), v1a ok (current)" in format_delivery(record)

        rotated = run(bridge, capsys, "--rotate", endpoint_id, "--overlap-seconds", "600")
        assert f"Rotated the keys of webhook endpoint {endpoint_id}" in rotated
        record = completed_delivery(bridge)
        assert record.verified and record.answered == 200
        assert record.signatures == "v1 ok (current + previous), v1a ok (current + previous)"
    finally:
        bridge.api.delete(f"{ENDPOINTS}/{endpoint_id}")
        bridge.receiver.forget_endpoint(endpoint_id)
