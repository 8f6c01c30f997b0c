"""The fault run in small: 40 jobs with upstream faults, failing publishes, the bridge's own deaths
(a poll killed after recording its outcome or mid-request, the api dying between cancel's write and
its publish, preparing a webhook failing) and receivers that drip, hang, stream forever or share an
address with another host: nothing lost, one terminal event per channel, every webhook ended.

The fixture's WebhookTimeoutSeconds is 2 and its retry schedule 1, 1, 2 s; outcome checks run 2 s
after each outcome write, and a failed check comes back after 10 s.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from bridge_local.fault_run import (
    BridgeFaults,
    FaultMix,
    Receivers,
    execution_lister,
    reconcile_visibility,
    run,
    start_fault_receivers,
)
from bridge_local.publish_faults import PublishFaults, install_publish_faults

from .conftest import BRIDGE_API_KEY, LocalBridge, bridge_settings

pytestmark = pytest.mark.integration

# Shares well above the full run's, so 40 jobs meet every fault (seed 7 plans each kind at least once).
SMALL_RUN_MIX = FaultMix(
    kill_after_outcome=0.2,
    stop_after_outcome=0.1,
    kill_mid_request=0.1,
    cancel=0.25,
    cancel_crash=0.5,
    prepare_failure=0.3,
    callback=0.6,
    receivers=(("ok", 0.3), ("tls-name", 0.14), ("drip", 0.14), ("hang", 0.14), ("endless", 0.14), ("tls-ip", 0.14)),
)


@pytest.fixture
def publish_faults() -> Iterator[PublishFaults]:
    injected = PublishFaults(rate=0.2, seed=5)
    install_publish_faults(injected)
    yield injected
    install_publish_faults(None)


@pytest.fixture
def quick_checks(bridge: LocalBridge) -> Iterator[None]:
    sqs = bridge.aws.client("sqs")
    with (
        bridge_settings(OUTCOME_CHECK_DELAY_SECONDS="2"),
        reconcile_visibility(sqs, bridge.stack.queue_urls["ReconcileQueue"], 10),
    ):
        yield


def faulty(bridge: LocalBridge, cleanup: ExitStack, mix: FaultMix) -> tuple[BridgeFaults, Receivers]:
    faults = BridgeFaults(mix).install(cleanup)
    receivers = start_fault_receivers(cleanup, http_url=bridge.receiver.url, signing_secret=bridge.signing_secret)
    return faults, receivers


def test_forty_faulty_jobs_lose_nothing_publish_once_and_end_every_webhook(
    bridge: LocalBridge, publish_faults: PublishFaults, quick_checks: None
) -> None:
    with ExitStack() as cleanup:
        bridge_faults, receivers = faulty(bridge, cleanup, SMALL_RUN_MIX)
        report = run(
            api_url=str(bridge.api.base_url),
            api_key=BRIDGE_API_KEY,
            jobs=40,
            events_for=bridge.events.for_task,
            receivers=receivers,
            bridge_faults=bridge_faults,
            executions=execution_lister(bridge.aws.client("stepfunctions"), bridge.stack.state_machine_arn),
            timeout_s=240,
            seed=7,
        )
    report.injected = dict(publish_faults.injected)
    print("\n" + report.render())

    assert report.ok, report.failures()
    assert len(report.accepted) == 40 and sum(report.terminal_by_status.values()) == 40
    assert report.lost == [] and report.not_exactly_one == []
    assert sum(publish_faults.injected.values()) > 0  # the run really was faulty
    # Every one of the bridge's own faults struck at least once.
    injected = report.injected_bridge
    struck = {kind.split(" (")[0].split(" in ")[0] for kind in injected}
    assert {
        "poll killed after recording",
        "poll killed after recording, execution stopped",
        "poll killed mid-request",
        "api died between cancel's write and its publish",
        "preparing the webhook failed",
        "receiver: drip",
        "receiver: hang",
        "receiver: endless",
        "receiver: tls-ip",
    } <= struck, injected
    assert any("api died before the publish" in answer for answer in report.cancel_answers), report.cancel_answers
    assert report.outcome_check_executions["SUCCEEDED"] >= 1  # the stopped polls and crashed cancels
    # The receivers got what they should: the certificate's name delivered, its address refused
    # every time, slow receivers cut at their timeout and dead-lettered through the schedule.
    assert report.by_receiver["tls-name"] == {"delivered": report.by_receiver["tls-name"].total()}
    assert report.by_receiver["tls-ip"] == {"dead_lettered": report.by_receiver["tls-ip"].total()}
    assert report.dead_lettered_by_cause["retries_exhausted / TLS"] == report.by_receiver["tls-ip"].total()
    assert report.by_receiver["ok"] == {"delivered": report.by_receiver["ok"].total()}
    assert report.longest_attempt is not None and report.settings is not None
    stall_ms = report.scheduling_lag.longest_stall_ms() if report.scheduling_lag else 0
    assert report.longest_attempt["latency_ms"] <= report.settings.attempt_limit_ms + stall_ms
    assert report.longest_attempt["latency_ms"] >= report.settings.webhook_timeout_s * 1000  # a slow one was cut


def test_without_the_outcome_checks_a_poll_stopped_after_its_outcome_is_reported_lost(
    bridge: LocalBridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The run can fail: with nobody left to publish (the execution stopped, the checks off), the
    # outcome is recorded on the row and never goes out, and the run says so.
    from bridge.outcomes import checks

    monkeypatch.setattr(checks, "queue_check", lambda task_id, **_: None)
    every_one_stopped = FaultMix(
        kill_after_outcome=0, stop_after_outcome=1.0, kill_mid_request=0, cancel=0, callback=0, receivers=()
    )
    with ExitStack() as cleanup:
        bridge_faults, _ = faulty(bridge, cleanup, every_one_stopped)
        report = run(
            api_url=str(bridge.api.base_url),
            api_key=BRIDGE_API_KEY,
            jobs=3,
            events_for=bridge.events.for_task,
            bridge_faults=bridge_faults,
            upstream_faults=(),
            timeout_s=15,  # seed 7: jobs of 1.6 to 2.5 s, their outcomes recorded by the second poll
            seed=7,
        )
    print("\n" + report.render())

    assert report.injected_bridge == {"poll killed after recording, execution stopped": 3}
    assert sorted(report.lost) == sorted(report.accepted) and len(report.accepted) == 3
    assert not report.ok and "FAILED: 3 lost" in report.render()
    for task_id in report.accepted:  # recorded, and marked as never published
        row = bridge.job_row(task_id) or {}
        assert row["status"]["S"] in ("completed", "failed") and "unpublished_since" in row
