"""Publishing faults on demand: the bridge's SNS, EventBridge and webhook-queue sends fail some of
the time, as botocore calls that raise, before the send or after it took effect (the reply lost).

The hooks sit on the bridge's boto3 session (`bridge.clients.aws()`), so every client it makes
afterwards carries them, in whichever local function sends. Other SQS sends (the outcome check, a
webhook's retry) are left alone: they are not publishing.
"""

from __future__ import annotations

import os
import random
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

_FAULTABLE = {"sns": "Publish", "events": "PutEvents", "sqs": "SendMessage"}


@dataclass
class PublishFaults:
    """`rate` is the chance that one send fails; `lost_reply_share` of those failures happen after
    the send took effect (as when a connection drops), so a retry sends it twice: receivers see the
    same event id again and must dedupe. The rest fail before sending. `injected` counts them."""

    rate: float = 0.0
    lost_reply_share: float = 0.5
    seed: int | None = None
    injected: dict[str, int] = field(default_factory=dict)
    _rng: random.Random = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def roll(self, name: str) -> str | None:
        """None (send normally), "before" (fail without sending) or "after" (send, then fail)."""
        with self._lock:
            if self._rng.random() >= self.rate:
                return None
            mode = "after" if self._rng.random() < self.lost_reply_share else "before"
            key = f"{name}:{mode}"
            self.injected[key] = self.injected.get(key, 0) + 1
            return mode


_active: PublishFaults | None = None


def install_publish_faults(faults: PublishFaults | None) -> None:
    """Fail the bridge's sends through `faults` from now on (None turns them off)."""
    from bridge import clients

    global _active
    _active = faults
    session = clients.aws()
    for service, operation in _FAULTABLE.items():
        name = f"{service}:{operation}"
        session.events.register(f"before-call.{service}.{operation}", _before(name), unique_id=f"fault-before-{name}")
        session.events.register(f"after-call.{service}.{operation}", _after, unique_id=f"fault-after-{name}")
    # Clients made before the hooks were registered lack them: make them again.
    for factory in (clients.sns, clients.eventbridge, clients.sqs):
        factory.cache_clear()


def _before(name: str) -> Any:
    def hook(**kwargs: Any) -> None:
        if _active is None or not _is_publishing(name, kwargs.get("params") or {}):
            return
        mode = _active.roll(name)
        if mode is not None:
            kwargs["context"]["bridge_fault"] = mode
            if mode == "before":
                raise _injected_error(name.partition(":")[2])

    return hook


def _after(**kwargs: Any) -> None:
    if (kwargs.get("context") or {}).get("bridge_fault") == "after":
        raise _injected_error(str(kwargs.get("event_name", "")).rpartition(".")[2])


def _is_publishing(name: str, params: dict[str, Any]) -> bool:
    return not name.startswith("sqs:") or params.get("QueueUrl") == os.environ.get("WEBHOOK_QUEUE_URL")


def _injected_error(operation: str) -> Exception:
    from botocore.exceptions import ClientError

    response = {
        "Error": {"Code": "InternalFailure", "Message": "injected publishing fault"},
        "ResponseMetadata": {"HTTPStatusCode": 500, "RequestId": str(uuid.uuid4())},
    }
    return ClientError(response, operation)  # type: ignore[arg-type]
