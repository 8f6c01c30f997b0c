"""The request authorizer: Bearer key in, usage-plan key and a stage-wide Allow out."""

import pytest

from bridge.auth import Unauthorized, authorize, bearer_key

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


def test_no_key_is_the_exact_error_api_gateway_turns_into_a_401() -> None:
    with pytest.raises(Unauthorized) as caught:
        authorize({"methodArn": METHOD_ARN, "headers": {}})
    assert str(caught.value) == "Unauthorized"
