"""Fuzz the API against its own OpenAPI document: `python -m bridge_local.fuzz_api`.

Starts the local stack, then runs schemathesis against `GET /openapi.json` with the bridge's
API key: examples built from the document, boundary and invalid values, random valid and invalid
requests, and chains of calls that follow the document's links (submit, then status, cancel,
webhooks). Every response is checked:

- no 5xx (`not_a_server_error`);
- its status is one the operation documents (`status_code_conformance`);
- its content type and body match the documented schema for that status
  (`content_type_conformance`, `response_schema_conformance`, `response_headers_conformance`);
- a request the document calls invalid is refused with a 4xx (`negative_data_rejection`).

It prints the requests sent, per operation and per status, and exits 1 on any failure. Requests
are counted from schemathesis' own record of every exchange.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "negative_data_rejection",
)
PHASES = ("examples", "coverage", "fuzzing", "stateful")


@dataclass
class FuzzReport:
    exit_code: int = -1
    requests_by_operation: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[dict[str, Any]] = field(default_factory=list)  # schemathesis' failures, one per code
    errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    output: str = ""  # schemathesis' own report, for when something failed

    @property
    def requests(self) -> int:
        return sum(self.requests_by_operation.values())

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.failures and not self.errors and not self.server_errors

    def render(self) -> str:
        from bridge.http_api import openapi_document

        documented = {f"{m.upper()} {p}" for p, item in openapi_document()["paths"].items() for m in item}
        by_operation = Counter({op: n for op, n in self.requests_by_operation.items() if op in documented})
        # Schemathesis also tries methods no route has (TRACE, PUT, made-up ones): one line for those.
        undeclared = self.requests - sum(by_operation.values())
        width = max((len(op) for op in by_operation), default=0)
        lines = [f"requests sent           {self.requests}"]
        lines += [f"  {op:<{width}}  {n}" for op, n in sorted(by_operation.items())]
        lines += [f"  {'undeclared methods on those paths':<{width}}  {undeclared}"]
        lines += [
            "responses by status     " + ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.items())),
            f"5xx responses           {self.server_errors}",
            "check failures          "
            + (", ".join(f"{f.get('code')} {f.get('title', '')} ({f.get('count')})" for f in self.failures) or "0"),
            f"errors                  {len(self.errors)}" + (f"  {self.errors[:3]}" if self.errors else ""),
            f"checks                  {', '.join(CHECKS)}",
            f"wall time               {self.wall_s:.1f} s",
            "result                  "
            + ("OK: no 5xx, every response as documented" if self.ok else "FAILED (schemathesis output above)"),
        ]
        return "\n".join(lines)


def fuzz(
    api_url: str,
    api_key: str,
    *,
    examples: int,
    seed: int | None = None,
    phases: Sequence[str] = PHASES,
    workers: int = 1,
) -> FuzzReport:
    """Run schemathesis against the API at `api_url` and read back what it sent and saw."""
    report = FuzzReport()
    with tempfile.TemporaryDirectory(prefix="bridge-fuzz-") as scratch:
        command = [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{api_url}/openapi.json",
            "--header",
            f"Authorization: Bearer {api_key}",
            # The key above is the credential under test's control; generated ones are all 401s.
            "--generation-with-security-parameters",
            "false",
            "--checks",
            ",".join(CHECKS),
            "--phases",
            ",".join(phases),
            "--max-examples",
            str(examples),
            "--workers",
            str(workers),
            "--generation-database",
            "none",
            "--report",
            "ndjson,json",
            "--report-dir",
            scratch,
            "--no-color",
        ]
        if seed is not None:
            command += ["--seed", str(seed)]
        started = time.monotonic()
        finished = subprocess.run(command, capture_output=True, text=True, check=False, cwd=scratch)
        report.wall_s = time.monotonic() - started
        report.exit_code = finished.returncode
        report.output = finished.stdout + finished.stderr
        for events in Path(scratch).glob("*.ndjson"):
            _count_exchanges(events, report)
        for summary in Path(scratch).glob("*.json"):
            run = json.loads(summary.read_text())
            report.failures += run.get("failures") or []
            report.errors += [json.dumps(e, sort_keys=True)[:300] for e in run.get("errors") or []]
    return report


def _count_exchanges(events: Path, report: FuzzReport) -> None:
    with events.open() as lines:
        for line in lines:
            finished = json.loads(line).get("ScenarioFinished")
            if not finished:
                continue
            recorder = finished.get("recorder") or {}
            cases = recorder.get("cases") or {}
            for case_id, exchange in (recorder.get("interactions") or {}).items():
                # Stateful scenarios hold several operations: each case names its templated path.
                case = (cases.get(case_id) or {}).get("value") or {}
                operation = f"{case.get('method', '?')} {case.get('path', '?')}"
                report.requests_by_operation[operation] += 1
                response = exchange.get("response")
                if response is not None:
                    report.statuses[int(response["status_code"])] += 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bridge_local.fuzz_api", description=__doc__)
    parser.add_argument("--examples", type=int, default=200, help="test cases per operation and phase (default 200)")
    parser.add_argument("--seed", type=int, default=None, help="schemathesis seed, to repeat a run")
    args = parser.parse_args(argv)

    from bridge_local.local_stack import start_local_stack

    with ExitStack() as cleanup:
        local = start_local_stack(
            cleanup,
            parameters={
                "PollIntervalSeconds": "3",
                "LogLevel": "ERROR",
                "WebhookAllowLoopback": "true",
                "CallerRouterOneKeys": "allowed",
            },
            simulator_options={"run_s": 3.0},
            name="fuzz",
        )
        print(f"fuzzing {local.api_url} ({args.examples} examples per operation)", flush=True)
        report = fuzz(local.api_url, local.api_key, examples=args.examples, seed=args.seed)
    if not report.ok:
        print(report.output, flush=True)
    print(report.render(), flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
