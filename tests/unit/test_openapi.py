"""The OpenAPI document: generated from the routes, complete, and declaring the envelope for every error."""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# Hypothesis keeps its example database in ./.hypothesis, which the repository does not ignore; keep it
# out of the work tree unless the developer chose a place (as test_validator_properties does).
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", str(Path(tempfile.gettempdir()) / "video-bridge-hypothesis"))

import jsonschema_rs  # schemathesis' own validator: ECMA-262 patterns, as the document means them
import pytest
import schemathesis
from cfnlint.decode import decode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bridge.api.http_api import app, openapi_document
from bridge.api.schema import SCHEMA_REF, ErrorEnvelope, Job, JobPage
from bridge.models import (
    HTTP_URI_PATTERN,
    NON_BLANK_TEXT_PATTERN,
    TEXT_PATTERN,
    GenerationRequest,
)

ROOT = Path(__file__).resolve().parents[2]
METHODS = ("get", "post", "put", "patch", "delete")


class FakeContext:
    function_name = "api"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:api"
    aws_request_id = "req-1"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi_document()


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }


def test_the_committed_document_is_the_codes(document: dict[str, Any]) -> None:
    # docs/openapi.json is what users read without running anything: tools/openapi_doc.py rewrites it.
    committed = json.loads((ROOT / "docs" / "openapi.json").read_text(encoding="utf-8"))
    assert committed == document, "docs/openapi.json is stale: run .venv/bin/python tools/openapi_doc.py"


def test_the_document_has_exactly_the_templates_routes(document: dict[str, Any]) -> None:
    template, _ = decode(str(ROOT / "template.yaml"))
    events = template["Resources"]["ApiFunction"]["Properties"]["Events"].values()
    routes = {(e["Properties"]["Method"].upper(), e["Properties"]["Path"]) for e in events if e["Type"] == "Api"}
    # The document describes the API; the route that serves the document is not part of it.
    assert set(operations(document)) == routes - {("GET", "/openapi.json")}


def test_every_error_status_of_every_route_is_the_envelope(document: dict[str, Any]) -> None:
    envelope = {"$ref": "#/components/schemas/ErrorEnvelope"}
    for route, operation in operations(document).items():
        responses = operation["responses"]
        errors = {int(status) for status in responses if int(status) >= 400}
        # What the gateway or any handler can answer, whatever the route.
        assert {401, 403, 429, 500, 502, 503, 504} <= errors, route
        for status in errors:
            assert responses[str(status)]["content"] == {"application/json": {"schema": envelope}}, (route, status)
        successes = [int(status) for status in responses if int(status) < 400]
        assert len(successes) == 1 and responses[str(successes[0])]["content"]["application/json"]["schema"], route


def test_no_route_documents_a_shape_it_never_answers(document: dict[str, Any]) -> None:
    # Powertools' default 422 validation shape is replaced by the 400 envelope everywhere.
    text = json.dumps(document)
    assert "HTTPValidationError" not in text and "ValidationError" not in text


def test_the_submit_body_is_the_request_model(document: dict[str, Any]) -> None:
    submit = document["paths"]["/v1/videos/generations"]["post"]
    ref = submit["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    assert set(schema["properties"]) == set(GenerationRequest.model_fields)
    assert set(schema["required"]) == {"model", "prompt"}
    assert schema["additionalProperties"] is False
    # Every reference the document makes resolves inside it.
    for target in {part.split('"')[0] for part in json.dumps(document).split('"$ref": "#/components/schemas/')[1:]}:
        assert target in document["components"]["schemas"], target
    header = [p for p in submit["parameters"] if p["in"] == "header"]
    # Header names are case-blind; Powertools documents them in lower case.
    assert sorted(p["name"].lower() for p in header) == ["idempotency-key", "x-router-one-key"]


def test_the_list_parameters_are_documented_with_their_bounds(document: dict[str, Any]) -> None:
    parameters = {p["name"]: p for p in document["paths"]["/v1/videos/generations"]["get"]["parameters"]}
    assert set(parameters) == {"status", "limit", "cursor"}
    limit = next(s for s in parameters["limit"]["schema"]["anyOf"] if s.get("type") == "integer")
    assert (limit["minimum"], limit["maximum"]) == (1, 100)


def test_answers_are_closed_shapes() -> None:
    # additionalProperties false: an answer with a key the document does not name is a failure.
    for model in (ErrorEnvelope, Job, JobPage):
        assert model.model_json_schema()["additionalProperties"] is False


@pytest.mark.parametrize(
    ("request_path", "server"),
    [("/Prod/openapi.json", "/Prod"), ("/api/v2/openapi.json", "/api/v2"), ("/openapi.json", "/")],
)
def test_the_served_document_points_at_the_url_it_was_fetched_from(request_path: str, server: str) -> None:
    event = json.loads((ROOT / "events" / "api_status.json").read_text())
    event.update(path="/openapi.json", resource="/openapi.json", pathParameters=None)
    event["requestContext"].update(path=request_path, resourcePath="/openapi.json")
    response = app.resolve(event, FakeContext())
    assert response["statusCode"] == 200
    served = json.loads(response["body"])
    assert served["servers"] == [{"url": server}]
    assert served["paths"] == openapi_document()["paths"]


# --------------------------------------------------------------------------- the submit body's bounds

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VALID = {"model": "video-default", "prompt": "a fox"}


def inlined(node: Any, components: dict[str, Any]) -> Any:
    """The schema with every `$ref` into components replaced by its target."""
    if isinstance(node, dict):
        if "$ref" in node:
            return inlined(components[node["$ref"].removeprefix(SCHEMA_REF)], components)
        return {key: inlined(value, components) for key, value in node.items()}
    if isinstance(node, list):
        return [inlined(value, components) for value in node]
    return node


@functools.cache
def submit_schema() -> dict[str, Any]:
    """The submit body's schema as the served document states it, references resolved."""
    document = openapi_document()
    submit = document["paths"]["/v1/videos/generations"]["post"]
    reference = submit["requestBody"]["content"]["application/json"]["schema"]
    return inlined(reference, document["components"]["schemas"])


@pytest.fixture(scope="module")
def request_schema() -> dict[str, Any]:
    return submit_schema()


@pytest.fixture(scope="module")
def documented(request_schema: dict[str, Any]) -> Any:
    """Whether the document allows a body: an ECMA-262 validator of the submit schema."""
    return jsonschema_rs.validator_for(request_schema).is_valid


def branches(property_schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The non-null shapes a property may take."""
    options = property_schema.get("anyOf", [property_schema])
    return [option for option in options if option.get("type") != "null"]


def subschemas(schema: Any) -> list[dict[str, Any]]:
    """Every schema object inside `schema`, itself included."""
    found: list[dict[str, Any]] = []
    pending = [schema]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            found.append(node)
            for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
                pending.extend(node.get(key, []))
            pending.extend(
                node[key] for key in ("items", "not", "additionalProperties") if isinstance(node.get(key), dict)
            )
            pending.extend((node.get("properties") or {}).values())
    return found


def test_every_submit_field_is_described(request_schema: dict[str, Any]) -> None:
    for name, schema in request_schema["properties"].items():
        assert schema.get("description"), name


def test_the_document_states_a_bound_for_every_string_and_list(request_schema: dict[str, Any]) -> None:
    for node in subschemas(request_schema):
        if node.get("type") == "string" and "enum" not in node:
            assert isinstance(node.get("maxLength"), int) and "pattern" in node, node
        if node.get("type") == "array":
            assert isinstance(node.get("maxItems"), int), node
        if node.get("type") == "integer":
            assert "maximum" in node and "exclusiveMinimum" in node, node


def test_the_document_states_the_bounds_the_code_enforces(request_schema: dict[str, Any]) -> None:
    stated = {}
    for name, schema in request_schema["properties"].items():
        (shape,) = branches(schema)
        strings = shape.get("items", shape) if shape.get("type") == "array" else shape
        stated[name] = (strings.get("maxLength"), strings.get("pattern"), shape.get("maxItems"))
    text, non_blank, uri = TEXT_PATTERN, NON_BLANK_TEXT_PATTERN, HTTP_URI_PATTERN
    assert stated == {
        "model": (256, non_blank, None),
        "prompt": (10_000, non_blank, None),
        "duration": (None, None, None),
        "size": (64, non_blank, None),
        "aspect_ratio": (None, None, None),
        "negative_prompt": (10_000, text, None),
        "image_url": (2048, uri, None),
        "image_urls": (2048, uri, 3),
        "input_reference": (1024, text, None),
        "callback_url": (2048, uri, None),
        "webhook_events_filter": (None, None, 6),
        "metadata": (None, None, None),
    }
    assert branches(request_schema["properties"]["webhook_events_filter"])[0]["minItems"] == 1


# The patterns are ECMA-262 (what the document means) and Python (what the code runs): the same
# strings must match in both engines. jsonschema_rs speaks ECMA; hypothesis draws from the regexes.
PATTERNS = {"text": TEXT_PATTERN, "non_blank": NON_BLANK_TEXT_PATTERN, "uri": HTTP_URI_PATTERN}
BLANKS = " \t\n\x0b\x1c\x85\xa0\u1680\u2000\u2028\u3000\ufeff"
TRICKY = BLANKS + "\x00\x7f\u200bü%@:[]/?#\\{}"


@functools.cache
def near_misses(pattern: str) -> st.SearchStrategy[str]:
    """Strings that match `pattern`; the same with one character inserted, removed or appended
    (counting from either end, so an edit lands in a URI's host as often as in its path); blanks."""
    matching = st.from_regex(pattern, fullmatch=True)

    def edited(value: str, at: int, char: str, remove: bool) -> str:
        at = at % (len(value) + 1) if at >= 0 else max(len(value) + 1 + at, 0)
        return value[:at] + value[at + 1 :] if remove else value[:at] + char + value[at:]

    return st.one_of(
        matching,
        st.builds(edited, matching, st.integers(-40, 40), st.sampled_from(TRICKY), st.booleans()),
        st.builds(lambda value, tail: f"{value}/{tail}", matching, st.text(st.sampled_from(TRICKY), max_size=2)),
        st.text(st.sampled_from(BLANKS), max_size=3),
        st.text(st.sampled_from(TRICKY), max_size=4),
    )


@SETTINGS
@given(data=st.data(), name=st.sampled_from(sorted(PATTERNS)))
def test_the_patterns_match_the_same_strings_in_ecma_and_python(data: st.DataObject, name: str) -> None:
    pattern = PATTERNS[name]
    value = data.draw(near_misses(pattern) | st.text(max_size=40))
    ecma = jsonschema_rs.validator_for({"type": "string", "pattern": pattern}).is_valid(value)
    assert ecma == (re.fullmatch(pattern, value) is not None), (name, value)


# What JavaScript (ECMA-262 \s) calls whitespace; Python's str.isspace() is the other half of "blank".
ECMA_WHITESPACE = set("\t\n\v\f\r \xa0\u1680\u2028\u2029\u202f\u205f\u3000\ufeff") | {
    chr(c) for c in range(0x2000, 0x200B)
}


def test_blank_means_whitespace_to_python_or_to_ecma() -> None:
    for code in range(1, 0x30000):
        if 0xD800 <= code <= 0xDFFF:
            continue  # surrogates are code units, not characters
        char = chr(code)
        blank = re.fullmatch(NON_BLANK_TEXT_PATTERN, char) is None
        assert blank == (char.isspace() or char in ECMA_WHITESPACE), hex(code)


@SETTINGS
@given(st.from_regex(HTTP_URI_PATTERN, fullmatch=True))
def test_every_uri_the_pattern_admits_is_an_http_uri_naming_a_host(url: str) -> None:
    parts = urlsplit(url)  # raises on a malformed IPv6 literal
    assert parts.scheme in ("http", "https") and parts.hostname, url
    assert parts.port is None or 0 <= parts.port <= 65535  # raises on a port that is not a number
    if parts.netloc.rpartition("@")[2].startswith("["):
        assert isinstance(ipaddress.ip_address(parts.hostname), ipaddress.IPv6Address)


@SETTINGS
@given(st.ip_addresses(), st.sampled_from(["", ":443", ":8001"]))
def test_the_pattern_takes_every_ip_address_as_a_host(address: Any, port: str) -> None:
    if address.version == 6:
        hosts = [f"[{address.compressed}]", f"[{address.exploded}]"]
        if address.ipv4_mapped:
            hosts.append(f"[::ffff:{address.ipv4_mapped}]")
    else:
        hosts = [str(address)]
    for host in hosts:
        assert re.fullmatch(HTTP_URI_PATTERN, f"https://{host}{port}/in"), host


def refusal(body: Any) -> ValidationError | None:
    try:
        GenerationRequest.model_validate(body)
    except ValidationError as exc:
        return exc
    return None


@functools.cache
def body_operation() -> Any:
    """A one-operation API whose only input is the submit body, so every negative case is in the body."""
    operation = {
        "requestBody": {"required": True, "content": {"application/json": {"schema": submit_schema()}}},
        "responses": {"202": {"description": "accepted"}},
    }
    api = {"openapi": "3.1.0", "info": {"title": "submit", "version": "1"}, "paths": {"/s": {"post": operation}}}
    return schemathesis.openapi.from_dict(api)["/s"]["POST"]


def test_bodies_the_document_allows_are_accepted() -> None:
    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body_operation().as_strategy(schemathesis.GenerationMode.POSITIVE))
    def check(case: Any) -> None:
        # metadata's rules (2 KB as JSON, 16 levels, non-empty keys, storable numbers) are more than
        # JSON Schema can state: its description says them, and test_input_hardening holds the code to them.
        body = {key: value for key, value in case.body.items() if key != "metadata"}
        assert refusal(body) is None, body

    check()


def test_bodies_the_document_forbids_are_refused() -> None:
    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body_operation().as_strategy(schemathesis.GenerationMode.NEGATIVE))
    def check(case: Any) -> None:
        assert refusal(case.body) is not None, case.body

    check()


@functools.cache
def field_values(name: str) -> st.SearchStrategy[Any]:
    """Values for one submit field, from its documented shape: valid ones, near misses, arbitrary
    text, strings just under, at and just over the length bound, lists around their bound."""
    (shape,) = branches(submit_schema()["properties"][name])
    return values_for(shape)


def values_for(shape: dict[str, Any]) -> st.SearchStrategy[Any]:
    if shape.get("type") == "array":
        items = shape["items"]
        item = st.sampled_from(items["enum"]) if "enum" in items else values_for(items)
        return st.lists(item, max_size=shape["maxItems"] + 2)
    if shape.get("type") == "integer":
        return st.integers(-5, shape["maximum"] + 5) | st.floats(-10, 4000) | st.booleans() | st.text(max_size=3)
    if "enum" in shape:
        return st.sampled_from(shape["enum"]) | st.text(max_size=5)
    pattern, bound = shape["pattern"], shape["maxLength"]
    filler = "#" if pattern == HTTP_URI_PATTERN else "a"  # "#" and more after it keep a URI a URI
    around_bound = st.builds(
        lambda value, over: value + filler * (bound + over - len(value)),
        st.from_regex(pattern, fullmatch=True).filter(lambda value: len(value) < bound - 2),
        st.integers(-2, 2),
    )
    values = near_misses(pattern) | st.text(max_size=30) | around_bound | st.integers() | st.none()
    if pattern == HTTP_URI_PATTERN:
        ports = st.builds("http://[::1]:{}/in".format, st.integers(0, 100_000) | st.text("0123456789:", max_size=7))
        values |= ports
    return values


# metadata's rules are more than JSON Schema can state (see test_bodies_the_document_allows_are_accepted).
@pytest.mark.parametrize("name", sorted(set(GenerationRequest.model_fields) - {"metadata"}))
@settings(SETTINGS, max_examples=150)
@given(data=st.data())
def test_the_document_and_the_code_agree_on_every_value_of_every_field(
    name: str, data: st.DataObject, documented: Any
) -> None:
    value = data.draw(field_values(name))
    body = {**VALID, name: value}
    refused = refusal(body)
    assert documented(body) == (refused is None), (name, value, refused)
    if refused is not None:
        assert refused.errors()[0]["loc"][0] == name


# Every single-character edit of a few typical values, with every ASCII character and the blanks and
# non-ASCII characters most likely to split the two engines: the document and the code judge alike.
EDIT_BASES = {
    HTTP_URI_PATTERN: [
        "https://user:pw@host.example:65535/p/a.png?q=1&r=%2F#frag",
        "http://[2001:db8::1]:8001/x",
        "HTTPS://127.0.0.1",
    ],
    NON_BLANK_TEXT_PATTERN: ["", " ", "a", " a "],
    TEXT_PATTERN: ["", " ", "a b"],
}
EDIT_CHARACTERS = [chr(code) for code in range(128)] + list(BLANKS + "\u200b\u00e9\u00fc\U0001f98a\uffff")


@pytest.mark.parametrize("name", ["model", "size", "negative_prompt", "image_url", "image_urls", "callback_url"])
def test_one_character_edits_are_judged_alike_by_the_document_and_the_code(name: str, documented: Any) -> None:
    (shape,) = branches(submit_schema()["properties"][name])
    pattern = shape.get("items", shape)["pattern"]
    for base in EDIT_BASES[pattern]:
        for at in range(len(base) + 1):
            for value in [base[:at] + char + base[at:] for char in EDIT_CHARACTERS] + [base[:at] + base[at + 1 :]]:
                body = {**VALID, name: [value] if shape["type"] == "array" else value}
                assert documented(body) == (refusal(body) is None), (name, value)
