"""Signed webhooks end to end: real state machine, real queue, real delivery function, a real
HTTP receiver on loopback, and the standardwebhooks verifier as the judge of every signature."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from standardwebhooks import Webhook

from bridge_local.receiver import Reply

from .conftest import LocalBridge

pytestmark = pytest.mark.integration


def submit_with_callback(bridge: LocalBridge, path: str, *, query: str = "", **fields: Any) -> str:
    body = {"model": "video-default", "prompt": "a fox in snow", "callback_url": f"{bridge.receiver.url}{path}{query}"}
    body.update(fields)
    response = bridge.submit(body, run_s=1.0, queue_s=0.2)
    assert response.status_code == 202, response.text
    return response.json()["task_id"]


def test_completion_webhook_is_signed_delivered_once_and_logged(bridge: LocalBridge) -> None:
    task_id = submit_with_callback(bridge, "/hooks/happy", metadata={"order": "A-17", "tries": 1})
    [received] = bridge.receiver.wait_for("/hooks/happy")
    delivery = bridge.wait_for_delivery_status(task_id, "delivered")

    # An independent verifier (not the receiver's own flag) accepts the signature.
    payload = Webhook(bridge.signing_secret).verify(received.body, received.headers)
    assert payload["type"] == "video.generation.completed"
    assert payload["data"]["task_id"] == task_id
    assert payload["data"]["metadata"] == {"order": "A-17", "tries": 1}
    assert received.webhook_id == payload["id"] == delivery["event_id"]
    # The body is the very envelope SNS and EventBridge carry.
    sns_event = bridge.events.wait_for(task_id)["sns"][0]["event"]
    assert sns_event == payload
    assert delivery["attempt_count"] == 1
    [attempt] = delivery["attempts"]
    assert attempt["status_code"] == 200 and attempt["error"] is None and attempt["latency_ms"] >= 0
    time.sleep(2.5)  # longer than the first retry delay: nothing else may arrive
    assert len(bridge.receiver.deliveries("/hooks/happy")) == 1
    assert "sk-integration" not in received.body
