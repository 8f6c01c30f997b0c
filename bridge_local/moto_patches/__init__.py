"""Every change this project makes to moto, in one place: what each one does and why it exists.

moto is pinned (`moto[server,stepfunctions]==5.2.5` in pyproject.toml, `MOTO_VERSION` here). Each
patch first checks that the moto internals it replaces are there with the shape it expects and
raises otherwise; `verify_all()` runs every check, and tests/unit/test_moto_patches.py fails if
moto moves under any of them. Install order matters only where noted.

| patch | module | why |
|---|---|---|
| Lambda routing | `lambda_routing` | moto's non-Docker Lambda returns the event; invokes must run our Python handlers, with Lambda's context and error shapes |
| startExecution integration | `interpreter` | moto passes the ASL's `StateMachineArn`/`Name`/`Input` to boto3 unchanged and returns camelCase keys; AWS normalises both |
| interpreter clients | `interpreter` | moto signs every integration with dummy keys and builds a client per task; AWS signs with the execution's role, and a client per task was 5 % of busy time |
| publishing faults | `interpreter` | the fault run makes SNS, EventBridge and SQS sends of the state machine fail on demand (off unless asked for) |
| JSONPath cache | `interpreter` | the interpreter rebuilt its JSONPath parser for every path it read |
| backend dispatch cache | `server` | moto looked up the backend for every request by listing its package on disk, under one lock |
| DynamoDB request lock | `server` | moto checks a condition and applies the write with nothing held between: two conditional writes of one item could both win |
| IAM enforcement | `iam_enforcement` | moto passes "*" as the resource for most services, so no resource-scoped policy could ever match; AWS checks every call |
| payload quotas | `quotas` | moto lets any size through (or refuses at the wrong size); AWS refuses execution input, states, messages and items over their quotas |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

MOTO_VERSION = "5.2.5"


@dataclass(frozen=True)
class Patch:
    name: str
    verify: Callable[[], None]  # raises RuntimeError("moto changed: …") if the target moved
    install: Callable[[], None]  # idempotent


def patches() -> list[Patch]:
    from bridge_local.moto_patches import iam_enforcement, interpreter, lambda_routing, quotas, server

    return [
        Patch("Lambda routing", lambda_routing.verify_lambda_routing, lambda_routing.install_lambda_routing),
        Patch(
            "startExecution integration",
            interpreter.verify_sfn_integration_fix,
            interpreter.install_sfn_integration_fix,
        ),
        Patch("interpreter clients", interpreter.verify_client_reuse, interpreter.install_client_reuse),
        Patch("JSONPath cache", interpreter.verify_jsonpath_cache, interpreter.install_jsonpath_cache),
        Patch("backend dispatch cache", server.verify_dispatch_cache, server.install_dispatch_cache),
        Patch("DynamoDB request lock", server.verify_dynamodb_request_lock, server.install_dynamodb_request_lock),
        Patch("IAM enforcement", iam_enforcement.verify_enforcement_hooks, iam_enforcement.install_enforcement),
        Patch("payload quotas", quotas.verify_quotas, quotas.install_quotas),
    ]


def installed_moto_version() -> str:
    from importlib.metadata import version

    return version("moto")


def verify_all() -> None:
    """Raise if moto is not the pinned version or any patch's target moved."""
    if installed_moto_version() != MOTO_VERSION:
        raise RuntimeError(f"moto {installed_moto_version()} is installed; these patches are for {MOTO_VERSION}")
    for patch in patches():
        patch.verify()


def install_all() -> None:
    """Apply every patch (each once per process)."""
    for patch in patches():
        patch.install()
