"""Bad input gets Router One's error envelope with a 4xx: never a 5xx, never a stack trace.

Most cases go straight through `app.resolve` with API Gateway REST proxy events built from
`events/`; the ones where the transport matters (raw bytes, framing, sizes past API Gateway's own
limit, odd paths) go through the local HTTP front. Nothing here touches AWS or Router One: the
submit itself and the job store are replaced by fakes that behave like the real ones at the edges
(the fake store refuses over-long keys the way DynamoDB does).
"""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from bridge.api.http_api import app
from bridge.api.request_body import MAX_BODY_BYTES, MAX_JSON_DEPTH
from bridge.api.routes import generations
from bridge.errors import TaskNotFound
from bridge.models import MAX_METADATA_DEPTH, MAX_PROMPT_LENGTH, GenerationRequest
from bridge.store import job_lists, jobs
from bridge_local.api_front import MAX_PAYLOAD_BYTES, ApiFront, ApiRoute
from bridge_local.deployer import DEFAULT_TEMPLATE, load_template
from bridge_local.gateway_responses import of_template

EVENTS = Path(__file__).resolve().parents[2] / "events"
VALID = {"model": "video-default", "prompt": "a fox"}
ACCEPTED = {"task_id": "v_0123456789abcdef0123456789abcdef", "status": "pending"}


class FakeContext:
    function_name = "api"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:api"
    aws_request_id = "test-request"


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> list[GenerationRequest]:
    """Submit accepts without Router One; the job store knows no job and refuses keys as DynamoDB does."""
    submitted: list[GenerationRequest] = []

    def submit(
        request: GenerationRequest, key: str | None, caller: Any, context: Any = None, caller_key: Any = None
    ) -> dict[str, Any]:
        submitted.append(request)
        return dict(ACCEPTED)

    def find_job(task_id: str, *, owner_id: str | None) -> dict[str, Any]:
        if len(task_id.encode("utf-8")) > 2048:  # DynamoDB's partition key limit, as a ClientError
            error = {"Code": "ValidationException", "Message": "Hash primary key values must be under 2048 bytes"}
            raise ClientError({"Error": error}, "GetItem")
        raise TaskNotFound(f"no video generation with task_id '{task_id}'")

    def list_jobs(listing: Any, **query: Any) -> tuple[list[dict[str, Any]], None]:
        return [], None

    monkeypatch.setattr(generations, "submit_with_key", submit)
    monkeypatch.setattr(jobs, "find_job", find_job)
    monkeypatch.setattr(job_lists, "list_jobs", list_jobs)
    return submitted


def sample(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def resolve(event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = app.resolve(event, FakeContext())
    return response["statusCode"], json.loads(response["body"])


def post(
    raw: str | None,
    *,
    content_type: str | None = "application/json",
    base64_encoded: bool = False,
) -> tuple[int, dict[str, Any]]:
    """POST a submit with this exact body text (or base64 text) and Content-Type (None: no header)."""
    event = sample("api_submit.json")
    for headers in ("headers", "multiValueHeaders"):
        event[headers] = {k: v for k, v in event[headers].items() if k.lower() != "content-type"}
    if content_type is not None:
        event["headers"]["Content-Type"] = content_type
        event["multiValueHeaders"]["Content-Type"] = [content_type]
    event["body"] = raw
    event["isBase64Encoded"] = base64_encoded
    return resolve(event)


def get(path: str, path_parameters: dict[str, str] | None, query: dict[str, str] | None = None) -> tuple[int, dict]:
    event = sample("api_status.json")
    event["path"] = path
    event["pathParameters"] = path_parameters
    event["queryStringParameters"] = query
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} if query else None
    if path_parameters is None:
        event["resource"] = "/v1/videos/generations"
    return resolve(event)


def assert_envelope(status: int, body: dict[str, Any], expected_status: int, code: str | None = None) -> dict:
    assert status == expected_status, body
    error = body["error"]
    assert set(error) <= {"message", "type", "code", "param"}
    assert all(isinstance(error[k], str) and error[k] for k in ("message", "type", "code"))
    assert "Traceback" not in error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error


def body_of(**fields: Any) -> str:
    return json.dumps({**VALID, **fields})


# --------------------------------------------------------------------------- size


def test_a_body_over_the_limit_is_413_before_anything_parses_it(offline: list[GenerationRequest]) -> None:
    huge = body_of(prompt="a" * (1024 * 1024 + 1))  # 1 MB of prompt: far past the 256 KiB limit
    assert_envelope(*post(huge), 413, "request_too_large")
    encoded = base64.b64encode(huge.encode()).decode()
    assert_envelope(*post(encoded, base64_encoded=True), 413, "request_too_large")
    # Not even valid JSON or the right type: size is checked first.
    assert_envelope(*post("{" * (MAX_BODY_BYTES + 1), content_type="text/plain"), 413, "request_too_large")
    assert offline == []


def test_the_limit_counts_bytes_not_characters() -> None:
    # 100,000 three-byte characters: 300 KB of UTF-8 in a 100,000-character string.
    assert_envelope(*post(body_of(prompt="\u20ac" * 100_000)), 413, "request_too_large")


def test_a_body_just_under_the_limit_reaches_validation() -> None:
    # Every field is bounded far below the limit, so the padding is whitespace between tokens (JSON allows it).
    raw = body_of()
    padded = raw[:1] + " " * (MAX_BODY_BYTES - len(raw)) + raw[1:]
    assert len(padded.encode()) == MAX_BODY_BYTES
    status, body = post(padded)
    assert status == 202, body


# --------------------------------------------------------------------------- content type


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "application/xml",
        "application/json; charset=iso-8859-1",
        "application/jsonp",
    ],
)
def test_a_submit_that_is_not_json_is_415(content_type: str, offline: list[GenerationRequest]) -> None:
    raw = "model=video-default&prompt=a+fox" if "form" in content_type else body_of()
    error = assert_envelope(*post(raw, content_type=content_type), 415, "unsupported_media_type")
    assert error["type"] == "invalid_request_error"
    assert offline == []


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", 'Application/JSON;charset="UTF-8"', None]
)
def test_json_with_or_without_a_content_type_is_accepted(content_type: str | None) -> None:
    status, body = post(body_of(), content_type=content_type)
    assert (status, body) == (202, ACCEPTED)


# --------------------------------------------------------------------------- encoding and syntax


def test_invalid_utf8_is_a_400_invalid_json() -> None:
    raw = base64.b64encode(b'{"model": "video-default", "prompt": "a \xff fox"}').decode()
    error = assert_envelope(*post(raw, base64_encoded=True), 400, "invalid_json")
    assert "UTF-8" in error["message"]


def test_a_base64_body_that_is_valid_json_is_accepted() -> None:
    raw = base64.b64encode(body_of(prompt="a f\u00f6x").encode()).decode()
    assert post(raw, base64_encoded=True) == (202, ACCEPTED)


def test_a_body_flagged_base64_that_is_not_is_a_400() -> None:
    assert_envelope(*post("{not base64}", base64_encoded=True), 400, "invalid_json")


@pytest.mark.parametrize(
    "raw",
    [
        "[" * 10_000,
        "[" * 10_000 + "]" * 10_000,
        '{"a":' * 10_000 + "1" + "}" * 10_000,
        '{"model": "m", "prompt": "p", "metadata": ' + '{"a": ' * 5000 + "1" + "}" * 5000 + "}",
        "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1),
    ],
)
def test_deep_nesting_is_a_400_not_a_recursion_error(raw: str) -> None:
    assert_envelope(*post(raw), 400, "invalid_json")


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    assert post(body_of(prompt="[" * 5000 + '{"' * 100)) == (202, ACCEPTED)


def test_metadata_may_not_nest_deeper_than_its_limit() -> None:
    nested: Any = "leaf"
    for level in range(MAX_METADATA_DEPTH):
        nested = {"a": nested} if level % 2 else [nested]
    assert isinstance(nested, dict)  # MAX_METADATA_DEPTH levels of lists and objects: accepted
    assert post(body_of(metadata=nested)) == (202, ACCEPTED)
    error = assert_envelope(*post(body_of(metadata={"deeper": nested})), 400, "invalid_parameter")
    assert error["param"] == "metadata"
    assert str(MAX_METADATA_DEPTH) in error["message"]


@pytest.mark.parametrize(
    "raw",
    [
        '{"model": "m", "prompt": "p", "duration": ' + "9" * 5000 + "}",
        '{"model": "m", "prompt": "p", "duration": ' + "9" * 101 + "}",
        '{"model": "m", "prompt": "p", "duration": 1e999}',
        '{"model": "m", "prompt": "p", "duration": -1e999}',
        '{"model": "m", "prompt": "p", "metadata": {"n": 1e400}}',
    ],
)
def test_numbers_beyond_any_use_are_a_400_invalid_json(raw: str) -> None:
    assert_envelope(*post(raw), 400, "invalid_json")


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"duration": 10**30}, "duration"),
        ({"duration": 3601}, "duration"),
        ({"metadata": {"n": 10**40}}, "metadata"),  # DynamoDB keeps 38 digits
        ({"metadata": {"n": 1e200}}, "metadata"),  # and numbers below 1E+126
        ({"metadata": {"n": 1e-200}}, "metadata"),
        ({"metadata": {"": "empty key"}}, "metadata"),
    ],
)
def test_numbers_the_job_store_could_not_keep_are_refused_naming_the_field(fields: dict, param: str) -> None:
    error = assert_envelope(*post(body_of(**fields)), 400, "invalid_parameter")
    assert error["param"] == param


def test_ordinary_numbers_in_metadata_are_kept() -> None:
    assert post(body_of(metadata={"n": 10**37, "f": 0.1, "neg": -2.5e-10})) == (202, ACCEPTED)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_literals_are_not_json(literal: str) -> None:
    for raw in (
        f'{{"model": "m", "prompt": "p", "duration": {literal}}}',
        f'{{"model": "m", "prompt": "p", "metadata": {{"x": {literal}}}}}',
    ):
        error = assert_envelope(*post(raw), 400, "invalid_json")
        assert literal.lstrip("-") in error["message"]


@pytest.mark.parametrize(
    "raw",
    [
        '{"model": "m", "prompt": "p", "prompt": "q"}',
        '{"model": "m", "prompt": "p", "metadata": {"a": 1, "a": 2}}',
    ],
)
def test_duplicate_keys_are_refused_rather_than_one_silently_winning(raw: str) -> None:
    error = assert_envelope(*post(raw), 400, "invalid_json")
    assert "repeats the key" in error["message"]


@pytest.mark.parametrize("raw", [None, "", "   ", "null", "[]", "[{}]", '"text"', "5", "true", "\ufeff{}"])
def test_a_body_that_is_not_a_json_object_is_invalid_json(raw: str | None) -> None:
    assert_envelope(*post(raw), 400, "invalid_json")


def test_an_empty_object_names_the_first_missing_field() -> None:
    error = assert_envelope(*post("{}"), 400, "missing_required_parameter")
    assert error["param"] == "model"


@pytest.mark.parametrize("field", ["model", "prompt", "negative_prompt", "size", "input_reference"])
def test_nul_characters_are_refused_naming_the_field(field: str) -> None:
    error = assert_envelope(*post(body_of(**{field: "a\u0000b"})), 400, "invalid_parameter")
    assert error["param"] == field
    assert "NUL" in error["message"]


def test_nul_characters_in_metadata_and_urls_are_refused() -> None:
    error = assert_envelope(*post(body_of(metadata={"k": "a\u0000"})), 400, "invalid_parameter")
    assert error["param"] == "metadata"
    error = assert_envelope(*post(body_of(image_url="https://example.com/a\u0000.png")), 400, "invalid_parameter")
    assert error["param"] == "image_url"


def test_unpaired_surrogate_escapes_are_refused_naming_the_field() -> None:
    raw = '{"model": "m", "prompt": "a \\ud800 fox"}'
    error = assert_envelope(*post(raw), 400, "invalid_parameter")
    assert error["param"] == "prompt"


@pytest.mark.parametrize("field", ["prompt", "negative_prompt"])
def test_prompts_longer_than_the_limit_are_refused_naming_the_field(field: str) -> None:
    assert post(body_of(**{field: "a" * MAX_PROMPT_LENGTH})) == (202, ACCEPTED)
    error = assert_envelope(*post(body_of(**{field: "a" * (MAX_PROMPT_LENGTH + 1)})), 400, "invalid_parameter")
    assert error["param"] == field
    assert str(MAX_PROMPT_LENGTH) in error["message"]


# --------------------------------------------------------------------------- list and path parameters


@pytest.mark.parametrize("name", ["page", "order", "LIMIT", "status[]"])
def test_unknown_query_parameters_on_list_are_refused(name: str) -> None:
    error = assert_envelope(*get("/v1/videos/generations", None, {name: "1"}), 400, "unknown_parameter")
    assert error["param"] == name


@pytest.mark.parametrize("limit", ["", "abc", "-1", "1.5", "\u00b2", "\u0661", "9" * 5000, " 5"])
def test_a_limit_that_is_not_a_plain_number_is_a_400(limit: str) -> None:
    error = assert_envelope(*get("/v1/videos/generations", None, {"limit": limit}), 400, "invalid_parameter")
    assert error["param"] == "limit"


@pytest.mark.parametrize("query", [{"limit": "0"}, {"limit": "101"}, {"status": "bogus"}, {"cursor": "x" * 5000}])
def test_out_of_range_list_parameters_are_a_400(query: dict[str, str]) -> None:
    error = assert_envelope(*get("/v1/videos/generations", None, query), 400, "invalid_parameter")
    assert error["param"] == next(iter(query))


def test_known_list_parameters_pass() -> None:
    status, body = get("/v1/videos/generations", None, {"limit": "5", "status": "completed"})
    assert status == 200 and body["object"] == "list"


@pytest.mark.parametrize(
    "task_id",
    ["%00", "\u0000", "..", "a" * 5000, "\u00e9" * 1500, "v_" + "\udcff", "%2F..%2Fetc", "'; DROP TABLE jobs; --"],
)
@pytest.mark.parametrize("suffix", ["", "/webhooks", "/cancel"])
def test_odd_task_ids_get_a_404_envelope(task_id: str, suffix: str) -> None:
    event = sample("api_status.json")
    event["path"] = f"/v1/videos/generations/{task_id}{suffix}"
    event["pathParameters"] = {"task_id": task_id}
    event["httpMethod"] = "POST" if suffix == "/cancel" else "GET"
    event["resource"] = "/v1/videos/generations/{task_id}" + suffix
    assert_envelope(*resolve(event), 404)


def test_a_long_event_id_on_redeliver_is_a_404_envelope() -> None:
    event = sample("api_redeliver_webhook.json")
    task_id = event["pathParameters"]["task_id"]
    event_id = "evt_" + "f" * 5000
    event["path"] = f"/v1/videos/generations/{task_id}/webhooks/{event_id}/redeliver"
    event["pathParameters"]["event_id"] = event_id
    assert_envelope(*resolve(event), 404, "task_not_found")  # the fake store knows no job at all


# --------------------------------------------------------------------------- through the HTTP front


def template_routes() -> list[ApiRoute]:
    resources = load_template(DEFAULT_TEMPLATE)["Resources"]
    return [
        ApiRoute(str(spec["Properties"]["Method"]).upper(), str(spec["Properties"]["Path"]))
        for resource in resources.values()
        if resource["Type"] == "AWS::Serverless::Function"
        for spec in (resource["Properties"].get("Events") or {}).values()
        if spec["Type"] == "Api"
    ]


@pytest.fixture(scope="module")
def front() -> Iterator[ApiFront]:
    """One front for the module; each test's fakes apply, since it resolves through the live app."""

    def as_authorized(event: dict[str, Any], context: Any) -> dict[str, Any]:
        # What API Gateway adds after the authorizer: the caller's owner id.
        event["requestContext"]["authorizer"] = sample("api_submit.json")["requestContext"]["authorizer"]
        return app.resolve(event, context)

    with ApiFront(as_authorized, template_routes(), gateway_responses=of_template(DEFAULT_TEMPLATE)) as api:
        yield api


def raw_exchange(front: ApiFront, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are (no client fixing them up); read one HTTP/1.1 answer."""
    host, port = front.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(request)
        conn.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), headers, body


def test_front_raw_invalid_utf8_bytes_are_a_400_invalid_json(front: ApiFront) -> None:
    response = httpx.post(
        f"{front.url}/v1/videos/generations",
        content=b'{"model": "video-default", "prompt": "\xff\xfe"}',
        headers={"Content-Type": "application/json"},
    )
    assert_envelope(response.status_code, response.json(), 400, "invalid_json")


def test_front_over_the_bridge_limit_is_413_from_the_function(front: ApiFront) -> None:
    response = httpx.post(f"{front.url}/v1/videos/generations", content=body_of(prompt="a" * (1024 * 1024 + 1)))
    assert_envelope(response.status_code, response.json(), 413, "request_too_large")


def test_front_over_api_gateways_payload_limit_is_awss_own_413_from_the_front(front: ApiFront) -> None:
    # API Gateway's front end answers this in plain text; no gateway response applies.
    response = httpx.post(f"{front.url}/v1/videos/generations", content=b"x" * (MAX_PAYLOAD_BYTES + 1), timeout=30)
    assert (response.status_code, response.text) == (413, f"HTTP content length exceeded {MAX_PAYLOAD_BYTES} bytes.")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_front_wrong_content_type_is_415(front: ApiFront, content_type: str) -> None:
    response = httpx.post(
        f"{front.url}/v1/videos/generations", content=body_of(), headers={"Content-Type": content_type}
    )
    assert_envelope(response.status_code, response.json(), 415, "unsupported_media_type")


def test_front_chunked_json_bodies_are_read(front: ApiFront, offline: list[GenerationRequest]) -> None:
    def chunks() -> Iterator[bytes]:
        text = body_of(prompt="a fox, chunked").encode()
        yield from (text[i : i + 7] for i in range(0, len(text), 7))

    response = httpx.post(
        f"{front.url}/v1/videos/generations", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert (response.status_code, response.json()) == (202, ACCEPTED)
    assert offline[-1].prompt == "a fox, chunked"


@pytest.mark.parametrize(
    "path",
    ["/v1/videos/generations/%00", "/v1/videos/generations/%ff%fe", "/v1/videos/generations/" + "a" * 3000],
)
def test_front_odd_paths_get_a_404_envelope(front: ApiFront, path: str) -> None:
    response = httpx.get(f"{front.url}{path}")
    assert_envelope(response.status_code, response.json(), 404)


def test_front_unknown_list_parameter_is_a_400(front: ApiFront) -> None:
    response = httpx.get(f"{front.url}/v1/videos/generations", params={"limit": "5", "sort": "asc"})
    assert assert_envelope(response.status_code, response.json(), 400, "unknown_parameter")["param"] == "sort"


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"POST /v1/videos/generations HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}", 400),
        (b"POST /v1/videos/generations HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n{}", 400),
        (b"POST /v1/videos/generations HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", 400),
        (b"POST /v1/videos/generations HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{}", 400),
        (b"POST /v1/videos/generations HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n{}", 501),
        (b"POST /v1/videos/generations HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}", 400),
        # A method no route has is a route miss, like any other: the template's MISSING_AUTHENTICATION_TOKEN.
        (b"BREW /v1/videos/generations HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"NONSENSE\r\n\r\n", 400),
    ],
)
def test_front_unreadable_requests_get_the_envelope_not_an_html_page(
    front: ApiFront, request_bytes: bytes, status: int
) -> None:
    answered, headers, body = raw_exchange(front, request_bytes)
    assert headers.get("content-type") == "application/json"
    assert_envelope(answered, json.loads(body), status)
