"""The scale scripts' own arithmetic: percentiles, the transition fit, the poll projection, the
template reading behind the cold-start probe. (Their figures come from running them, not from here.)"""

from __future__ import annotations

import pytest

from benchmarks import cold_start, cost_model, lag_benchmark
from benchmarks.polling_benchmark import state_transitions


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert lag_benchmark.percentile(values, 50) == 50.0
    assert lag_benchmark.percentile(values, 95) == 95.0
    assert lag_benchmark.percentile(values, 99) == 99.0
    assert lag_benchmark.percentile([3.0], 99) == 3.0
    assert lag_benchmark.percentile([5.0, 1.0], 50) == 1.0


def test_the_fit_recovers_the_state_machines_transition_line() -> None:
    polls = [1, 4, 9, 20]
    fixed, per_poll = cost_model.fit(polls, [state_transitions(p) for p in polls])
    assert (fixed, per_poll) == pytest.approx((9.0, 3.0))


@pytest.mark.parametrize("minutes", cost_model.JOB_MINUTES)
def test_the_eta_policy_projects_fewer_polls_than_the_fixed_loop(minutes: int) -> None:
    eta = cost_model.replayed_polls("eta", minutes * 60.0)
    fixed = cost_model.replayed_polls("fixed-3s", minutes * 60.0)
    assert 1 <= eta < fixed
    # The fixed loop polls every 3 s from 3 s after submit until it sees the end (1 s queue + run).
    assert fixed == pytest.approx((minutes * 60 + 1) / 3, abs=2)


def test_lambda_cost_counts_requests_and_gb_seconds() -> None:
    one_second = cost_model.lambda_usd(1, 1000)
    assert one_second == pytest.approx(0.20 / 1e6 + 0.25 * 0.0000166667)
    assert cost_model.lambda_usd(10, 1000) == pytest.approx(10 * one_second)


def test_the_cold_start_probe_reads_every_function_and_the_deployed_environment() -> None:
    functions, env = cold_start.template_functions()
    assert {"ApiFunction", "PollFunction", "AuthorizerFunction", "WebhookDeliveryFunction"} <= set(functions)
    assert set(env) == set(functions)
    api = env["ApiFunction"]
    # Fn::If on a parameter default: subsegments are off unless TraceSubsegments=true.
    assert api["POWERTOOLS_TRACE_DISABLED"] == "true"
    assert api["POWERTOOLS_SERVICE_NAME"] == "video-bridge"
    # The function's own variables too (a resource stands in as a placeholder); AWS::NoValue leaves one out.
    assert api["STATE_MACHINE_ARN"].startswith("cold-start-probe") and api["POLL_INTERVAL_SECONDS"] == "5"
    assert "AWS_ENDPOINT_URL" not in api and "STATE_MACHINE_ARN" not in env["PollFunction"]
    assert set(cold_start.TARGETS_MS) == {"ApiFunction", "PollFunction"}
