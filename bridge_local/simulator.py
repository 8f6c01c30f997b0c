"""A local stand-in for Router One's async video-generation API, served over real HTTP.

It follows /work/shared/ROUTER_ONE_API.md: submit returns 202 with a task id, status polls
walk a timeline (pending -> processing -> completed/failed), and every error uses the
documented envelope. Jobs can be scripted three ways, later ones winning:

1. server defaults (constructor arguments, CLI flags, or ``POST /_sim/config``); they apply to
   jobs submitted afterwards, and ``POST /_sim/reset`` restores the ones the server started with;
2. a directive in the prompt, e.g. ``[sim duration=5 outcome=failed progress=none queue=0]``;
3. ``POST /_sim/next`` / ``queue_next(...)`` (FIFO; each queued config is used by the next
   accepted submit).

Job options (every entry point takes all of them; a bad value is a 400 ``invalid_parameter``,
or a ValueError from Python):

``queue_s`` (alias ``queue``), ``run_s`` (alias ``duration``)
    seconds spent ``pending``, then ``processing`` (defaults 1 and 8). The default ``run_s`` is
    the time for a ``REFERENCE_VIDEO_S`` (5 s) clip: a submit whose request carries ``duration``
    (seconds of video) runs ``run_s * duration / 5``, with ``duration`` capped at
    ``MAX_SCALED_VIDEO_S`` (20) so a long clip cannot stall a local run; longer videos take longer,
    as upstream. A ``run_s`` scripted for the job (directive or ``/_sim/next``) is used as is.
``outcome``
    ``completed`` or ``failed``; ``error_code`` / ``error_message`` fill a failure's ``error``.
``progress``
    ``linear``, ``stepped`` (stalls and uneven jumps) or ``none`` (no ``progress`` field).

Fault options, for testing how a client copes with a misbehaving upstream. They mix freely:

``poll_errors``
    the fault script of the job's first polls, one entry per poll, in order; each entry is
    an HTTP status 400-599 (``503``, or ``"503"``) answered with Router One's error envelope
    (5xx: ``api_error``/``upstream_error``; 429: ``rate_limit_error``/``rate_limited`` with
    ``Retry-After: 1``), ``"STATUS:retry-after=SECONDS"`` to send that ``Retry-After``
    (``"429:retry-after=none"``: a 429 without one), or one of the tokens ``reset``
    (the connection is reset: no HTTP answer at all), ``truncated`` (200 with a JSON body cut
    in half) and ``not_json`` (200 with an HTML body). In a directive: comma-separated,
    ``poll_errors=503,429:retry-after=2,reset``.
``reset``
    after the ``poll_errors`` script, this many more polls get a connection reset.
``malformed``
    after those, this many more polls answer 200 with a broken body, alternately truncated
    JSON and not JSON at all.
``slow_s``, ``slow_polls``
    the status answer waits ``slow_s`` seconds (real time, at most 300) before it is sent,
    whatever it is, on the first ``slow_polls`` polls (``null``, or ``all`` in a directive:
    on every poll). Use it to exceed a client's per-request timeout.
``drip_s``, ``drip_polls``, ``drip_submit``
    the status answer goes out one byte every ``drip_s`` seconds (at most 10), status line and
    headers included, on the first ``drip_polls`` polls (``null``, or ``all`` in a directive: on
    every poll); ``drip_submit=true`` drips the submit's own 202 answer too. A client with only a
    per-read timeout never gives up on it; a total deadline does.
``video_bytes``, ``video_stall_at``
    the finished video is ``video_bytes`` long (the MP4 header, then zeros; at most 64 MiB);
    with ``video_stall_at=N`` its download stops after N bytes and holds the connection open.
``unknown_status``, ``unknown_after``
    from ``unknown_after`` (a fraction of the run time, default 0.5) until the run ends, the
    job reports this undocumented status (e.g. ``upscaling``) instead of ``processing``,
    progress included. ``null`` (``none`` in a directive) turns it off.
``progress_backwards``
    ``true``: at 60 % of the run the progress drops back (60 -> 20 with ``linear``) and climbs
    again at the same pace, as a job restarted upstream would, so it stays below its earlier
    peak until the run ends (at 60) and the job jumps to its outcome.
``missing_url``, ``missing_url_polls``
    ``missing_url=true``: a completed job's answer has no ``url``; with ``missing_url_polls=N``
    only its first N completed answers lack it (a link that lags behind the status).

Answer faults are served in that order: the ``poll_errors`` script, then ``reset``, then
``malformed``; a slow poll is slow whatever it answers. ``GET /_sim/tasks/{id}`` shows each
poll the job got (``poll_log``: age in seconds, the fault served, the delay, and the status and
progress of the answer when one was sent) and what is left of each fault.

Run it in the foreground with ``python -m bridge_local.simulator --port 8010`` (server-wide
faults: ``--faults "malformed=1 slow_s=2 slow_polls=1"``).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import hmac
import json
import logging
import math
import re
import select
import shlex
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, Self
from urllib.parse import unquote, urlsplit

_logger = logging.getLogger(__name__)

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
_HOST_HEADER_RE = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")
_DIRECTIVE_RE = re.compile(r"\[sim\b([^\]]*)\]", re.IGNORECASE)
# Short spellings meant for people typing directives; both forms work everywhere.
_ALIASES = {"duration": "run_s", "queue": "queue_s"}

_TIMELINE_KEYS = frozenset({"queue_s", "run_s", "outcome", "progress", "error_code", "error_message"})
_FAULT_KEYS = frozenset(
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
_JOB_KEYS = _TIMELINE_KEYS | _FAULT_KEYS
_DIRECTIVE_KEYS = _JOB_KEYS
_NEXT_KEYS = _JOB_KEYS | {"task_id"}
_CONFIG_KEYS = _JOB_KEYS | {"api_key", "insufficient_balance", "account_keys"}

# Statuses the contract documents; an injected unknown status must be none of them.
DOCUMENTED_STATUSES = ("pending", "processing", "completed", "failed")
# Poll-fault tokens besides HTTP statuses: no answer at all, or a 200 whose body is unusable.
RESET, TRUNCATED, NOT_JSON = "reset", "truncated", "not_json"
_FAULT_TOKENS = (RESET, TRUNCATED, NOT_JSON)
_STATUS_FAULT_RE = re.compile(r"(\d{3})(?::retry-after=(\d{1,5}|none))?", re.IGNORECASE)
_UNKNOWN_STATUS_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
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
_TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
_FALSE_WORDS = frozenset({"false", "no", "off", "0"})
_EVERY_POLL_WORDS = frozenset({"all", "null"})  # slow_polls, drip_polls, missing_url_polls in a directive

# Envelope (type, code) for statuses injected through poll_errors; 5xx falls back to upstream_error.
_INJECTED_ERRORS: dict[int, tuple[str, str, str]] = {
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


def _bad_param(message: str) -> ApiError:
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


def _check_value(name: str, value: Any) -> Any:
    """Validate one scripting value (already alias-resolved); return it normalised."""
    if name in ("queue_s", "run_s"):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or value < 0:
            raise _bad_param(f"{name} must be a non-negative number")
        return float(value)
    if name == "outcome":
        if value not in OUTCOMES:
            raise _bad_param(f"outcome must be one of {', '.join(OUTCOMES)}")
        return value
    if name == "progress":
        if value not in PROGRESS_MODES:
            raise _bad_param(f"progress must be one of {', '.join(PROGRESS_MODES)}")
        return value
    if name in ("error_code", "error_message", "api_key"):
        if not isinstance(value, str) or not value:
            raise _bad_param(f"{name} must be a non-empty string")
        return value
    if name == "account_keys":
        if not isinstance(value, (list, tuple)) or not all(isinstance(k, str) and k for k in value):
            raise _bad_param("account_keys must be a list of non-empty strings")
        return tuple(value)
    if name == "insufficient_balance":
        if not isinstance(value, bool):
            raise _bad_param("insufficient_balance must be true or false")
        return value
    if name == "task_id":
        if not isinstance(value, str) or not TASK_ID_RE.fullmatch(value):
            raise _bad_param("task_id must match ^v_[0-9a-f]{32}$")
        return value
    if name == "poll_errors":
        if not isinstance(value, (list, tuple)):
            raise _bad_param(_POLL_ERRORS_RULE)
        return [_check_poll_fault(entry) for entry in value]
    if name in ("reset", "malformed"):
        if not _is_int(value) or not 0 <= value <= MAX_FAULT_COUNT:
            raise _bad_param(f"{name} must be a whole number of polls between 0 and {MAX_FAULT_COUNT}")
        return value
    if name in ("slow_polls", "drip_polls", "missing_url_polls"):
        if value is not None and (not _is_int(value) or not 0 <= value <= MAX_FAULT_COUNT):
            raise _bad_param(f"{name} must be null (every poll) or a whole number between 0 and {MAX_FAULT_COUNT}")
        return value
    if name == "slow_s":
        if not _is_number(value) or not 0 <= value <= MAX_SLOW_S:
            raise _bad_param(f"slow_s must be a number of seconds between 0 and {MAX_SLOW_S:g}")
        return float(value)
    if name == "drip_s":
        if not _is_number(value) or not 0 <= value <= MAX_DRIP_S:
            raise _bad_param(f"drip_s must be a number of seconds between 0 and {MAX_DRIP_S:g}")
        return float(value)
    if name == "video_bytes":
        if not _is_int(value) or not len(FAKE_MP4) <= value <= MAX_VIDEO_BYTES:
            raise _bad_param(f"video_bytes must be a whole number between {len(FAKE_MP4)} and {MAX_VIDEO_BYTES}")
        return value
    if name == "video_stall_at":
        if value is not None and (not _is_int(value) or value < 0):
            raise _bad_param("video_stall_at must be null (never) or a whole number of bytes")
        return value
    if name == "unknown_after":
        if not _is_number(value) or not 0 <= value <= 1:
            raise _bad_param("unknown_after must be a fraction of the run time between 0 and 1")
        return float(value)
    if name == "unknown_status":
        if value is None:
            return None
        if (
            not isinstance(value, str)
            or not _UNKNOWN_STATUS_RE.fullmatch(value)
            or value.lower() in DOCUMENTED_STATUSES
        ):
            raise _bad_param(
                "unknown_status must be null or a status name Router One does not document (e.g. upscaling)"
            )
        return value
    if name in ("progress_backwards", "missing_url", "drip_submit"):
        if not isinstance(value, bool):
            raise _bad_param(f"{name} must be true or false")
        return value
    raise _bad_param(f"unknown key {name!r}")


_POLL_ERRORS_RULE = (
    "poll_errors must be a list of HTTP statuses 400-599, 'STATUS:retry-after=SECONDS' or "
    "'STATUS:retry-after=none' strings, or the tokens reset, truncated, not_json"
)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_poll_fault(entry: Any) -> int | str:
    """One ``poll_errors`` entry in its canonical form: a bare status as an int, else a lower-case string."""
    if _is_int(entry) and 400 <= entry <= 599:
        return entry
    if isinstance(entry, str):
        text = entry.strip().lower()
        if text in _FAULT_TOKENS:
            return text
        match = _STATUS_FAULT_RE.fullmatch(text)
        if match and 400 <= int(match[1]) <= 599:
            status, retry_after = int(match[1]), match[2]
            if retry_after is None:
                return status
            if retry_after != "none" and int(retry_after) > MAX_RETRY_AFTER_S:
                raise _bad_param(f"poll_errors: retry-after must be at most {MAX_RETRY_AFTER_S} seconds")
            return f"{status}:retry-after={'none' if retry_after == 'none' else int(retry_after)}"
    raise _bad_param(_POLL_ERRORS_RULE)


def _job_config(base: JobConfig, checked: dict[str, Any]) -> JobConfig:
    """``base`` with the job options among ``checked`` applied."""
    changes = {k: v for k, v in checked.items() if k in _JOB_KEYS}
    if "poll_errors" in changes:
        changes["poll_errors"] = tuple(changes["poll_errors"])
    return replace(base, **changes)


def _check_fields(raw: dict[str, Any], allowed: frozenset[str]) -> dict[str, Any]:
    """Validate a scripting object against the keys one entry point accepts."""
    checked: dict[str, Any] = {}
    for key, value in raw.items():
        name = _ALIASES.get(key, key)
        if name not in allowed:
            raise _bad_param(f"unknown key {key!r}; allowed: {', '.join(sorted(allowed))}")
        checked[name] = _check_value(name, value)
    return checked


def _from_text(name: str, text: str) -> Any:
    """Turn a directive's text value into the type the JSON control API would carry."""
    word = text.strip().lower()
    try:
        if name in ("queue_s", "run_s", "slow_s", "drip_s", "unknown_after"):
            return float(text)
        if name in ("reset", "malformed", "video_bytes"):
            return int(text)
        if name in ("slow_polls", "drip_polls", "missing_url_polls"):
            return None if word in _EVERY_POLL_WORDS else int(text)
        if name == "video_stall_at":
            return None if word in ("none", "null") else int(text)
        if name in ("progress_backwards", "missing_url", "drip_submit", "insufficient_balance"):
            if word in _TRUE_WORDS or word in _FALSE_WORDS:
                return word in _TRUE_WORDS
            raise ValueError(text)
        if name == "unknown_status":
            return None if word in ("none", "null") else text
        if name == "poll_errors":
            return [int(part) if part.strip().isdigit() else part for part in text.split(",") if part.strip()]
    except ValueError:
        raise _bad_param(f"sim directive: bad value {text!r} for {name}") from None
    return text


def _parse_options(text: str, allowed: frozenset[str], where: str) -> dict[str, Any]:
    """``key=value`` words (shell quoting allowed), checked against the keys ``allowed``."""
    raw: dict[str, Any] = {}
    try:
        tokens = shlex.split(text)
    except ValueError as exc:
        raise _bad_param(f"{where}: {exc}") from None
    for token in tokens:
        key, sep, value = token.partition("=")
        if not sep or not key:
            raise _bad_param(f"{where}: expected key=value, got {token!r}")
        raw[key] = _from_text(_ALIASES.get(key, key), value)
    return _check_fields(raw, allowed)


def parse_directive(prompt: str) -> dict[str, Any]:
    """Read every ``[sim key=value ...]`` block in a prompt; later keys win."""
    found: dict[str, Any] = {}
    for match in _DIRECTIVE_RE.finditer(prompt):
        found |= _parse_options(match.group(1), _DIRECTIVE_KEYS, "sim directive")
    return found


def parse_faults(text: str) -> dict[str, Any]:
    """Fault options written as in a directive (``"reset=1 slow_s=2"``), as ``--faults`` takes them."""
    return _parse_options(text, _FAULT_KEYS, "faults")


def _progress(mode: str, fraction: float) -> int:
    if mode == "stepped":
        value = 0
        for start, step_value in STEPPED_PROGRESS:
            if fraction >= start:
                value = step_value
        return value
    return max(0, min(100, int(fraction * 100)))


@dataclass
class Job:
    """One task in the job table; ``view`` derives its public status from the clock.

    The fault counters (``faults``, ``slow_left``, ``drip_left``, ``url_missing_left``) are spent poll by poll;
    ``None`` for the last two means "every poll".
    """

    task_id: str
    created_at: float
    config: JobConfig
    request: dict[str, Any]
    faults: list[int | str] = field(default_factory=list)
    slow_left: int | None = None
    drip_left: int | None = None
    url_missing_left: int | None = None
    polls: int = 0
    submits: int = 1
    poll_log: list[dict[str, Any]] = field(default_factory=list)
    account: str = ""  # fingerprint of the key that submitted it

    @classmethod
    def new(cls, task_id: str, created_at: float, config: JobConfig, request: dict[str, Any]) -> Job:
        return cls(
            task_id=task_id,
            created_at=created_at,
            config=config,
            request=request,
            faults=config.answer_faults(),
            slow_left=config.slow_polls if config.slow_s > 0 else 0,
            drip_left=config.drip_polls if config.drip_s > 0 else 0,
            url_missing_left=config.missing_url_polls if config.missing_url else 0,
        )

    def view(self, now: float, base_url: str) -> dict[str, Any]:
        cfg = self.config
        elapsed = now - self.created_at
        out: dict[str, Any] = {"task_id": self.task_id}
        if elapsed < cfg.queue_s:
            out["status"] = "pending"
        elif elapsed < cfg.queue_s + cfg.run_s:
            fraction = (elapsed - cfg.queue_s) / cfg.run_s
            unknown = cfg.unknown_status is not None and fraction >= cfg.unknown_after
            out["status"] = cfg.unknown_status if unknown else "processing"
            if cfg.progress != "none":
                out["progress"] = _progress(cfg.progress, _restarted(fraction) if cfg.progress_backwards else fraction)
        elif cfg.outcome == "completed":
            out["status"] = "completed"
            out["url"] = f"{base_url}{FILES_PREFIX}{self.task_id}.mp4"
        else:
            out["status"] = "failed"
            out["error"] = {"message": cfg.error_message, "code": cfg.error_code}
        return out

    def next_fault(self) -> int | str | None:
        return self.faults.pop(0) if self.faults else None

    def next_delay(self) -> float:
        return self.config.slow_s if _spend(self, "slow_left") else 0.0

    def next_drip(self) -> float:
        return self.config.drip_s if _spend(self, "drip_left") else 0.0

    def video(self) -> bytes:
        """The finished video's bytes: the MP4 header, padded with zeros to ``video_bytes``."""
        return FAKE_MP4 + bytes(self.config.video_bytes - len(FAKE_MP4))

    def answer(self, now: float, base_url: str) -> dict[str, Any]:
        """The view a poll gets; a completed job's url may be withheld (missing_url)."""
        out = self.view(now, base_url)
        if out["status"] == "completed" and _spend(self, "url_missing_left"):
            del out["url"]
        return out

    def log_poll(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Keep ``entry`` (the latest MAX_POLL_LOG are kept) and return it for later filling in."""
        self.poll_log.append(entry)
        del self.poll_log[:-MAX_POLL_LOG]
        return entry


def _spend(job: Job, counter: str) -> bool:
    """Use one unit of a per-poll counter: True while any is left (None never runs out)."""
    left = getattr(job, counter)
    if left is None:
        return True
    if left <= 0:
        return False
    setattr(job, counter, left - 1)
    return True


def _restarted(fraction: float) -> float:
    """progress_backwards: at BACKWARDS_AT the work falls back to BACKWARDS_TO and goes on at the same
    pace, so the progress stays below its earlier peak for the rest of the run."""
    return fraction if fraction < BACKWARDS_AT else BACKWARDS_TO + (fraction - BACKWARDS_AT)


def _injected_error(fault: int | str) -> ApiError:
    """The error answer of one ``poll_errors`` entry (a status, or ``"STATUS:retry-after=…"``)."""
    text = str(fault)
    status = int(text[:3])
    retry_after = text.partition("=")[2] or (str(DEFAULT_RETRY_AFTER_S) if status == 429 else "none")
    if status in _INJECTED_ERRORS:
        type_, code, message = _INJECTED_ERRORS[status]
    elif status >= 500:
        type_, code = "api_error", "upstream_error"
        message = "the video provider behind Router One failed (simulated)"
    else:
        type_, code, message = "invalid_request_error", "simulated_error", "simulated client error"
    headers = None if retry_after == "none" else {"Retry-After": retry_after}
    return ApiError(status, type_, code, message, headers)


@dataclass(frozen=True)
class PollAnswer:
    """What one status poll gets: a view (200), an error envelope, or a broken/absent answer."""

    view: dict[str, Any] | None = None
    error: ApiError | None = None
    fault: str | None = None  # RESET, TRUNCATED or NOT_JSON
    drip_s: float = 0.0  # send the answer one byte at a time, this far apart


def _parse_json_object(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "invalid_request_error", "invalid_json", "body is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise ApiError(400, "invalid_request_error", "invalid_json", "body must be a JSON object")
    return parsed


def _validate_submit(body: dict[str, Any]) -> None:
    """Light checks from the contract's field table; ``null`` counts as absent."""
    for name in ("model", "prompt"):
        value = body.get(name)
        if not isinstance(value, str) or not value.strip():
            raise _bad_param(f"{name} is required and must be a non-empty string")
    for name in ("size", "negative_prompt", "image_url", "input_reference"):
        if body.get(name) is not None and not isinstance(body[name], str):
            raise _bad_param(f"{name} must be a string")
    duration = body.get("duration")
    if duration is not None and (not isinstance(duration, int) or isinstance(duration, bool) or duration <= 0):
        raise _bad_param("duration must be a positive integer")
    aspect = body.get("aspect_ratio")
    if aspect is not None and aspect not in ASPECT_RATIOS:
        raise _bad_param(f"aspect_ratio must be one of {', '.join(ASPECT_RATIOS)}")
    urls = body.get("image_urls")
    if urls is not None and (
        not isinstance(urls, list) or len(urls) > MAX_IMAGE_URLS or not all(isinstance(u, str) for u in urls)
    ):
        raise _bad_param(f"image_urls must be a list of at most {MAX_IMAGE_URLS} strings")


def _check_reference_images(body: dict[str, Any]) -> None:
    urls = [body["image_url"]] if body.get("image_url") else []
    urls += body.get("image_urls") or []
    for url in urls:
        if OVERSIZED_MARKER in url.lower():
            raise ApiError(
                400,
                "invalid_request_error",
                "reference_image_invalid",
                "reference image could not be fetched: larger than 20 MB",
            )


def _scaled_by_duration(base: JobConfig, body: dict[str, Any]) -> JobConfig:
    """``base`` with its run time scaled by the requested video length (see ``REFERENCE_VIDEO_S``).

    Applied before a directive or queued config, so a scripted ``run_s`` still wins.
    """
    duration = body.get("duration")
    if duration is None:
        return base
    seconds = min(int(duration), MAX_SCALED_VIDEO_S)
    return replace(base, run_s=base.run_s * seconds / REFERENCE_VIDEO_S)


def account_of(api_key: str) -> str:
    """A short fingerprint naming the account a key belongs to (never the key itself)."""
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()[:12]


class _Engine:
    """All simulator state and rules, independent of HTTP; every table access holds the lock."""

    def __init__(self, defaults: ServerConfig, clock: Callable[[], float]) -> None:
        self._defaults = defaults
        self._clock = clock
        self._lock = threading.Lock()
        self._config = defaults
        self._next: deque[dict[str, Any]] = deque()
        self._jobs: dict[str, Job] = {}

    def _authenticate(self, authorization: str | None) -> str:
        """The account (a fingerprint of the key) the request is for."""
        with self._lock:
            keys = (self._config.api_key, *self._config.account_keys)
        scheme, _, token = (authorization or "").partition(" ")
        sent = token.strip().encode("utf-8")
        # Constant-time compares, and the message never echoes what was sent.
        matched = [key for key in keys if hmac.compare_digest(sent, key.encode("utf-8"))]
        if scheme.lower() != "bearer" or not matched:
            raise ApiError(401, "authentication_error", "invalid_api_key", "invalid or missing API key")
        return account_of(matched[0])

    def submit(self, authorization: str | None, raw_body: bytes) -> dict[str, Any]:
        account = self._authenticate(authorization)
        body = _parse_json_object(raw_body)
        _validate_submit(body)
        directive = parse_directive(body["prompt"])
        with self._lock:
            config = self._config
        if config.insufficient_balance:
            raise ApiError(402, "billing_error", "insufficient_balance", "account balance is insufficient")
        _check_reference_images(body)
        with self._lock:
            # A queued config is spent only by a submit that is accepted.
            queued = self._next.popleft() if self._next else {}
            now = self._clock()
            forced = queued.get("task_id")
            if forced is not None and forced in self._jobs:
                # Forcing an existing id replays that task, as a duplicate submit would.
                job = self._jobs[forced]
                job.submits += 1
                return {"task_id": forced, "status": job.view(now, "")["status"]}
            job_config = _job_config(_scaled_by_duration(config.job, body), {**directive, **queued})
            task_id = forced or f"v_{uuid.uuid4().hex}"
            self._jobs[task_id] = Job.new(task_id, now, job_config, copy.deepcopy(body))
            self._jobs[task_id].account = account
        return {"task_id": task_id, "status": "pending"}

    def poll(self, authorization: str | None, task_id: str, base_url: str) -> PollAnswer:
        account = self._authenticate(authorization)
        if not TASK_ID_RE.fullmatch(task_id):
            raise ApiError(400, "invalid_request_error", "invalid_task_id", "malformed task id")
        with self._lock:
            job = self._jobs.get(task_id)
            if job is None or job.account != account:
                raise ApiError(404, "invalid_request_error", "task_not_found", "task not found")
            job.polls += 1
            fault = job.next_fault()
            delay = job.next_delay()
            drip = job.next_drip()
            # Logged on arrival (a slow poll shows up at once); status: that of the view sent, if any.
            age = round(self._clock() - job.created_at, 3)
            entry = job.log_poll(
                {"age_s": age, "fault": fault, "delay_s": delay, "drip_s": drip, "status": None, "progress": None}
            )
        if delay:
            # Real time, outside the lock: other requests go on while this one dawdles.
            time.sleep(delay)
        with self._lock:
            answer = replace(self._answer(job, fault, base_url), drip_s=drip)
            if answer.view:
                entry.update(status=answer.view["status"], progress=answer.view.get("progress"))
        return answer

    def _answer(self, job: Job, fault: int | str | None, base_url: str) -> PollAnswer:
        if fault == RESET:
            return PollAnswer(fault=RESET)
        if fault is not None and fault not in _FAULT_TOKENS:
            return PollAnswer(error=_injected_error(fault))
        view = job.answer(self._clock(), base_url)
        return PollAnswer(view=view, fault=None if fault is None else str(fault))

    def file_ready(self, task_id: str) -> bool:
        with self._lock:
            job = self._jobs.get(task_id)
            return job is not None and job.view(self._clock(), "")["status"] == "completed"

    def video_file(self, task_id: str) -> tuple[bytes, int | None] | None:
        """A completed job's video and where its download stalls; None if there is none (yet)."""
        with self._lock:
            job = self._jobs.get(task_id)
            if job is None or job.view(self._clock(), "")["status"] != "completed":
                return None
            return job.video(), job.config.video_stall_at

    def submit_drip(self, task_id: str) -> float:
        """How far apart the bytes of this task's submit answer go out (0: all at once)."""
        with self._lock:
            job = self._jobs.get(task_id)
            return job.config.drip_s if job is not None and job.config.drip_submit else 0.0

    def queue_next(self, raw: dict[str, Any]) -> int:
        checked = _check_fields(raw, _NEXT_KEYS)
        with self._lock:
            self._next.append(checked)
            return len(self._next)

    def configure(self, raw: dict[str, Any]) -> dict[str, Any]:
        checked = _check_fields(raw, _CONFIG_KEYS)
        with self._lock:
            job = _job_config(self._config.job, checked)
            self._config = ServerConfig(
                job=job,
                api_key=checked.get("api_key", self._config.api_key),
                insufficient_balance=checked.get("insufficient_balance", self._config.insufficient_balance),
                account_keys=checked.get("account_keys", self._config.account_keys),
            )
            return self._config.public()

    def config(self) -> dict[str, Any]:
        with self._lock:
            return self._config.public()

    def reset(self) -> None:
        with self._lock:
            self._jobs.clear()
            self._next.clear()
            self._config = self._defaults

    def task_count(self) -> int:
        with self._lock:
            return len(self._jobs)

    def record(self, task_id: str, base_url: str) -> dict[str, Any]:
        with self._lock:
            job = self._jobs.get(task_id)
            if job is None:
                raise ApiError(404, "invalid_request_error", "task_not_found", "task not found")
            now = self._clock()
            return {
                "task_id": job.task_id,
                "view": job.view(now, base_url),
                "config": job.config.public(),
                "created_at": job.created_at,
                "age_s": now - job.created_at,
                "polls": job.polls,
                "submits": job.submits,
                "account": job.account,
                "poll_errors_remaining": list(job.faults),
                "slow_polls_remaining": job.slow_left,
                "drip_polls_remaining": job.drip_left,
                "missing_url_polls_remaining": job.url_missing_left,
                "poll_log": copy.deepcopy(job.poll_log),
                "request": copy.deepcopy(job.request),
            }


@dataclass
class _Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    reset: bool = False  # no answer at all: the connection is reset
    drip_s: float = 0.0  # one byte at a time, this far apart
    stall_at: int | None = None  # send this much of the body, then hold the connection open


def _poll_reply(answer: PollAnswer) -> _Reply:
    return replace(_poll_reply_whole(answer), drip_s=answer.drip_s)


def _poll_reply_whole(answer: PollAnswer) -> _Reply:
    if answer.error is not None:
        return _error_reply(answer.error)
    if answer.fault == RESET or answer.view is None:
        return _Reply(0, b"", reset=True)
    if answer.fault == NOT_JSON:
        return _Reply(200, NOT_JSON_BODY, content_type="text/html")
    body = json.dumps(answer.view).encode("utf-8")
    if answer.fault == TRUNCATED:
        body = body[: len(body) // 2]
    return _Reply(200, body)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Status"


def _json_reply(status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> _Reply:
    return _Reply(status, json.dumps(payload).encode("utf-8"), headers=headers or {})


def _error_reply(error: ApiError) -> _Reply:
    return _json_reply(error.status, error.envelope(), error.headers)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "RouterOneSimulator/1.0"
    sys_version = ""
    # One request per connection keeps shutdown simple and avoids half-read keep-alive bodies.
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        # http.server logs every request to stderr; this simulator logs its own short line.
        return

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # http.server answers malformed requests with an HTML page; keep the JSON envelope.
        self.close_connection = True
        if self.request_version == "HTTP/0.9":
            # An unparsable request line leaves http.server assuming HTTP/0.9, which would drop
            # the status line and headers; nobody speaks 0.9, so answer as 1.0.
            self.request_version = "HTTP/1.0"
        type_ = "api_error" if code >= 500 else "invalid_request_error"
        error = ApiError(code, type_, "bad_request", message or "malformed HTTP request")
        self._send(_error_reply(error), head_only=self.command == "HEAD")

    def _dispatch(self, method: str) -> None:
        path = unquote(urlsplit(self.path).path)
        try:
            reply = self._route(method, path)
        except ApiError as exc:
            reply = _error_reply(exc)
        except Exception:
            # A simulator bug: the client gets a 500 envelope, the operator gets the traceback.
            _logger.exception("unhandled error in %s %s", method, path)
            reply = _error_reply(ApiError(500, "api_error", "internal_error", "simulator error"))
        # Log before sending so the line exists by the time the client sees the answer.
        self.server.simulator._log(f"{method} {path} -> {'reset' if reply.reset else reply.status}")
        if reply.reset:
            self._reset_connection()
        else:
            self._send(reply, head_only=method == "HEAD")

    def _reset_connection(self) -> None:
        """Drop the connection with a TCP reset (linger 0) and no HTTP answer."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()

    def _send(self, reply: _Reply, *, head_only: bool) -> None:
        if reply.drip_s or reply.stall_at is not None:
            self._send_slowly(reply, head_only=head_only)
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if not head_only:
            self.wfile.write(reply.body)

    def _send_slowly(self, reply: _Reply, *, head_only: bool) -> None:
        """drip_s: every byte of the answer on its own; stall_at: the body up to there, then nothing.

        Either ends when the client leaves, the simulator stops, or after HOLD_LIMIT_S.
        """
        self.close_connection = True
        stopping = self.server.simulator._stopping
        ends = time.monotonic() + HOLD_LIMIT_S
        head = f"{self.protocol_version} {reply.status} {_reason(reply.status)}\r\n"
        head += f"Content-Type: {reply.content_type}\r\nContent-Length: {len(reply.body)}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in reply.headers.items()) + "\r\n"
        data = head.encode("latin-1") + (b"" if head_only else reply.body[: reply.stall_at])
        try:
            if not reply.drip_s:
                self.wfile.write(data)
            for index in range(len(data) if reply.drip_s else 0):
                self.wfile.write(data[index : index + 1])
                if stopping.wait(reply.drip_s) or time.monotonic() >= ends:
                    return
            while reply.stall_at is not None and not stopping.is_set() and time.monotonic() < ends:
                readable, _, _ = select.select([self.connection], [], [], 0.2)
                if readable and not self.connection.recv(1024):
                    return  # the client hung up
        except OSError:
            return  # the client gave up: what a deadline is for

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            raise ApiError(411, "invalid_request_error", "length_required", "send a Content-Length body")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise ApiError(400, "invalid_request_error", "bad_request", "bad Content-Length") from None
        if length < 0:
            raise ApiError(400, "invalid_request_error", "bad_request", "bad Content-Length")
        if length > MAX_BODY_BYTES:
            raise ApiError(413, "invalid_request_error", "request_too_large", "request body too large")
        return self.rfile.read(length)

    def _base_url(self) -> str:
        # Completed URLs use the Host the client dialled, so they work from inside containers.
        host = self.headers.get("Host", "")
        return f"http://{host}" if _HOST_HEADER_RE.match(host) else self.server.simulator.url

    def _route(self, method: str, path: str) -> _Reply:
        engine = self.server.simulator._engine
        auth = self.headers.get("Authorization")

        def allow(*methods: str) -> None:
            if method not in methods:
                raise ApiError(
                    405,
                    "invalid_request_error",
                    "method_not_allowed",
                    f"{method} is not allowed on {path}",
                    {"Allow": ", ".join(methods)},
                )

        if path == SUBMIT_PATH:
            allow("POST")
            accepted = engine.submit(auth, self._body())
            return replace(_json_reply(202, accepted), drip_s=engine.submit_drip(accepted["task_id"]))
        if path.startswith(STATUS_PREFIX):
            allow("GET")
            return _poll_reply(engine.poll(auth, path[len(STATUS_PREFIX) :], self._base_url()))
        if path.startswith(FILES_PREFIX) and path.endswith(".mp4"):
            allow("GET", "HEAD")
            video = engine.video_file(path[len(FILES_PREFIX) : -len(".mp4")])
            if video is None:
                raise ApiError(404, "invalid_request_error", "file_not_found", "no such video file")
            content, stall_at = video
            return _Reply(200, content, content_type="video/mp4", stall_at=stall_at)
        if path == "/_sim/health":
            allow("GET")
            return _json_reply(200, {"ok": True})
        if path == "/_sim/next":
            allow("POST")
            return _json_reply(200, {"queued": engine.queue_next(_parse_json_object(self._body()))})
        if path == "/_sim/config":
            allow("GET", "POST")
            if method == "GET":
                return _json_reply(200, {"config": engine.config()})
            return _json_reply(200, {"config": engine.configure(_parse_json_object(self._body()))})
        if path == "/_sim/reset":
            allow("POST")
            engine.reset()
            return _json_reply(200, {"reset": True})
        if path.startswith("/_sim/tasks/"):
            allow("GET")
            return _json_reply(200, engine.record(path[len("/_sim/tasks/") :], self._base_url()))
        raise ApiError(404, "invalid_request_error", "not_found", f"no route for {path}")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], simulator: RouterOneSimulator) -> None:
        self.simulator = simulator
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse-DNS lookup (getfqdn) that can stall for seconds.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Client hang-ups are routine here; never dump a traceback, say one line if verbose.
        self.simulator._log(f"connection error: {sys.exc_info()[1]!r}")


class RouterOneSimulator:
    """Router One look-alike on a real port, for tests and the local runner."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_key: str = DEFAULT_API_KEY,
        queue_s: float = 1.0,
        run_s: float = 8.0,
        outcome: str = "completed",
        progress: str = "linear",
        error_code: str = DEFAULT_ERROR_CODE,
        error_message: str = DEFAULT_ERROR_MESSAGE,
        insufficient_balance: bool = False,
        faults: Mapping[str, Any] | None = None,
        verbose: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``faults``: default fault options for every job (keys as in the module docstring)."""
        settings = {
            "api_key": api_key,
            "queue_s": queue_s,
            "run_s": run_s,
            "outcome": outcome,
            "progress": progress,
            "error_code": error_code,
            "error_message": error_message,
            "insufficient_balance": insufficient_balance,
        }
        checked = self._checked(settings, _CONFIG_KEYS) | self._checked(dict(faults or {}), _FAULT_KEYS)
        job = _job_config(JobConfig(), checked)
        defaults = ServerConfig(job, checked["api_key"], checked["insufficient_balance"])
        self.host = host
        self.port = port
        self.verbose = verbose
        self._engine = _Engine(defaults, clock)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._log_lock = threading.Lock()
        self._stopping = threading.Event()  # ends answers still dripping or stalled

    @staticmethod
    def _checked(raw: dict[str, Any], allowed: frozenset[str]) -> dict[str, Any]:
        # Python callers get a ValueError rather than an HTTP-shaped error.
        try:
            return _check_fields(raw, allowed)
        except ApiError as exc:
            raise ValueError(exc.message) from None

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("simulator already started")
        self._stopping.clear()
        self._server = _Server((self.host, self.port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="router-one-simulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("simulator not started")
        port = self._server.server_address[1]
        # A wildcard bind is not dialable; point clients at loopback instead.
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{port}"

    def queue_next(self, **job_config: Any) -> None:
        """Same as ``POST /_sim/next``: script the next accepted submit (FIFO)."""
        self._engine.queue_next(self._checked(job_config, _NEXT_KEYS))

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Same as ``POST /_sim/config``: change server defaults; returns them (without the key)."""
        return self._engine.configure(self._checked(changes, _CONFIG_KEYS))

    def reset(self) -> None:
        """Same as ``POST /_sim/reset``."""
        self._engine.reset()

    def task_count(self) -> int:
        """How many tasks were accepted since start or the last reset."""
        return self._engine.task_count()

    def task(self, task_id: str) -> dict[str, Any]:
        """Same as ``GET /_sim/tasks/{id}``; raises KeyError for an unknown id."""
        base_url = self.url if self._server is not None else ""
        try:
            return self._engine.record(task_id, base_url)
        except ApiError:
            raise KeyError(task_id) from None

    def _log(self, line: str) -> None:
        if self.verbose:
            with self._log_lock:
                print(f"[router-one-sim] {line}", file=sys.stderr, flush=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bridge_local.simulator",
        description="Serve a local simulation of Router One's video-generation API.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8010, help="0 picks a free port")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help="key clients must send")
    parser.add_argument("--queue-s", type=float, default=1.0, help="seconds spent pending")
    parser.add_argument("--run-s", type=float, default=8.0, help="seconds spent processing")
    parser.add_argument("--outcome", choices=OUTCOMES, default="completed")
    parser.add_argument("--progress", choices=PROGRESS_MODES, default="linear")
    parser.add_argument("--error-code", default=DEFAULT_ERROR_CODE)
    parser.add_argument("--error-message", default=DEFAULT_ERROR_MESSAGE)
    parser.add_argument("--insufficient-balance", action="store_true", help="answer every submit with 402")
    parser.add_argument(
        "--faults",
        default="",
        metavar="OPTIONS",
        help='fault options for every job, as in a [sim ...] directive, e.g. "malformed=1 slow_s=2 slow_polls=1"',
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log each request to stderr")
    return parser


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        faults = parse_faults(args.faults)
    except ApiError as exc:
        parser.error(f"--faults: {exc.message}")
    try:
        sim = RouterOneSimulator(
            args.host,
            args.port,
            api_key=args.api_key,
            queue_s=args.queue_s,
            run_s=args.run_s,
            outcome=args.outcome,
            progress=args.progress,
            error_code=args.error_code,
            error_message=args.error_message,
            insufficient_balance=args.insufficient_balance,
            faults=faults,
            verbose=args.verbose,
        )
    except ValueError as exc:
        parser.error(str(exc))
    try:
        sim.start()
    except OSError as exc:
        print(
            f"cannot listen on {args.host}:{args.port} ({exc.strerror}); pick another with --port PORT", file=sys.stderr
        )
        return 1
    if threading.current_thread() is threading.main_thread():
        # `docker stop` / `kill` should shut down as cleanly as Ctrl-C.
        signal.signal(signal.SIGTERM, _interrupt)
    print(f"Router One simulator listening on {sim.url} (Ctrl-C to stop)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    print("Router One simulator stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
