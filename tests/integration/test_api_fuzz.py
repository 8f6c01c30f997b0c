"""Schemathesis against the running local stack: no 5xx, every answer as the document declares,
and nothing of another tenant's in any answer.

The full run (`python -m bridge_local.fuzz_api`, over 2,000 requests) is in docs/local-runtime.md; this is a
smaller run of the same code with a fixed seed, made as a second key while the first key's jobs
(their ids offered to the fuzzer) are in the table, and checks that the harness does catch a bad
API and a leaking one.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

from bridge.api.http_api import openapi_document
from bridge_local.fuzz_api import TenantData, forget_tenant, fuzz, seed_tenant

from .conftest import TENANT_B_API_KEY, LocalBridge

pytestmark = pytest.mark.integration


def test_the_local_stack_serves_its_openapi_document(bridge: LocalBridge) -> None:
    response = bridge.api.get("/openapi.json")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert response.json()["paths"] == openapi_document()["paths"]
    assert response.json()["servers"] == [{"url": "/"}]


def test_fuzzed_requests_get_no_5xx_only_documented_answers_and_no_other_tenants_data(bridge: LocalBridge) -> None:
    others = seed_tenant(bridge.api, bridge.receiver.url)
    try:
        report = fuzz(str(bridge.api.base_url), TENANT_B_API_KEY, examples=6, seed=20261125, others=others)
    finally:
        forget_tenant(bridge.api, others)
    assert report.ok, report.output[-6000:] + "\n" + report.render()
    # B really asked for A's jobs and endpoints (their ids are the path examples), and no answer gave anything away.
    assert report.requests_for_others > 0 and not report.leaks, report.render()
    assert report.requests_for_other_endpoints > 0, report.render()
    assert report.requests >= 150, report.render()
    # The run reached the API's real work, not only its refusals.
    assert {200, 202, 400, 404} <= set(report.statuses), report.render()
    assert report.requests_by_operation["POST /v1/videos/generations"] > 0


LEAKED_MARKER = "tenant-marker-of-someone-else"


class _BrokenApi(BaseHTTPRequestHandler):
    """Serves the bridge's document, then answers every call with a 500 and one undocumented shape,
    except a job's status, which it answers with another tenant's data."""

    def _answer(self) -> None:
        path = urlsplit(self.path).path
        if self.path == "/openapi.json":
            status, body = 200, openapi_document()
        elif self.command == "GET" and path.startswith("/v1/videos/generations/") and path.count("/") == 4:
            status, body = 404, {"error": {"message": LEAKED_MARKER, "type": "x", "code": "task_not_found"}}
        elif self.command == "GET" and urlsplit(self.path).path == "/v1/videos/generations":
            status, body = 200, {"object": "list", "items": []}  # not a JobPage
        else:
            status, body = 500, {"error": {"message": "boom", "type": "api_error", "code": "internal_error"}}
        payload = json.dumps(body).encode()
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def broken_api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BrokenApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_fuzz_run_fails_on_a_server_error_or_an_undocumented_answer(broken_api: str) -> None:
    others = TenantData(task_ids=("v_someone_elses",), event_ids=("evt_x",), markers=(LEAKED_MARKER,))
    report = fuzz(broken_api, "any-key", examples=3, seed=1, phases=("fuzzing",), others=others)
    assert not report.ok
    assert report.server_errors > 0
    # The status route's answers held the other tenant's marker: each is reported as a leak.
    assert report.leaks and all("GET /v1/videos/generations/{task_id} 404" in leak for leak in report.leaks)
    # ST101: a server error; ST108: a body that violates the documented schema.
    assert {failure["code"] for failure in report.failures} == {"ST101", "ST108"}, report.failures
