"""The simulator's vocabulary: its limits and defaults, how one job and the server are configured
(`JobConfig`, `ServerConfig`), and `ApiError`, the Router One error envelope every layer raises."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

SUBMIT_PATH = "/v1/videos/generations"
STATUS_PREFIX = SUBMIT_PATH + "/"
FILES_PREFIX = "/files/"
TASK_ID_RE = re.compile(r"v_[0-9a-f]{32}")  # always used with fullmatch
OUTCOMES = ("completed", "failed")
PROGRESS_MODES = ("linear", "stepped", "none")
ASPECT_RATIOS = ("16:9", "9:16", "1:1")
MAX_IMAGE_URLS = 3
OVERSIZED_MARKER = "oversized"
MAX_BODY_BYTES = 1 << 20
DEFAULT_API_KEY = "sk-local-simulator"
DEFAULT_ERROR_CODE = "generation_failed"
DEFAULT_ERROR_MESSAGE = "content policy violation"
# The request's ``duration`` scales the default run time: run_s is what a 5 s clip takes, and
# clips past 20 s take no longer than one of 20 s (local runs stay quick).
REFERENCE_VIDEO_S = 5
MAX_SCALED_VIDEO_S = 20

# (fraction of run time, progress) breakpoints for the "stepped" mode: the value holds flat
# between breakpoints (stalls), jumps by uneven amounts, and sits at 95 for the last tenth.
STEPPED_PROGRESS = ((0.0, 0), (0.1, 4), (0.25, 19), (0.45, 23), (0.6, 58), (0.8, 71), (0.9, 95))

# A lone MP4 "ftyp" box: enough for clients that sniff the file type of a download.
FAKE_MP4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isommp42"

# Only echo a Host header back into result URLs when it looks like host[:port].

TIMELINE_KEYS = frozenset({"queue_s", "run_s", "outcome", "progress", "error_code", "error_message"})
FAULT_KEYS = frozenset(
    {
        "poll_errors",
        "reset",
        "malformed",
        "slow_s",
        "slow_polls",
        "drip_s",
        "drip_polls",
        "drip_submit",
        "video_bytes",
        "video_stall_at",
        "unknown_status",
        "unknown_after",
        "progress_backwards",
        "missing_url",
        "missing_url_polls",
    }
)
JOB_KEYS = TIMELINE_KEYS | FAULT_KEYS
DIRECTIVE_KEYS = JOB_KEYS
NEXT_KEYS = JOB_KEYS | {"task_id"}
CONFIG_KEYS = JOB_KEYS | {"api_key", "insufficient_balance", "account_keys"}

# Statuses the contract documents; an injected unknown status must be none of them.
DOCUMENTED_STATUSES = ("pending", "processing", "completed", "failed")
# Poll-fault tokens besides HTTP statuses: no answer at all, or a 200 whose body is unusable.
RESET, TRUNCATED, NOT_JSON = "reset", "truncated", "not_json"
FAULT_TOKENS = (RESET, TRUNCATED, NOT_JSON)
STATUS_FAULT_RE = re.compile(r"(\d{3})(?::retry-after=(\d{1,5}|none))?", re.IGNORECASE)
UNKNOWN_STATUS_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
DEFAULT_RETRY_AFTER_S = 1  # what a plain injected 429 sends
MAX_RETRY_AFTER_S = 86_400
MAX_SLOW_S = 300.0
MAX_DRIP_S = 10.0
MAX_VIDEO_BYTES = 64 * 1024 * 1024
# A dripped or stalled answer gives up after this long even if the client never leaves.
HOLD_LIMIT_S = 600.0
MAX_FAULT_COUNT = 10_000
MAX_POLL_LOG = 500  # per job; older entries are dropped
# progress_backwards: at this share of the run the job "restarts" from the earlier share.
BACKWARDS_AT, BACKWARDS_TO = 0.6, 0.2
NOT_JSON_BODY = b"<html><body><h1>200 OK</h1><p>Gateway maintenance page</p></body></html>"

# Envelope (type, code) for statuses injected through poll_errors; 5xx falls back to upstream_error.
INJECTED_ERRORS: dict[int, tuple[str, str, str]] = {
    400: ("invalid_request_error", "invalid_request", "simulated bad request"),
    401: ("authentication_error", "invalid_api_key", "simulated authentication failure"),
    402: ("billing_error", "insufficient_balance", "simulated insufficient balance"),
    404: ("invalid_request_error", "task_not_found", "simulated unknown task"),
    429: ("rate_limit_error", "rate_limited", "rate limit exceeded, retry later"),
}


class ApiError(Exception):
    """An error answer in Router One's envelope; raised anywhere, rendered by the handler."""

    def __init__(
        self,
        status: int,
        type_: str,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.code = code
        self.message = message
        self.headers = headers or {}

    def envelope(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "code": self.code}}


def bad_param(message: str) -> ApiError:
    return ApiError(400, "invalid_request_error", "invalid_parameter", message)


@dataclass(frozen=True)
class JobConfig:
    """How one job behaves: its timeline and how it ends."""

    queue_s: float = 1.0
    run_s: float = 8.0
    outcome: str = "completed"
    progress: str = "linear"
    error_code: str = DEFAULT_ERROR_CODE
    error_message: str = DEFAULT_ERROR_MESSAGE
    # Faults (see the module docstring); the defaults make a well-behaved job.
    poll_errors: tuple[int | str, ...] = ()
    reset: int = 0
    malformed: int = 0
    slow_s: float = 0.0
    slow_polls: int | None = None
    drip_s: float = 0.0
    drip_polls: int | None = None
    drip_submit: bool = False
    video_bytes: int = len(FAKE_MP4)
    video_stall_at: int | None = None
    unknown_status: str | None = None
    unknown_after: float = 0.5
    progress_backwards: bool = False
    missing_url: bool = False
    missing_url_polls: int | None = None

    def public(self) -> dict[str, Any]:
        """As JSON would carry it (lists, not tuples)."""
        return {**asdict(self), "poll_errors": list(self.poll_errors)}

    def answer_faults(self) -> list[int | str]:
        """The whole per-poll fault script: poll_errors, then resets, then malformed bodies."""
        malformed = [TRUNCATED if i % 2 == 0 else NOT_JSON for i in range(self.malformed)]
        return [*self.poll_errors, *[RESET] * self.reset, *malformed]


@dataclass(frozen=True)
class ServerConfig:
    """Server-wide defaults; ``POST /_sim/config`` replaces it, ``/_sim/reset`` restores it."""

    job: JobConfig
    api_key: str
    insufficient_balance: bool = False
    # Keys of other Router One accounts (callers' own keys in pass-through mode). Each account sees
    # only its own tasks: a poll with another account's key is a 404, as it would be upstream.
    account_keys: tuple[str, ...] = ()

    def public(self) -> dict[str, Any]:
        # Keys stay out of every answer and log line.
        return {**self.job.public(), "insufficient_balance": self.insufficient_balance}
