"""The changes to moto stay in step with moto: the pinned version is the one installed, every
patch finds what it replaces, and a patch refuses to install over a target that moved."""

from __future__ import annotations

import pytest

from bridge_local import moto_patches
from bridge_local.moto_patches import lambda_routing, quotas, server


def test_the_installed_moto_is_the_pinned_one_and_every_patch_finds_its_target() -> None:
    assert moto_patches.installed_moto_version() == moto_patches.MOTO_VERSION
    moto_patches.verify_all()


def test_every_patch_is_listed_once_with_its_reason_in_the_package_docstring() -> None:
    names = [patch.name for patch in moto_patches.patches()]
    assert len(names) == len(set(names))
    doc = moto_patches.__doc__ or ""
    for name in names:
        assert f"| {name} |" in doc, name


def test_a_moved_lambda_invoke_stops_the_routing_patch(monkeypatch: pytest.MonkeyPatch) -> None:
    cls = lambda_routing._lambda_simple_backend_class()
    monkeypatch.delattr(cls, "invoke")
    with pytest.raises(RuntimeError, match="moto changed"):
        lambda_routing.verify_lambda_routing()


def test_a_moved_dynamodb_call_action_stops_the_request_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.dynamodb.responses import DynamoHandler

    monkeypatch.delattr(DynamoHandler, "call_action")
    with pytest.raises(RuntimeError, match="moto changed"):
        server.verify_dynamodb_request_lock()


def test_another_moto_version_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(moto_patches, "installed_moto_version", lambda: "5.3.0")
    with pytest.raises(RuntimeError, match=r"5\.3\.0 is installed"):
        moto_patches.verify_all()


def test_the_quota_patches_are_installed_once_and_moto_still_has_what_they_patch() -> None:
    moto_patches.install_all()
    quotas.verify_quotas()
    from moto.dynamodb.models.dynamo_type import LimitedSizeDict
    from moto.sqs.models import SQSBackend

    before = (LimitedSizeDict.__dict__["__setitem__"], SQSBackend.__dict__["send_message"])
    quotas.install_quotas()
    assert (LimitedSizeDict.__dict__["__setitem__"], SQSBackend.__dict__["send_message"]) == before
    assert getattr(before[1], "__bridge_quota__", False)
