"""Shapes the bridge speaks: the submit request, job states, the poll loop's state."""

from __future__ import annotations

import json
import math
from decimal import Clamped, Context, Decimal, DecimalException, Inexact, Overflow, Rounded, Underflow
from enum import StrEnum
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict

MAX_METADATA_BYTES = 2048
# DynamoDB numbers: 38 significant digits, magnitudes 1E-130 to 1E+126. Any rounding or clamping
# traps, so a number that would not be stored exactly is refused (defined here rather than taken
# from boto3, which the models must not pull in at import time).
DYNAMODB_NUMBERS = Context(Emin=-128, Emax=126, prec=38, traps=[Clamped, Overflow, Inexact, Rounded, Underflow])
# Metadata is stored as a DynamoDB map (32 levels at most, counting the row around it) and echoed in
# every event; 16 levels is far more than an order id or a few tags need.
MAX_METADATA_DEPTH = 16
MAX_CALLBACK_URL_LENGTH = 2048
# Prompts are a scene description, not a document; 10,000 characters is several pages of text and
# keeps the stored job row (which holds the request) far below DynamoDB's 400 KB item limit.
MAX_PROMPT_LENGTH = 10_000
MAX_MODEL_LENGTH = 256
# Router One's models make clips of seconds ("commonly 4, 5, 6, 8"); an hour is beyond any of them,
# and the bound keeps the number storable (DynamoDB numbers have 38 digits).
MAX_DURATION_SECONDS = 3600


def _plain_text(value: str) -> str:
    """Text every hop can carry: no NUL (C strings, logs and many stores choke on it) and no
    unpaired surrogates (JSON's "\\ud800" escape parses to one; it has no UTF-8 encoding)."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no unpaired surrogates)") from None
    return value


def _storable_number(value: int | float) -> None:
    # DynamoDB keeps 38 significant digits between 1E-130 and 1E+126; anything else fails the write
    # after Router One has already accepted (and billed) the job.
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("numbers must be finite")
    try:
        DYNAMODB_NUMBERS.create_decimal(Decimal(repr(value)) if isinstance(value, float) else value)
    except DecimalException:
        raise ValueError("numbers must have at most 38 significant digits and fit DynamoDB's range") from None


def _check_json_tree(value: Any) -> None:
    """Walk a metadata object without recursion: depth, keys, text and numbers every store accepts."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        if isinstance(node, dict | list):
            if depth > MAX_METADATA_DEPTH:
                raise ValueError(f"must nest at most {MAX_METADATA_DEPTH} levels deep")
            if isinstance(node, dict):
                for key in node:
                    if not isinstance(key, str) or not key:
                        raise ValueError("keys must be non-empty strings")
                    _plain_text(key)
            children = node.values() if isinstance(node, dict) else node
            pending.extend((child, depth + 1) for child in children)
        elif isinstance(node, str):
            _plain_text(node)
        elif isinstance(node, bool) or node is None:
            continue
        elif isinstance(node, int | float):
            _storable_number(node)
        else:
            raise ValueError("must hold only JSON values")


def _small_object(value: dict[str, Any]) -> dict[str, Any]:
    # Echoed in every event: keep it small enough for SNS attributes, rows and webhook bodies.
    _check_json_tree(value)
    if len(json.dumps(value, separators=(",", ":"))) > MAX_METADATA_BYTES:
        raise ValueError(f"must be at most {MAX_METADATA_BYTES} bytes as JSON")
    return value


def _http_uri(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in value):
        raise ValueError("must be an http(s) URI")
    return value


Text = Annotated[str, AfterValidator(_plain_text)]
HttpUri = Annotated[str, AfterValidator(_plain_text), AfterValidator(_http_uri)]
Metadata = Annotated[dict[str, Any], AfterValidator(_small_object)]


class WebhookEvent(StrEnum):
    """What a webhook receiver can ask for; the event types are `video.generation.<name>`."""

    STARTED = "started"
    PROGRESS = "progress"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELED = "canceled"


DEFAULT_WEBHOOK_EVENTS = (WebhookEvent.COMPLETED, WebhookEvent.FAILED, WebhookEvent.TIMED_OUT, WebhookEvent.CANCELED)
# Fields the bridge keeps for itself; Router One never sees them.
BRIDGE_FIELDS = frozenset({"callback_url", "webhook_events_filter", "metadata"})


class GenerationRequest(BaseModel):
    """Router One's submit body, validated by the same rules Router One documents."""

    # Strict: "5" is not a duration and 5 is not a prompt. Unknown fields are refused, not dropped.
    # Built at first use (defer_build), as every model here: a function pays only for those it uses.
    model_config = ConfigDict(strict=True, extra="forbid", defer_build=True)

    model: Text = Field(
        min_length=1, max_length=MAX_MODEL_LENGTH, description="A Router One model id with video capability"
    )
    prompt: Text = Field(min_length=1, max_length=MAX_PROMPT_LENGTH, description="Scene, camera movement, style")
    duration: int | None = Field(
        default=None, gt=0, le=MAX_DURATION_SECONDS, description="Seconds; allowed values depend on the model"
    )
    size: Text | None = Field(default=None, min_length=1, description="Resolution such as 720p or 1080p")
    aspect_ratio: Literal["16:9", "9:16", "1:1"] | None = None
    negative_prompt: Text | None = Field(default=None, max_length=MAX_PROMPT_LENGTH, description="What to avoid")
    image_url: HttpUri | None = Field(default=None, description="Reference image, http(s), at most 20 MB")
    image_urls: list[HttpUri] | None = Field(default=None, max_length=3, description="Up to 3 reference images")
    input_reference: Text | None = None

    # The bridge's own extras: where to push events, which ones, and what to echo back.
    callback_url: Text | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_CALLBACK_URL_LENGTH,
        description="https URL that receives signed webhook POSTs for this job",
    )
    # Strict mode would want enum instances; event names arrive as JSON strings.
    webhook_events_filter: list[Annotated[WebhookEvent, Strict(False)]] | None = Field(
        default=None,
        min_length=1,
        description="Events to send: completed, failed, timed_out, canceled by default; started, progress on request",
    )
    metadata: Metadata | None = Field(default=None, description="Small JSON object echoed in every event")

    def upstream_body(self) -> dict[str, Any]:
        """What goes to Router One: the fields the client set, none of the bridge's extras."""
        return self.model_dump(exclude_none=True, exclude=set(BRIDGE_FIELDS))

    def webhook_events(self) -> list[str]:
        chosen = self.webhook_events_filter or list(DEFAULT_WEBHOOK_EVENTS)
        return [event.value for event in dict.fromkeys(chosen)]


class JobStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELED = "canceled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.TIMED_OUT, JobStatus.CANCELED})


class SubmitAccepted(BaseModel):
    model_config = ConfigDict(defer_build=True)

    task_id: str
    status: str = "pending"


class UpstreamStatus(BaseModel):
    """One answer of Router One's status endpoint; unknown statuses are kept as they came."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    task_id: str | None = None
    status: str
    progress: float | None = None
    url: str | None = None
    error: Any = None


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
    # What the poll policy remembers between polls (bridge.poll_policy.PollMemory as JSON).
    poll_memory: dict[str, Any] = Field(default_factory=dict)


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
