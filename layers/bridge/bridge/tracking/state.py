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

    def loop_input(self) -> dict[str, Any]:
        """The input of the execution that runs this loop (the state machine's `track` action)."""
        return self.model_dump(exclude={"execution_id"}) | {"action": "track"}


class LoopStep(LoopState):
    """The poll function's answer: the next state plus what the state machine does with it."""

    action: Literal["wait", "continue", "publish", "finish"]
    status: str
    next_execution_name: str | None = None
    event: dict[str, Any] | None = None
    detail_type: str | None = None
    # A webhook delivery for the state machine to queue (its SQS message body).
    webhook: dict[str, Any] | None = None
    # Copy the finished video to the stack's bucket before publishing.
    keep_video: bool = False

    def state_output(self) -> dict[str, Any]:
        """What the state machine gets: unset fields left out, but `webhook` and `event` always present
        (its Choices test them for null, which needs the paths to exist)."""
        return self.model_dump(exclude_none=True) | {"webhook": self.webhook, "event": self.event}
