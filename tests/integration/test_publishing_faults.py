"""Publishing faults: the poll function's SNS, EventBridge and webhook-queue sends fail some of the
time (before sending, or after, with the reply lost); every job still ends with exactly one
terminal event per channel once receivers dedupe by event id."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from bridge_local.publish_faults import PublishFaults, install_publish_faults

from .conftest import LocalBridge

pytestmark = pytest.mark.integration

JOBS = 8


@pytest.fixture
def faults() -> Iterator[PublishFaults]:
    injected = PublishFaults(rate=0.35, lost_reply_share=0.5, seed=11)
    install_publish_faults(injected)
    yield injected
    install_publish_faults(None)


def test_every_job_ends_with_one_terminal_event_per_channel_despite_failing_sends(
    bridge: LocalBridge, faults: PublishFaults
) -> None:
    task_ids = []
    for i in range(JOBS):
        body = {"model": "video-default", "prompt": f"fox {i}", "callback_url": f"{bridge.receiver.url}/hooks/faults"}
        response = bridge.submit(body, run_s=1.0, queue_s=0.1)
        assert response.status_code == 202, response.text
        task_ids.append(response.json()["task_id"])

    for task_id in task_ids:
        bridge.events.wait_for(task_id, timeout=120)
        bridge.wait_for_delivery_status(task_id, "delivered", timeout=120)
    install_publish_faults(None)

    duplicates = Counter[str]()
    for task_id in task_ids:
        seen = bridge.events.for_task(task_id)
        for channel in ("sns", "eventbridge"):
            ids = [e["event"]["id"] for e in seen[channel]]
            assert len(set(ids)) == 1, (task_id, channel, ids)  # one terminal event, maybe sent twice
            duplicates[channel] += len(ids) - 1
        hooks = {
            r.webhook_id for r in bridge.receiver.deliveries("/hooks/faults") if r.event["data"]["task_id"] == task_id
        }
        assert len(hooks) == 1
    # The run really was faulty, in both ways.
    assert sum(faults.injected.values()) >= 3, faults.injected
    assert any(key.endswith(":after") for key in faults.injected), faults.injected
    print(f"injected {dict(faults.injected)}; duplicate deliveries by channel {dict(duplicates)}")
