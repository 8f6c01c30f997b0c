"""The sample events in events/ (for `sam local invoke` and tests) match what the code expects."""

import json
from pathlib import Path

from bridge.tracking.state import LoopState, LoopStep
from bridge.webhooks.dispatch import DeliveryMessage

EVENTS = Path(__file__).resolve().parents[2] / "events"


def load(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


def test_poll_event_is_a_loop_state_with_a_usable_memory() -> None:
    state = LoopState.model_validate(load("poll.json"))
    memory = state.poll_memory.policy()
    assert memory.processing_since_s is not None and memory.samples


def test_keep_video_event_is_the_step_that_asks_for_the_copy() -> None:
    step = LoopStep.model_validate(load("keep_video.json"))
    assert step.action == "keep_video" and step.event and step.event["data"]["url"]


def test_webhook_delivery_event_carries_a_delivery_message() -> None:
    [record] = load("webhook_delivery.json")["Records"]
    message = DeliveryMessage.model_validate_json(record["body"])
    assert message.attempt == 1 and message.event_id.startswith("evt_")


def test_every_api_event_targets_a_route_of_the_template() -> None:
    from cfnlint.decode import decode

    template, _ = decode(str(EVENTS.parent / "template.yaml"))
    routes = {
        (event["Properties"]["Method"].upper(), event["Properties"]["Path"])
        for event in template["Resources"]["ApiFunction"]["Properties"]["Events"].values()
    }
    for path in EVENTS.glob("api_*.json"):
        event = json.loads(path.read_text())
        assert (event["httpMethod"], event["resource"]) in routes, path.name
