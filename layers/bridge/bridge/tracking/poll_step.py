"""One poll of a job: ask Router One, store what it says, send what is due, decide what comes next.

`tracking.invocation` runs these polls, several in one invocation while the waits are short. How
each upstream fault is handled is written up in docs/upstream-faults.md.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from bridge import aws_errors
from bridge.errors import BridgeError, UpstreamPermanentError, UpstreamTransientError
from bridge.models import JobStatus, UpstreamStatus
from bridge.observability import logger, metrics
from bridge.outcomes import publishing
from bridge.outcomes.ending import end_job
from bridge.settings import MIN_POLL_INTERVAL_S, PollingSettings, get_settings
from bridge.store import jobs
from bridge.store.job_record import JobRecord
from bridge.timeutil import parse_iso, utcnow
from bridge.tracking import model_stats
from bridge.tracking.eta_policy import ModelDurations, PollMemory, next_wait, remember
from bridge.tracking.loop import next_wait_seconds
from bridge.tracking.running_events import running_notice, started_claim
from bridge.tracking.state import LoopMemory, LoopState, LoopStep
from bridge.upstream.caller_keys import unseal
from bridge.upstream.configured import router_one, router_one_as
from bridge.upstream.router_one import RouterOneClient, UpstreamRetryLater

RUNNING_STATUSES = {"pending": JobStatus.PENDING, "processing": JobStatus.PROCESSING}

# A "completed" answer without a url is asked again this many times, at Router One's 3 s floor,
# before the job ends as failed (missing_video_url): a link that lags its status gets ~6 s to appear.
MISSING_URL_RETRIES = 2


def poll_once(
    raw_state: dict[str, Any] | LoopState, now: datetime | None = None, *, started_sent: bool = False
) -> LoopStep:
    """One poll; `started_sent`: an earlier poll of this invocation sent the job's `started` event."""
    state = LoopState.model_validate(raw_state)
    now = now or utcnow()
    past_deadline = now.timestamp() >= state.deadline_at
    try:
        seen = _upstream_for(state).status(state.task_id)
    except (UpstreamTransientError, BridgeError) as exc:
        # A missing key (BridgeError) may be fixed by an operator: retry like an outage.
        if past_deadline:
            return _finish(state, JobStatus.TIMED_OUT, now, error=_deadline_error(str(exc)))
        metrics.add_metric(name="UpstreamTransientErrors", unit="Count", value=1)
        if isinstance(exc, UpstreamRetryLater):
            # Step Functions retries at fixed intervals; only this function can wait as long as asked.
            logger.warning(
                "upstream asked to retry later; waiting as asked",
                extra={"task_id": state.task_id, "reason": str(exc), "retry_after_s": exc.retry_after_s},
            )
            return _wait_as_asked(state, exc.retry_after_s, now)
        logger.warning("transient poll failure", extra={"task_id": state.task_id, "reason": str(exc)})
        raise UpstreamTransientError(str(exc)) from None
    except UpstreamPermanentError as exc:
        logger.info("poll refused for good", extra={"task_id": state.task_id, "status_code": exc.status})
        return _finish(state, JobStatus.FAILED, now, error=exc.error)

    if seen.status == JobStatus.COMPLETED:
        if isinstance(seen.url, str) and seen.url.strip():
            return _finish(state, JobStatus.COMPLETED, now, url=seen.url)
        return _completed_without_url(state, seen, now, past_deadline=past_deadline)
    if seen.status == JobStatus.FAILED:
        return _finish(state, JobStatus.FAILED, now, error=_upstream_failure(seen))
    if past_deadline:
        return _finish(state, JobStatus.TIMED_OUT, now, error=_deadline_error(f"still {seen.status}"))
    return _keep_polling(state, seen, now, started_sent=started_sent)


def publish_recorded(raw_state: dict[str, Any] | LoopState, now: datetime | None = None) -> LoopStep:
    """The `publish` action: send the job's recorded outcome, as the row holds it, if it is still
    marked unpublished (after the video copy step, or for a cancel or the outcome check)."""
    state = LoopState.model_validate(raw_state)
    job = jobs.find_row(state.task_id)
    event = job.outcome_event() if job is not None and job.unpublished_since else None
    if job is None or event is None:
        logger.info("no unpublished outcome to send", extra={"task_id": state.task_id})
        return _finished(state, job.status.value if job is not None else "unknown")
    return _publish_step(state, job, event, now or utcnow(), copy_first=False)


def _upstream_for(state: LoopState) -> RouterOneClient:
    """The stack's client, or for a pass-through job one on the caller's key, unsealed for this poll."""
    if not state.poll_memory.caller_key:
        return router_one()
    sealed = jobs.sealed_caller_key(state.task_id)
    if sealed is None:
        # Removed when the job ended: whatever this poll would see is already recorded.
        raise UpstreamPermanentError(
            401,
            {
                "message": "the caller's Router One key is no longer held",
                "type": "bridge_error",
                "code": "caller_key_gone",
            },
        )
    return router_one_as(unseal(sealed))


def _keep_polling(state: LoopState, seen: UpstreamStatus, now: datetime, *, started_sent: bool) -> LoopStep:
    status = RUNNING_STATUSES.get(seen.status)
    if status is None:
        # Router One may add statuses; treat the unknown as still running rather than guess an end.
        metrics.add_metric(name="UpstreamUnknownStatus", unit="Count", value=1)
        logger.warning(
            "unknown upstream status, still polling", extra={"task_id": state.task_id, "status": seen.status}
        )
        status = JobStatus.PROCESSING
    reported = None if seen.progress is None else max(0, min(100, int(seen.progress)))
    # The job record never shows progress going down: an upstream restart (60 -> 20) keeps 60
    # until Router One passes it again. The poll policy still gets the value reported.
    progress = _highest(reported, state.poll_memory.progress_high)
    if reported is not None and progress != reported:
        logger.info(
            "upstream progress went backwards; keeping the highest",
            extra={"task_id": state.task_id, "reported": reported, "kept": progress},
        )
    previous = jobs.record_progress(
        state.task_id,
        status=status.value,
        progress=progress,
        upstream_status=seen.status,
        now=now,
        execution_id=state.execution_id,
        owner_id=state.poll_memory.owner_id,
        started_by=started_claim(state) if status == JobStatus.PROCESSING else None,
    )
    if previous is None:
        return _already_ended(state, status, now)
    notice = running_notice(previous, state=state, status=status, progress=progress, now=now, started_sent=started_sent)
    if notice.kind is not None:
        publishing.publish_running(state.task_id, notice.event, notice.detail_type, notice.webhook)

    memory, wait = _next_wait(state, status, reported, now)
    # Should the carried high have been lost, the row's value restores it from the next poll on.
    high = _highest(progress, previous.progress)
    carried = state.poll_memory.with_policy(memory).model_copy(update={"progress_high": high, "url_missing_polls": 0})
    return _loop_step(state, memory=carried, wait=wait, status=status, started_sent=notice.kind == "started")


def _completed_without_url(state: LoopState, seen: UpstreamStatus, now: datetime, *, past_deadline: bool) -> LoopStep:
    """Router One says completed but gives no url: ask again a couple of times, then fail clearly."""
    missing = state.poll_memory.url_missing_polls + 1
    if missing > MISSING_URL_RETRIES or past_deadline:
        metrics.add_metric(name="UpstreamMissingUrl", unit="Count", value=1)
        logger.error("upstream completed without a video url; job fails", extra={"task_id": state.task_id})
        return _finish(state, JobStatus.FAILED, now, error=_missing_url_error(missing))
    logger.warning(
        "upstream completed without a video url; asking again", extra={"task_id": state.task_id, "answers": missing}
    )
    previous = jobs.record_progress(
        state.task_id,
        status=JobStatus.PROCESSING.value,
        progress=state.poll_memory.progress_high,
        upstream_status=seen.status,
        now=now,
        execution_id=state.execution_id,
        owner_id=state.poll_memory.owner_id,
    )
    if previous is None:
        return _already_ended(state, JobStatus.PROCESSING, now)
    wait = next_wait_seconds(MIN_POLL_INTERVAL_S, seconds_to_deadline=state.deadline_at - now.timestamp())
    memory = state.poll_memory.model_copy(update={"url_missing_polls": missing})
    return _loop_step(state, memory=memory, wait=wait, status=JobStatus.PROCESSING)


def _wait_as_asked(state: LoopState, retry_after_s: float, now: datetime) -> LoopStep:
    """Poll again after Retry-After: never under the 3 s floor, at most the longest wait the loop
    uses anyway (PollMaxWaitSeconds, or the fixed interval if longer), never past the deadline."""
    settings = get_settings(PollingSettings)
    longest = max(settings.poll_max_wait_seconds, settings.poll_interval_seconds)
    asked = min(math.ceil(retry_after_s), longest)
    wait = next_wait_seconds(asked, seconds_to_deadline=state.deadline_at - now.timestamp())
    started = state.poll_memory.processing_since_s is not None
    status = JobStatus.PROCESSING if started else JobStatus.PENDING
    return _loop_step(state, memory=state.poll_memory, wait=wait, status=status)


def _loop_step(
    state: LoopState, *, memory: LoopMemory, wait: int, status: JobStatus, started_sent: bool = False
) -> LoopStep:
    """Poll again after `wait` seconds (where, the invocation decides)."""
    step = state.model_dump() | {
        "poll_memory": memory,
        "next_wait_s": wait,
        "status": status.value,
        "action": "wait",
        "started_sent": started_sent,
    }
    return LoopStep.model_validate(step)


def _already_ended(state: LoopState, status: JobStatus, now: datetime) -> LoopStep:
    unpublished = jobs.unpublished_outcome(state.task_id, state.execution_id)
    if unpublished is not None:
        # This very execution recorded the outcome and died before publishing it: publish it now.
        job, event = unpublished
        logger.info("publishing the outcome this execution recorded before a crash", extra={"task_id": state.task_id})
        return _publish_step(state, job, event, now)
    # The job already ended elsewhere (canceled, or another execution recorded its outcome).
    logger.info("job already ended, loop stops", extra={"task_id": state.task_id})
    return _finished(state, status.value)


def _finished(state: LoopState, status: str) -> LoopStep:
    return LoopStep.model_validate(state.model_dump() | {"action": "finish", "status": status})


def _highest(*values: int | None) -> int | None:
    known = [value for value in values if value is not None]
    return max(known) if known else None


def _next_wait(state: LoopState, status: JobStatus, progress: int | None, now: datetime) -> tuple[PollMemory, int]:
    """The poll policy's choice: from this job's progress rate, else its model's past run times."""
    settings = get_settings(PollingSettings)
    to_deadline = state.deadline_at - now.timestamp()
    elapsed = (now - parse_iso(state.submitted_at)).total_seconds()
    seen: Any = "processing" if status == JobStatus.PROCESSING else "pending"
    memory = remember(state.poll_memory.policy(), elapsed_s=elapsed, status=seen, progress=progress)
    if settings.polling_policy == "fixed":
        return memory, next_wait_seconds(settings.poll_interval_seconds, seconds_to_deadline=to_deadline)
    history = ModelDurations.from_durations(model_stats.recent_durations(state.model))
    wait = next_wait(
        elapsed_s=elapsed,
        memory=memory,
        history=history,
        seconds_to_deadline=to_deadline,
        max_wait_s=settings.poll_max_wait_seconds,
    )
    return memory, wait


def _remember_duration(state: LoopState, now: datetime) -> None:
    """Feed the model's history with how long this completed job spent processing."""
    since = state.poll_memory.processing_since_s
    elapsed = (now - parse_iso(state.submitted_at)).total_seconds()
    try:
        model_stats.record_duration(state.model, elapsed - since if since is not None else elapsed)
    except aws_errors.ClientError:
        logger.warning("could not record the model's duration", extra={"model": state.model})


def _finish(
    state: LoopState,
    status: JobStatus,
    now: datetime,
    *,
    url: str | None = None,
    error: dict[str, Any] | None = None,
) -> LoopStep:
    job = jobs.find_row(state.task_id)
    if job is None:
        # Deleted (or expired) under a running loop: nothing left to record or publish. Raising
        # would only bring the same poll back, since the state machine waits out every crash.
        logger.warning("the job's row is gone; loop stops", extra={"task_id": state.task_id})
        return _finished(state, status.value)
    to_publish = end_job(
        job,
        status,
        now=now,
        finalizer=state.execution_id,
        polled=True,
        url=url,
        url_ttl_s=get_settings(PollingSettings).video_url_ttl_seconds,
        error=error,
    )
    if to_publish is None:
        logger.info("outcome already recorded by another execution", extra={"task_id": state.task_id})
        return _finished(state, status.value)
    metrics.add_metric(name=f"Jobs{status.value.title().replace('_', '')}", unit="Count", value=1)
    if status == JobStatus.COMPLETED:
        _remember_duration(state, now)
    return _publish_step(state, job, to_publish, now)


def _publish_step(
    state: LoopState,
    job: JobRecord,
    event: dict[str, Any],
    now: datetime,
    *,
    copy_first: bool = True,
) -> LoopStep:
    """Send the recorded outcome, unless the video is to be kept first: then the state machine's
    KeepVideo step copies it and hands back here (`publish`). Raises `OutcomeNotPublished`."""
    status = JobStatus(event["data"]["status"])
    keep = (
        copy_first
        and get_settings(PollingSettings).keep_videos
        and status == JobStatus.COMPLETED
        and bool(event["data"].get("url"))
        and "video" not in event["data"]
    )
    if keep and state.machine_version >= 2:
        return LoopStep.model_validate(
            state.model_dump() | {"action": "keep_video", "status": status.value, "event": event}
        )
    if keep:
        # An execution started on an earlier definition has no step that would hand back after the copy.
        logger.warning(
            "video not kept: the execution predates the copy step's hand-back", extra={"task_id": job.task_id}
        )
    publishing.publish_outcome(job, event, now)
    return _finished(state, status.value)


def _upstream_failure(seen: UpstreamStatus) -> dict[str, Any]:
    """Router One's reason for a failed generation, as an object whatever shape it came in."""
    if isinstance(seen.error, dict):
        return {"message": str(seen.error.get("message") or "generation failed"), **seen.error}
    reason = str(seen.error) if seen.error else "generation failed"
    return {"message": reason, "type": "generation_error", "code": "generation_failed"}


def _missing_url_error(answers: int) -> dict[str, Any]:
    return {
        "message": f"Router One reported the generation completed but sent no video url ({answers} answers in a row)",
        "type": "api_error",
        "code": "missing_video_url",
    }


def _deadline_error(last_seen: str) -> dict[str, Any]:
    return {
        "message": f"no outcome before the deadline ({last_seen})",
        "type": "bridge_error",
        "code": "deadline_exceeded",
    }
