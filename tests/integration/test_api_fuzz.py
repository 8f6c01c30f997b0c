"""Schemathesis against the running local stack: no 5xx, and every answer as the document declares.

The full run (`python -m bridge_local.fuzz_api`, over 2,000 requests) is in the README; this is a
smaller run of the same code with a fixed seed, and a check that the harness does catch a bad API.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

from bridge.http_api import openapi_document
from bridge_local.fuzz_api import fuzz

from .conftest import BRIDGE_API_KEY, LocalBridge

pytestmark = pytest.mark.integration


def test_the_local_stack_serves_its_openapi_document(bridge: LocalBridge) -> None:
    response = bridge.api.get("/openapi.json")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert response.json()["paths"] == openapi_document()["paths"]
    assert response.json()["servers"] == [{"url": "/"}]


def test_fuzzed_requests_get_no_5xx_and_only_documented_answers(bridge: LocalBridge) -> None:
    report = fuzz(str(bridge.api.base_url), BRIDGE_API_KEY, examples=6, seed=20261125)
    assert report.ok, report.output[-6000:] + "\n" + report.render()
    assert report.requests >= 150, report.render()
    # The run reached the API's real work, not only its refusals.
    assert {200, 202, 400, 404} <= set(report.statuses), report.render()
    assert report.requests_by_operation["POST /v1/videos/generations"] > 0


class _BrokenApi(BaseHTTPRequestHandler):
    """Serves the bridge's document, then answers every call with a 500 and one undocumented shape."""

    def _answer(self) -> None:
        if self.path == "/openapi.json":
            status, body = 200, openapi_document()
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

    do_GET = do_POST = _answer

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
    report = fuzz(broken_api, "any-key", examples=3, seed=1, phases=("fuzzing",))
    assert not report.ok
    assert report.server_errors > 0
    # ST101: a server error; ST108: a body that violates the documented schema.
    assert {failure["code"] for failure in report.failures} == {"ST101", "ST108"}, report.failures
