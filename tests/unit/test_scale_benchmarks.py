"""The scale scripts' own arithmetic: percentiles, the cost model's job sets and pricing, the
template reading behind the cold-start probe. (Their figures come from running them, not from here.)"""

from __future__ import annotations

import pytest

from benchmarks import cold_start, cost_model, lag_benchmark
from benchmarks.workload_gen import DEFAULT_WORKLOAD, load_workload


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert lag_benchmark.percentile(values, 50) == 50.0
    assert lag_benchmark.percentile(values, 95) == 95.0
    assert lag_benchmark.percentile(values, 99) == 99.0
    assert lag_benchmark.percentile([3.0], 99) == 3.0
    assert lag_benchmark.percentile([5.0, 1.0], 50) == 1.0


def test_two_minute_jobs_mix_the_modes_in_the_workloads_shares() -> None:
    jobs = cost_model.two_minute_jobs(16)
    assert len(jobs) == 16 and {j.run_s for j in jobs} == {cost_model.TWO_MINUTE_RUN_S}
    counts = {mode: sum(j.progress == mode for j in jobs) for mode in ("linear", "stepped", "none")}
    assert counts == {"linear": 6, "stepped": 7, "none": 3}  # 6.48, 6.50, 3.02 by largest remainder
    assert "duration=120.0" in jobs[0].prompt() and "outcome" not in jobs[0].prompt()


def test_the_reference_sample_is_stratified_and_its_history_leaves_the_sample_out() -> None:
    workload = load_workload(DEFAULT_WORKLOAD)
    sample, history = cost_model.reference_sample(workload, 30)
    assert [j.progress for j in sample].count("none") == round(30 * 189 / 1000)
    assert len({(j.model, j.run_s) for j in sample}) == len(sample)
    picked = {(j.model, j.run_s, j.queue_s) for j in sample}
    assert set(history) == {j.model for j in workload}
    for model, durations in history.items():
        # Run times of that model's completed jobs outside the sample, its last 50.
        outside = [j.run_s for j in sorted(workload, key=lambda j: j.submit_at_s)
                   if j.model == model and j.outcome == "completed" and (j.model, j.run_s, j.queue_s) not in picked]  # fmt: skip
        assert durations == outside[-50:]


def test_a_jobs_cost_adds_transitions_billed_milliseconds_and_per_job_requests() -> None:
    job = cost_model.two_minute_jobs(1)[0]
    cost = cost_model.JobCost(job=job, task_id="t", submit_ms=99.2, transitions=10, turns=3, polls=12)
    cost.invocation_ms = [100.4, 20_000.0, 0.5]
    usd = cost.usd(upstream_latency_ms=200)
    assert usd["sfn"] == pytest.approx(10 * 0.025 / 1000)
    billed_poll_ms = 101 + 20_000 + 1 + 12 * 200
    lam = 4 * 0.20 / 1e6 + (billed_poll_ms * 0.125 + 300 * 0.25) / 1000 * 0.0000166667
    assert usd["lambda"] == pytest.approx(lam)
    assert usd["total"] == pytest.approx(usd["sfn"] + usd["lambda"] + usd["other"])


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


def test_the_report_weights_each_mode_by_its_share_of_the_workload(capsys: pytest.CaptureFixture[str]) -> None:
    by_mode = {"linear": 10, "stepped": 20, "none": 40}  # transitions, so each mode's dollars differ
    costs = [
        cost_model.JobCost(job=job, task_id=job.progress, submit_ms=0.0, transitions=by_mode[job.progress])
        for job in cost_model.two_minute_jobs(3)
    ]
    totals = cost_model.report(costs, upstream_latency_ms=0.0)
    each = {c.job.progress: 1000 * c.usd(0.0)["total"] for c in costs}
    assert totals == {"two-minute": pytest.approx(sum(cost_model.MODE_WEIGHTS[m] * each[m] for m in each))}
    assert "two-minute  weighted" in capsys.readouterr().out
