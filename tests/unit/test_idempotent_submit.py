"""Submits with an Idempotency-Key on their own (`bridge.submit.idempotent`): replays, scoping per
caller and per Router One account, refusals, with the submit itself replaced by a recorder."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from bridge.errors import BridgeError, Conflict, InvalidRequest, ServiceUnavailable
from bridge.models import GenerationRequest
from bridge.settings import SettingsError, get_settings
from bridge.submit import idempotent
from bridge.tenancy import Caller
from bridge.upstream.caller_keys import CallerKey
from bridge_local.emulator import EmbeddedAws, LambdaContext
from bridge_local.local_stack import forget_cached_clients
from bridge_local.testing import create_table_like, environ_restored

# Only the test that passes a Lambda context gives Powertools a remaining time; the others need none.
pytestmark = pytest.mark.filterwarnings("ignore:Couldn.t determine the remaining time left")

ALICE = Caller(owner_id="own_" + "a" * 32)
BOB = Caller(owner_id="own_" + "b" * 32)


@dataclass
class Answer:
    task_id: str

    def model_dump(self) -> dict[str, Any]:
        return {"object": "video.generation", "task_id": self.task_id}


@dataclass
class Recorder:
    calls: list[tuple[GenerationRequest, str, CallerKey | None]]
    fail_next: BaseException | None = None
    during: Any = None

    def __call__(self, request: GenerationRequest, owner_id: str, caller_key: CallerKey | None = None) -> Answer:
        self.calls.append((request, owner_id, caller_key))
        if self.during is not None:
            during, self.during = self.during, None
            during()
        if self.fail_next is not None:
            failure, self.fail_next = self.fail_next, None
            raise failure
        return Answer(task_id=f"task_{len(self.calls)}")


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmbeddedAws]:
    # One server for the module (starting one takes over a second); every test makes its own table.
    with environ_restored(), EmbeddedAws() as embedded:
        secret = embedded.client("secretsmanager").create_secret(
            Name=f"owner-secret-{uuid.uuid4().hex[:8]}", SecretString="owner-id-secret-for-tests"
        )["ARN"]
        embedded.owner_secret_arn = secret  # type: ignore[attr-defined]
        forget_cached_clients()
        yield embedded
    forget_cached_clients()


@pytest.fixture
def table(emulator: EmbeddedAws, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"idempotency-{uuid.uuid4().hex[:10]}"
    create_table_like(emulator.client("dynamodb"), "IdempotencyTable", name)
    monkeypatch.setenv("IDEMPOTENCY_TABLE_NAME", name)
    monkeypatch.setenv("OWNER_ID_SECRET", emulator.owner_secret_arn)  # type: ignore[attr-defined]
    get_settings.cache_clear()
    idempotent.reset()
    yield name
    get_settings.cache_clear()
    idempotent.reset()


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorder = Recorder(calls=[])
    monkeypatch.setattr(idempotent, "submit", recorder)
    return recorder


def request(prompt: str = "a red fox in snow", **extra: Any) -> GenerationRequest:
    return GenerationRequest.model_validate({"model": "video-default", "prompt": prompt, **extra})


def records(emulator: EmbeddedAws, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = emulator.client("dynamodb").scan(TableName=table)["Items"]
    return items


# --------------------------------------------------------------------------- without a key


def test_without_a_key_every_submit_goes_through_and_nothing_is_stored(
    emulator: EmbeddedAws, table: str, recorder: Recorder
) -> None:
    first = idempotent.submit_with_key(request(), None, ALICE)
    second = idempotent.submit_with_key(request(), None, ALICE)
    assert (first["task_id"], second["task_id"]) == ("task_1", "task_2")
    assert [owner for _, owner, _ in recorder.calls] == [ALICE.owner_id] * 2
    assert records(emulator, table) == []


@pytest.mark.parametrize("key", ["", "   ", "k" * (idempotent.MAX_KEY_LENGTH + 1)])
def test_blank_or_overlong_keys_are_refused_before_submitting(table: str, recorder: Recorder, key: str) -> None:
    with pytest.raises(InvalidRequest) as excinfo:
        idempotent.submit_with_key(request(), key, ALICE)
    assert excinfo.value.param == "Idempotency-Key"
    assert recorder.calls == []


def test_a_key_of_the_longest_length_is_accepted(table: str, recorder: Recorder) -> None:
    key = "k" * idempotent.MAX_KEY_LENGTH
    assert idempotent.submit_with_key(request(), key, ALICE)["task_id"] == "task_1"


def test_a_missing_table_setting_fails_loudly_before_anything_is_submitted(
    table: str, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IDEMPOTENCY_TABLE_NAME")
    get_settings.cache_clear()
    idempotent.reset()
    try:
        with pytest.raises(SettingsError, match="IDEMPOTENCY_TABLE_NAME"):
            idempotent.submit_with_key(request(), "key-1", ALICE)
    finally:
        get_settings.cache_clear()
    assert recorder.calls == []


# --------------------------------------------------------------------------- replays


def test_a_retry_with_the_same_key_and_body_replays_the_first_answer(
    emulator: EmbeddedAws, table: str, recorder: Recorder
) -> None:
    context = LambdaContext("api", "$LATEST", "arn:aws:lambda:us-east-1:123456789012:function:api", 512, 29)
    first = idempotent.submit_with_key(request(duration=5), "key-1", ALICE, context)
    again = idempotent.submit_with_key(request(duration=5), "key-1", ALICE)
    assert first == again == {"object": "video.generation", "task_id": "task_1"}
    assert len(recorder.calls) == 1
    [(submitted, owner, caller_key)] = recorder.calls
    assert submitted == request(duration=5) and owner == ALICE.owner_id and caller_key is None
    [record] = records(emulator, table)
    assert record["status"]["S"] == "COMPLETED"


def test_the_same_key_with_another_body_is_a_422_and_submits_nothing(table: str, recorder: Recorder) -> None:
    idempotent.submit_with_key(request("first prompt"), "key-1", ALICE)
    with pytest.raises(BridgeError) as excinfo:
        idempotent.submit_with_key(request("second prompt"), "key-1", ALICE)
    assert excinfo.value.status == 422
    assert excinfo.value.code == "idempotency_key_reused"
    assert len(recorder.calls) == 1


def test_another_key_is_another_submit(table: str, recorder: Recorder) -> None:
    a = idempotent.submit_with_key(request(), "key-1", ALICE)
    b = idempotent.submit_with_key(request(), "key-2", ALICE)
    assert a["task_id"] != b["task_id"] and len(recorder.calls) == 2


def test_keys_are_scoped_to_their_caller(table: str, recorder: Recorder) -> None:
    alice = idempotent.submit_with_key(request(), "shared-key", ALICE)
    bob = idempotent.submit_with_key(request(), "shared-key", BOB)
    assert alice["task_id"] != bob["task_id"]
    assert [owner for _, owner, _ in recorder.calls] == [ALICE.owner_id, BOB.owner_id]
    # And each still replays its own.
    assert idempotent.submit_with_key(request(), "shared-key", BOB) == bob
    assert len(recorder.calls) == 2


def test_a_failed_submit_is_not_remembered(table: str, recorder: Recorder) -> None:
    recorder.fail_next = ServiceUnavailable("upstream down")
    with pytest.raises(ServiceUnavailable):
        idempotent.submit_with_key(request(), "key-1", ALICE)
    assert idempotent.submit_with_key(request(), "key-1", ALICE)["task_id"] == "task_2"
    assert len(recorder.calls) == 2


def test_a_retry_while_the_first_is_still_running_is_a_409(table: str, recorder: Recorder) -> None:
    seen: list[BaseException] = []

    def retry_meanwhile() -> None:
        try:
            idempotent.submit_with_key(request(), "key-1", ALICE)
        except BaseException as exc:
            seen.append(exc)

    recorder.during = retry_meanwhile
    assert idempotent.submit_with_key(request(), "key-1", ALICE)["task_id"] == "task_1"
    [refusal] = seen
    assert isinstance(refusal, Conflict) and refusal.code == "idempotency_in_progress"
    assert len(recorder.calls) == 1


# --------------------------------------------------------------------------- pass-through keys


def test_the_caller_key_rides_along_but_is_never_stored(emulator: EmbeddedAws, table: str, recorder: Recorder) -> None:
    mine = CallerKey(plaintext="sk-caller-one-5e1f", ciphertext="c2VhbGVk")
    idempotent.submit_with_key(request(), "key-1", ALICE, caller_key=mine)
    [(_, _, passed)] = recorder.calls
    assert passed is mine
    stored = repr(records(emulator, table))
    assert "sk-caller-one-5e1f" not in stored and "c2VhbGVk" not in stored


def test_the_same_key_with_another_router_one_key_is_a_new_submit(table: str, recorder: Recorder) -> None:
    one = CallerKey(plaintext="sk-caller-one-5e1f", ciphertext="x")
    two = CallerKey(plaintext="sk-caller-two-77aa", ciphertext="y")
    first = idempotent.submit_with_key(request(), "key-1", ALICE, caller_key=one)
    second = idempotent.submit_with_key(request(), "key-1", ALICE, caller_key=two)
    own = idempotent.submit_with_key(request(), "key-1", ALICE)
    assert len({first["task_id"], second["task_id"], own["task_id"]}) == 3
    # The same Router One key again (another ciphertext of it) replays.
    again = CallerKey(plaintext="sk-caller-one-5e1f", ciphertext="z")
    assert idempotent.submit_with_key(request(), "key-1", ALICE, caller_key=again) == first
    assert len(recorder.calls) == 3
