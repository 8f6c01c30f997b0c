"""The polling benchmark: its replay on a slice of the reference workload (structure, not results), the
workload generator, the targets and the suite's summary."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from benchmarks import polling_benchmark as bench
from benchmarks import polling_suite as suite
from benchmarks import workload_gen as gen
from bridge.tracking.eta_policy import MIN_WAIT_S
from bridge.tracking.invocation import INLINE_MAX_WAIT_S
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


def test_state_transitions_and_costs_follow_the_turns(results: dict[str, list[bench.JobRun]]) -> None:
    assert bench.state_transitions(1) == 4
    assert bench.state_transitions(5) - bench.state_transitions(4) == 3
    for runs in results.values():
        summary = bench.Summary.of(runs)
        assert summary.jobs == len(runs)
        turns = sum(run.turns for run in runs) / len(runs)
        assert summary.transitions_mean == pytest.approx(3 * turns + 1)
        assert summary.lag_p50 <= summary.lag_p95 <= summary.lag_max
        assert summary.sfn_usd_per_1000 == pytest.approx(summary.transitions_mean * 0.025)
        for run in runs:
            # Every poll is in exactly one invocation, and every wait but the first and the longer ones is slept in one.
            assert 1 <= run.turns <= run.polls
            slept = sum(w for w in run.waits[1:]) - sum(
                w for w in run.waits[1:] if w > INLINE_MAX_WAIT_S
            )  # an upper bound: the budget may end an invocation early
            assert run.lambda_s <= slept + run.polls * bench.LAMBDA_BILLED_S_PER_POLL + 1e-9
            assert run.lambda_s >= run.polls * bench.LAMBDA_BILLED_S_PER_POLL - 1e-9


def test_waits_are_slept_in_the_function_up_to_thirty_seconds_and_the_invocation_budget() -> None:
    job = bench.WorkloadJob(
        id="j", model="m", submit_at_s=0.0, queue_s=0.0, run_s=1.0, progress="none", outcome="completed"
    )
    per_poll = bench.LAMBDA_BILLED_S_PER_POLL
    short = bench.JobRun(job=job, waits=(3, 3, 30, 31, 3), seen_at_s=70.0, processing_seen_s=3.0)
    # 3 s (from the submit: the Wait state), then polls: 3 and 30 slept, 31 is a turn of its own, 3 slept.
    assert short.invocations() == pytest.approx([3 * per_poll + 33, 2 * per_poll + 3])
    assert short.turns == 2 and bench.state_transitions(short.turns) == 7
    long = bench.JobRun(job=job, waits=(3,) * 40, seen_at_s=120.0, processing_seen_s=3.0)
    # Fixed 3 s polls: each invocation sleeps until the budget would be passed.
    assert all(run <= bench.INVOCATION_BUDGET_S + per_poll for run in long.invocations())
    assert long.turns == math.ceil(39 * (3 + per_poll) / bench.INVOCATION_BUDGET_S)


def test_report_prints_both_tables_and_the_plot_is_written(
    results: dict[str, list[bench.JobRun]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bench.report(results, bench.DEFAULT_WORKLOAD)
    suite.print_check(suite.check_targets(results, suite.Targets.for_scale(1.0)))
    out = capsys.readouterr().out
    assert "benchmarks/workloads/video-jobs-1000.jsonl" in out
    assert "eta polls / fixed polls" in out and "eta max lag" in out and "All targets:" in out
    for label in ("fixed-3s", "eta", "linear", "stepped", "none"):
        assert label in out
    png = tmp_path / "plot.png"
    bench.plot(results, png)
    assert png.read_bytes().startswith(b"\x89PNG")


# The workload generator.


@pytest.fixture(scope="module")
def reference() -> list[bench.WorkloadJob]:
    return gen.load_workload(gen.DEFAULT_WORKLOAD)


@pytest.fixture(scope="module")
def shape(reference: list[bench.WorkloadJob]) -> gen.WorkloadShape:
    return gen.WorkloadShape.fit(reference)


def test_the_generator_is_deterministic_per_seed(shape: gen.WorkloadShape) -> None:
    first = gen.generate(shape, seed=11, jobs=200)
    assert gen.generate(shape, seed=11, jobs=200) == first
    assert gen.generate(shape, seed=12, jobs=200) != first
    assert [job.submit_at_s for job in first] == sorted(job.submit_at_s for job in first)
    assert len({job.id for job in first}) == 200


def test_the_default_generated_workload_has_the_references_shape(
    reference: list[bench.WorkloadJob], shape: gen.WorkloadShape
) -> None:
    ref = gen.WorkloadStats.of(reference)
    made = gen.WorkloadStats.of(gen.generate(shape))
    assert made.jobs == ref.jobs == 1000
    assert set(made.models) == set(ref.models) == {"video-fast", "video-default", "video-pro"}
    for name, model in ref.models.items():
        assert made.models[name].median_s == pytest.approx(model.median_s, rel=0.10)
        assert made.models[name].p90_s == pytest.approx(model.p90_s, rel=0.15)
        assert made.models[name].share == pytest.approx(model.share, abs=0.04)
    for mode in gen.PROGRESS_MODES:
        assert made.progress[mode] == pytest.approx(ref.progress[mode], abs=0.03)
    assert made.failed_share == pytest.approx(ref.failed_share, abs=0.02)
    assert made.queue_median_s == pytest.approx(ref.queue_median_s, rel=0.15)
    assert made.arrivals_per_s == pytest.approx(ref.arrivals_per_s, rel=0.10)
    low, high = shape.run_clip_s
    assert (low, high) == (25.0, 300.0)
    generated = gen.generate(shape, seed=3, jobs=300)
    assert all(low <= job.run_s <= high and job.progress in gen.PROGRESS_MODES for job in generated)


def test_the_fit_recovers_the_parameters_it_generated_from(shape: gen.WorkloadShape) -> None:
    refit = gen.WorkloadShape.fit(gen.generate(shape, seed=5, jobs=4000))
    for name, model in shape.models.items():
        assert refit.models[name].median_s == pytest.approx(model.median_s, rel=0.05)
        assert refit.models[name].sigma == pytest.approx(model.sigma, rel=0.15)
    assert refit.queue_weibull_shape == pytest.approx(shape.queue_weibull_shape, rel=0.1)
    assert refit.arrivals_per_s == pytest.approx(shape.arrivals_per_s, rel=0.05)


@pytest.mark.parametrize("scale", [0.5, 2.0])
def test_the_duration_scale_multiplies_run_times_and_their_clip_range(shape: gen.WorkloadShape, scale: float) -> None:
    plain = gen.generate(shape, seed=9, jobs=300)
    scaled = gen.generate(shape, seed=9, jobs=300, duration_scale=scale)
    for one, other in zip(plain, scaled, strict=True):
        assert other.run_s == pytest.approx(one.run_s * scale, abs=0.011)
        assert (other.queue_s, other.submit_at_s, other.model, other.progress) == (
            one.queue_s,
            one.submit_at_s,
            one.model,
            one.progress,
        )
    low, high = shape.run_clip_s
    assert min(job.run_s for job in scaled) == pytest.approx(low * scale)
    assert all(job.run_s <= high * scale for job in scaled)


def test_the_comparison_prints_per_model_run_times_and_mode_shares(
    reference: list[bench.WorkloadJob], shape: gen.WorkloadShape
) -> None:
    lines = gen.comparison(gen.WorkloadStats.of(reference), gen.WorkloadStats.of(gen.generate(shape, jobs=300)))
    text = "\n".join(lines)
    for label in ("video-fast median run", "video-pro p90 run", "progress none", "failed", "queue median"):
        assert label in text


# Targets, the suite's check and summary.


def fake_run(mode: str, end_s: float, waits: tuple[int, ...]) -> bench.JobRun:
    job = bench.WorkloadJob("job", "video-fast", 0.0, end_s, mode, "completed", 0.0)
    return bench.JobRun(job=job, waits=waits, seen_at_s=float(sum(waits)), processing_seen_s=3.0)


def fake_results(eta_none_waits: tuple[int, ...]) -> dict[str, list[bench.JobRun]]:
    """Three 60 s jobs, one per mode: the fixed loop polls each 20 times, the ETA policy 4 times."""
    fixed = [fake_run(mode, 60.0, (3,) * 20) for mode in gen.PROGRESS_MODES]
    eta = [fake_run(mode, 60.0, (3, 20, 20, 18)) for mode in ("linear", "stepped")]
    return {"fixed-3s": fixed, "eta": [*eta, fake_run("none", 60.0, eta_none_waits)]}


def test_the_targets_follow_the_duration_scale() -> None:
    assert suite.Targets.for_scale(1.0) == suite.Targets(poll_share=0.30, lag_p95_s=3.0, lag_max_s=10.0)
    assert suite.Targets.for_scale(0.5).poll_share == 0.40
    assert suite.Targets.for_scale(2.0).poll_share == 0.25
    assert suite.Targets.for_scale(0.25).poll_share == 0.40
    assert suite.Targets.for_scale(math.sqrt(2)).poll_share == pytest.approx(0.275)


def test_the_check_passes_when_every_target_is_met() -> None:
    check = suite.check_targets(fake_results((3, 20, 20, 18)), suite.Targets.for_scale(1.0), "fake")
    assert check.met and check.missed == ()
    assert check.poll_share == pytest.approx(12 / 60)
    assert check.modes["none"] == (1.0, 1.0)


def test_the_check_flags_a_missed_target() -> None:
    # The job without progress is seen 12 s after its end: its max lag, the p95 and the max overall miss.
    check = suite.check_targets(fake_results((3, 20, 20, 29)), suite.Targets.for_scale(1.0), "fake")
    assert not check.met
    assert check.modes["none"] == (12.0, 12.0)
    assert set(check.missed) == {"p95 lag", "max lag", "none p95", "none max"}
    many_polls = fake_results((3,) * 20 + (1,))
    assert "poll share" in suite.check_targets(many_polls, suite.Targets.for_scale(1.0)).missed
    assert suite.check_targets(many_polls, suite.Targets(poll_share=0.5)).missed == ()


def test_the_summary_lists_every_workload_and_what_it_missed(capsys: pytest.CaptureFixture[str]) -> None:
    met = suite.check_targets(fake_results((3, 20, 20, 18)), suite.Targets.for_scale(0.5), "all good")
    missed = suite.check_targets(fake_results((3, 20, 20, 29)), suite.Targets.for_scale(2.0), "too late")
    suite.print_summary([met, missed])
    lines = capsys.readouterr().out.splitlines()
    assert "poll share (target)" in lines[0] and "none p95/max" in lines[0]
    assert lines[1].startswith("all good") and "(<= 0.40)" in lines[1] and lines[1].endswith("  met")
    assert lines[2].startswith("too late") and "(<= 0.25)" in lines[2]
    assert lines[2].endswith("MISSED: p95 lag, max lag, none p95, none max")
    assert "12.00/12.0s" in lines[2]
    assert lines[3].startswith("1 of 2 workloads meet every target")


def test_the_suite_runs_every_workload_and_prints_the_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert suite.main(["--suite", "--jobs", "40"]) == 0
    out = capsys.readouterr().out
    summary = out[out.index("Summary") :].splitlines()
    rows = [line.split("  ")[0] for line in summary[2:8]]
    assert rows == [
        "reference video-jobs-1000.jsonl",
        "generated, seed 2, scale 1",
        "generated, seed 3, scale 1",
        "generated, seed 4, scale 1",
        "generated, seed 2, scale 0.5",
        "generated, seed 2, scale 2",
    ]
    assert out.count("All jobs") == 6 and out.count("Generated workload:") == 5


def test_check_exits_1_when_a_target_is_missed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--generate", "--jobs", "30", "--duration-scale", "0.5", "--no-plot"]
    monkeypatch.setattr(suite, "POLL_SHARE_TARGETS", {0.5: 0.0, 1.0: 0.0, 2.0: 0.0})
    assert suite.main([*args, "--check"]) == 1
    assert suite.main(args) == 0
    out = capsys.readouterr().out
    assert "Generated workload: seed 2, 30 jobs, scale 0.5" in out and "All targets: NOT met" in out


def test_the_sweep_prints_every_grid_point_overall_and_for_none(
    shape: gen.WorkloadShape, capsys: pytest.CaptureFixture[str]
) -> None:
    workload = suite.generated(shape, seed=4, jobs=40, duration_scale=1.0)
    checks = suite.sweep([workload])
    out = capsys.readouterr().out
    grid = len(suite.SWEEP_LAG_BUDGETS) * len(suite.SWEEP_DENSE_QUANTILES)
    assert len(checks[workload.label]) == grid + 1
    assert "progress none" in out and "policy default" in out and "  inf s  15-90 %" in out
    assert "Meet every target on every workload above:" in out
