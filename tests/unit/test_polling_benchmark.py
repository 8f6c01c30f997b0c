"""The polling benchmark's replay, on a slice of the reference workload: structure, not results."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from benchmarks import polling_benchmark as bench
from bridge.tracking.eta_policy import MIN_WAIT_S
from bridge_local.simulator import Job, JobConfig

SLICE = 60


@pytest.fixture(scope="module")
def jobs() -> list[bench.WorkloadJob]:
    everything = bench.load_workload(bench.DEFAULT_WORKLOAD)
    return sorted(everything, key=lambda job: job.submit_at_s)[:SLICE]


@pytest.fixture(scope="module")
def results(jobs: list[bench.WorkloadJob]) -> dict[str, list[bench.JobRun]]:
    return bench.run_benchmark(jobs)


def test_the_workload_ships_with_the_repo() -> None:
    assert bench.DEFAULT_WORKLOAD.is_relative_to(bench.ROOT)
    assert len(bench.load_workload(bench.DEFAULT_WORKLOAD)) == 1000


def test_the_replayed_upstream_answers_as_the_simulator_does(jobs: list[bench.WorkloadJob]) -> None:
    for workload_job in jobs[:20]:
        config = JobConfig(
            queue_s=workload_job.queue_s,
            run_s=workload_job.run_s,
            outcome=workload_job.outcome,
            progress=workload_job.progress,
        )
        simulated = Job(task_id="v_" + "0" * 32, created_at=1000.0, config=config, request={})
        for step in range(0, math.ceil(workload_job.end_s) + 6, 3):
            view = simulated.view(1000.0 + step, "http://sim")
            assert bench.upstream_answer(workload_job, float(step)) == (view["status"], view.get("progress"))


def test_both_policies_replay_every_job_once(
    jobs: list[bench.WorkloadJob], results: dict[str, list[bench.JobRun]]
) -> None:
    assert set(results) == {"fixed-3s", "eta"}
    for runs in results.values():
        assert sorted(run.job.id for run in runs) == sorted(job.id for job in jobs)


def test_every_wait_respects_router_ones_floor(results: dict[str, list[bench.JobRun]]) -> None:
    for runs in results.values():
        for run in runs:
            assert run.waits[0] == MIN_WAIT_S
            assert all(isinstance(wait, int) and wait >= MIN_WAIT_S for wait in run.waits)


def test_the_last_poll_is_the_first_to_see_the_end(results: dict[str, list[bench.JobRun]]) -> None:
    for runs in results.values():
        for run in runs:
            assert run.polls == len(run.waits)
            assert run.seen_at_s == pytest.approx(sum(run.waits))
            assert run.lag_s >= 0
            assert run.seen_at_s - run.waits[-1] < run.job.end_s


def test_fixed_loop_lag_never_exceeds_its_interval(results: dict[str, list[bench.JobRun]]) -> None:
    for run in results["fixed-3s"]:
        assert run.lag_s <= bench.FIXED_WAIT_S
        assert run.polls == max(1, math.ceil(run.job.end_s / bench.FIXED_WAIT_S))


def test_eta_polls_less_than_the_fixed_loop(results: dict[str, list[bench.JobRun]]) -> None:
    eta = sum(run.polls for run in results["eta"])
    fixed = sum(run.polls for run in results["fixed-3s"])
    assert eta < fixed


def test_state_transitions_and_costs_follow_the_polls(results: dict[str, list[bench.JobRun]]) -> None:
    assert bench.state_transitions(1) == 12
    assert bench.state_transitions(5) - bench.state_transitions(4) == 3
    for runs in results.values():
        summary = bench.Summary.of(runs)
        assert summary.jobs == len(runs)
        assert summary.transitions_mean == pytest.approx(3 * summary.polls_mean + 9)
        assert summary.lag_p50 <= summary.lag_p95 <= summary.lag_max
        assert summary.sfn_usd_per_1000 == pytest.approx(summary.transitions_mean * 0.025)
    fixed, eta = (bench.Summary.of(results[name]) for name in ("fixed-3s", "eta"))
    assert eta.sfn_usd_per_1000 + eta.lambda_usd_per_1000 < fixed.sfn_usd_per_1000 + fixed.lambda_usd_per_1000


def test_report_prints_both_tables_and_the_plot_is_written(
    results: dict[str, list[bench.JobRun]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    met = bench.report(results, bench.DEFAULT_WORKLOAD)
    out = capsys.readouterr().out
    assert isinstance(met, bool)
    assert "eta polls / fixed polls" in out
    for label in ("fixed-3s", "eta", "linear", "stepped", "none"):
        assert label in out
    png = tmp_path / "plot.png"
    bench.plot(results, png)
    assert png.read_bytes().startswith(b"\x89PNG")
