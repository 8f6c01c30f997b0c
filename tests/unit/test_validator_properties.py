"""Properties of the validators, over generated input: the submit model, the SSRF guard, and the API.

- `GenerationRequest`: any JSON object validates or raises pydantic's ValidationError, nothing
  else; what validates goes to Router One as it came, minus the bridge's own fields.
- `check_callback_url`: whatever the URL and whatever the (injected) resolver answers, it never
  accepts a non-global address, and it raises nothing but InvalidRequest.
- The API (`app.resolve`): any body, any Content-Type, gets a 202 or a 4xx, and every 4xx is the
  envelope. The submit itself is replaced, so no network or AWS is involved.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

# Hypothesis keeps its example database and caches in ./.hypothesis, which the repository does not
# ignore; keep them out of the work tree unless the developer chose a place.
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", str(Path(tempfile.gettempdir()) / "video-bridge-hypothesis"))

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bridge.api.http_api import app
from bridge.api.routes import generations
from bridge.errors import InvalidRequest
from bridge.models import BRIDGE_FIELDS, NON_BLANK_TEXT_PATTERN, GenerationRequest
from bridge.outbound.ssrf_guard import CallbackTarget, check_callback_url

EVENTS = Path(__file__).resolve().parents[2] / "events"
FIELDS = [
    "model",
    "prompt",
    "duration",
    "size",
    "aspect_ratio",
    "negative_prompt",
    "image_url",
    "image_urls",
    "input_reference",
    "callback_url",
    "webhook_events_filter",
    "metadata",
]
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --------------------------------------------------------------------------- JSON bodies

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**45), max_value=10**45)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
urls = st.one_of(
    st.sampled_from(["https://example.com/a.png", "http://cdn.example.org/x.jpg?s=1", "https://", "ftp://x/y"]),
    st.builds(
        lambda host, path: f"https://{host}/{path}",
        st.from_regex(r"[a-z]{1,10}\.[a-z]{2,3}", fullmatch=True),
        st.text(max_size=10),
    ),
    st.text(max_size=40),
)
# For each field, values that are valid, nearly valid and plainly wrong.
field_values: dict[str, st.SearchStrategy[Any]] = {
    "model": st.text(max_size=20) | st.just("video-default"),
    "prompt": st.text(max_size=60) | st.just("a fox in snow"),
    "duration": st.integers(min_value=-5, max_value=5000)
    | st.booleans()
    | st.floats(allow_nan=False)
    | st.text(max_size=3),
    "size": st.sampled_from(["720p", "1080p", ""]) | st.text(max_size=6),
    "aspect_ratio": st.sampled_from(["16:9", "9:16", "1:1", "4:3", ""]),
    "negative_prompt": st.text(max_size=30),
    "image_url": urls,
    "image_urls": st.lists(urls, max_size=5) | urls,
    "input_reference": st.text(max_size=20) | st.integers(),
    "callback_url": urls,
    "webhook_events_filter": st.lists(
        st.sampled_from(["started", "progress", "completed", "failed", "timed_out", "canceled", "other"]), max_size=7
    ),
    "metadata": st.dictionaries(st.text(max_size=8), json_values, max_size=5) | json_values,
}


@st.composite
def submit_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """JSON objects shaped like submits: usually both required fields, some optional ones, values
    valid or not, sometimes a null or an unknown key."""
    body: dict[str, Any] = {}
    for name in FIELDS:
        required = name in ("model", "prompt")
        if draw(st.floats(0, 1)) < (0.9 if required else 0.3):
            body[name] = draw(st.none() | field_values[name]) if not required else draw(field_values[name])
    if draw(st.booleans()) and draw(st.booleans()):
        body[draw(st.text(min_size=1, max_size=10))] = draw(json_values)
    return body


# Valid values only: what a well-behaved client sends.
clean_text = st.characters(codec="utf-8", exclude_characters="\x00")


def non_blank_text(max_size: int) -> st.SearchStrategy[str]:
    """Text with something besides whitespace in it, as `model`, `prompt` and `size` must have."""
    return st.text(clean_text, min_size=1, max_size=max_size).filter(lambda s: re.fullmatch(NON_BLANK_TEXT_PATTERN, s))


valid_urls = st.builds(
    lambda scheme, host, path: f"{scheme}://{host}/{path}",
    st.sampled_from(["http", "https"]),
    st.from_regex(r"[a-z0-9]{1,12}(\.[a-z]{2,5}){1,2}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9._~/-]{0,20}", fullmatch=True),
)
valid_metadata_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**37), max_value=10**37)
    | st.floats(min_value=-1e100, max_value=1e100).map(lambda f: f if abs(f) >= 1e-100 else 0.0)
    | st.text(clean_text, max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(clean_text, min_size=1, max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
valid_field_values: dict[str, st.SearchStrategy[Any]] = {
    "model": non_blank_text(20),
    "prompt": non_blank_text(80),
    "duration": st.integers(min_value=1, max_value=3600),
    "size": non_blank_text(8),
    "aspect_ratio": st.sampled_from(["16:9", "9:16", "1:1"]),
    "negative_prompt": st.text(clean_text, max_size=30),
    "image_url": valid_urls,
    "image_urls": st.lists(valid_urls, max_size=3),
    "input_reference": st.text(clean_text, max_size=20),
    "callback_url": st.builds(lambda url: "https" + url.removeprefix("http").removeprefix("s"), valid_urls),
    "webhook_events_filter": st.lists(
        st.sampled_from(["started", "progress", "completed", "failed", "timed_out", "canceled"]), min_size=1, max_size=6
    ),
    "metadata": st.dictionaries(st.text(clean_text, min_size=1, max_size=8), valid_metadata_values, max_size=4),
}


@st.composite
def valid_submits(draw: st.DrawFn) -> dict[str, Any]:
    body = {"model": draw(valid_field_values["model"]), "prompt": draw(valid_field_values["prompt"])}
    for name in FIELDS[2:]:
        if draw(st.booleans()):
            body[name] = draw(st.none() | valid_field_values[name])
    return body


any_json_object = st.one_of(
    valid_submits(), submit_bodies(), st.dictionaries(st.text(max_size=15), json_values, max_size=6)
)


@SETTINGS
@given(any_json_object)
def test_any_json_object_validates_or_raises_validation_error(body: dict[str, Any]) -> None:
    try:
        request = GenerationRequest.model_validate(body)
    except ValidationError:
        return  # the only failure allowed; anything else propagates and fails the test
    upstream = request.upstream_body()
    # Router One gets what the client sent, minus the bridge's fields (and explicit nulls, which mean absent).
    assert upstream == {k: v for k, v in body.items() if k not in BRIDGE_FIELDS and v is not None}
    assert not BRIDGE_FIELDS & upstream.keys()
    assert json.loads(json.dumps(upstream, allow_nan=False)) == upstream
    # And what Router One gets is a valid submit on its own.
    assert GenerationRequest.model_validate(upstream).upstream_body() == upstream


@SETTINGS
@given(valid_submits())
def test_valid_submits_validate_and_round_trip_through_json(body: dict[str, Any]) -> None:
    request = GenerationRequest.model_validate(body)
    assert request.upstream_body() == {k: v for k, v in body.items() if k not in BRIDGE_FIELDS and v is not None}
    again = GenerationRequest.model_validate_json(request.model_dump_json(exclude_none=True))
    assert again == request


# --------------------------------------------------------------------------- the SSRF guard

SPECIAL_NETWORKS = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "255.255.255.255/32",
    "::/128",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
    "2001:db8::/32",
    "2001::/32",
    "100::/64",
]
PUBLIC_V4 = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "203.0.114.7"]


def _embedding(v4: ipaddress.IPv4Address, how: str) -> ipaddress.IPv6Address:
    """An IPv6 address that carries `v4` inside: IPv4-mapped, 6to4 or NAT64."""
    if how == "mapped":
        return ipaddress.IPv6Address(f"::ffff:{v4}")
    if how == "6to4":
        return ipaddress.IPv6Address((0x2002 << 112) | (int(v4) << 80) | 1)
    return ipaddress.IPv6Address(int(ipaddress.IPv6Address("64:ff9b::")) | int(v4))


v4_addresses = st.ip_addresses(v=4) | st.sampled_from(SPECIAL_NETWORKS[:13]).flatmap(
    lambda net: st.ip_addresses(network=net)
)
addresses = st.one_of(
    st.ip_addresses(),
    st.sampled_from(SPECIAL_NETWORKS).flatmap(lambda net: st.ip_addresses(network=net)),
    st.sampled_from(PUBLIC_V4).map(ipaddress.IPv4Address),
    st.builds(
        _embedding,
        v4_addresses | st.sampled_from(PUBLIC_V4).map(ipaddress.IPv4Address),
        st.sampled_from(["mapped", "6to4", "nat64"]),
    ),
)


def _embedded_v4(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped or address.sixtofour:
        return address.ipv4_mapped or address.sixtofour
    if address in ipaddress.ip_network("64:ff9b::/96"):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """The test's own oracle: globally routable unicast, and so is any IPv4 address it carries."""
    inner = _embedded_v4(address)
    return address.is_global and not address.is_multicast and (inner is None or is_public(inner))


callback_urls = st.one_of(
    st.builds(
        lambda scheme, host, port, path: f"{scheme}://{host}{port}/{path}",
        st.sampled_from(["https", "http", "HTTPS", "ftp", ""]),
        st.sampled_from(["hooks.example.com", "a.b", "xn--bcher-kva.example", "user:pw@hooks.example.com", ""]),
        st.sampled_from(["", ":443", ":8443", ":0", ":99999", ":x"]),
        st.text(max_size=15),
    ),
    st.builds(lambda a: f"https://[{a}]/in" if a.version == 6 else f"https://{a}/in", addresses),
    st.text(max_size=60),
    st.just("https://[::1"),
)


@SETTINGS
@given(
    url=callback_urls,
    answer=st.lists(addresses, max_size=4),
    failure=st.sampled_from([None, None, None, OSError("no such host"), UnicodeError("label too long")]),
    allow_loopback=st.booleans(),
)
def test_the_ssrf_guard_accepts_only_global_addresses_and_raises_only_invalid_request(
    url: str,
    answer: list[ipaddress.IPv4Address | ipaddress.IPv6Address],
    failure: Exception | None,
    allow_loopback: bool,
) -> None:
    def resolver(host: str, port: int) -> list[str]:
        if failure is not None:
            raise failure
        return [str(a) for a in answer]

    try:
        target = check_callback_url(url, allow_http=allow_loopback, allow_loopback=allow_loopback, resolver=resolver)
    except InvalidRequest as exc:
        assert exc.param == "callback_url" and exc.code == "invalid_callback_url" and exc.status == 400
        return
    assert isinstance(target, CallbackTarget)
    assert target.addresses, "an accepted URL names at least one address"
    for text in target.addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        loopback_allowed = allow_loopback and (address.is_loopback or (_embedded_v4(address) or address).is_loopback)
        assert loopback_allowed or is_public(address), f"{url} accepted with non-global {address}"
    assert target.scheme == "https" or allow_loopback


@SETTINGS
@given(url=callback_urls, answer=st.lists(addresses, min_size=1, max_size=4))
def test_without_the_loopback_switch_every_accepted_address_is_global(
    url: str, answer: list[ipaddress.IPv4Address | ipaddress.IPv6Address]
) -> None:
    try:
        target = check_callback_url(url, resolver=lambda host, port: [str(a) for a in answer])
    except InvalidRequest:
        return
    assert all(is_public(ipaddress.ip_address(text)) for text in target.addresses)
    assert target.scheme == "https"


@pytest.mark.parametrize("public", [*PUBLIC_V4, "2606:4700:4700::1111"])
def test_the_ssrf_guard_does_accept_public_addresses(public: str) -> None:
    target = check_callback_url("https://hooks.example.com/in", resolver=lambda host, port: [public])
    assert target.addresses == (public,)


# --------------------------------------------------------------------------- the API as a whole


class FakeContext:
    function_name = "api"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:api"
    aws_request_id = "test-request"


SUBMIT_EVENT = json.loads((EVENTS / "api_submit.json").read_text())
ACCEPTED = {"task_id": "v_0123456789abcdef0123456789abcdef", "status": "pending"}


def _accept(
    request: GenerationRequest, key: str | None, caller: Any, context: Any = None, caller_key: Any = None
) -> dict[str, Any]:
    assert isinstance(request, GenerationRequest)
    return dict(ACCEPTED)


@st.composite
def raw_bodies(draw: st.DrawFn) -> tuple[str | None, bool]:
    """(body, isBase64Encoded): JSON of submit-like objects or any value, text, or raw bytes."""
    kind = draw(st.sampled_from(["submit", "submit", "json", "text", "bytes", "none"]))
    if kind == "none":
        return None, False
    if kind == "bytes":
        return base64.b64encode(draw(st.binary(max_size=80))).decode(), True
    if kind == "text":
        return draw(st.text(max_size=80)), False
    value = draw(valid_submits() | submit_bodies()) if kind == "submit" else draw(json_values | st.floats())
    text = json.dumps(value, ensure_ascii=draw(st.booleans()))  # NaN/Infinity come out as literals
    if draw(st.booleans()) and draw(st.booleans()):
        return base64.b64encode(text.encode("utf-8", "surrogatepass")).decode(), True
    return text, False


content_types = st.sampled_from(
    [
        None,
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "application/x-www-form-urlencoded",
        "",
        "application/json; charset=latin-1",
    ]
)


@SETTINGS
@given(body=raw_bodies(), content_type=content_types)
def test_the_api_answers_any_body_with_202_or_a_4xx_envelope(
    body: tuple[str | None, bool], content_type: str | None
) -> None:
    event = json.loads(json.dumps(SUBMIT_EVENT))
    headers = {k: v for k, v in event["headers"].items() if k.lower() != "content-type"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    event["headers"] = headers
    event["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
    event["body"], event["isBase64Encoded"] = body

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(generations, "submit_with_key", _accept)
        response = app.resolve(event, FakeContext())

    status, payload = response["statusCode"], json.loads(response["body"])
    assert status == 202 or 400 <= status < 500, payload
    if status == 202:
        assert payload == ACCEPTED
        return
    error = payload["error"]
    assert set(payload) == {"error"}
    assert {"message", "type", "code"} <= set(error) <= {"message", "type", "code", "param"}
    assert all(isinstance(value, str) and value for value in error.values())
    assert error["type"] == "invalid_request_error"
