"""Cold start and package size of every function: `.venv/bin/python benchmarks/cold_start.py`.

Import time. For each function of the template, a fresh interpreter imports its handler module
(`app`) `--runs` times and the median is reported. The handlers load the AWS SDK at their first
AWS call, not at import (see `bridge/clients.py`), so for every function with AWS permissions the
same interpreter then times what the first AWS call sets up: the settings read from the
environment, boto3 and the client of that call (the jobs table, which every function that uses it
reads or writes first; Secrets Manager for the authorizer, which only reads the owner-id secret).
The import plus that is what a cold start costs before its first AWS request: the total printed.

Bytecode. The timed runs find the bridge's sources compiled (`__pycache__`), as the installed
packages ship theirs. `sam build` packages the function and layer sources without bytecode, so a
deployed cold start also compiles them: about 17 to 20 ms more for the poll on this machine. The interpreter sees what the function sees
on Lambda and nothing else: the standard library (`-I -S`: no site-packages, no environment
paths), the function's code, the bridge layer and a runtime directory holding exactly the
packages the deployed function gets (the Lambda runtime's boto3, the Powertools layer's packages,
the bridge layer's requirements), installed once into `build/lambda-runtime/`. The environment
is the template's Globals plus what Lambda sets. Next to the time it lists the third-party
packages and bridge modules the import pulled in, so an unneeded import shows.

Size. What `sam build` packages for each function and for the bridge layer, unzipped and zipped.
With `--sam PATH` (or `sam` on PATH) the real `sam build` runs; otherwise the build is done the
way SAM's Python builder does it (function directories as they are, the layer's requirements
installed next to its code under `python/`), which needs only pip.

Targets on this machine: the api handler imports in at most 250 ms, the poll handler in at most
150 ms. The script exits 1 if either is missed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"
LAYER_DIR = ROOT / "layers" / "bridge"
RUNTIME_DIR = ROOT / "build" / "lambda-runtime"
# What a deployed function can import besides its code and the bridge layer: boto3 comes with the
# python3.11 runtime, the rest with the Powertools layer (tracer extra: the X-Ray SDK) and ours.
RUNTIME_PACKAGES = (
    "boto3",
    "aws-lambda-powertools[tracer]>=3.20,<4",
    "pydantic>=2.7,<3",
    *(LAYER_DIR / "requirements.txt").read_text().split(),
)
TARGETS_MS = {"ApiFunction": 250.0, "PollFunction": 150.0}
# What the handlers' import time is made of: each of these alone, in the same clean interpreter.
BUILDING_BLOCKS = {
    "botocore (session + client)": ("botocore.session", "botocore.client"),
    "boto3": ("boto3",),
    "httpx": ("httpx",),
    "pydantic": ("pydantic",),
    "Powertools logger + metrics": ("aws_lambda_powertools.logging", "aws_lambda_powertools.metrics"),
}
BLOCK_PROBE = """
import sys, time
sys.path[:0] = {paths!r}
started = time.perf_counter()
for name in {modules!r}:
    __import__(name)
print((time.perf_counter() - started) * 1000)
"""

# Runs in the fresh interpreter: time the import, then name what it loaded.
PROBE = """
import json, sys, time
sys.path[:0] = {paths!r}
started = time.perf_counter()
import app
elapsed = time.perf_counter() - started
stdlib = sys.stdlib_module_names
top = sorted({{n.split(".")[0] for n in sys.modules if n.split(".")[0] not in stdlib and not n.startswith("_")}} - {{"app", "bridge"}})
bridge = sorted(n.removeprefix("bridge.") for n in sys.modules if n.startswith("bridge."))
sdk = None
if {first_client!r}:
    started = time.perf_counter()
    from bridge import clients
    from bridge.settings import JobTableSettings, get_settings
    get_settings(JobTableSettings)
    clients.jobs_table() if {first_client!r} == "jobs table" else clients.aws().client("secretsmanager")
    sdk = (time.perf_counter() - started) * 1000
import resource
rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"ms": elapsed * 1000, "sdk_ms": sdk, "rss_mb": rss_mb, "packages": top, "bridge": bridge}}))
"""


@dataclass
class FunctionReport:
    logical_id: str
    code_dir: Path
    # What the function's first AWS call builds: the jobs table (every function that reads or writes
    # it does so first), a Secrets Manager client (the authorizer, which reads only the owner-id
    # secret), or nothing.
    first_client: str | None
    import_ms: list[float] = field(default_factory=list)
    sdk_ms: list[float] = field(default_factory=list)
    # Peak resident memory after the import and the first client (the interpreter's own included),
    # against the function's MemorySize: what a Lambda instance holds before its first request.
    rss_mb: float = 0.0
    memory_mb: int = 0
    packages: list[str] = field(default_factory=list)
    bridge_modules: list[str] = field(default_factory=list)
    size_bytes: int = 0
    zipped_bytes: int = 0

    @property
    def median_ms(self) -> float:
        return statistics.median(self.import_ms)

    @property
    def sdk_median_ms(self) -> float | None:
        return statistics.median(self.sdk_ms) if self.sdk_ms else None

    @property
    def total_median_ms(self) -> float:
        """Import plus the first AWS call's setup, run by run (the median of the sums)."""
        if not self.sdk_ms:
            return self.median_ms
        return statistics.median(a + b for a, b in zip(self.import_ms, self.sdk_ms, strict=True))


def template_functions() -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
    """The template's functions and each one's environment as deployed with the defaults: literal
    values, parameter defaults, conditions; a resource's name or ARN becomes a placeholder."""
    from cfnlint.decode import decode

    template, problems = decode(str(TEMPLATE))
    if template is None:
        raise SystemExit(f"cannot read {TEMPLATE}: {problems}")
    functions = {
        logical_id: resource["Properties"]
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }
    defaults = {name: str(p.get("Default", "")) for name, p in (template.get("Parameters") or {}).items()}

    def holds(condition: Any) -> bool:
        """A condition (by name, or Fn::Not / Fn::Equals) on the parameters' defaults."""
        node = template["Conditions"][condition] if isinstance(condition, str) else condition
        if "Fn::Not" in node:
            return not holds(node["Fn::Not"][0])
        if "Condition" in node:
            return holds(node["Condition"])
        left, right = node["Fn::Equals"]
        return value_of(left) == value_of(right)

    def value_of(node: Any) -> str | None:
        """A literal, a parameter's default, or Fn::If on a condition; None for AWS::NoValue, and a
        placeholder for what only a deploy knows (a resource's name or ARN)."""
        if isinstance(node, str | int | float | bool):
            return str(node)
        if isinstance(node, dict) and node.get("Ref") == "AWS::NoValue":
            return None
        if isinstance(node, dict) and "Ref" in node:
            return defaults.get(node["Ref"], f"cold-start-probe-{node['Ref']}")
        if isinstance(node, dict) and "Fn::If" in node:
            condition, when_true, when_false = node["Fn::If"]
            return value_of(when_true if holds(condition) else when_false)
        return "cold-start-probe"

    def environment(variables: dict[str, Any]) -> dict[str, str]:
        return {name: value for name, node in variables.items() if (value := value_of(node)) is not None}

    shared = environment(template["Globals"]["Function"]["Environment"]["Variables"])
    env = {
        logical_id: shared | environment(((props.get("Environment") or {}).get("Variables")) or {})
        for logical_id, props in functions.items()
    }
    return functions, env


def _pip_install(target: Path, *requirements: str) -> None:
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    done = subprocess.run([*pip, "--target", str(target), *requirements], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"pip install into {target} failed:\n{done.stdout}{done.stderr}")


def ensure_runtime() -> Path:
    stamp = RUNTIME_DIR / f".stamp-{hashlib.sha256(repr(RUNTIME_PACKAGES).encode()).hexdigest()[:16]}"
    if not stamp.exists():
        shutil.rmtree(RUNTIME_DIR, ignore_errors=True)
        print(f"installing the Lambda runtime's packages into {RUNTIME_DIR.relative_to(ROOT)} …", flush=True)
        _pip_install(RUNTIME_DIR, *RUNTIME_PACKAGES)
        stamp.touch()
    return RUNTIME_DIR


def time_imports(report: FunctionReport, runtime: Path, env: dict[str, str], runs: int) -> None:
    paths = [str(report.code_dir), str(LAYER_DIR), str(runtime)]
    lambda_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": report.logical_id,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "LAMBDA_TASK_ROOT": str(report.code_dir),
        # Names the template fills in from its resources; the probe makes no request with them.
        "JOBS_TABLE_NAME": "jobs",
        "ROUTER_ONE_API_KEY_SECRET": "router-one-api-key",
        **env,
    }
    # One untimed run first: on a fresh clone it writes the bytecode of the function's and the
    # layer's sources, which would otherwise be timed in the first sample only (see the docstring).
    for run in range(runs + 1):
        done = subprocess.run(
            [sys.executable, "-I", "-S", "-c", PROBE.format(paths=paths, first_client=report.first_client)],
            capture_output=True,
            text=True,
            env=lambda_env,
            cwd=report.code_dir,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"{report.logical_id}: importing the handler failed:\n{done.stderr}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        if run == 0:
            continue
        report.import_ms.append(result["ms"])
        if result["sdk_ms"] is not None:
            report.sdk_ms.append(result["sdk_ms"])
        report.rss_mb = max(report.rss_mb, result["rss_mb"])
        report.packages, report.bridge_modules = result["packages"], result["bridge"]


def time_building_blocks(runtime: Path, runs: int) -> dict[str, float]:
    medians = {}
    for label, modules in BUILDING_BLOCKS.items():
        samples = []
        for _ in range(runs):
            done = subprocess.run(
                [sys.executable, "-I", "-S", "-c", BLOCK_PROBE.format(paths=[str(runtime)], modules=modules)],
                capture_output=True,
                text=True,
                check=True,
            )
            samples.append(float(done.stdout.strip()))
        medians[label] = statistics.median(samples)
    return medians


def _tree_size(path: Path) -> tuple[int, int]:
    files = [p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    raw = sum(p.stat().st_size for p in files)
    with tempfile.TemporaryFile() as scratch:
        with zipfile.ZipFile(scratch, "w", zipfile.ZIP_DEFLATED) as archive:
            for p in files:
                archive.write(p, p.relative_to(path))
        zipped = scratch.tell()
    return raw, zipped


def build_sizes(functions: dict[str, Any], sam: str | None) -> tuple[dict[str, tuple[int, int]], str]:
    """Unzipped and zipped bytes per built artefact (functions and the layer), and how it was built."""
    with tempfile.TemporaryDirectory(prefix="bridge-build-") as scratch:
        out = Path(scratch) / "build"
        if sam:
            subprocess.run(
                [sam, "build", "--template", str(TEMPLATE), "--build-dir", str(out)],
                check=True,
                cwd=ROOT,
                capture_output=True,
            )
            how = "sam build"
        else:
            for logical_id, props in functions.items():
                shutil.copytree(ROOT / props["CodeUri"], out / logical_id)
            layer = out / "BridgeLayer" / "python"
            shutil.copytree(LAYER_DIR / "bridge", layer / "bridge")
            _pip_install(layer, "-r", str(LAYER_DIR / "requirements.txt"))
            how = "as SAM's Python builder does (no SAM CLI found; --sam PATH uses it)"
        sizes = {name: _tree_size(out / name) for name in [*functions, "BridgeLayer"] if (out / name).exists()}
    return sizes, how


def _kib(n: int) -> str:
    return f"{n / 1024:,.1f} KiB"


def _memory_mb(props: dict[str, Any]) -> int:
    """The function's MemorySize, or the Globals' when it sets none."""
    from cfnlint.decode import decode

    template, _ = decode(str(TEMPLATE))
    return int(props.get("MemorySize") or template["Globals"]["Function"]["MemorySize"])


def _first_client(props: dict[str, Any]) -> str | None:
    policies = json.dumps(props.get("Policies") or [])
    if "JobsTable" in policies:
        return "jobs table"
    return "secrets manager" if "Secret" in policies else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="fresh interpreters per function (median reported)")
    parser.add_argument("--sam", default=shutil.which("sam"), help="SAM CLI to build with (default: sam on PATH)")
    parser.add_argument("--json", type=Path, help="also write the figures here as JSON")
    args = parser.parse_args(argv)

    functions, env = template_functions()
    runtime = ensure_runtime()
    reports = [
        FunctionReport(logical_id, (ROOT / props["CodeUri"]).resolve(), first_client=_first_client(props))
        for logical_id, props in functions.items()
    ]
    for report in reports:
        time_imports(report, runtime, env[report.logical_id], args.runs)
    sizes, how = build_sizes(functions, args.sam)
    for report in reports:
        report.size_bytes, report.zipped_bytes = sizes.get(report.logical_id, (0, 0))
        report.memory_mb = _memory_mb(functions[report.logical_id])

    width = max(len(r.logical_id) for r in reports)
    print(f"handler import time, median of {args.runs} fresh interpreters (min in brackets); build: {how}")
    print(
        f"{'function':<{width}}  {'import':>16}  {'target':>7}  {'+ 1st AWS call':>17}  {'cold total':>10}  "
        f"{'package':>12}  {'zipped':>12}  {'peak RSS / MemorySize':>22}"
    )
    missed = []
    for r in reports:
        target = TARGETS_MS.get(r.logical_id)
        verdict = "" if target is None else (f"{target:>5.0f} ✓" if r.median_ms <= target else f"{target:>5.0f} ✗")
        if target is not None and r.median_ms > target:
            missed.append(r.logical_id)
        sdk = "-" if r.sdk_median_ms is None else f"{r.sdk_median_ms:.1f} ms"
        print(
            f"{r.logical_id:<{width}}  {r.median_ms:>7.1f} ms ({min(r.import_ms):>4.0f})  {verdict:>7}  "
            f"{sdk:>17}  {r.total_median_ms:>7.1f} ms  {_kib(r.size_bytes):>12}  {_kib(r.zipped_bytes):>12}  "
            f"{f'{r.rss_mb:.0f} / {r.memory_mb} MB':>22}"
        )
    layer_raw, layer_zipped = sizes.get("BridgeLayer", (0, 0))
    print(
        f"{'BridgeLayer':<{width}}  {'':>16}  {'':>7}  {'':>17}  {'':>10}  {_kib(layer_raw):>12}  {_kib(layer_zipped):>12}"
    )
    print(f"\nbuilding blocks, each imported alone (median of {args.runs}):")
    for label, ms in time_building_blocks(runtime, args.runs).items():
        print(f"  {label:<30} {ms:>6.1f} ms")
    print("\nwhat each handler's import loads (third-party packages | bridge modules):")
    for r in reports:
        print(f"  {r.logical_id:<{width}}  {', '.join(r.packages)} | {', '.join(r.bridge_modules)}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    r.logical_id: {
                        "import_ms_median": round(r.median_ms, 1),
                        "import_ms_runs": [round(ms, 1) for ms in r.import_ms],
                        "first_aws_call_setup_ms_median": None
                        if r.sdk_median_ms is None
                        else round(r.sdk_median_ms, 1),
                        "cold_total_ms_median": round(r.total_median_ms, 1),
                        "packages": r.packages,
                        "bridge_modules": r.bridge_modules,
                        "package_bytes": r.size_bytes,
                        "zipped_bytes": r.zipped_bytes,
                    }
                    for r in reports
                }
                | {"BridgeLayer": {"package_bytes": layer_raw, "zipped_bytes": layer_zipped}},
                indent=2,
            )
        )
    if missed:
        print(f"\nFAILED: import-time target missed by {', '.join(missed)}")
        return 1
    print("\nOK: every import-time target met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
