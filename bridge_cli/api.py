"""The bridge's HTTP API, as the CLI uses it: one httpx client and the error envelope.

Every failure becomes a `CliError` carrying the exit code the CLI ends with: 2 when the bridge
refused the request (4xx), 3 when it failed (5xx) or could not be reached at all.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

GENERATIONS = "/v1/videos/generations"
ENDPOINTS = "/v1/webhook-endpoints"
EXIT_REFUSED = 2
EXIT_UNAVAILABLE = 3


class CliError(Exception):
    """An expected failure: a one-line message for stderr and the exit code to end with."""

    def __init__(self, message: str, exit_code: int, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.code = code
        self.status = status

    def __str__(self) -> str:
        return f"{self.message} ({self.code})" if self.code else self.message


def _segment(value: str) -> str:
    """A path segment, escaped so an id with a slash cannot reach another route."""
    return quote(value, safe="")


def error_from_response(response: httpx.Response) -> CliError:
    """Router One's envelope `{"error": {"message", "type", "code", "param"?}}` as a CliError."""
    exit_code = EXIT_REFUSED if response.status_code < 500 else EXIT_UNAVAILABLE
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, dict) and error.get("message"):
        return CliError(str(error["message"]), exit_code, code=error.get("code"), status=response.status_code)
    snippet = " ".join(response.text.split())[:200]
    detail = f": {snippet}" if snippet else ""
    return CliError(f"HTTP {response.status_code} from the bridge{detail}", exit_code, status=response.status_code)


class BridgeApi:
    """A thin client of the bridge; each method returns the decoded JSON answer."""

    def __init__(
        self,
        base_url: str,
        timeout: float,
        transport: httpx.BaseTransport | None = None,
        *,
        api_key: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Accept": "application/json", "User-Agent": "video-bridge-cli"}
        if api_key:
            # The bridge takes keys the way Router One does.
            headers["Authorization"] = f"Bearer {api_key}"
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport, headers=headers)

    def __enter__(self) -> BridgeApi:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise CliError(
                f"the bridge at {self.base_url} did not answer in time ({type(exc).__name__}); try a larger --timeout",
                EXIT_UNAVAILABLE,
            ) from None
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            raise CliError(f"cannot reach the bridge at {self.base_url}: {reason}", EXIT_UNAVAILABLE) from None
        if response.is_error:
            raise error_from_response(response)
        try:
            body = response.json()
        except ValueError:
            raise CliError(
                f"the bridge at {self.base_url} answered HTTP {response.status_code} without JSON", EXIT_UNAVAILABLE
            ) from None
        if not isinstance(body, dict):
            raise CliError(f"the bridge at {self.base_url} answered with unexpected JSON", EXIT_UNAVAILABLE)
        return body

    def submit(
        self, body: dict[str, Any], idempotency_key: str | None = None, router_one_key: str | None = None
    ) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        if router_one_key:
            headers["X-Router-One-Key"] = router_one_key  # pass-through mode: the job runs on this account
        return self._call("POST", GENERATIONS, json=body, headers=headers)

    def get(self, task_id: str) -> dict[str, Any]:
        return self._call("GET", f"{GENERATIONS}/{_segment(task_id)}")

    def list_jobs(
        self, *, status: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> dict[str, Any]:
        params = {key: value for key, value in (("status", status), ("limit", limit), ("cursor", cursor)) if value}
        return self._call("GET", GENERATIONS, params=params)

    def cancel(self, task_id: str) -> dict[str, Any]:
        return self._call("POST", f"{GENERATIONS}/{_segment(task_id)}/cancel")

    def webhooks(self, task_id: str) -> dict[str, Any]:
        return self._call("GET", f"{GENERATIONS}/{_segment(task_id)}/webhooks")

    def account(self) -> dict[str, Any]:
        return self._call("GET", "/v1/account")

    def redeliver(self, task_id: str, event_id: str) -> dict[str, Any]:
        return self._call("POST", f"{GENERATIONS}/{_segment(task_id)}/webhooks/{_segment(event_id)}/redeliver")

    # ------------------------------------------------------------------ registered webhook endpoints

    def create_endpoint(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", ENDPOINTS, json=body)

    def list_endpoints(self) -> dict[str, Any]:
        return self._call("GET", ENDPOINTS)

    def get_endpoint(self, endpoint_id: str) -> dict[str, Any]:
        return self._call("GET", f"{ENDPOINTS}/{_segment(endpoint_id)}")

    def update_endpoint(self, endpoint_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("PATCH", f"{ENDPOINTS}/{_segment(endpoint_id)}", json=body)

    def delete_endpoint(self, endpoint_id: str) -> dict[str, Any]:
        return self._call("DELETE", f"{ENDPOINTS}/{_segment(endpoint_id)}")

    def rotate_endpoint(self, endpoint_id: str, overlap_seconds: int | None = None) -> dict[str, Any]:
        # Without a body the bridge keeps the previous keys for its default overlap.
        body = {"json": {"overlap_seconds": overlap_seconds}} if overlap_seconds is not None else {}
        return self._call("POST", f"{ENDPOINTS}/{_segment(endpoint_id)}/rotate", **body)

    def recover_endpoint(self, endpoint_id: str, since: str) -> dict[str, Any]:
        return self._call("POST", f"{ENDPOINTS}/{_segment(endpoint_id)}/recover", json={"since": since})

    def endpoint_deliveries(
        self, endpoint_id: str, *, status: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> dict[str, Any]:
        params = {key: value for key, value in (("status", status), ("limit", limit), ("cursor", cursor)) if value}
        return self._call("GET", f"{ENDPOINTS}/{_segment(endpoint_id)}/deliveries", params=params)
