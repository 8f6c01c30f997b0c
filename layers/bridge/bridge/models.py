"""Shapes the bridge speaks: the submit request, job statuses, Router One's answers."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Clamped, Context, Decimal, DecimalException, Inexact, Overflow, Rounded, Underflow
from enum import StrEnum
from itertools import islice
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, Strict
from pydantic_core import core_schema

if TYPE_CHECKING:
    from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
    from pydantic.json_schema import JsonSchemaValue
    from pydantic_core import CoreSchema

MAX_METADATA_BYTES = 2048
# DynamoDB numbers: 38 significant digits, magnitudes 1E-130 to 1E+126. Any rounding or clamping
# traps, so a number that would not be stored exactly is refused (defined here rather than taken
# from boto3, which the models must not pull in at import time).
DYNAMODB_NUMBERS = Context(Emin=-128, Emax=126, prec=38, traps=[Clamped, Overflow, Inexact, Rounded, Underflow])
# Metadata is stored as a DynamoDB map (32 levels at most, counting the row around it) and echoed in
# every event; 16 levels is far more than an order id or a few tags need.
MAX_METADATA_DEPTH = 16
# URLs: 2,048 characters is what browsers and CDNs reliably carry (and ssrf_guard.MAX_URL_LENGTH);
# a presigned S3 URL is well under half of it.
MAX_URL_LENGTH = 2048
# Prompts are a scene description, not a document; 10,000 characters is several pages of text and
# keeps the stored job row (which holds the request) far below DynamoDB's 400 KB item limit.
MAX_PROMPT_LENGTH = 10_000
MAX_MODEL_LENGTH = 256
# A resolution token ("720p", "1080p", "1920x1080"); 64 leaves room for any model's spelling.
MAX_SIZE_LENGTH = 64
# A model-specific id (an upload id, an asset name, perhaps a URL): a URL's length is the most it needs.
MAX_INPUT_REFERENCE_LENGTH = 1024
MAX_IMAGE_URLS = 3
# Router One's models make clips of seconds ("commonly 4, 5, 6, 8"); an hour is beyond any of them,
# and the bound keeps the number storable (DynamoDB numbers have 38 digits).
MAX_DURATION_SECONDS = 3600

# The string rules below are regexes that the validators apply with fullmatch AND that the JSON
# schema states as `pattern` (see FullMatch), so the OpenAPI document and the code cannot disagree.
# JSON Schema patterns are ECMA-262, so they use only syntax both engines read alike: no \s, \d, \w
# (Unicode-aware in Python, not in ECMA), no inline flags, ^ and $ only around the whole pattern.

# Whitespace to Python's str.isspace() or to ECMA's \s: the union (U+001C-U+001F and U+0085 are
# whitespace only to Python, U+FEFF only to ECMA), so neither side calls blank what the other does not.
_BLANK = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
# Any text without NUL (C strings, logs and many stores choke on it).
TEXT_PATTERN = r"^[^\x00]*$"
# The same with at least one character that is not whitespace. Leading blanks are a class disjoint
# from the character after them, so the match is linear even on 10,000 characters.
NON_BLANK_TEXT_PATTERN = rf"^[{_BLANK}]*[^\x00{_BLANK}][^\x00]*$"

# An http(s) URI (RFC 3986) that names a host. Scheme and authority follow the RFC's grammar; the
# path, query and fragment may hold any printable ASCII, because browsers leave `{ } | ^` unescaped
# in queries and such URLs worked before. Non-ASCII must be percent-encoded (hosts in punycode).
_HEX16 = "[0-9A-Fa-f]{1,4}"
_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"  # no leading zeros, as Python's ipaddress
_IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_LS32 = f"(?:{_HEX16}:{_HEX16}|{_IPV4})"


def _ipv6_pattern() -> str:
    """RFC 3986's IPv6address, alternative by alternative: `::` stands for the groups not written."""
    forms = [f"(?:{_HEX16}:){{6}}{_LS32}", f"::(?:{_HEX16}:){{5}}{_LS32}"]
    tails = [*(f"(?:{_HEX16}:){{{n}}}{_LS32}" for n in (4, 3, 2, 1)), _LS32, _HEX16, ""]
    for before, tail in enumerate(tails):
        head = f"(?:{_HEX16}:){{0,{before}}}{_HEX16}" if before else _HEX16
        forms.append(f"(?:{head})?::{tail}")
    return f"(?:{'|'.join(forms)})"


_PCT = "%[0-9A-Fa-f]{2}"
# RFC 3986 unreserved and sub-delims; the hyphen first, where both engines read it as itself.
_NAME_CHARS = "-A-Za-z0-9._~!$&'()*+,;="
_PORT = "(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"
HTTP_URI_PATTERN = (
    "^[Hh][Tt][Tt][Pp][Ss]?://"  # the scheme is case-insensitive (RFC 3986 3.1)
    f"(?:(?:[{_NAME_CHARS}:]|{_PCT})*@)?"  # userinfo (callback_url's own check refuses credentials)
    rf"(?:\[{_ipv6_pattern()}\]|(?:[{_NAME_CHARS}]|{_PCT})+)"  # an IPv6 literal or a name/IPv4 address
    f"(?::{_PORT}?)?"  # 0 to 65535, what urlsplit's .port takes; "host:" alone means the default port
    "(?:[/?#][!-~]*)?$"
)


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


_TOO_LARGE = f"must be at most {MAX_METADATA_BYTES} bytes as JSON"


def _check_json_tree(value: Any) -> None:
    """Walk a metadata object without recursion: depth, keys, text and numbers every store accepts.

    Every value takes at least one byte of JSON, so past `MAX_METADATA_BYTES` of them the object is
    too large whatever they are: the walk stops there, and a huge body costs no more than a small one.
    """
    pending: list[tuple[Any, int]] = [(value, 1)]
    visited = 0
    while pending:
        node, depth = pending.pop()
        visited += 1
        if visited > MAX_METADATA_BYTES:
            raise ValueError(_TOO_LARGE)
        if isinstance(node, dict | list):
            if depth > MAX_METADATA_DEPTH:
                raise ValueError(f"must nest at most {MAX_METADATA_DEPTH} levels deep")
            if isinstance(node, dict):
                for key in node:
                    if not isinstance(key, str) or not key:
                        raise ValueError("keys must be non-empty strings")
                    _plain_text(key)
            children = node.values() if isinstance(node, dict) else node
            # No more than the walk may still visit: a list of a million items costs no more than 2 KB of them.
            pending.extend((child, depth + 1) for child in islice(children, MAX_METADATA_BYTES - visited + 1))
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
        raise ValueError(_TOO_LARGE)
    return value


@dataclass(frozen=True)
class FullMatch:
    """A string rule stated once: the validator requires `pattern` to match the whole value, and the
    JSON schema carries the same `pattern`. `explain` turns a refused value into the error message."""

    pattern: str
    explain: Callable[[str], str]

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        # Compiled when the model is built (deferred to first use), not at import.
        matches = re.compile(self.pattern).fullmatch

        def check(value: str) -> str:
            if matches(value) is None:
                raise ValueError(self.explain(value))
            return value

        return core_schema.no_info_after_validator_function(check, handler(source))

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return {**handler(schema), "pattern": self.pattern}


def _text_refusal(value: str) -> str:
    return "must not contain NUL characters" if "\x00" in value else "must not be blank (whitespace only)"


def _uri_refusal(value: str) -> str:
    return "must be an http(s) URI naming a host, in printable ASCII (percent-encode anything else)"


_TEXT = FullMatch(TEXT_PATTERN, _text_refusal)
# Text that must say something: `model`, `prompt` and `size` are values Router One acts on, and one of
# spaces is always a client's mistake (an empty `size` was already refused). `negative_prompt` and
# `input_reference` take blank text: it means "nothing", and form-based clients send it for that.
_NON_BLANK = FullMatch(NON_BLANK_TEXT_PATTERN, _text_refusal)
# No unpaired surrogates either: JSON's "\ud800" escape parses to one, it has no UTF-8 encoding, and
# no JSON Schema pattern says so portably (ECMA engines see UTF-16 code units, or code points with /u).
_ENCODABLE = AfterValidator(_plain_text)

# Every string is bounded first and then checked, so no regex sees more than the bound and an
# over-long value gets pydantic's "at most N characters" (a bound on the field itself would run last).
ModelId = Annotated[str, Field(min_length=1, max_length=MAX_MODEL_LENGTH), _NON_BLANK, _ENCODABLE]
Prompt = Annotated[str, Field(min_length=1, max_length=MAX_PROMPT_LENGTH), _NON_BLANK, _ENCODABLE]
Size = Annotated[str, Field(min_length=1, max_length=MAX_SIZE_LENGTH), _NON_BLANK, _ENCODABLE]
NegativePrompt = Annotated[str, Field(max_length=MAX_PROMPT_LENGTH), _TEXT, _ENCODABLE]
InputReference = Annotated[str, Field(max_length=MAX_INPUT_REFERENCE_LENGTH), _TEXT, _ENCODABLE]
# The pattern admits printable ASCII only, so neither NUL nor a surrogate can pass it.
HttpUri = Annotated[str, Field(max_length=MAX_URL_LENGTH), FullMatch(HTTP_URI_PATTERN, _uri_refusal)]
Metadata = Annotated[dict[str, Any], AfterValidator(_small_object)]


def _whole_number(value: Any) -> Any:
    # JSON has one number type, and to JSON Schema (so to the document) 5.0 is the integer 5: accept it
    # as 5. 5.5, "5" and true still fail the strict integer check.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


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

    model: ModelId = Field(description="A Router One model id with video capability")
    prompt: Prompt = Field(description="Scene, camera movement, style")
    # The bounds sit inside the Annotated: on the field they would miss the int under the before-validator
    # (and reach the JSON schema as "gt"/"le" rather than exclusiveMinimum/maximum).
    duration: Annotated[int, Field(gt=0, le=MAX_DURATION_SECONDS), BeforeValidator(_whole_number)] | None = Field(
        default=None, description="Seconds; allowed values depend on the model"
    )
    size: Size | None = Field(
        default=None, description="Resolution such as 720p or 1080p; the range depends on the model"
    )
    aspect_ratio: Literal["16:9", "9:16", "1:1"] | None = Field(default=None, description="Frame shape")
    negative_prompt: NegativePrompt | None = Field(default=None, description="What to avoid")
    image_url: HttpUri | None = Field(
        default=None, description="Reference image for image-to-video: an http(s) URI of an image of at most 20 MB"
    )
    image_urls: list[HttpUri] | None = Field(
        default=None,
        max_length=MAX_IMAGE_URLS,
        description=f"Up to {MAX_IMAGE_URLS} reference images, each under the same rule as image_url",
    )
    input_reference: InputReference | None = Field(
        default=None, description="A model-specific reference id, only where the model asks for one"
    )

    # The bridge's own extras: where to push events, which ones, and what to echo back.
    callback_url: HttpUri | None = Field(
        default=None,
        description=(
            "https URL that receives signed webhook POSTs for this job; its host must resolve to public "
            "addresses only (checked at submit, 400 invalid_callback_url otherwise)"
        ),
    )
    # Strict mode would want enum instances; event names arrive as JSON strings. Repeats are allowed
    # (and sent once), but never more entries than there are events.
    webhook_events_filter: list[Annotated[WebhookEvent, Strict(False)]] | None = Field(
        default=None,
        min_length=1,
        max_length=len(WebhookEvent),
        description="Events to send: completed, failed, timed_out, canceled by default; started, progress on request",
    )
    metadata: Metadata | None = Field(
        default=None,
        description=(
            f"JSON object echoed in every event: at most {MAX_METADATA_BYTES} bytes as compact JSON, "
            f"{MAX_METADATA_DEPTH} levels deep, non-empty keys, no NUL, numbers DynamoDB can store "
            "(38 significant digits)"
        ),
    )

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
