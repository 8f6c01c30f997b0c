"""The poll loop's state as the state machine carries it between waits: every field declared.

JSON field names are those of executions already running, so an upgrade never strands one. What
the loop remembers between polls sits in `poll_memory` because the state machine's definition
passes that one object through whole: a new top-level field would be dropped (or fail on a missing
path) in every execution started before the upgrade that added it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer

from bridge.store.job_record import JobRecord
from bridge.tracking.eta_policy import PollMemory


class LoopMemory(BaseModel):
    """What the loop remembers between polls (`poll_memory`); defaults are left out of the JSON."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    # The ETA policy's memory (see `eta_policy.PollMemory`): first `processing`, recent readings.
    processing_since_s: float | None = None
    samples: list[tuple[float, int]] = Field(default_factory=list)
    # The highest progress recorded so far: the job's row never shows progress going down.
    progress_high: int | None = None
    # "completed" answers in a row that carried no video url.
    url_missing_polls: int = 0
    # Kept for the job's life: a pass-through job (each poll reads its sealed key from the row,
    # never from here) and the job's owner (each poll files the job under its owner's status).
    caller_key: bool = False
    owner_id: str | None = None

    @classmethod
    def for_job(cls, job: JobRecord) -> LoopMemory:
        return cls(caller_key=bool(job.caller_key_ciphertext), owner_id=job.owner_id or None)

    def policy(self) -> PollMemory:
        return PollMemory.from_dict({"processing_since_s": self.processing_since_s, "samples": self.samples})

    def with_policy(self, memory: PollMemory) -> LoopMemory:
        return self.model_copy(
            update={"processing_since_s": memory.processing_since_s, "samples": list(memory.samples)}
        )


class LoopState(BaseModel):
    """What the state machine carries between waits: the poll function's input and output."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    task_id: str
    model: str
    submitted_at: str
    deadline_at: int
    next_wait_s: int
    generation: int = 0
    polls_in_execution: int = 0
    execution_id: str | None = None
    poll_memory: LoopMemory = Field(default_factory=LoopMemory)
    # What the execution asks of this invocation: "publish" its recorded outcome (a cancel's or the
    # outcome check's execution, or after the video copy), else poll.
    action: str = "track"
    # 2: the definition that leaves every send to the functions (it has a KeepVideo step that hands
    # back to the poll function). Executions started on an earlier one send nothing of this field.
    machine_version: int = 1

    @field_serializer("poll_memory")
    def _compact_memory(self, memory: LoopMemory) -> dict[str, Any]:
        return memory.model_dump(mode="json", exclude_defaults=True)

    @classmethod
    def first(cls, job: JobRecord, *, first_wait_s: int) -> LoopState:
        """The state a job's loop starts from, all of it taken from the stored row."""
        return cls(
            task_id=job.task_id,
            model=job.model,
            submitted_at=job.created_at,
            deadline_at=job.deadline_at,
            next_wait_s=first_wait_s,
            poll_memory=LoopMemory.for_job(job),
        )

    def loop_input(self, action: str = "track") -> dict[str, Any]:
        """The input of an execution: `track` runs this loop, `publish` sends the recorded outcome."""
        return self.model_dump(exclude={"execution_id", "machine_version"}) | {"action": action}


class LoopStep(LoopState):
    """The poll function's answer: the next state plus what the state machine does with it."""

    # wait: poll again after next_wait_s; continue: in a fresh execution; keep_video: copy the video
    # (KeepVideo), then publish; finish: the outcome is out, or another writer's.
    action: Literal["wait", "continue", "keep_video", "finish"]  # type: ignore[assignment]
    status: str
    next_execution_name: str | None = None
    # The recorded outcome, for the video copy to enrich.
    event: dict[str, Any] | None = None
    # This poll sent the job's `started` event (a later poll of the same invocation must not).
    started_sent: bool = Field(default=False, exclude=True)

    def state_output(self) -> dict[str, Any]:
        """What the state machine gets: unset fields left out. `webhook` and `event` are always there:
        the Choices of executions started on an earlier definition test them for null, which needs the
        paths to exist (this function sends everything itself, so for them both are null)."""
        return self.model_dump(exclude_none=True, exclude={"machine_version"}) | {
            "webhook": None,
            "event": self.event if self.action == "keep_video" else None,
            "keep_video": False,
        }
