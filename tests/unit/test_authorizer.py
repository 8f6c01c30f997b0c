"""The request authorizer: Bearer key in, usage-plan key, the key's owner and a stage-wide Allow out."""

import pytest

from bridge.api import authorizer
from bridge.api.authorizer import Unauthorized, authorize, bearer_key
from bridge.tenancy import OWNER_ID_PATTERN, owner_id_for

SECRET = b"owner-id-secret-of-this-stack"


@pytest.fixture(autouse=True)
def stack_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(authorizer, "owner_secret", lambda: SECRET)


METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/dev/POST/v1/videos/generations"


@pytest.mark.parametrize(
    ("headers", "key"),
    [
        ({"Authorization": "Bearer vb-1"}, "vb-1"),
        ({"authorization": "bearer vb-1"}, "vb-1"),
        ({"Authorization": "Bearer  vb-1 "}, "vb-1"),
        ({"Authorization": "Bearer"}, None),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, None),
        ({"Authorization": "Bearer a b"}, None),
        ({"Authorization": "Bearer " + "k" * 300}, None),
        ({}, None),
        (None, None),
    ],
)
def test_bearer_key_is_read_strictly(headers: dict[str, str] | None, key: str | None) -> None:
    assert bearer_key(headers) == key


def test_authorize_hands_the_key_to_the_usage_plan_and_allows_the_whole_stage() -> None:
    answer = authorize({"methodArn": METHOD_ARN, "headers": {"Authorization": "Bearer vb-1"}})
    assert answer["usageIdentifierKey"] == "vb-1"
    [statement] = answer["policyDocument"]["Statement"]
    assert statement == {
        "Action": "execute-api:Invoke",
        "Effect": "Allow",
        "Resource": "arn:aws:execute-api:us-east-1:123456789012:abc123/dev/*",
    }
    assert "vb-1" not in answer["principalId"] and "vb-1" not in str(answer["context"])


def test_the_owner_id_reaches_the_handler_in_the_authorizer_context() -> None:
    answer = authorize({"methodArn": METHOD_ARN, "headers": {"Authorization": "Bearer vb-1"}})
    assert answer["context"] == {"owner_id": owner_id_for("vb-1", SECRET)}
    assert answer["principalId"] == answer["context"]["owner_id"]
    assert OWNER_ID_PATTERN.fullmatch(answer["principalId"])


def test_owner_ids_are_stable_per_key_and_tell_keys_apart() -> None:
    first = owner_id_for("vb-1", SECRET)
    assert owner_id_for("vb-1", SECRET) == first
    assert owner_id_for("vb-2", SECRET) != first
    # Keyed: without the stack's secret, a key's owner id cannot be computed (nor a key guessed from it).
    assert owner_id_for("vb-1", b"another stack's secret") != first


def test_no_key_is_the_exact_error_api_gateway_turns_into_a_401() -> None:
    with pytest.raises(Unauthorized) as caught:
        authorize({"methodArn": METHOD_ARN, "headers": {}})
    assert str(caught.value) == "Unauthorized"
