"""The fault run in small: 50 jobs with upstream faults and failing publishes, nothing lost."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bridge_local.emulator import PublishFaults, install_publish_faults
from bridge_local.fault_run import run

from .conftest import BRIDGE_API_KEY, LocalBridge

pytestmark = pytest.mark.integration


@pytest.fixture
def faults() -> Iterator[PublishFaults]:
    injected = PublishFaults(rate=0.2, seed=5)
    install_publish_faults(injected)
    yield injected
    install_publish_faults(None)


def test_fifty_faulty_jobs_lose_nothing_and_publish_once_per_channel(
    bridge: LocalBridge, faults: PublishFaults
) -> None:
    report = run(
        api_url=str(bridge.api.base_url),
        api_key=BRIDGE_API_KEY,
        jobs=50,
        events_for=bridge.events.for_task,
        callback_url=f"{bridge.receiver.url}/hooks/fault-run",
        timeout_s=300,
        seed=3,
    )
    report.injected = dict(faults.injected)
    print("\n" + report.render())
    assert len(report.accepted) == 50
    assert report.lost == [] and report.not_exactly_one == []
    assert sum(report.terminal_by_status.values()) == 50
    assert sum(faults.injected.values()) > 0  # the run really was faulty
