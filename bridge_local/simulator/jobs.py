"""One simulated job: its timeline (status and progress from the clock), the faults it has left
to serve poll by poll, and its poll log."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bridge_local.simulator.options import (
    BACKWARDS_AT,
    BACKWARDS_TO,
    DEFAULT_RETRY_AFTER_S,
    FAKE_MP4,
    FILES_PREFIX,
    INJECTED_ERRORS,
    MAX_POLL_LOG,
    STEPPED_PROGRESS,
    ApiError,
    JobConfig,
)


def progress_at(mode: str, fraction: float) -> int:
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
                out["progress"] = progress_at(
                    cfg.progress, _restarted(fraction) if cfg.progress_backwards else fraction
                )
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


def injected_error(fault: int | str) -> ApiError:
    """The error answer of one ``poll_errors`` entry (a status, or ``"STATUS:retry-after=…"``)."""
    text = str(fault)
    status = int(text[:3])
    retry_after = text.partition("=")[2] or (str(DEFAULT_RETRY_AFTER_S) if status == 429 else "none")
    if status in INJECTED_ERRORS:
        type_, code, message = INJECTED_ERRORS[status]
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
