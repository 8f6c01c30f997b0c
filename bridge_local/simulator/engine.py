"""The job engine: the simulator's state and rules, independent of HTTP. It checks keys and submits,
scales a job's run time by the request's ``duration``, and answers polls with the faults each job
was scripted with."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from bridge_local.simulator.jobs import Job, PollAnswer, injected_error
from bridge_local.simulator.options import (
    ASPECT_RATIOS,
    CONFIG_KEYS,
    FAULT_TOKENS,
    MAX_IMAGE_URLS,
    MAX_SCALED_VIDEO_S,
    NEXT_KEYS,
    OVERSIZED_MARKER,
    REFERENCE_VIDEO_S,
    RESET,
    TASK_ID_RE,
    ApiError,
    JobConfig,
    ServerConfig,
    bad_param,
)
from bridge_local.simulator.scripting import apply_job_options, check_fields, parse_directive


def parse_json_object(body: bytes) -> dict[str, Any]:
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
            raise bad_param(f"{name} is required and must be a non-empty string")
    for name in ("size", "negative_prompt", "image_url", "input_reference"):
        if body.get(name) is not None and not isinstance(body[name], str):
            raise bad_param(f"{name} must be a string")
    duration = body.get("duration")
    if duration is not None and (not isinstance(duration, int) or isinstance(duration, bool) or duration <= 0):
        raise bad_param("duration must be a positive integer")
    aspect = body.get("aspect_ratio")
    if aspect is not None and aspect not in ASPECT_RATIOS:
        raise bad_param(f"aspect_ratio must be one of {', '.join(ASPECT_RATIOS)}")
    urls = body.get("image_urls")
    if urls is not None and (
        not isinstance(urls, list) or len(urls) > MAX_IMAGE_URLS or not all(isinstance(u, str) for u in urls)
    ):
        raise bad_param(f"image_urls must be a list of at most {MAX_IMAGE_URLS} strings")


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


class Engine:
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
        body = parse_json_object(raw_body)
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
            job_config = apply_job_options(_scaled_by_duration(config.job, body), {**directive, **queued})
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
        if fault is not None and fault not in FAULT_TOKENS:
            return PollAnswer(error=injected_error(fault))
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
        checked = check_fields(raw, NEXT_KEYS)
        with self._lock:
            self._next.append(checked)
            return len(self._next)

    def configure(self, raw: dict[str, Any]) -> dict[str, Any]:
        checked = check_fields(raw, CONFIG_KEYS)
        with self._lock:
            job = apply_job_options(self._config.job, checked)
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
