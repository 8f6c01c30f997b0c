"""The AWS SDK loads at a function's first AWS call, not with its handler module; what stands in
for boto3 at import time behaves as boto3 would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal, DecimalException
from pathlib import Path

import pytest
from boto3.dynamodb.types import DYNAMODB_CONTEXT
from botocore import exceptions

from bridge import aws_errors
from bridge.models import DYNAMODB_NUMBERS

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = sorted(path.name for path in (ROOT / "functions").iterdir() if (path / "app.py").exists())

IMPORT_AND_LIST = """
import json, sys
sys.path[:0] = [{code!r}, {layer!r}]
import app
print(json.dumps(sorted({{name.split(".")[0] for name in sys.modules}})))
"""


@pytest.mark.parametrize("function", FUNCTIONS)
def test_importing_a_handler_does_not_load_boto3(function: str) -> None:
    code = ROOT / "functions" / function
    env = os.environ | {"POWERTOOLS_TRACE_DISABLED": "true", "AWS_REGION": "us-east-1"}
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_AND_LIST.format(code=str(code), layer=str(ROOT / "layers" / "bridge"))],
        capture_output=True,
        text=True,
        cwd=code,
        env=env,
        check=True,
    )
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert "app" in loaded
    assert not {"boto3", "s3transfer"} & loaded


def test_the_deferred_error_classes_are_botocores_own() -> None:
    assert aws_errors.ClientError is exceptions.ClientError
    assert aws_errors.BotoCoreError is exceptions.BotoCoreError
    with pytest.raises(AttributeError):
        _ = aws_errors.NoSuchThing


def test_a_deferred_error_class_still_catches_what_the_sdk_raises() -> None:
    error = exceptions.ClientError({"Error": {"Code": "ConditionalCheckFailedException"}}, "PutItem")
    with pytest.raises(ZeroDivisionError):  # something else passes through the same clause
        try:
            raise ZeroDivisionError
        except aws_errors.ClientError:
            pytest.fail("a ZeroDivisionError is not a ClientError")
    try:
        raise error
    except aws_errors.ClientError as caught:
        assert caught is error


def test_the_models_number_rules_are_boto3s() -> None:
    for attribute in ("prec", "Emin", "Emax"):
        assert getattr(DYNAMODB_NUMBERS, attribute) == getattr(DYNAMODB_CONTEXT, attribute)
    assert {t for t, on in DYNAMODB_NUMBERS.traps.items() if on} == {
        t for t, on in DYNAMODB_CONTEXT.traps.items() if on
    }
    with pytest.raises(DecimalException):
        DYNAMODB_NUMBERS.create_decimal(Decimal("1" * 39))
    assert DYNAMODB_NUMBERS.create_decimal(Decimal("1" * 38)) == Decimal("1" * 38)
