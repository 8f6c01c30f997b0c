"""Domain errors and the Router One error envelope they map to, in one place."""

from __future__ import annotations

from typing import Any


class BridgeError(Exception):
    """An error a client should see, in Router One's envelope, with an HTTP status."""

    status: int = 500
    type: str = "api_error"
    code: str = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status or self.status
        self.type = type or self.type
        self.code = code or self.code
        self.param = param

    def envelope(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": self.type, "code": self.code}
        if self.param:
            error["param"] = self.param
        return {"error": error}


class InvalidRequest(BridgeError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_parameter"


class TaskNotFound(BridgeError):
    status = 404
    type = "invalid_request_error"
    code = "task_not_found"


class Conflict(BridgeError):
    status = 409
    type = "invalid_request_error"
    code = "conflict"


class UpstreamRejected(BridgeError):
    """Router One answered with an error envelope; passed through with its status."""


class UpstreamUnavailable(BridgeError):
    """Router One could not be reached or answered something unreadable."""

    status = 502
    type = "api_error"
    code = "upstream_error"


class ServiceUnavailable(BridgeError):
    status = 503
    type = "api_error"
    code = "service_unavailable"


class UpstreamTransientError(Exception):
    """A poll failed in a way worth retrying; the state machine retries it by this name."""


class UpstreamPermanentError(Exception):
    """A poll failed for good (bad key, unknown task): the job ends as failed."""

    def __init__(self, status: int, error: dict[str, Any]) -> None:
        super().__init__(f"{status} {error.get('code')}: {error.get('message')}")
        self.status = status
        self.error = error


class OutcomeNotPublished(Exception):
    """A recorded outcome's sends failed; the state machine retries the poll by this name, then fails
    the execution, and the outcome check publishes it in an execution of its own."""


def internal_error_envelope() -> dict[str, Any]:
    return BridgeError("internal error; the request was not processed").envelope()
