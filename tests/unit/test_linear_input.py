"""The submit body's checks do work in proportion to the body, counted rather than timed.

Timing belongs to `benchmarks/adversarial_bodies.py`; here the work itself is counted, so a check
that turns quadratic fails whatever the machine:

- The depth pre-check's pattern reads every character at most once: from any quote it matches (an
  unterminated string runs to the end of the text), so no attempt is abandoned and retried from the
  next quote. The pattern it replaced is kept here as a control, to show the count would catch it.
- `_nests_deeper_than` reads the text once, and agrees with a plain character-by-character scanner.
- A body of thousands of unknown keys makes pydantic build a handful of errors, not one per key, and
  the answer is still the one pydantic would give first.
- No garbage collection runs while a body is parsed (with it, deep bodies grew superlinearly).
- Every adversarial body of the benchmark is refused by the handler with the right 400 code.
"""

from __future__ import annotations

import base64
import contextlib
import gc
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Hypothesis keeps its example database in ./.hypothesis unless told otherwise (see test_openapi.py).
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", str(Path(tempfile.gettempdir()) / "video-bridge-hypothesis"))

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import bridge.api.request_body as request_body
from benchmarks import adversarial_bodies as bench
from bridge.api.http_api import app
from bridge.api.request_body import MAX_BODY_BYTES, MAX_JSON_DEPTH, describe_validation_errors, parse_json_object
from bridge.api.routes import generations
from bridge.errors import InvalidRequest
from bridge.models import MAX_METADATA_BYTES, GenerationRequest

# The depth pattern before it was made linear: a string needed its closing quote, so from every quote
# inside an unterminated string the engine read to the end of the text, failed, and moved on by one.
OLD_STRUCTURE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
# The part of each pattern that reads a string, up to (not including) how the string must end: how far
# an attempt from a quote reads before it succeeds or gives up.
OLD_STRING_BODY = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*')
NEW_STRING_BODY = re.compile(r'"[^"\\]*+(?:\\.[^"\\]*+)*+', re.DOTALL)


def characters_read(structure: re.Pattern[str], string_body: re.Pattern[str], text: str) -> int:
    """The characters `structure.finditer(text)` reads: each match's span, one character for each
    position where nothing can start, and for an attempt from a quote that finds no match, as far as
    the string's body reached before the attempt failed (the engine had to read that far to fail)."""
    read, position = 0, 0
    while position < len(text):
        match = structure.match(text, position)
        if match is not None and match.end() > position:
            read += match.end() - position
            position = match.end()
            continue
        reach = string_body.match(text, position)
        read += max(1, reach.end() - position) if reach else 1
        position += 1
    return read


def unterminated_quotes(size: int) -> str:
    """A prompt of escaped quotes with no closing quote, after enough balanced brackets to be scanned."""
    prefix = '{"metadata": [' + "[]" * 40 + '], "prompt": "'
    return prefix + '\\"' * ((size - len(prefix)) // 2)


ADVERSARIAL_TEXTS = {
    "unterminated escaped quotes": unterminated_quotes,
    "unterminated, lone backslash at the end": lambda size: unterminated_quotes(size - 1) + "\\",
    "terminated escaped quotes": lambda size: '{"prompt": "' + '\\"[' * (size // 3) + '"}',
    "quotes only": lambda size: '"' * size,
    "escaped backslashes then quotes": lambda size: '"' + '\\\\\\\\\\"' * (size // 6),
    "short strings": lambda size: "[" + '"[",' * (size // 4) + '""]',
    "brackets": lambda size: "[]" * (size // 2),
}


# --------------------------------------------------------------------------- the depth pattern


@pytest.mark.parametrize("shape", ADVERSARIAL_TEXTS)
@pytest.mark.parametrize("size", [1024, 4096, 16384])
def test_the_depth_pattern_reads_each_character_at_most_once(shape: str, size: int) -> None:
    text = ADVERSARIAL_TEXTS[shape](size)
    assert characters_read(request_body._JSON_STRUCTURE, NEW_STRING_BODY, text) <= len(text)


def test_control_the_old_pattern_reads_quadratically_on_an_unterminated_string() -> None:
    # The count above would catch the old pattern: its reading grows with the square of the text.
    small, large = unterminated_quotes(1024), unterminated_quotes(4096)
    read_small = characters_read(OLD_STRUCTURE, OLD_STRING_BODY, small)
    read_large = characters_read(OLD_STRUCTURE, OLD_STRING_BODY, large)
    assert read_small > 100 * len(small)
    assert read_large > 12 * read_small  # 4x the text, about 16x the reading
    # And on terminated strings it was linear too: the quadratic case is the unterminated string.
    terminated = ADVERSARIAL_TEXTS["terminated escaped quotes"](4096)
    assert characters_read(OLD_STRUCTURE, OLD_STRING_BODY, terminated) <= len(terminated)


texts = st.text(alphabet='"\\[]{}a ', max_size=60)


@settings(max_examples=500, deadline=None)
@given(texts)
def test_from_every_quote_the_pattern_matches(text: str) -> None:
    # Why the reading stays linear: an attempt from a quote never fails, so nothing is read twice.
    for position, character in enumerate(text):
        if character == '"':
            assert request_body._JSON_STRUCTURE.match(text, position) is not None, (text, position)


def test_control_the_old_pattern_fails_from_quotes_of_an_unterminated_string() -> None:
    assert OLD_STRUCTURE.match('"a\\"b', 0) is None
    assert request_body._JSON_STRUCTURE.match('"a\\"b', 0).group() == '"a\\"b'


# --------------------------------------------------------------------------- the depth check


class CountingPattern:
    """Stands in for `_JSON_STRUCTURE` and counts the characters each call is asked to cover."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        self.covered = 0
        self.tokens = 0

    def findall(self, text: str, pos: int = 0, endpos: int = sys.maxsize) -> list[Any]:
        found = self.pattern.findall(text, pos, endpos)
        self.covered += min(endpos, len(text)) - pos
        self.tokens += len(found)
        return found

    def finditer(self, text: str, pos: int = 0, endpos: int = sys.maxsize) -> Iterator[re.Match[str]]:
        self.covered += min(endpos, len(text)) - pos
        for match in self.pattern.finditer(text, pos, endpos):
            self.tokens += 1
            yield match

    def _one(self, method: str, text: str, pos: int = 0, endpos: int = sys.maxsize) -> re.Match[str] | None:
        match = getattr(self.pattern, method)(text, pos, endpos)
        self.covered += (match.end() if match else min(endpos, len(text))) - pos
        self.tokens += match is not None
        return match

    def match(self, text: str, pos: int = 0, endpos: int = sys.maxsize) -> re.Match[str] | None:
        return self._one("match", text, pos, endpos)

    def search(self, text: str, pos: int = 0, endpos: int = sys.maxsize) -> re.Match[str] | None:
        return self._one("search", text, pos, endpos)


@pytest.mark.parametrize("shape", ADVERSARIAL_TEXTS)
def test_the_depth_check_reads_the_text_once(shape: str, monkeypatch: pytest.MonkeyPatch) -> None:
    text = ADVERSARIAL_TEXTS[shape](16384)
    counting = CountingPattern(request_body._JSON_STRUCTURE)
    monkeypatch.setattr(request_body, "_JSON_STRUCTURE", counting)
    request_body._nests_deeper_than(text, MAX_JSON_DEPTH)
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH:
        assert counting.covered > 0, "the scan ran"
    assert counting.covered <= len(text)
    assert counting.tokens <= len(text)


def deeper_than(text: str, limit: int) -> bool:
    """The depth check, one character at a time: what `_nests_deeper_than` must agree with."""
    depth, in_string, escaped = 0, False, False
    for character in text:
        if in_string:
            if escaped:
                escaped = False
            elif character == "\\":
                escaped = True
            elif character == '"':
                in_string = False
        elif character == '"':
            in_string = True
        elif character in "[{":
            depth += 1
            if depth > limit:
                return True
        elif character in "]}":
            depth -= 1
    return False


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet='"\\[]{}a', max_size=40), st.integers(min_value=0, max_value=4))
def test_the_depth_check_agrees_with_a_character_scanner(text: str, limit: int) -> None:
    assert request_body._nests_deeper_than(text, limit) == deeper_than(text, limit)


@pytest.mark.parametrize(
    ("text", "deep"),
    [
        ("[" * (MAX_JSON_DEPTH + 1), True),
        ("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH, False),
        ("{" + '"a":[' * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH + "}", True),
        ("[]" * 1000 + "[" * (MAX_JSON_DEPTH + 1), True),
        ("]" * 50 + "[" * 50, False),  # closing first never gets deep
        ('["' + "[" * 100 + '"]', False),  # inside a terminated string
        ('["' + '\\"[' * 100 + '"]', False),  # escaped quotes do not end the string
        ('["' + "[" * 100, False),  # unterminated: the rest of the text is string
        ('["' + "[" * 100 + "\\", False),  # unterminated, ending in a lone backslash
        ('"\\\\"' + "[" * (MAX_JSON_DEPTH + 1), True),  # an escaped backslash, then the string ends
        ('"\\"' + "[" * (MAX_JSON_DEPTH + 1), False),  # an escaped quote: the string goes on
        ("\\" + "[" * (MAX_JSON_DEPTH + 1), True),  # a backslash outside strings escapes nothing
    ],
)
def test_the_depth_check_counts_brackets_outside_strings_only(text: str, deep: bool) -> None:
    assert request_body._nests_deeper_than(text, MAX_JSON_DEPTH) is deep


# --------------------------------------------------------------------------- unknown keys


def envelope_of(body: dict[str, Any]) -> dict[str, Any] | None:
    """What read_generation_request answers for a parsed body: None when it validates."""
    try:
        request_body._validated(body)
    except InvalidRequest as refused:
        return refused.envelope()
    return None


def pydantic_envelope_of(body: dict[str, Any]) -> dict[str, Any] | None:
    """The same answer taken straight from pydantic's full list of errors."""
    try:
        GenerationRequest.model_validate(body)
    except ValidationError as exc:
        return describe_validation_errors(exc.errors()).envelope()
    return None


def test_many_unknown_keys_build_a_few_errors_not_one_per_key(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[int] = []

    def counting(errors: Any) -> InvalidRequest:
        errors = list(errors)
        built.append(len(errors))
        return describe_validation_errors(errors)

    monkeypatch.setattr(request_body, "describe_validation_errors", counting)
    unknown = {f"k{i}": 0 for i in range(5000)}
    assert envelope_of({"model": "video-default", "prompt": "a fox", **unknown})["error"] == {
        "message": "'k0' is not a known parameter",
        "type": "invalid_request_error",
        "code": "unknown_parameter",
        "param": "k0",
    }
    assert envelope_of(unknown)["error"]["code"] == "missing_required_parameter"
    assert envelope_of({"model": 5, "prompt": "a fox", **unknown})["error"]["param"] == "model"
    assert sum(built) <= 3 * len(GenerationRequest.model_fields)


known_values: dict[str, list[Any]] = {
    "model": ["video-default", "", 5, None],
    "prompt": ["a fox", "", None, ["a"]],
    "duration": [5, 0, "5", 5.5, None],
    "aspect_ratio": ["16:9", "4:3", None],
    "image_urls": [["https://example.com/a.png"], ["x"], "x", [5] * 5],
    "webhook_events_filter": [["completed"], [], ["bogus"], None],
    "metadata": [{"a": 1}, {"a": "\x00"}, [], {"a": [[[[]]]] * 400}],
}
fields = list(GenerationRequest.model_fields)


@st.composite
def bodies_with_unknown_keys(draw: st.DrawFn) -> dict[str, Any]:
    """Known fields with good or bad values and unknown keys, interleaved in any order."""
    pairs: list[tuple[str, Any]] = []
    for name in fields:
        if draw(st.floats(0, 1)) < (0.85 if name in ("model", "prompt") else 0.25):
            pairs.append((name, draw(st.sampled_from(known_values.get(name, ["ok", 5, None])))))
    for name in draw(st.lists(st.text(min_size=1, max_size=5).filter(lambda k: k not in fields), max_size=4)):
        pairs.append((name, draw(st.sampled_from([0, "x", None, {"a": 1}]))))
    return dict(draw(st.permutations(pairs)))


@settings(max_examples=400, deadline=None)
@given(bodies_with_unknown_keys())
def test_setting_unknown_keys_aside_answers_what_pydantic_names_first(body: dict[str, Any]) -> None:
    assert envelope_of(body) == pydantic_envelope_of(body)


# --------------------------------------------------------------------------- the collector


def collections_during(action: Any) -> list[int]:
    started: list[int] = []

    def note(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started.append(info["generation"])

    gc.callbacks.append(note)
    try:
        action()
    finally:
        gc.callbacks.remove(note)
    return started


NESTED = '{"model": "m", "prompt": "p", "metadata": {"a": [' + ",".join(["[[[]]]"] * 20_000) + "]}}"


def test_no_collection_runs_while_a_body_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    assert gc.isenabled()
    gc.collect()
    # At most the one collection that the 80,000 new arrays start once the collector is back on.
    assert len(collections_during(lambda: parse_json_object(NESTED))) <= 1
    assert gc.isenabled()
    # Control: with the collector running throughout, the same parse starts dozens of them.
    monkeypatch.setattr(request_body, "_collector_paused", contextlib.nullcontext)
    gc.collect()
    assert len(collections_during(lambda: parse_json_object(NESTED))) > 20


def test_the_collector_is_back_on_after_a_body_that_fails_to_parse() -> None:
    with pytest.raises(InvalidRequest, match="repeats the key"):
        parse_json_object(NESTED[:-1] + ', "model": "n"}')
    assert gc.isenabled()


def test_a_collector_switched_off_before_parsing_stays_off() -> None:
    gc.disable()
    try:
        parse_json_object(NESTED)
        assert not gc.isenabled()
    finally:
        gc.enable()


# --------------------------------------------------------------------------- the benchmark's bodies

EXPECTED_CODES = {
    'unterminated string of \\"': "invalid_json",
    'unterminated \\", lone \\ at the end': "invalid_json",
    'unterminated \\", no brackets before': "invalid_json",
    'unterminated \\", brackets only at the end': "invalid_json",
    'terminated string of \\"': "invalid_parameter",
    'many short strings "[{"': "invalid_parameter",
    "nesting past 32 at the end": "invalid_json",
    "nesting 32 deep, repeated": "invalid_parameter",
    "nesting 15 deep, repeated": "invalid_parameter",
    "integer of >100 digits": "invalid_json",
    "float of many digits": "unknown_parameter",
    "float exponent of many digits": "invalid_json",
    "many floats in metadata": "invalid_parameter",
    "many integers in metadata": "invalid_parameter",
    "many unknown keys": "unknown_parameter",
    "many unknown keys, model missing": "missing_required_parameter",
    "many keys in metadata": "invalid_parameter",
    "duplicate key at the end": "invalid_json",
    "many objects, last dup": "invalid_json",
    "long prompt": "invalid_parameter",
    "long prompt, non-ASCII": "invalid_parameter",
    "\\u00e9 escapes": "invalid_parameter",
    "\\ud800 escapes": "invalid_parameter",
    "long image_url": "invalid_parameter",
    "many image_urls": "invalid_parameter",
    "long webhook_events_filter": "invalid_parameter",
    "webhook_events_filter of 5s": "invalid_parameter",
    "image_urls of 5s": "invalid_parameter",
    "whitespace": "missing_required_parameter",
    "array, not an object": "invalid_json",
    "lone surrogate (text body)": "invalid_json",
    "base64: invalid UTF-8 at end": "invalid_json",
    'base64: unterminated \\"': "invalid_json",
}


def test_every_benchmark_shape_has_an_expected_answer() -> None:
    assert set(EXPECTED_CODES) == set(bench.SHAPES)


@pytest.fixture
def no_submit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A body that got past its checks would be submitted: make that a 500 the test sees."""

    def submit(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise AssertionError("an adversarial body reached the submit")

    monkeypatch.setattr(generations, "submit_with_key", submit)


@pytest.mark.usefixtures("no_submit")
@pytest.mark.parametrize("size", [64 * 1024, MAX_BODY_BYTES])
@pytest.mark.parametrize("shape", list(bench.SHAPES))
def test_each_adversarial_body_is_refused_with_its_400(shape: str, size: int) -> None:
    template = json.loads(bench.SUBMIT_EVENT.read_text())
    body = bench.SHAPES[shape](size)
    if body.base64:
        assert len(base64.b64decode(body.text)) == size
    elif body.text.isascii() or "\ud800" not in body.text:
        assert len(body.text.encode()) == size
    else:
        assert len(body.text) == size  # not encodable: its size is in characters
    response = app.resolve(bench.submit_event(template, body), bench.FakeContext())
    error = json.loads(response["body"])["error"]
    assert (response["statusCode"], error["code"]) == (400, EXPECTED_CODES[shape]), error


def test_the_metadata_walk_stops_once_the_object_cannot_fit_its_size_limit() -> None:
    # A bad value far past what 2 KB of JSON can hold is never reached: the size is the answer, so
    # a body of a million values costs what one of 2,048 does.
    values: list[Any] = [1] * (MAX_METADATA_BYTES + 10) + ["not\x00text"]
    with pytest.raises(ValidationError) as refused:
        GenerationRequest.model_validate({"model": "m", "prompt": "p", "metadata": {"a": values}})
    assert f"at most {MAX_METADATA_BYTES} bytes" in str(refused.value)
    # Within the limit's reach, the bad value itself is named.
    with pytest.raises(ValidationError) as refused:
        GenerationRequest.model_validate({"model": "m", "prompt": "p", "metadata": {"a": [1, "not\x00text"]}})
    assert "NUL" in str(refused.value)
