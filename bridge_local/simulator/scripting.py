"""Scripting values, checked: every entry point (constructor, CLI flags, control API, prompt
directive) goes through `check_fields`; directives and ``--faults`` are read as ``key=value`` words."""

from __future__ import annotations

import math
import re
import shlex
from dataclasses import replace
from typing import Any

from bridge_local.simulator.options import (
    DIRECTIVE_KEYS,
    DOCUMENTED_STATUSES,
    FAKE_MP4,
    FAULT_KEYS,
    FAULT_TOKENS,
    JOB_KEYS,
    MAX_DRIP_S,
    MAX_FAULT_COUNT,
    MAX_RETRY_AFTER_S,
    MAX_SLOW_S,
    MAX_VIDEO_BYTES,
    OUTCOMES,
    PROGRESS_MODES,
    STATUS_FAULT_RE,
    TASK_ID_RE,
    UNKNOWN_STATUS_RE,
    JobConfig,
    bad_param,
)

_DIRECTIVE_RE = re.compile(r"\[sim\b([^\]]*)\]", re.IGNORECASE)
# Short spellings meant for people typing directives; both forms work everywhere.
_ALIASES = {"duration": "run_s", "queue": "queue_s"}
_TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
_FALSE_WORDS = frozenset({"false", "no", "off", "0"})
_EVERY_POLL_WORDS = frozenset({"all", "null"})  # slow_polls, drip_polls, missing_url_polls in a directive


def _check_value(name: str, value: Any) -> Any:
    """Validate one scripting value (already alias-resolved); return it normalised."""
    if name in ("queue_s", "run_s"):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or value < 0:
            raise bad_param(f"{name} must be a non-negative number")
        return float(value)
    if name == "outcome":
        if value not in OUTCOMES:
            raise bad_param(f"outcome must be one of {', '.join(OUTCOMES)}")
        return value
    if name == "progress":
        if value not in PROGRESS_MODES:
            raise bad_param(f"progress must be one of {', '.join(PROGRESS_MODES)}")
        return value
    if name in ("error_code", "error_message", "api_key"):
        if not isinstance(value, str) or not value:
            raise bad_param(f"{name} must be a non-empty string")
        return value
    if name == "account_keys":
        if not isinstance(value, (list, tuple)) or not all(isinstance(k, str) and k for k in value):
            raise bad_param("account_keys must be a list of non-empty strings")
        return tuple(value)
    if name == "insufficient_balance":
        if not isinstance(value, bool):
            raise bad_param("insufficient_balance must be true or false")
        return value
    if name == "task_id":
        if not isinstance(value, str) or not TASK_ID_RE.fullmatch(value):
            raise bad_param("task_id must match ^v_[0-9a-f]{32}$")
        return value
    if name == "poll_errors":
        if not isinstance(value, (list, tuple)):
            raise bad_param(_POLL_ERRORS_RULE)
        return [_check_poll_fault(entry) for entry in value]
    if name in ("reset", "malformed"):
        if not _is_int(value) or not 0 <= value <= MAX_FAULT_COUNT:
            raise bad_param(f"{name} must be a whole number of polls between 0 and {MAX_FAULT_COUNT}")
        return value
    if name in ("slow_polls", "drip_polls", "missing_url_polls"):
        if value is not None and (not _is_int(value) or not 0 <= value <= MAX_FAULT_COUNT):
            raise bad_param(f"{name} must be null (every poll) or a whole number between 0 and {MAX_FAULT_COUNT}")
        return value
    if name == "slow_s":
        if not _is_number(value) or not 0 <= value <= MAX_SLOW_S:
            raise bad_param(f"slow_s must be a number of seconds between 0 and {MAX_SLOW_S:g}")
        return float(value)
    if name == "drip_s":
        if not _is_number(value) or not 0 <= value <= MAX_DRIP_S:
            raise bad_param(f"drip_s must be a number of seconds between 0 and {MAX_DRIP_S:g}")
        return float(value)
    if name == "video_bytes":
        if not _is_int(value) or not len(FAKE_MP4) <= value <= MAX_VIDEO_BYTES:
            raise bad_param(f"video_bytes must be a whole number between {len(FAKE_MP4)} and {MAX_VIDEO_BYTES}")
        return value
    if name == "video_stall_at":
        if value is not None and (not _is_int(value) or value < 0):
            raise bad_param("video_stall_at must be null (never) or a whole number of bytes")
        return value
    if name == "unknown_after":
        if not _is_number(value) or not 0 <= value <= 1:
            raise bad_param("unknown_after must be a fraction of the run time between 0 and 1")
        return float(value)
    if name == "unknown_status":
        if value is None:
            return None
        if not isinstance(value, str) or not UNKNOWN_STATUS_RE.fullmatch(value) or value.lower() in DOCUMENTED_STATUSES:
            raise bad_param(
                "unknown_status must be null or a status name Router One does not document (e.g. upscaling)"
            )
        return value
    if name in ("progress_backwards", "missing_url", "drip_submit"):
        if not isinstance(value, bool):
            raise bad_param(f"{name} must be true or false")
        return value
    raise bad_param(f"unknown key {name!r}")


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
        if text in FAULT_TOKENS:
            return text
        match = STATUS_FAULT_RE.fullmatch(text)
        if match and 400 <= int(match[1]) <= 599:
            status, retry_after = int(match[1]), match[2]
            if retry_after is None:
                return status
            if retry_after != "none" and int(retry_after) > MAX_RETRY_AFTER_S:
                raise bad_param(f"poll_errors: retry-after must be at most {MAX_RETRY_AFTER_S} seconds")
            return f"{status}:retry-after={'none' if retry_after == 'none' else int(retry_after)}"
    raise bad_param(_POLL_ERRORS_RULE)


def apply_job_options(base: JobConfig, checked: dict[str, Any]) -> JobConfig:
    """``base`` with the job options among ``checked`` applied."""
    changes = {k: v for k, v in checked.items() if k in JOB_KEYS}
    if "poll_errors" in changes:
        changes["poll_errors"] = tuple(changes["poll_errors"])
    return replace(base, **changes)


def check_fields(raw: dict[str, Any], allowed: frozenset[str]) -> dict[str, Any]:
    """Validate a scripting object against the keys one entry point accepts."""
    checked: dict[str, Any] = {}
    for key, value in raw.items():
        name = _ALIASES.get(key, key)
        if name not in allowed:
            raise bad_param(f"unknown key {key!r}; allowed: {', '.join(sorted(allowed))}")
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
        raise bad_param(f"sim directive: bad value {text!r} for {name}") from None
    return text


def _parse_options(text: str, allowed: frozenset[str], where: str) -> dict[str, Any]:
    """``key=value`` words (shell quoting allowed), checked against the keys ``allowed``."""
    raw: dict[str, Any] = {}
    try:
        tokens = shlex.split(text)
    except ValueError as exc:
        raise bad_param(f"{where}: {exc}") from None
    for token in tokens:
        key, sep, value = token.partition("=")
        if not sep or not key:
            raise bad_param(f"{where}: expected key=value, got {token!r}")
        raw[key] = _from_text(_ALIASES.get(key, key), value)
    return check_fields(raw, allowed)


def parse_directive(prompt: str) -> dict[str, Any]:
    """Read every ``[sim key=value ...]`` block in a prompt; later keys win."""
    found: dict[str, Any] = {}
    for match in _DIRECTIVE_RE.finditer(prompt):
        found |= _parse_options(match.group(1), DIRECTIVE_KEYS, "sim directive")
    return found


def parse_faults(text: str) -> dict[str, Any]:
    """Fault options written as in a directive (``"reset=1 slow_s=2"``), as ``--faults`` takes them."""
    return _parse_options(text, FAULT_KEYS, "faults")
