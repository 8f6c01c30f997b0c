"""moto's HTTP server: which backend serves a host, found once; DynamoDB requests one at a time."""

from __future__ import annotations

import threading
from typing import Any


def verify_dispatch_cache() -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    if not callable(getattr(DomainDispatcherApplication, "get_backend_for_host", None)):
        raise RuntimeError("moto changed: DomainDispatcherApplication.get_backend_for_host is gone")


def install_dispatch_cache() -> None:
    """Remember which moto backend serves each host.

    moto's server finds it per request, under one lock, by listing its package directory on disk
    and matching hundreds of URL patterns: every AWS call of the local stack queued there.
    """
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    original = DomainDispatcherApplication.get_backend_for_host
    if getattr(original, "__bridge_original__", None) is not None:
        return
    found: dict[str | None, Any] = {}

    def get_backend_for_host(self: Any, host: str | None) -> Any:
        if host not in found:
            found[host] = original(self, host)
        return found[host]

    get_backend_for_host.__bridge_original__ = original  # type: ignore[attr-defined]
    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host


# --------------------------------------------------------------------------- DynamoDB requests

# moto's DynamoDB evaluates a write's condition and then applies the write with nothing held in
# between, so two concurrent conditional writes of one item can both pass (the fault run caught a
# cancel and a poll both recording an outcome; DynamoDB never lets both succeed), and a request
# that copies an item while another updates it fails ("dictionary changed size during
# iteration"). Here DynamoDB requests are handled one at a time: the process has one interpreter
# lock anyway, so little is lost.


def verify_dynamodb_request_lock() -> None:
    from moto.dynamodb.responses import DynamoHandler

    if not callable(DynamoHandler.__dict__.get("call_action")):
        raise RuntimeError("moto changed: DynamoHandler.call_action is gone")


def install_dynamodb_request_lock() -> None:
    """Make every DynamoDB request atomic, as each item operation is on AWS."""
    from moto.dynamodb.responses import DynamoHandler

    verify_dynamodb_request_lock()
    original = DynamoHandler.__dict__["call_action"]
    if getattr(original, "__bridge_original__", None) is not None:
        return
    lock = threading.Lock()

    def call_action(self: Any) -> Any:
        with lock:
            return original(self)

    call_action.__bridge_original__ = original  # type: ignore[attr-defined]
    DynamoHandler.call_action = call_action  # type: ignore[method-assign]
