"""Fixed 3 s polling against the ETA-guided policy, replayed over a workload in virtual time.

Each job of the workload is played against a model of Router One that answers exactly as the
project's simulator does (``pending`` for ``queue_s``, then ``processing`` with the simulator's own
progress curve, then the outcome), so no poll ever sleeps and 1,000 jobs take well under a second.

For every policy it prints upstream polls per job, the lag between the upstream end and the poll
that sees it, the Step Functions state transitions those polls imply and what they cost, overall
and per progress mode, and checks the targets (``polling_suite.py``), all at once, for the ETA policy
against the fixed loop on the same jobs: at most 30 % of the fixed loop's polls (40 % with the
reference's durations halved, 25 % with them doubled), and a lag of at most 3.0 s at p95 and 10 s
at most, overall and in each progress mode.

Run from the repository root as ``.venv/bin/python benchmarks/polling_benchmark.py [options]``:

* nothing: the reference workload (``--workload PATH`` for another), its tables and its plot
  (``--plot PATH``, ``--no-plot``);
* ``--generate [--seed N] [--jobs N] [--duration-scale X]``: a workload generated to the reference's
  shape (``workload_gen.py``), its statistics beside the reference's, then the same tables;
* ``--suite``: the reference, generated ones at scale 1 (``--seed`` and the two seeds after it), at
  scale 0.5 and at scale 2, each with its tables, then one summary table of every target;
* ``--sweep``: polls against lag over a grid of the policy's ``Tuning``, on the reference and the
  scale 0.5 and 2 workloads, overall and for jobs without progress, marking the points that meet every target;
* ``--check``: exit with status 1 if a target of the run (any run of the suite) is missed.
"""

from __future__ import annotations

import heapq
import json
import sys
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "layers" / "bridge"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from benchmarks.workload_gen import DEFAULT_WORKLOAD as DEFAULT_WORKLOAD  # noqa: E402  (re-exported)
from benchmarks.workload_gen import PROGRESS_MODES, WorkloadJob, percentile  # noqa: E402
from benchmarks.workload_gen import load_workload as load_workload  # noqa: E402  (re-exported)
from bridge.settings import PollingSettings  # noqa: E402
from bridge.tracking.eta_policy import MIN_WAIT_S, ModelDurations, PollMemory, Tuning, next_wait, remember  # noqa: E402
from bridge.tracking.invocation import INLINE_MAX_WAIT_S, sleeps_here  # noqa: E402
from bridge_local.simulator import _progress  # noqa: E402  (the simulator's progress curve, reused as is)

DEFAULT_PLOT = ROOT / "docs" / "polling-benchmark.png"
TERMINAL = frozenset({"completed", "failed"})

FIXED_WAIT_S = 3
# The bridge's default job deadline (settings.job_deadline_seconds); far beyond any job here.
DEADLINE_S = 7200.0
# Past run times kept per model for the ETA policy's history.
HISTORY_PER_MODEL = 50
# A guard against a policy that never sees the end; no job here needs a tenth of it.
MAX_POLLS_PER_JOB = 5000

# The ETA policy's lag targets (polling_suite.py checks them, with its poll share targets).
TARGET_P95_LAG_S = 3.0
TARGET_MAX_LAG_S = 10.0

# Prices (us-east-1 list prices) and the poll function's shape (template.yaml: 128 MB; the default
# PollInvocationSeconds). A poll's own billed time is an assumption here; cost_model.py measures it.
SFN_USD_PER_TRANSITION = 0.025 / 1000
LAMBDA_MEMORY_GB = 128 / 1024
LAMBDA_BILLED_S_PER_POLL = 0.150
LAMBDA_USD_PER_GB_S = 0.0000166667
LAMBDA_USD_PER_REQUEST = 0.20 / 1_000_000
INVOCATION_BUDGET_S = PollingSettings().poll_invocation_seconds


@dataclass(frozen=True)
class JobRun:
    """How one policy polled one job: every wait it chose (the first one included) and what it saw."""

    job: WorkloadJob
    waits: tuple[int, ...]
    seen_at_s: float
    processing_seen_s: float | None

    @property
    def polls(self) -> int:
        return len(self.waits)

    @property
    def turns(self) -> int:
        """Turns of the state machine's loop: poll invocations, each polling while its waits are slept in it."""
        return len(self.invocations())

    @property
    def lambda_s(self) -> float:
        """Poll function seconds: every poll's own time plus every wait slept in an invocation."""
        return sum(invocation for invocation in self.invocations())

    def invocations(self) -> list[float]:
        """How long each poll invocation ran, as `tracking.invocation` groups the polls (the first wait,
        from the submit, is the Wait state's)."""
        runs = [LAMBDA_BILLED_S_PER_POLL]
        for wait in self.waits[1:]:
            if sleeps_here(wait, elapsed_s=runs[-1] - LAMBDA_BILLED_S_PER_POLL, budget_s=INVOCATION_BUDGET_S):
                runs[-1] += wait + LAMBDA_BILLED_S_PER_POLL
            else:
                runs.append(LAMBDA_BILLED_S_PER_POLL)
        return runs

    @property
    def lag_s(self) -> float:
        return self.seen_at_s - self.job.end_s

    @property
    def observed_run_s(self) -> float | None:
        """The run time as the bridge measured it: first ``processing`` poll to the terminal poll."""
        return None if self.processing_seen_s is None else self.seen_at_s - self.processing_seen_s


# A policy picks the next wait from the time since submit, the loop's memory and the model's history.
WaitChooser = Callable[[float, PollMemory, ModelDurations | None], int]


def fixed_wait(elapsed_s: float, memory: PollMemory, history: ModelDurations | None) -> int:
    return FIXED_WAIT_S


def eta_chooser(tuning: Tuning | None = None) -> WaitChooser:
    """The ETA policy with ``tuning``; None leaves the policy's own default."""
    options = {} if tuning is None else {"tuning": tuning}

    def choose(elapsed_s: float, memory: PollMemory, history: ModelDurations | None) -> int:
        return next_wait(
            elapsed_s=elapsed_s, memory=memory, history=history, seconds_to_deadline=DEADLINE_S - elapsed_s, **options
        )

    return choose


eta_wait = eta_chooser()


def state_transitions(turns: int) -> int:
    """Step Functions state transitions for a job whose loop took ``turns`` turns (one per state entered).

    Each turn: WaitBeforePoll, PollUpstream, RouteOnPollResult (3); then Done (1). The poll function
    sends every event itself, so publishing adds none. An integration test checks this count against
    a real execution.
    """
    return 3 * turns + 1


def cost_per_1000_jobs(runs: Sequence[JobRun]) -> tuple[float, float]:
    """(Step Functions, Lambda) dollars per 1,000 jobs for these runs."""
    transitions = sum(state_transitions(run.turns) for run in runs) / len(runs)
    gb_s = sum(run.lambda_s for run in runs) / len(runs) * LAMBDA_MEMORY_GB
    requests = sum(run.turns for run in runs) / len(runs)
    lam = gb_s * LAMBDA_USD_PER_GB_S + requests * LAMBDA_USD_PER_REQUEST
    return 1000 * transitions * SFN_USD_PER_TRANSITION, 1000 * lam


def upstream_answer(job: WorkloadJob, elapsed_s: float) -> tuple[str, int | None]:
    """(status, progress) Router One reports ``elapsed_s`` after submit, with the simulator's boundaries."""
    if elapsed_s < job.queue_s:
        return "pending", None
    if elapsed_s < job.queue_s + job.run_s:
        progress = None if job.progress == "none" else _progress(job.progress, (elapsed_s - job.queue_s) / job.run_s)
        return "processing", progress
    return job.outcome, None


def replay_job(job: WorkloadJob, choose: WaitChooser, history: ModelDurations | None) -> JobRun:
    """Poll one job in virtual time: first poll 3 s after submit, then whatever the policy picks."""
    waits = [MIN_WAIT_S]
    elapsed = float(MIN_WAIT_S)
    memory = PollMemory()
    for _ in range(MAX_POLLS_PER_JOB):
        status, progress = upstream_answer(job, elapsed)
        if status in TERMINAL:
            return JobRun(job=job, waits=tuple(waits), seen_at_s=elapsed, processing_seen_s=memory.processing_since_s)
        memory = remember(memory, elapsed_s=elapsed, status=status, progress=progress)
        # What the loop carries really is JSON: make every decision from the round-tripped memory.
        memory = PollMemory.from_dict(json.loads(json.dumps(memory.to_dict())))
        wait = choose(elapsed, memory, history)
        waits.append(wait)
        elapsed += wait
    raise RuntimeError(f"{job.id}: no terminal status after {MAX_POLLS_PER_JOB} polls")


def replay(
    jobs: Iterable[WorkloadJob], choose: WaitChooser, *, use_history: bool, tuning: Tuning | None = None
) -> list[JobRun]:
    """Replay jobs in submit order.

    With ``use_history`` each job gets the run times the bridge itself measured for the last
    ``HISTORY_PER_MODEL`` jobs of its model whose end it had noticed before this job was submitted,
    so the first jobs of a model start with no history at all; ``tuning`` (None: the policy's
    default) picks the quantiles that history is summarised by.
    """
    ordered = sorted(jobs, key=lambda job: (job.submit_at_s, job.id))
    noticed: list[tuple[float, int, str, float]] = []  # (absolute time seen, order, model, run time)
    recent: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=HISTORY_PER_MODEL))
    runs: list[JobRun] = []
    for order, job in enumerate(ordered):
        while noticed and noticed[0][0] <= job.submit_at_s:
            _, _, model, run_s = heapq.heappop(noticed)
            recent[model].append(run_s)
        history = None
        if use_history:
            durations = recent[job.model]
            history = (
                ModelDurations.from_durations(durations)
                if tuning is None
                else ModelDurations.from_durations(durations, tuning)
            )
        run = replay_job(job, choose, history)
        runs.append(run)
        if run.observed_run_s is not None:
            heapq.heappush(noticed, (job.submit_at_s + run.seen_at_s, order, job.model, run.observed_run_s))
    return runs


POLICIES: dict[str, tuple[WaitChooser, bool]] = {
    "fixed-3s": (fixed_wait, False),
    "eta": (eta_wait, True),
}


def replay_eta(jobs: Sequence[WorkloadJob], tuning: Tuning | None = None) -> list[JobRun]:
    return replay(jobs, eta_chooser(tuning), use_history=True, tuning=tuning)


def run_benchmark(jobs: Sequence[WorkloadJob], tuning: Tuning | None = None) -> dict[str, list[JobRun]]:
    """Both policies on the same jobs: ``{"fixed-3s": runs, "eta": runs}``."""
    return {"fixed-3s": replay(jobs, fixed_wait, use_history=False), "eta": replay_eta(jobs, tuning)}


@dataclass(frozen=True)
class Summary:
    jobs: int
    polls_mean: float
    polls_p95: float
    lag_p50: float
    lag_p95: float
    lag_max: float
    transitions_mean: float
    sfn_usd_per_1000: float
    lambda_usd_per_1000: float

    @classmethod
    def of(cls, runs: Sequence[JobRun]) -> Summary:
        polls = [run.polls for run in runs]
        lags = [run.lag_s for run in runs]
        sfn, lam = cost_per_1000_jobs(runs)
        return cls(
            jobs=len(runs),
            polls_mean=sum(polls) / len(polls),
            polls_p95=percentile(polls, 95),
            lag_p50=percentile(lags, 50),
            lag_p95=percentile(lags, 95),
            lag_max=max(lags),
            transitions_mean=sum(state_transitions(run.turns) for run in runs) / len(runs),
            sfn_usd_per_1000=sfn,
            lambda_usd_per_1000=lam,
        )


HEADER = (
    f"{'policy':<10} {'jobs':>5} {'polls/job':>9} {'p95':>5} {'lag p50':>8} {'p95':>6} {'max':>6} "
    f"{'transitions':>11} {'SFN $/1k':>9} {'Lambda $/1k':>11} {'total $/1k':>10}"
)


def format_row(label: str, summary: Summary) -> str:
    total = summary.sfn_usd_per_1000 + summary.lambda_usd_per_1000
    return (
        f"{label:<10} {summary.jobs:>5} {summary.polls_mean:>9.1f} {summary.polls_p95:>5.0f} "
        f"{summary.lag_p50:>7.2f}s {summary.lag_p95:>5.2f}s {summary.lag_max:>5.1f}s "
        f"{summary.transitions_mean:>11.1f} {summary.sfn_usd_per_1000:>9.3f} "
        f"{summary.lambda_usd_per_1000:>11.4f} {total:>10.3f}"
    )


def workload_label(workload: Path | str) -> str:
    if isinstance(workload, str):
        return workload
    resolved = workload.resolve()
    return str(resolved.relative_to(ROOT) if resolved.is_relative_to(ROOT) else resolved)


def report(results: dict[str, list[JobRun]], workload: Path | str) -> None:
    """Print the tables, overall and per progress mode (the targets are polling_suite.py's)."""
    fixed = Summary.of(results["fixed-3s"])
    print(
        f"Workload: {workload_label(workload)} ({fixed.jobs} jobs, replayed in virtual time; first poll 3 s after submit)"
    )
    print("Assumptions:")
    print(f"  Step Functions Standard: ${SFN_USD_PER_TRANSITION * 1000:.3f} per 1,000 state transitions")
    print("  transitions per job: 3 per turn (Wait, Poll, Route) + 1 to end (see state_transitions)")
    print(
        f"  a turn's invocation sleeps waits of at most {INLINE_MAX_WAIT_S} s for up to {INVOCATION_BUDGET_S} s "
        "(tracking.invocation)"
    )
    print(
        f"  poll Lambda: {LAMBDA_MEMORY_GB * 1024:.0f} MB, {LAMBDA_BILLED_S_PER_POLL * 1000:.0f} ms billed per poll "
        f"plus the waits slept, ${LAMBDA_USD_PER_GB_S:.10f} per GB-second + ${LAMBDA_USD_PER_REQUEST * 1e6:.2f} "
        "per million requests"
    )
    print()
    print("All jobs")
    print(HEADER)
    for name, runs in results.items():
        print(format_row(name, Summary.of(runs)))
    print()
    print("By progress mode")
    print(f"{'mode':<8} " + HEADER)
    for mode in PROGRESS_MODES:
        for name, runs in results.items():
            subset = [run for run in runs if run.job.progress == mode]
            if subset:
                print(f"{mode:<8} " + format_row(name, Summary.of(subset)))
    print()


def plot(results: dict[str, list[JobRun]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"fixed-3s": "tab:gray", "eta": "tab:blue"}
    fig, (polls_ax, lag_ax, mode_ax) = plt.subplots(1, 3, figsize=(16, 4.8))
    top = max(run.polls for runs in results.values() for run in runs)
    bins = range(1, top + 2)
    for name, runs in results.items():
        polls_ax.hist([run.polls for run in runs], bins=bins, alpha=0.55, color=colors.get(name), label=name)
        lags = sorted(run.lag_s for run in runs)
        lag_ax.step(lags, [(i + 1) / len(lags) for i in range(len(lags))], where="post", color=colors.get(name))
        lag_ax.plot([], [], color=colors.get(name), label=name)
    polls_ax.set(title="Upstream polls per job", xlabel="polls", ylabel="jobs")
    polls_ax.legend()
    lag_ax.axvline(TARGET_P95_LAG_S, color="tab:red", linestyle=":", linewidth=1)
    lag_ax.axhline(0.95, color="tab:red", linestyle=":", linewidth=1)
    lag_ax.set(title="Lag from upstream end to the poll that sees it (CDF)", xlabel="seconds", ylabel="share of jobs")
    lag_ax.legend(loc="lower right")
    width = 0.38
    for offset, (name, runs) in zip((-width / 2, width / 2), results.items(), strict=False):
        means = []
        for mode in PROGRESS_MODES:
            subset = [run.polls for run in runs if run.job.progress == mode]
            means.append(sum(subset) / len(subset) if subset else 0.0)
        mode_ax.bar([i + offset for i in range(len(PROGRESS_MODES))], means, width, color=colors.get(name), label=name)
    mode_ax.set_xticks(range(len(PROGRESS_MODES)), PROGRESS_MODES)
    mode_ax.set(title="Mean polls per job by progress mode", ylabel="polls")
    mode_ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (a generated workload, the suite, the sweep) lives in polling_suite.py."""
    from benchmarks.polling_suite import main as command_line

    return command_line(argv)


if __name__ == "__main__":
    sys.exit(main())
