"""The Router One client: one httpx client, a total deadline per request, upstream answers mapped to domain errors."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from bridge.errors import (
    UpstreamPermanentError,
    UpstreamRejected,
    UpstreamTransientError,
    UpstreamUnavailable,
)
from bridge.models import SubmitAccepted, UpstreamStatus
from bridge.outbound import deadlines
from bridge.outbound.retry_after import retry_after_seconds

GENERATIONS_PATH = "/v1/videos/generations"
# Router One's documented transient codes; keyed on type/code, not only on the HTTP status.
TRANSIENT_TYPES = frozenset({"api_error", "rate_limit_error", "server_error", "overloaded_error"})
TRANSIENT_CODES = frozenset({"upstream_error", "rate_limited", "rate_limit_exceeded", "overloaded"})


def error_envelope(response: httpx.Response) -> dict[str, Any] | None:
    """The `error` object of an upstream error body, or None when the body is not the envelope."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and all(isinstance(error.get(k), str) for k in ("message", "type", "code")):
        return error
    return None


def is_transient(status: int, error: dict[str, Any] | None) -> bool:
    """Worth retrying: 429, 5xx, or an envelope that says the provider behind Router One failed."""
    if status == 429 or status >= 500:
        return True
    return bool(error) and (error.get("type") in TRANSIENT_TYPES or error.get("code") in TRANSIENT_CODES)


class UpstreamRetryLater(UpstreamTransientError):
    """A transient refusal (429, 5xx) whose ``Retry-After`` says when to ask again.

    The poll step turns it into a wait of that length; the state machine only ever sees the
    plain UpstreamTransientError (its Retry matches on that name).
    """

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def _readable(seen: UpstreamStatus) -> UpstreamStatus:
    """A progress that is not a finite number (NaN, Infinity parse as JSON here) counts as absent."""
    if seen.progress is not None and not math.isfinite(seen.progress):
        return seen.model_copy(update={"progress": None})
    return seen


def _bare_error(status: int) -> dict[str, Any]:
    return {
        "message": f"Router One answered HTTP {status} without an error envelope",
        "type": "invalid_request_error",
        "code": f"http_{status}",
    }


class RouterOneClient:
    def __init__(
        self,
        base_url: str,
        api_key: Callable[[], str],
        http: httpx.Client,
        *,
        submit_deadline_s: float = 20.0,
        status_deadline_s: float = 30.0,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._http = http
        self._deadline_s = {"POST": submit_deadline_s, "GET": status_deadline_s}

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key()}", "Accept": "application/json"}

    def _send(self, method: str, url: str, failure: type[Exception], **kwargs: Any) -> httpx.Response:
        """One request, all of it (body included) within the method's deadline or a tighter one in force.

        A timeout or network failure becomes `failure`, the caller's domain error.
        """
        try:
            with deadlines.within(self._deadline_s[method]):
                return self._http.request(method, url, headers=self._headers(), **kwargs)
        except httpx.TimeoutException:
            raise failure(f"Router One did not answer the {method} in time") from None
        except httpx.HTTPError as exc:
            raise failure(f"Router One could not be reached ({type(exc).__name__})") from None

    def submit(self, body: dict[str, Any]) -> SubmitAccepted:
        """POST a job. Upstream errors pass through as they came; no retry, a retry could pay twice."""
        response = self._send("POST", f"{self._base_url}{GENERATIONS_PATH}", UpstreamUnavailable, json=body)
        if response.is_success:
            try:
                return SubmitAccepted.model_validate(response.json())
            except (ValueError, ValidationError):
                raise UpstreamUnavailable("Router One accepted the job but its answer had no task_id") from None
        error = error_envelope(response)
        if error is None:
            raise UpstreamUnavailable(f"Router One answered {response.status_code} without an error envelope")
        raise UpstreamRejected(error["message"], status=response.status_code, type=error["type"], code=error["code"])

    def status(self, task_id: str) -> UpstreamStatus:
        """GET one task. Raises UpstreamTransientError (retry) or UpstreamPermanentError (give up)."""
        url = f"{self._base_url}{GENERATIONS_PATH}/{quote(task_id, safe='')}"
        response = self._send("GET", url, UpstreamTransientError)
        if response.is_success:
            try:
                return _readable(UpstreamStatus.model_validate(response.json()))
            except (ValueError, ValidationError):
                # Not JSON, cut short, or not a status object: the next poll will likely read fine.
                raise UpstreamTransientError(f"Router One sent an unreadable status ({response.status_code})") from None
        error = error_envelope(response)
        if is_transient(response.status_code, error):
            detail = f"{error['type']}/{error['code']}" if error else "no error envelope"
            message = f"Router One answered {response.status_code} ({detail})"
            retry_after = retry_after_seconds(response.headers.get("retry-after"))
            if retry_after is not None:
                raise UpstreamRetryLater(f"{message}, retry after {retry_after:g} s", retry_after)
            raise UpstreamTransientError(message)
        # An unknown 4xx is a permanent client error, envelope or not.
        raise UpstreamPermanentError(response.status_code, error or _bare_error(response.status_code))
