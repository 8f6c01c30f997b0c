"""The built-in receiver verifies registered endpoints' signatures: v1 (HMAC) with the endpoint's
whsec_ secret and v1a (Ed25519) with its whpk_ public keys, the latter with PyNaCl, apart from the
`cryptography` code that signs. Keys come from `endpoint_keys.new_key_set()`, signatures from
`endpoint_keys.signatures(...)`, as the sender makes them; requests go over HTTP to a real receiver.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from nacl.signing import SigningKey
from standardwebhooks import Webhook

from bridge.webhooks import endpoint_keys
from bridge.webhooks.endpoint_keys import KeySet, SealedKeys
from bridge_local import receiver as receiver_module
from bridge_local import receiver_keys
from bridge_local.receiver import ENDPOINT_KEYS_PATH, ReceivedWebhook, WebhookReceiver, format_delivery
from bridge_local.receiver_keys import SchemeCheck, check_endpoint_signatures, verify_v1a

STACK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
PATH = "/hooks/endpoint"
BODY = json.dumps({"id": "evt_1", "type": "video.generation.completed", "data": {"task_id": "v_1"}})
BOTH = ["v1", "v1a"]


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver([STACK_SECRET]) as running:
        yield running


def signed_headers(
    keys: list[KeySet], versions: list[str], body: str = BODY, *, at: datetime | None = None, message_id: str = "evt_1"
) -> dict[str, str]:
    timestamp = (at or datetime.now(UTC)).replace(microsecond=0)
    signature = endpoint_keys.signatures(keys, versions, message_id=message_id, timestamp=timestamp, body=body)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


def deliver(receiver: WebhookReceiver, headers: dict[str, str], body: str = BODY) -> ReceivedWebhook:
    before = len(receiver.deliveries(PATH))
    httpx.post(receiver.url + PATH, content=body.encode(), headers=headers, timeout=10)
    found = receiver.deliveries(PATH)
    assert len(found) == before + 1
    return found[-1]


def register(receiver: WebhookReceiver, keys: KeySet, endpoint_id: str = "ep_one") -> None:
    receiver.register_endpoint(endpoint_id, receiver.url + PATH, secret=keys.v1, public_keys=[keys.public_key()])


# --------------------------------------------------------------------------- one key set


def test_valid_v1_and_v1a_verify_with_the_current_keys(receiver: WebhookReceiver) -> None:
    keys = endpoint_keys.new_key_set()
    register(receiver, keys)

    record = deliver(receiver, signed_headers([keys], BOTH))

    assert record.verified and record.answered == 200
    assert record.checks == (SchemeCheck("v1", "ok", ("current",)), SchemeCheck("v1a", "ok", ("current",)))
    assert record.signatures == "v1 ok (current), v1a ok (current)"
    assert record.endpoint_ids == ("ep_one",)
    assert "signature ok: v1 ok (current), v1a ok (current)" in format_delivery(record)


def test_v1a_alone_verifies(receiver: WebhookReceiver) -> None:
    keys = endpoint_keys.new_key_set()
    receiver.register_endpoint("ep_one", PATH, public_keys=[keys.public_key()])  # no secret: v1a only

    record = deliver(receiver, signed_headers([keys], ["v1a"]))

    assert record.verified and record.answered == 200
    assert record.signatures == "v1a ok (current)"


def test_a_tampered_body_fails_both_schemes(receiver: WebhookReceiver) -> None:
    keys = endpoint_keys.new_key_set()
    register(receiver, keys)
    headers = signed_headers([keys], BOTH)

    record = deliver(receiver, headers, BODY.replace("v_1", "v_2"))

    assert not record.verified and record.answered == 401
    assert [check.outcome for check in record.checks] == ["failed", "failed"]
    assert record.signatures == "v1 FAILED: no signature matched, v1a FAILED: no signature matched"
    assert "SIGNATURE REJECTED (v1 FAILED" in format_delivery(record)


def test_a_tampered_v1a_signature_fails_though_v1_verifies(receiver: WebhookReceiver) -> None:
    keys = endpoint_keys.new_key_set()
    register(receiver, keys)
    headers = signed_headers([keys], BOTH)
    v1, v1a = headers["webhook-signature"].split()
    raw = bytearray(base64.b64decode(v1a.removeprefix("v1a,")))
    raw[0] ^= 1
    headers["webhook-signature"] = f"{v1} v1a,{base64.b64encode(bytes(raw)).decode()}"

    record = deliver(receiver, headers)

    assert record.checks == (
        SchemeCheck("v1", "ok", ("current",)),
        SchemeCheck("v1a", "failed", error="no signature matched"),
    )
    assert not record.verified and record.answered == 401


def test_another_key_does_not_verify_v1a(receiver: WebhookReceiver) -> None:
    signer, other = endpoint_keys.new_key_set(), endpoint_keys.new_key_set()
    receiver.register_endpoint("ep_one", PATH, secret=signer.v1, public_keys=[other.public_key()])

    record = deliver(receiver, signed_headers([signer], BOTH))

    assert record.signatures == "v1 ok (current), v1a FAILED: no signature matched"
    assert not record.verified and record.answered == 401


def test_v1a_alone_with_the_wrong_key_is_rejected(receiver: WebhookReceiver) -> None:
    signer, other = endpoint_keys.new_key_set(), endpoint_keys.new_key_set()
    receiver.register_endpoint("ep_one", PATH, public_keys=[other.public_key()])

    record = deliver(receiver, signed_headers([signer], ["v1a"]))

    assert record.checks == (SchemeCheck("v1a", "failed", error="no signature matched"),)
    assert not record.verified and record.answered == 401


def test_a_scheme_the_delivery_lacks_is_missing_not_failed(receiver: WebhookReceiver) -> None:
    keys = endpoint_keys.new_key_set()
    register(receiver, keys)

    record = deliver(receiver, signed_headers([keys], ["v1"]))

    assert record.signatures == "v1 ok (current), v1a missing"
    assert record.verified


def test_an_old_timestamp_fails_v1a_as_v1(receiver: WebhookReceiver) -> None:
    keys = endpoint_keys.new_key_set()
    register(receiver, keys)

    record = deliver(receiver, signed_headers([keys], BOTH, at=datetime.now(UTC) - timedelta(minutes=6)))

    assert [check.outcome for check in record.checks] == ["failed", "failed"]
    assert all("off this clock" in str(check.error) for check in record.checks)
    assert not record.verified


# --------------------------------------------------------------------------- a rotation's overlap


def rotate(receiver: WebhookReceiver, old: KeySet, *, overlap_s: int = 3600) -> list[KeySet]:
    """Rotate as the API does, and register what its answer carries: the new secret, both public keys."""
    now = datetime.now(UTC)
    sealed = endpoint_keys.rotated(SealedKeys(current=old), overlap_s=overlap_s, now=now)
    public_keys = [key.model_dump() for key in sealed.public_keys(now)]
    receiver.register_endpoint("ep_one", PATH, secret=sealed.current.v1, public_keys=public_keys)
    return sealed.active(now)


def test_during_an_overlap_both_keys_verify_each_scheme(receiver: WebhookReceiver) -> None:
    old = endpoint_keys.new_key_set()
    register(receiver, old)
    active = rotate(receiver, old)
    assert len(active) == 2

    headers = signed_headers(active, BOTH)
    assert len(headers["webhook-signature"].split()) == 4  # v1 and v1a of the current and the previous keys
    record = deliver(receiver, headers)

    assert record.verified and record.answered == 200
    assert record.signatures == "v1 ok (current + previous), v1a ok (current + previous)"


def test_during_an_overlap_each_key_alone_verifies_with_its_label(receiver: WebhookReceiver) -> None:
    old = endpoint_keys.new_key_set()
    register(receiver, old)
    current, previous = rotate(receiver, old)

    assert deliver(receiver, signed_headers([previous], BOTH)).signatures == "v1 ok (previous), v1a ok (previous)"
    assert deliver(receiver, signed_headers([current], BOTH)).signatures == "v1 ok (current), v1a ok (current)"


def test_a_rotation_without_overlap_drops_the_old_keys(receiver: WebhookReceiver) -> None:
    old = endpoint_keys.new_key_set()
    register(receiver, old)
    rotate(receiver, old, overlap_s=0)

    record = deliver(receiver, signed_headers([old], BOTH))

    assert not record.verified
    assert [check.outcome for check in record.checks] == ["failed", "failed"]


# --------------------------------------------------------------------------- PyNaCl, independently


def test_v1a_verification_is_pynacl_and_agrees_with_an_independent_signer() -> None:
    signing = SigningKey.generate()
    public_key = "whpk_" + base64.b64encode(bytes(signing.verify_key)).decode()
    message = b"evt_9.1700000000.{}"

    assert verify_v1a(public_key, message, signing.sign(message).signature)
    assert not verify_v1a(public_key, message + b" ", signing.sign(message).signature)
    assert not verify_v1a(public_key, message, b"short")
    assert receiver_keys.VerifyKey.__module__ == "nacl.signing"


def test_check_endpoint_signatures_names_the_endpoint_when_a_path_has_several() -> None:
    first, second = endpoint_keys.new_key_set(), endpoint_keys.new_key_set()
    with WebhookReceiver() as running:
        running.register_endpoint("ep_a", PATH, secret=first.v1, public_keys=[first.public_key()])
        running.register_endpoint("ep_b", PATH, secret=second.v1, public_keys=[second.public_key()])
        checks = check_endpoint_signatures(BODY, signed_headers([second], BOTH), running.registered_endpoints())
    assert [str(check) for check in checks] == ["v1 ok (ep_b current)", "v1a ok (ep_b current)"]


# --------------------------------------------------------------------------- unchanged behaviour


def test_the_stack_secret_still_verifies_elsewhere_and_on_an_endpoint_path(receiver: WebhookReceiver) -> None:
    timestamp = datetime.now(UTC)
    signature = Webhook(STACK_SECRET).sign("evt_1", timestamp, BODY)
    headers = {
        "webhook-id": "evt_1",
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature,
    }

    httpx.post(receiver.url + "/hooks/demo", content=BODY, headers=headers, timeout=10)
    plain = receiver.wait_for("/hooks/demo")[0]
    assert plain.verified and plain.endpoint_ids == ()
    assert format_delivery(plain).endswith("answered 200; signature ok")

    register(receiver, endpoint_keys.new_key_set())
    on_endpoint_path = deliver(receiver, headers)
    assert on_endpoint_path.verified and on_endpoint_path.signatures == "v1 ok (stack secret)"


# --------------------------------------------------------------------------- the admin route


def test_the_admin_route_takes_the_api_answer_and_never_shows_the_secret(receiver: WebhookReceiver) -> None:
    keys = endpoint_keys.new_key_set()
    answer = {
        "object": "webhook_endpoint",
        "id": "ep_admin",
        "url": receiver.url + PATH + "?fail=0",
        "signature_versions": BOTH,
        "public_keys": [{"key": keys.public_key(), "expires_at": None}],
        "secret": keys.v1,
    }

    taken = httpx.post(receiver.url + ENDPOINT_KEYS_PATH, json=answer, timeout=10)
    listed = httpx.get(receiver.url + ENDPOINT_KEYS_PATH, timeout=10)

    assert taken.status_code == 200, taken.text
    assert listed.json() == {
        "endpoints": [
            {"id": "ep_admin", "path": PATH, "keys": [{"label": "current", "v1": True, "v1a": keys.public_key()}]}
        ]
    }
    assert keys.v1 not in taken.text + listed.text
    assert receiver.received == []  # admin calls are not webhooks
    assert deliver(receiver, signed_headers([keys], BOTH)).signatures == "v1 ok (current), v1a ok (current)"


@pytest.mark.parametrize(
    "document",
    [
        {"id": "ep_x", "url": "/p", "public_keys": ["whpk_notbase64!"]},
        {"id": "ep_x", "url": "/p", "public_keys": ["whpk_" + base64.b64encode(b"short").decode()]},
        {"id": "ep_x", "url": "/p", "secret": "not-a-secret"},
        {"id": "", "url": "/p", "secret": STACK_SECRET},
        {"id": "ep_x", "url": "/p"},
    ],
)
def test_the_admin_route_refuses_malformed_keys(receiver: WebhookReceiver, document: dict[str, object]) -> None:
    answer = httpx.post(receiver.url + ENDPOINT_KEYS_PATH, json=document, timeout=10)
    assert answer.status_code == 400
    assert receiver.registered_endpoints() == []


def test_the_admin_route_refuses_a_webhook_and_answers_loopback_only(receiver: WebhookReceiver) -> None:
    refused = httpx.post(receiver.url + ENDPOINT_KEYS_PATH, content=BODY, headers={"webhook-id": "evt_1"}, timeout=10)
    assert refused.status_code == 400 and receiver.registered_endpoints() == []
    assert receiver_module._is_loopback("127.0.0.1") and receiver_module._is_loopback("::1")
    assert not receiver_module._is_loopback("192.168.1.5") and not receiver_module._is_loopback("")


# --------------------------------------------------------------------------- the docs' snippet


def docs_v1a_verifier() -> dict[str, Any]:
    """docs/webhooks.md's "Verifying v1a (Ed25519)" snippet, run as written."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "webhooks.md").read_text(encoding="utf-8")
    section = text.split("## Verifying v1a (Ed25519)", 1)[1].split("\n## ", 1)[0]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, "docs/webhooks.md", "exec"), namespace)
    return namespace


def test_the_docs_snippet_verifies_v1a_and_the_overlap() -> None:
    snippet = docs_v1a_verifier()
    verify = snippet["verify_v1a"]
    old = endpoint_keys.new_key_set()
    active = endpoint_keys.rotated(SealedKeys(current=old), overlap_s=3600, now=datetime.now(UTC)).active(
        datetime.now(UTC)
    )
    new = active[0]

    snippet["PUBLIC_KEYS"] = [old.public_key()]  # a receiver that has not switched yet
    assert verify(BODY.encode(), signed_headers(active, BOTH))
    snippet["PUBLIC_KEYS"] = [new.public_key()]  # one that has
    assert verify(BODY.encode(), signed_headers(active, BOTH))
    assert not verify(BODY.encode(), signed_headers([old], BOTH))  # the previous key's alone: not trusted any more
    assert not verify(BODY.encode() + b" ", signed_headers([new], BOTH))  # tampered
    assert not verify(BODY.encode(), signed_headers([new], ["v1"]))  # no v1a signature
    stale = signed_headers([new], BOTH, at=datetime.now(UTC) - timedelta(minutes=10))
    assert not verify(BODY.encode(), stale)
