"""Submit bodies built to be slow, through the real api handler: `.venv/bin/python benchmarks/adversarial_bodies.py`.

Every check the bridge makes on a request body (size, Content-Type, UTF-8, the nesting pre-check,
strict JSON, the request model) has to run in time linear in the body's size: a body costs the
caller nothing to send, and a check that is quadratic in it turns one request into seconds of
Lambda time. This script builds bodies of exactly 16, 64 and 256 KiB (256 KiB is the largest body
the handler accepts) in shapes aimed at each check: strings of escaped quotes (terminated and not),
nesting past and just under the depth limit, long and many numbers, many keys, long and many
fields, duplicate keys, escapes, bad UTF-8 and base64.

Each body goes to `functions/api/app.py:handler` as an API Gateway REST proxy event for
`POST /v1/videos/generations`, in this process, with the test environment (no telemetry). Every
body is refused before anything reaches AWS or Router One, so nothing is mocked; sockets are
disabled all the same, so a body that slipped through would fail (a 5xx) rather than reach the
network. A body answered with anything but a 400, 413 or 415 is reported as a failure.

Timing: one untimed call per body, then the median of `--repeat` calls (5 by default). The table
gives, per shape and size, the milliseconds, the growth from 64 to 256 KiB and the status and error
code returned; below it, the worst shape per size and how the worst case grew from 64 to 256 KiB.
Medians rise when other processes share the CPUs: the summary also gives each worst case's fastest
call, which they affect least.

Targets on this machine: the worst 256 KiB body takes under 100 ms, and the worst case grows at
most 5x from 64 to 256 KiB (4x the bytes; a quadratic check would grow about 16x). Exits 1 if a
target is missed or any body was answered otherwise.
"""

from __future__ import annotations

import argparse
import base64
import copy
import importlib.util
import json
import os
import socket
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "layers" / "bridge"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

# What the handler reads from its environment at import; set before it is imported (as tests/conftest.py).
ENVIRONMENT = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "benchmark",
    "AWS_SECRET_ACCESS_KEY": "benchmark",
    "JOBS_TABLE_NAME": "jobs-benchmark",
    "ROUTER_ONE_API_KEY_SECRET": "router-one-key-benchmark",
    "POWERTOOLS_SERVICE_NAME": "video-bridge-benchmark",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "VideoBridgeBenchmark",
    "POWERTOOLS_LOG_LEVEL": "ERROR",
}
SUBMIT_EVENT = ROOT / "events" / "api_submit.json"
API_HANDLER = ROOT / "functions" / "api" / "app.py"
# The caller the authorizer would name (the handler refuses a request without one, before its body).
OWNER_ID = "own_" + "be" * 16
# What refusing a body can answer: anything else (a 401, a 5xx, a 202) means the body checks were not
# what answered, or that something went wrong.
BODY_REFUSALS = (400, 413, 415)
KIB = 1024
SIZES = (16 * KIB, 64 * KIB, 256 * KIB)
TARGET_WORST_MS = 100.0
TARGET_GROWTH = 5.0
# A valid start for bodies that should get as far as the request model.
HEAD = '{"model": "video-default", "prompt": "a fox", '
PROMPT_HEAD = '{"model": "video-default", "prompt": "'
# Ends a body with an unknown key, for shapes that would be a valid request at some size: none may be.
TAIL = ', "zz": 0}'
TAIL_STRING = '"' + TAIL


class NoNetwork(OSError):
    pass


def _refuse_network(*args: Any, **kwargs: Any) -> Any:
    raise NoNetwork("adversarial_bodies.py allows no network access")


def forbid_network() -> None:
    """Name lookups and connections fail in this process: a body that got through would be a 5xx here,
    never a request to AWS or Router One."""
    socket.getaddrinfo = _refuse_network
    socket.create_connection = _refuse_network
    socket.socket.connect = _refuse_network  # type: ignore[method-assign]
    socket.socket.connect_ex = _refuse_network  # type: ignore[method-assign]


def load_handler() -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """The api function's handler, imported from its file as Lambda would (module name `app`)."""
    for name, value in ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    sys.path.insert(0, str(API_HANDLER.parent))
    spec = importlib.util.spec_from_file_location("app", API_HANDLER)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot import {API_HANDLER}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["app"] = module
    spec.loader.exec_module(module)
    return module.handler


class FakeContext:
    function_name = "ApiFunction"
    function_version = "$LATEST"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:ApiFunction"
    aws_request_id = "00000000-0000-4000-8000-000000000000"
    log_group_name = "/aws/lambda/ApiFunction"
    log_stream_name = "benchmark"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


# --------------------------------------------------------------------------- bodies


def exact(size: int, prefix: str, units: Iterable[str], suffix: str = "", pad: str = " ") -> str:
    """`prefix`, as many `units` as fit, `pad` to fill, then `suffix`: exactly `size` bytes of UTF-8."""
    parts = [prefix]
    used = len(prefix.encode()) + len(suffix.encode())
    for unit in units:
        width = len(unit.encode())
        if used + width > size:
            break
        parts.append(unit)
        used += width
    parts.append(pad * (size - used))
    parts.append(suffix)
    body = "".join(parts)
    assert len(body.encode()) == size, (len(body.encode()), size)
    return body


def repeat(unit: str) -> Iterator[str]:
    while True:
        yield unit


def numbered(template: str) -> Iterator[str]:
    return (template.format(i) for i in count())


@dataclass(frozen=True)
class Body:
    text: str
    base64: bool = False


# Each shape: what it aims at, and how to build it at a given size. Bracket counts past the depth
# limit (32) matter: with fewer, the depth scan is skipped and would not be measured.
def _unterminated_quotes(n: int) -> Body:
    # Balanced brackets before the string make the scan run; brackets inside it must not count.
    prefix = '{"metadata": {"a": [' + "[]" * 40 + ']}, "prompt": "'
    return Body(exact(n, prefix, repeat('\\"\\"\\"\\"\\"\\"\\"[{')))


def _unterminated_trailing_backslash(n: int) -> Body:
    prefix = '{"metadata": {"a": [' + "[]" * 40 + ']}, "prompt": "'
    return Body(exact(n, prefix, repeat('\\"\\"\\"\\"\\"\\"\\"[{'), suffix="\\", pad="a"))


def _unterminated_quotes_no_brackets_before(n: int) -> Body:
    return Body(exact(n, '{"prompt": "', repeat('\\"[')))


def _unterminated_quotes_brackets_at_end(n: int) -> Body:
    # The shape that was quadratic: every quote inside the string restarted a scan to the end.
    return Body(exact(n, '{"model": "m", "prompt": "', repeat('\\"'), suffix="[" * 40, pad="a"))


def _terminated_quotes(n: int) -> Body:
    return Body(exact(n, PROMPT_HEAD, repeat('\\"\\"\\"[{'), suffix=TAIL_STRING, pad="a"))


def _many_short_strings(n: int) -> Body:
    return Body(exact(n, HEAD + '"metadata": {"a": [', repeat('"[{",'), suffix='"x"]}}'))


def _nesting_past_limit_at_end(n: int) -> Body:
    return Body(exact(n, HEAD + '"metadata": {"a": [', repeat("[],"), suffix="0]}, " + '"b": ' + "[" * 40))


def _nesting_just_under_limit(n: int) -> Body:
    # Object, metadata and "a" are three levels: 29 more make 32, the most the pre-check lets through.
    return Body(exact(n, HEAD + '"metadata": {"a": [', repeat("[" * 29 + "]" * 29 + ","), suffix="0]}}"))


def _nesting_under_metadata_limit(n: int) -> Body:
    # Valid as far as depth goes everywhere (15 levels in metadata): only its size refuses it.
    return Body(exact(n, HEAD + '"metadata": {"a": [', repeat("[" * 13 + "]" * 13 + ","), suffix="0]}}"))


def _long_integer(n: int) -> Body:
    return Body(exact(n, HEAD + '"duration": 1', repeat("9"), suffix="}", pad="0"))


def _long_float(n: int) -> Body:
    return Body(exact(n, HEAD + '"metadata": {"x": 1.', repeat("3"), suffix="}" + TAIL, pad="7"))


def _long_exponent(n: int) -> Body:
    return Body(exact(n, HEAD + '"metadata": {"x": 1e', repeat("9"), suffix="}}", pad="9"))


def _many_floats(n: int) -> Body:
    return Body(exact(n, HEAD + '"metadata": {"a": [', repeat("1.5,"), suffix="1]}}"))


def _many_integers(n: int) -> Body:
    return Body(exact(n, HEAD + '"metadata": {"a": [', repeat("7,"), suffix="1]}}"))


def _unknown_keys(n: int) -> Body:
    return Body(exact(n, HEAD, numbered('"k{}": 0, '), suffix='"end": 0}'))


def _unknown_keys_model_missing(n: int) -> Body:
    return Body(exact(n, "{", numbered('"k{}": 0, '), suffix='"end": 0}'))


def _metadata_keys(n: int) -> Body:
    return Body(exact(n, HEAD + '"metadata": {', numbered('"k{}": 0, '), suffix='"end": 0}}'))


def _duplicate_key_at_end(n: int) -> Body:
    return Body(exact(n, HEAD + '"metadata": {', numbered('"k{}": 0, '), suffix='"k0": 1}}'))


def _many_duplicate_objects(n: int) -> Body:
    return Body(exact(n, HEAD + '"metadata": {"a": [', repeat('{"x": 1, "y": 2},'), suffix='{"x": 1, "x": 2}]}}'))


def _long_prompt(n: int) -> Body:
    return Body(exact(n, PROMPT_HEAD, repeat("a"), suffix='"}'))


def _long_prompt_non_ascii(n: int) -> Body:
    return Body(exact(n, PROMPT_HEAD, repeat("\u00e9"), suffix=TAIL_STRING, pad="a"))


def _unicode_escapes(n: int) -> Body:
    return Body(exact(n, PROMPT_HEAD, repeat("\\u00e9"), suffix=TAIL_STRING, pad="a"))


def _surrogate_escapes(n: int) -> Body:
    return Body(exact(n, HEAD + '"metadata": {"a": "', repeat("\\ud800"), suffix='"}}', pad="a"))


def _image_urls(n: int) -> Body:
    return Body(exact(n, HEAD + '"image_urls": [', repeat('"https://example.com/i.png", '), suffix='"x"]}'))


def _long_image_url(n: int) -> Body:
    # The space at the end makes it no URL, however long a URL may be.
    return Body(exact(n, HEAD + '"image_url": "https://example.com/', repeat("a"), suffix=' "}'))


def _webhook_filter(n: int) -> Body:
    # Every item valid but the last: unless the list's length refuses it first, all are checked.
    return Body(exact(n, HEAD + '"webhook_events_filter": [', repeat('"completed", '), suffix='"bogus"]}'))


def _webhook_filter_all_wrong(n: int) -> Body:
    return Body(exact(n, HEAD + '"webhook_events_filter": [', repeat("5,"), suffix="5]}"))


def _image_urls_all_wrong(n: int) -> Body:
    return Body(exact(n, HEAD + '"image_urls": [', repeat("5,"), suffix="5]}"))


def _whitespace(n: int) -> Body:
    return Body(exact(n, "{", (), suffix="}"))


def _not_an_object(n: int) -> Body:
    return Body(exact(n, "[", repeat("0,"), suffix="0]"))


def _lone_surrogate(n: int) -> Body:
    # Text no UTF-8 can carry: one unpaired surrogate at the very end (n characters, not bytes).
    return Body(exact(n - 1, HEAD + '"input_reference": "', repeat("a"), suffix='"}') + "\ud800")


def _base64_invalid_utf8(n: int) -> Body:
    raw = exact(n - 2, HEAD + '"input_reference": "', repeat("\u00e9"), pad="a").encode() + b'\xff"'
    return Body(base64.b64encode(raw).decode(), base64=True)


def _base64_unterminated_quotes(n: int) -> Body:
    return Body(base64.b64encode(_unterminated_quotes(n).text.encode()).decode(), base64=True)


SHAPES: dict[str, Callable[[int], Body]] = {
    'unterminated string of \\"': _unterminated_quotes,
    'unterminated \\", lone \\ at the end': _unterminated_trailing_backslash,
    'unterminated \\", no brackets before': _unterminated_quotes_no_brackets_before,
    'unterminated \\", brackets only at the end': _unterminated_quotes_brackets_at_end,
    'terminated string of \\"': _terminated_quotes,
    'many short strings "[{"': _many_short_strings,
    "nesting past 32 at the end": _nesting_past_limit_at_end,
    "nesting 32 deep, repeated": _nesting_just_under_limit,
    "nesting 15 deep, repeated": _nesting_under_metadata_limit,
    "integer of >100 digits": _long_integer,
    "float of many digits": _long_float,
    "float exponent of many digits": _long_exponent,
    "many floats in metadata": _many_floats,
    "many integers in metadata": _many_integers,
    "many unknown keys": _unknown_keys,
    "many unknown keys, model missing": _unknown_keys_model_missing,
    "many keys in metadata": _metadata_keys,
    "duplicate key at the end": _duplicate_key_at_end,
    "many objects, last dup": _many_duplicate_objects,
    "long prompt": _long_prompt,
    "long prompt, non-ASCII": _long_prompt_non_ascii,
    "\\u00e9 escapes": _unicode_escapes,
    "\\ud800 escapes": _surrogate_escapes,
    "long image_url": _long_image_url,
    "many image_urls": _image_urls,
    "long webhook_events_filter": _webhook_filter,
    "webhook_events_filter of 5s": _webhook_filter_all_wrong,
    "image_urls of 5s": _image_urls_all_wrong,
    "whitespace": _whitespace,
    "array, not an object": _not_an_object,
    "lone surrogate (text body)": _lone_surrogate,
    "base64: invalid UTF-8 at end": _base64_invalid_utf8,
    'base64: unterminated \\"': _base64_unterminated_quotes,
}


# --------------------------------------------------------------------------- running


def submit_event(template: dict[str, Any], body: Body) -> dict[str, Any]:
    event = copy.deepcopy(template)
    event["body"] = body.text
    event["isBase64Encoded"] = body.base64
    event["requestContext"]["authorizer"] = {"principalId": "bench", "owner_id": OWNER_ID}
    return event


@dataclass
class Result:
    shape: str
    size: int
    ms: float
    min_ms: float
    status: int
    code: str

    @property
    def refused(self) -> bool:
        return self.status in BODY_REFUSALS


def measure(
    handler: Callable[[dict[str, Any], Any], dict[str, Any]], shape: str, size: int, event: dict[str, Any], runs: int
) -> Result:
    context = FakeContext()
    response = handler(copy.deepcopy(event), context)  # untimed: first-use setup (model builds, imports)
    samples = []
    for _ in range(runs):
        fresh = copy.deepcopy(event)  # outside the timing: Powertools caches what it decodes on the event
        started = time.perf_counter()
        response = handler(fresh, context)
        samples.append((time.perf_counter() - started) * 1000)
    try:
        code = json.loads(response["body"])["error"]["code"]
    except (KeyError, TypeError, ValueError):
        code = "-"
    return Result(shape, size, statistics.median(samples), min(samples), response["statusCode"], code)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="timed calls per body (median reported)")
    parser.add_argument("--shape", action="append", help="run only shapes whose name contains this (repeatable)")
    args = parser.parse_args(argv)

    # Powertools warns on every call that the (disabled) metrics had nothing to publish.
    warnings.filterwarnings("ignore", "No application metrics to publish")
    forbid_network()
    handler = load_handler()
    from bridge.api.request_body import MAX_BODY_BYTES

    assert SIZES[-1] == MAX_BODY_BYTES, "the largest size is the handler's own limit"
    template = json.loads(SUBMIT_EVENT.read_text())
    shapes = {name: build for name, build in SHAPES.items() if not args.shape or any(s in name for s in args.shape)}

    results: dict[tuple[str, int], Result] = {}
    for name, build in shapes.items():
        for size in SIZES:
            results[name, size] = measure(handler, name, size, submit_event(template, build(size)), args.repeat)

    width = max(len(name) for name in shapes)
    header = "".join(f"  {f'{size // KIB} KiB':>9}" for size in SIZES)
    print(f"POST /v1/videos/generations: ms per call, median of {args.repeat}; answer at 256 KiB (status, code)")
    print(f"{'shape':<{width}}{header}  {'64->256':>7}  answer")
    for name in shapes:
        row = [results[name, size] for size in SIZES]
        cells = "".join(f"  {r.ms:>6.2f} ms" for r in row)
        answers = {(r.status, r.code) for r in row}
        answer = f"{row[-1].status} {row[-1].code}" + ("" if len(answers) == 1 else " (differs by size)")
        print(f"{name:<{width}}{cells}  {row[-1].ms / row[-2].ms:>6.1f}x  {answer}")

    print("\nworst shape per size (median; the fastest call in brackets, for a busy machine):")
    worst = {size: max((results[name, size] for name in shapes), key=lambda r: r.ms) for size in SIZES}
    for size, r in worst.items():
        print(f"  {size // KIB:>4} KiB  {r.ms:>7.2f} ms ({r.min_ms:>6.2f})  {r.shape}")
    growth = worst[SIZES[-1]].ms / worst[SIZES[-2]].ms
    print(f"  64 -> 256 KiB growth of the worst case: {growth:.2f}x (4x the bytes)")

    failures = []
    worst_ms = worst[SIZES[-1]].ms
    ok_ms, ok_growth = worst_ms < TARGET_WORST_MS, growth <= TARGET_GROWTH
    print(f"\ntarget: 256 KiB worst case < {TARGET_WORST_MS:.0f} ms: {worst_ms:.2f} ms {'✓' if ok_ms else '✗'}")
    print(f"target: 64 -> 256 KiB growth <= {TARGET_GROWTH:.0f}x: {growth:.2f}x {'✓' if ok_growth else '✗'}")
    if not ok_ms:
        failures.append("256 KiB worst case too slow")
    if not ok_growth:
        failures.append("worst case grows too fast")
    answered = [r for r in results.values() if not r.refused]
    for r in answered:
        failures.append(f"{r.shape} at {r.size // KIB} KiB answered {r.status} {r.code}, not 400/413/415")
    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures))
        return 1
    print("\nOK: every body refused with a 400, 413 or 415; both targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
