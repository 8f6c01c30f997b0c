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

With two keys, the run is also a tenancy check: the first key (A) gets jobs of its own first (a
callback URL with a token, metadata with a marker, a delivery log), then schemathesis runs as the
second key (B), with A's task and event ids offered as the path parameters' examples. Any answer to
B that holds A's owner id, marker or token, or a success that names one of A's jobs, is a leak and
fails the run.

It prints the requests sent, per operation and per status, and exits 1 on any failure. Requests
are counted from schemathesis' own record of every exchange.
"""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "negative_data_rejection",
)
PHASES = ("examples", "coverage", "fuzzing", "stateful")


@dataclass(frozen=True)
class TenantData:
    """What one tenant (A) owns, which no answer to another tenant may hold."""

    task_ids: tuple[str, ...]
    event_ids: tuple[str, ...]
    markers: tuple[str, ...]  # A's owner id, a metadata marker, callback and endpoint URL tokens
    endpoint_ids: tuple[str, ...] = ()

    def owned_ids(self) -> tuple[str, ...]:
        return self.task_ids + self.endpoint_ids

    def leaks_in(self, status: int, text: str) -> list[str]:
        found = [marker for marker in self.markers if marker in text]
        # A 404 echoes the id that was asked for; a success naming one of A's jobs or endpoints gives it away.
        if status < 300:
            found += [owned for owned in self.owned_ids() if owned in text]
        return found


def seed_tenant(api: httpx.Client, receiver_url: str, timeout: float = 60.0) -> TenantData:
    """Give the caller behind `api` jobs of its own (one canceled, so its log has a delivery)."""
    marker, token = f"tenant-marker-{uuid.uuid4().hex}", f"tenant-token-{uuid.uuid4().hex}"
    body = {
        "model": "video-default",
        "prompt": "a fox in snow",
        "metadata": {"marker": marker},
        "callback_url": f"{receiver_url}/hooks/tenant-a?token={token}",
    }
    task_ids = tuple(
        api.post("/v1/videos/generations", json=body).raise_for_status().json()["task_id"] for _ in range(2)
    )
    api.post(f"/v1/videos/generations/{task_ids[0]}/cancel").raise_for_status()
    deadline = time.monotonic() + timeout
    while True:
        log = api.get(f"/v1/videos/generations/{task_ids[0]}/webhooks").raise_for_status().json()
        event_ids = tuple(delivery["event_id"] for delivery in log["deliveries"])
        if event_ids:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"no webhook delivery logged for {task_ids[0]} in {timeout}s")
        time.sleep(0.2)
    owner_id = api.get("/v1/account").raise_for_status().json()["owner_id"]
    # An endpoint too (answering 200, so A's later jobs deliver to it quietly); `forget_tenant` removes it.
    endpoint_token = f"tenant-endpoint-{uuid.uuid4().hex}"
    endpoint = api.post(
        "/v1/webhook-endpoints",
        json={
            "url": f"{receiver_url}/hooks/tenant-a-endpoint?status=200&token={endpoint_token}",
            "description": marker,
        },
    )
    endpoint_id = endpoint.raise_for_status().json()["id"]
    return TenantData(
        task_ids=task_ids,
        event_ids=event_ids,
        markers=(owner_id, marker, token, endpoint_token),
        endpoint_ids=(endpoint_id,),
    )


def forget_tenant(api: httpx.Client, data: TenantData) -> None:
    """Delete what `seed_tenant` registered that would outlive the run (its endpoints)."""
    for endpoint_id in data.endpoint_ids:
        api.delete(f"/v1/webhook-endpoints/{endpoint_id}")


def _document_offering(api_url: str, api_key: str, others: TenantData) -> dict[str, Any]:
    """The API's document, with the other tenant's ids as the examples of every id in a path."""
    document = httpx.get(f"{api_url}/openapi.json", headers={"Authorization": f"Bearer {api_key}"}).json()
    examples = {
        "task_id": list(others.task_ids),
        "event_id": list(others.event_ids),
        "endpoint_id": list(others.endpoint_ids),
    }
    for operations in document["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "path" and parameter["name"] in examples:
                    parameter["examples"] = {
                        f"other_tenant_{n}": {"value": value} for n, value in enumerate(examples[parameter["name"]])
                    }
    return document


@dataclass
class FuzzReport:
    exit_code: int = -1
    requests_by_operation: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[dict[str, Any]] = field(default_factory=list)  # schemathesis' failures, one per code
    errors: list[str] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)  # answers that held another tenant's data
    requests_for_others: int = 0  # requests that named one of the other tenant's jobs or endpoints
    requests_for_other_endpoints: int = 0  # of those, the ones naming an endpoint
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
        return (
            self.exit_code == 0 and not self.failures and not self.errors and not self.server_errors and not self.leaks
        )

    def render(self) -> str:
        from bridge.api.http_api import openapi_document

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
            f"other tenant's jobs     {self.requests_for_others} requests named them; "
            f"{len(self.leaks)} answers held their data" + (f"  {self.leaks[:3]}" if self.leaks else ""),
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
    others: TenantData | None = None,
) -> FuzzReport:
    """Run schemathesis against the API at `api_url` as `api_key` and read back what it sent and saw.

    With `others`, another tenant's ids are offered as path examples and every answer is searched
    for that tenant's data.
    """
    report = FuzzReport()
    with tempfile.TemporaryDirectory(prefix="bridge-fuzz-") as scratch:
        location = [f"{api_url}/openapi.json"]
        if others is not None:
            document = Path(scratch) / "openapi.json"
            document.write_text(json.dumps(_document_offering(api_url, api_key, others)))
            location = [str(document), "--url", api_url]
        command = [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            *location,
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
            _count_exchanges(events, report, others)
        for summary in Path(scratch).glob("*.json"):
            run = json.loads(summary.read_text())
            report.failures += run.get("failures") or []
            report.errors += [json.dumps(e, sort_keys=True)[:300] for e in run.get("errors") or []]
    return report


def _count_exchanges(events: Path, report: FuzzReport, others: TenantData | None) -> None:
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
                if response is None:
                    continue
                status = int(response["status_code"])
                report.statuses[status] += 1
                if others is not None:
                    uri = str((exchange.get("request") or {}).get("uri", ""))
                    report.requests_for_others += any(owned in uri for owned in others.owned_ids())
                    report.requests_for_other_endpoints += any(e in uri for e in others.endpoint_ids)
                    text = _text_of(response.get("content"))
                    report.leaks += [f"{operation} {status}: {leak[:40]}" for leak in others.leaks_in(status, text)]


def _text_of(content: Any) -> str:
    """A recorded body as text (schemathesis keeps it as {"$base64": ...})."""
    if isinstance(content, dict) and "$base64" in content:
        return base64.b64decode(content["$base64"]).decode("utf-8", "replace")
    return content if isinstance(content, str) else json.dumps(content)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bridge_local.fuzz_api", description=__doc__)
    parser.add_argument("--examples", type=int, default=200, help="test cases per operation and phase (default 200)")
    parser.add_argument("--seed", type=int, default=None, help="schemathesis seed, to repeat a run")
    args = parser.parse_args(argv)

    from bridge_local.local_stack import SimulatorSettings, StackOptions, running_stack

    options = StackOptions(
        name="fuzz",
        parameters={
            "PollIntervalSeconds": "3",
            "LogLevel": "ERROR",
            "WebhookAllowLoopback": "true",
            "CallerRouterOneKeys": "allowed",
        },
        simulator=SimulatorSettings(run_s=3.0),
        callers=2,
    )
    with running_stack(options) as local:
        key_a, key_b = local.api_keys
        with httpx.Client(base_url=local.api_url, timeout=30, headers={"Authorization": f"Bearer {key_a}"}) as api_a:
            others = seed_tenant(api_a, local.receiver.url)
        print(
            f"fuzzing {local.api_url} as key B, with key A's jobs in the table ({args.examples} examples)", flush=True
        )
        report = fuzz(local.api_url, key_b, examples=args.examples, seed=args.seed, others=others)
    if not report.ok:
        print(report.output, flush=True)
    print(report.render(), flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
