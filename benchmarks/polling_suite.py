"""The polling benchmark's command line, its targets, the suite of workloads and the trade-off sweep.

``benchmarks/polling_benchmark.py`` runs this module's ``main``; see its docstring for the options.
Targets, for the ETA policy against the fixed 3 s loop on the same jobs, all checked at once: a share
of the fixed loop's polls of at most 30 % at the reference's durations (40 % with them halved, 25 %
with them doubled), and a lag of at most 3.0 s at p95 and 10 s at most, overall and in each progress mode.
"""

from __future__ import annotations

import argparse
import inspect
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "layers" / "bridge"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from benchmarks import polling_benchmark as engine  # noqa: E402
from benchmarks.polling_benchmark import (  # noqa: E402
    DEFAULT_PLOT,
    PROGRESS_MODES,
    TARGET_MAX_LAG_S,
    TARGET_P95_LAG_S,
    JobRun,
    fixed_wait,
    percentile,
    plot,
    replay,
    replay_eta,
    report,
    run_benchmark,
    workload_label,
)
from benchmarks.workload_gen import (  # noqa: E402
    DEFAULT_JOBS,
    DEFAULT_SEED,
    DEFAULT_WORKLOAD,
    WorkloadJob,
    WorkloadShape,
    WorkloadStats,
    comparison,
    generate,
    load_workload,
)
from bridge.tracking.eta_policy import Tuning, next_wait  # noqa: E402

# The ETA policy's share of the fixed loop's polls, by duration scale: short jobs leave less to skip.
POLL_SHARE_TARGETS = {0.5: 0.40, 1.0: 0.30, 2.0: 0.25}
# The sweep's grid of the policy's Tuning: lag budgets (seconds) by dense bands (low, high percent).
SWEEP_LAG_BUDGETS = (math.inf, 12.0, 10.0, 8.0)
SWEEP_DENSE_QUANTILES = ((15, 90), (10, 95), (5, 97), (2, 99))
SWEEP_SCALES = (1.0, 0.5, 2.0)


@dataclass(frozen=True)
class Targets:
    poll_share: float
    lag_p95_s: float = TARGET_P95_LAG_S
    lag_max_s: float = TARGET_MAX_LAG_S

    @classmethod
    def for_scale(cls, duration_scale: float = 1.0) -> Targets:
        """Targets for jobs ``duration_scale`` times the reference's length.

        The poll share is exact at the scales of ``POLL_SHARE_TARGETS``, linear in log2(scale) between
        them and the nearest one's beyond them.
        """
        scales = sorted(POLL_SHARE_TARGETS)
        at = min(max(math.log2(duration_scale), math.log2(scales[0])), math.log2(scales[-1]))
        for low, high in pairwise(scales):
            if at <= math.log2(high):
                fraction = (at - math.log2(low)) / (math.log2(high) - math.log2(low))
                share = POLL_SHARE_TARGETS[low] + fraction * (POLL_SHARE_TARGETS[high] - POLL_SHARE_TARGETS[low])
                return cls(poll_share=round(share, 4))
        return cls(poll_share=POLL_SHARE_TARGETS[scales[-1]])


@dataclass(frozen=True)
class TargetCheck:
    """The ETA policy on one workload against its targets; ``modes`` maps a progress mode to (p95, max) lag."""

    workload: str
    jobs: int
    targets: Targets
    poll_share: float
    polls_per_job: float
    lag_p95_s: float
    lag_max_s: float
    modes: dict[str, tuple[float, float]]
    missed: tuple[str, ...]

    @property
    def met(self) -> bool:
        return not self.missed


def poll_share(eta: Sequence[JobRun], fixed: Sequence[JobRun]) -> float:
    return sum(run.polls for run in eta) / sum(run.polls for run in fixed)


def check_targets(results: dict[str, list[JobRun]], targets: Targets, workload: str = "") -> TargetCheck:
    """Every target at once, for ``results["eta"]`` against ``results["fixed-3s"]`` (the same jobs)."""
    eta = results["eta"]
    share = poll_share(eta, results["fixed-3s"])
    lags = [run.lag_s for run in eta]
    lag_p95, lag_max = percentile(lags, 95), max(lags)
    missed = [
        name
        for name, ok in (
            ("poll share", share <= targets.poll_share),
            ("p95 lag", lag_p95 <= targets.lag_p95_s),
            ("max lag", lag_max <= targets.lag_max_s),
        )
        if not ok
    ]
    modes = {}
    for mode in PROGRESS_MODES:
        mode_lags = [run.lag_s for run in eta if run.job.progress == mode]
        if mode_lags:
            modes[mode] = (percentile(mode_lags, 95), max(mode_lags))
            missed += [f"{mode} p95"] if modes[mode][0] > targets.lag_p95_s else []
            missed += [f"{mode} max"] if modes[mode][1] > targets.lag_max_s else []
    return TargetCheck(
        workload=workload,
        jobs=len(eta),
        targets=targets,
        poll_share=share,
        polls_per_job=sum(run.polls for run in eta) / len(eta),
        lag_p95_s=lag_p95,
        lag_max_s=lag_max,
        modes=modes,
        missed=tuple(missed),
    )


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def print_check(check: TargetCheck) -> None:
    targets = check.targets
    print(
        f"eta polls / fixed polls: {check.poll_share:.3f}  "
        f"(target <= {targets.poll_share:.2f}: {_verdict(check.poll_share <= targets.poll_share)})"
    )
    print(
        f"eta p95 lag: {check.lag_p95_s:.2f} s  "
        f"(target <= {targets.lag_p95_s:.1f} s: {_verdict(check.lag_p95_s <= targets.lag_p95_s)})"
    )
    print(
        f"eta max lag: {check.lag_max_s:.1f} s  "
        f"(target <= {targets.lag_max_s:.0f} s: {_verdict(check.lag_max_s <= targets.lag_max_s)})"
    )
    for mode, (p95, worst) in check.modes.items():
        ok = p95 <= targets.lag_p95_s and worst <= targets.lag_max_s
        print(f"eta {mode} lag: p95 {p95:.2f} s, max {worst:.1f} s  (same targets: {_verdict(ok)})")
    print(f"All targets: {'met' if check.met else 'NOT met (missed: ' + ', '.join(check.missed) + ')'}")


@dataclass(frozen=True)
class Workload:
    label: str
    jobs: list[WorkloadJob]
    duration_scale: float = 1.0
    seed: int | None = None  # None: a file, not generated


def generated(shape: WorkloadShape, seed: int, jobs: int, duration_scale: float) -> Workload:
    return Workload(
        label=f"generated, seed {seed}, scale {duration_scale:g}",
        jobs=generate(shape, seed=seed, jobs=jobs, duration_scale=duration_scale),
        duration_scale=duration_scale,
        seed=seed,
    )


def suite_workloads(reference: list[WorkloadJob], label: str, seed: int, jobs: int) -> list[Workload]:
    """The reference; generated at scale 1 with ``seed`` and the two after it; at scales 0.5 and 2 with ``seed``."""
    shape = WorkloadShape.fit(reference)
    return [
        Workload(label=label, jobs=reference),
        *(generated(shape, s, jobs, 1.0) for s in (seed, seed + 1, seed + 2)),
        generated(shape, seed, jobs, 0.5),
        generated(shape, seed, jobs, 2.0),
    ]


def run_workload(workload: Workload, reference: list[WorkloadJob], plot_to: Path | None = None) -> TargetCheck:
    """Print one workload's tables (and a generated one's statistics beside the reference's); check its targets."""
    if workload.seed is not None:
        print(f"Generated workload: seed {workload.seed}, {len(workload.jobs)} jobs, scale {workload.duration_scale:g}")
        stats = comparison(WorkloadStats.of(reference), WorkloadStats.of(workload.jobs), workload.duration_scale)
        print("\n".join(stats))
        print()
    results = run_benchmark(workload.jobs)
    report(results, workload.label)
    check = check_targets(results, Targets.for_scale(workload.duration_scale), workload.label)
    print_check(check)
    if plot_to is not None:
        plot(results, plot_to)
        print(f"Plot: {plot_to}")
    return check


def _lags(check: TargetCheck, mode: str) -> str:
    if mode not in check.modes:
        return "-"
    p95, worst = check.modes[mode]
    return f"{p95:.2f}/{worst:.1f}s"


def print_summary(checks: Sequence[TargetCheck]) -> None:
    """One row per workload: poll share against its target, lags overall and per mode, met or what was missed."""
    width = max(len("workload"), *(len(check.workload) for check in checks))
    modes = "".join(f" {mode + ' p95/max':>16}" for mode in PROGRESS_MODES)
    print(
        f"{'workload':<{width}} {'jobs':>5} {'poll share (target)':>19} {'p95 lag':>7} {'max lag':>7}{modes}  targets"
    )
    for check in checks:
        share = f"{check.poll_share:.3f} (<= {check.targets.poll_share:.2f})"
        per_mode = "".join(f" {_lags(check, mode):>16}" for mode in PROGRESS_MODES)
        verdict = "met" if check.met else "MISSED: " + ", ".join(check.missed)
        print(
            f"{check.workload:<{width}} {check.jobs:>5} {share:>19} {check.lag_p95_s:>6.2f}s {check.lag_max_s:>6.1f}s"
            f"{per_mode}  {verdict}"
        )
    print(
        f"{sum(check.met for check in checks)} of {len(checks)} workloads meet every target (p95 lag <= "
        f"{TARGET_P95_LAG_S:.1f} s, max lag <= {TARGET_MAX_LAG_S:.0f} s, overall and per progress mode; poll share as listed)"
    )


def _mode_results(results: dict[str, list[JobRun]], mode: str) -> dict[str, list[JobRun]]:
    return {name: [run for run in runs if run.job.progress == mode] for name, runs in results.items()}


def default_tuning() -> Tuning:
    """The tuning ``next_wait`` uses when given none (read from its signature: the policy may change it)."""
    default = inspect.signature(next_wait).parameters["tuning"].default
    return default if isinstance(default, Tuning) else Tuning()


def sweep(workloads: Sequence[Workload]) -> dict[str, list[tuple[str, TargetCheck]]]:
    """Print, per workload, polls against lag over the Tuning grid, overall and for ``none``; return the checks.

    The first row is the policy's own default tuning. A row meets every target when its ``targets``
    column says ``met`` (the poll share overall, the lags overall and per mode).
    """
    grid: list[tuple[str, Tuning | None]] = [("policy default", None)]
    grid += [
        (f"{budget:>5g} s  {low:>2}-{high} %", Tuning(lag_budget_s=budget, dense_quantiles=(low, high)))
        for budget in SWEEP_LAG_BUDGETS
        for low, high in SWEEP_DENSE_QUANTILES
    ]
    checks: dict[str, list[tuple[str, TargetCheck]]] = {}
    for workload in workloads:
        targets = Targets.for_scale(workload.duration_scale)
        fixed = replay(workload.jobs, fixed_wait, use_history=False)
        print(
            f"Sweep: {workload.label} ({len(workload.jobs)} jobs); targets: poll share <= {targets.poll_share:.2f}, "
            f"p95 lag <= {targets.lag_p95_s:.1f} s, max lag <= {targets.lag_max_s:.0f} s, overall and per mode"
        )
        print(f"{'':<20} {' all jobs ':-^30}   {' progress none ':-^30}")
        columns = f"{'polls/job':>9} {'share':>6} {'p95':>6} {'max':>6}"
        print(f"{'lag budget, band':<20} {columns}   {columns}   targets (all at once)")
        rows = checks.setdefault(workload.label, [])
        for name, tuning in grid:
            results = {"fixed-3s": fixed, "eta": replay_eta(workload.jobs, tuning)}
            check = check_targets(results, targets, workload.label)
            rows.append((name, check))
            none = _mode_results(results, "none")
            cells = [(check.polls_per_job, check.poll_share, check.lag_p95_s, check.lag_max_s)]
            if none["eta"]:
                lags = [run.lag_s for run in none["eta"]]
                polls = sum(run.polls for run in none["eta"]) / len(none["eta"])
                cells.append((polls, poll_share(none["eta"], none["fixed-3s"]), percentile(lags, 95), max(lags)))
            line = "   ".join(f"{p:>9.1f} {s:>6.3f} {p95:>5.2f}s {m:>5.1f}s" for p, s, p95, m in cells)
            verdict = "met" if check.met else "MISSED: " + ", ".join(check.missed)
            print(f"{name:<20} {line}   {verdict}")
        print()
    everywhere = [
        name.strip()
        for index, (name, _) in enumerate(grid)
        if all(workload_rows[index][1].met for workload_rows in checks.values())
    ]
    print(f"policy default: {default_tuning()}")
    print("Meet every target on every workload above: " + ("; ".join(everywhere) or "none"))
    return checks


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(engine.__doc__ or "").splitlines()[0])
    parser.add_argument("--workload", type=Path, default=DEFAULT_WORKLOAD, help="reference JSON lines of jobs")
    parser.add_argument("--generate", action="store_true", help="run on a workload generated to the reference's shape")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="generator seed (default: %(default)s)")
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS, help="generated jobs (default: %(default)s)")
    parser.add_argument("--duration-scale", type=float, help="with --generate: multiplies run times (default: 1)")
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument("--suite", action="store_true", help="reference, 3 seeds at scale 1, scales 0.5 and 2")
    modes.add_argument("--sweep", action="store_true", help="polls against lag over a grid of the policy's Tuning")
    parser.add_argument("--plot", type=Path, help=f"PNG to write (default for the reference: {DEFAULT_PLOT})")
    parser.add_argument("--no-plot", action="store_true", help="print the tables only")
    parser.add_argument("--check", action="store_true", help="exit with status 1 if a target is missed")
    args = parser.parse_args(argv)
    if args.duration_scale is not None and not args.generate:
        parser.error("--duration-scale needs --generate")
    if args.generate and (args.suite or args.sweep):
        parser.error("--suite and --sweep generate their own workloads")
    if args.sweep and args.check:
        parser.error("--sweep checks no targets; --check is for a single run or --suite")
    if (args.suite or args.sweep) and args.plot:
        parser.error("--plot is for a single run")
    if args.jobs < 1 or not (args.duration_scale or 1.0) > 0:
        parser.error("--jobs must be at least 1 and --duration-scale positive")
    reference = load_workload(args.workload)
    if not reference:
        parser.error(f"{args.workload} has no jobs")
    label = workload_label(args.workload)
    if args.suite or args.sweep:
        label = f"reference {args.workload.name}"
    if args.sweep:
        shape = WorkloadShape.fit(reference)
        sweep(
            [
                Workload(label=label, jobs=reference) if scale == 1 else generated(shape, args.seed, args.jobs, scale)
                for scale in SWEEP_SCALES
            ]
        )
        return 0
    if args.suite:
        checks = []
        for workload in suite_workloads(reference, label, args.seed, args.jobs):
            print(f"=== {workload.label} ===")
            checks.append(run_workload(workload, reference))
            print()
        print("Summary (ETA policy against the fixed 3 s loop on the same jobs)")
        print_summary(checks)
        return 1 if args.check and not all(check.met for check in checks) else 0
    if args.generate:
        shape = WorkloadShape.fit(reference)
        workload = generated(shape, args.seed, args.jobs, args.duration_scale or 1.0)
        print(f"Generator fitted to {label}:")
        print("\n".join(f"  {line}" for line in shape.describe()))
        check = run_workload(workload, reference, None if args.no_plot else args.plot)
    else:
        workload = Workload(label=label, jobs=reference)
        check = run_workload(workload, reference, None if args.no_plot else args.plot or DEFAULT_PLOT)
    return 1 if args.check and not check.met else 0


if __name__ == "__main__":
    sys.exit(main())
