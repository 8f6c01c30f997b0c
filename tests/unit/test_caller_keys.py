"""Pass-through keys on their own (`bridge.upstream.caller_keys`): checked, sealed with KMS under the
stack's context, unsealed for a poll, and refused anywhere else."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from bridge.errors import InvalidRequest, ServiceUnavailable, UpstreamTransientError
from bridge.upstream import caller_keys
from bridge.upstream.caller_keys import CALLER_KEY_HEADER, MAX_CALLER_KEY_LENGTH, seal, unseal
from bridge_local.emulator import EmbeddedAws
from bridge_local.local_stack import forget_cached_clients
from bridge_local.testing import environ_restored


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmbeddedAws]:
    # One server for the module (starting one takes over a second); every test makes its own key.
    with environ_restored(), EmbeddedAws() as embedded:
        yield embedded
    forget_cached_clients()


@pytest.fixture
def aws(emulator: EmbeddedAws, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmbeddedAws]:
    monkeypatch.delenv("CALLER_KEY_KMS_KEY_ID", raising=False)
    forget_cached_clients()
    yield emulator
    forget_cached_clients()


@pytest.fixture
def key_id(aws: EmbeddedAws, monkeypatch: pytest.MonkeyPatch) -> str:
    arn: str = aws.client("kms").create_key(Description="caller keys")["KeyMetadata"]["Arn"]
    monkeypatch.setenv("CALLER_KEY_KMS_KEY_ID", arn)
    forget_cached_clients()
    return arn


def test_no_header_seals_nothing_and_asks_no_one() -> None:
    # No emulator: a call to KMS would fail, so None proves nothing was asked.
    assert seal(None) is None


def test_a_key_is_refused_when_the_stack_does_not_accept_caller_keys(aws: EmbeddedAws) -> None:
    with pytest.raises(InvalidRequest) as excinfo:
        seal("sk-caller-1")
    assert excinfo.value.code == "caller_keys_disabled"
    assert excinfo.value.param == CALLER_KEY_HEADER


@pytest.mark.parametrize(
    "value",
    ["", "   ", "sk with space", "sk-\x00-nul", "sk-é", "sk\r\nX-Injected: 1", "k" * (MAX_CALLER_KEY_LENGTH + 1)],
)
def test_malformed_keys_are_refused_before_kms(key_id: str, value: str) -> None:
    with pytest.raises(InvalidRequest) as excinfo:
        seal(value)
    assert excinfo.value.param == CALLER_KEY_HEADER
    assert excinfo.value.code == "invalid_parameter"


def test_seal_and_unseal_round_trip_and_the_ciphertext_hides_the_key(key_id: str) -> None:
    sealed = seal("  sk-caller-7f3a  ")  # surrounding whitespace of a header value is not the key
    assert sealed is not None
    assert sealed.plaintext == "sk-caller-7f3a"
    blob = base64.b64decode(sealed.ciphertext, validate=True)
    assert b"sk-caller-7f3a" not in blob
    assert unseal(sealed.ciphertext) == "sk-caller-7f3a"


def test_longest_key_is_accepted(key_id: str) -> None:
    longest = "k" * MAX_CALLER_KEY_LENGTH
    sealed = seal(longest)
    assert sealed is not None and unseal(sealed.ciphertext) == longest


def test_the_key_never_shows_in_repr(key_id: str) -> None:
    sealed = seal("sk-caller-secret-91")
    assert "sk-caller-secret-91" not in repr(sealed)
    assert "sk-caller-secret-91" not in str(sealed)
    assert sealed is not None and sealed.ciphertext not in repr(sealed)


def test_a_ciphertext_under_another_context_is_refused(aws: EmbeddedAws, key_id: str) -> None:
    foreign = aws.client("kms").encrypt(
        KeyId=key_id, Plaintext=b"sk-lifted", EncryptionContext={"purpose": "something-else"}
    )["CiphertextBlob"]
    with pytest.raises(UpstreamTransientError):
        unseal(base64.b64encode(foreign).decode())
    # The same key under the module's own context is fine: the context alone made the difference.
    own = aws.client("kms").encrypt(KeyId=key_id, Plaintext=b"sk-lifted", EncryptionContext=caller_keys._CONTEXT)
    assert unseal(base64.b64encode(own["CiphertextBlob"]).decode()) == "sk-lifted"


def test_garbage_ciphertext_is_a_transient_poll_failure_without_the_input(key_id: str) -> None:
    with pytest.raises(UpstreamTransientError) as excinfo:
        unseal(base64.b64encode(b"not a kms blob at all").decode())
    assert "not a kms blob" not in str(excinfo.value)


def test_kms_unavailable_is_a_503_and_does_not_leak_the_key(aws: EmbeddedAws, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"
    monkeypatch.setenv("CALLER_KEY_KMS_KEY_ID", missing)
    forget_cached_clients()
    with pytest.raises(ServiceUnavailable) as excinfo:
        seal("sk-caller-unlucky")
    assert excinfo.value.code == "caller_key_unavailable"
    assert excinfo.value.__cause__ is None and excinfo.value.__suppress_context__
    assert "sk-caller-unlucky" not in str(excinfo.value)
