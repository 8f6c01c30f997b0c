"""IAM, enforced locally: every call a function or the state machine makes is checked against its role.

On AWS each function signs its calls with its execution role's temporary credentials and the state
machine's integrations with the state machine's role; IAM refuses what the role does not allow.
Here the deployer creates the translated roles in the embedded IAM and assumes each one (STS), so
each role has keys of its own:

- Client side, a handler runs "as" its function's role (`as_role`): every boto3 client made from
  the environment signs with the keys of the role whose code is running at that moment (a context
  variable), and the Step Functions interpreter's clients with the execution's role.
- Server side, every request signed with a role's keys is evaluated by moto's own policy evaluator
  (`moto.iam.access_control.IAMPolicy`) against the role's inline and managed policies, for the
  action and the resource ARN(s) the request touches, which `bridge_local.iam_resources` works out
  (moto passes only "*" for most services). A refusal is AccessDenied in the shape that service
  uses, printed at once, and recorded.

Calls signed with the emulator's own keys (the deployer, tests, the local tooling) stand for the
account's administrator and are not checked.

Every allowed and denied call is counted per role (`usage()`); with `BRIDGE_IAM_USAGE_DIR` set,
each process appends them there so a report can cover a whole test run (`bridge_local.iam_report`).
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.credentials import Credentials, ReadOnlyCredentials

Handler = Callable[[Any, Any], Any]

# What the emulator's own clients sign with: the account administrator, never checked.
ADMIN_ACCESS_KEY = "testing"
USAGE_DIR_ENV = "BRIDGE_IAM_USAGE_DIR"


@dataclass(frozen=True)
class RoleSession:
    """A role's temporary credentials, from AssumeRole, as Lambda and Step Functions hold them."""

    role_name: str
    role_arn: str
    access_key_id: str
    secret_access_key: str
    session_token: str

    @property
    def frozen(self) -> ReadOnlyCredentials:
        return ReadOnlyCredentials(self.access_key_id, self.secret_access_key, self.session_token)


_running_as: ContextVar[RoleSession | None] = ContextVar("bridge_iam_running_as", default=None)
_sessions_by_role_arn: dict[str, RoleSession] = {}
_sessions_by_key: dict[str, RoleSession] = {}
_lock = threading.Lock()


def remember(session: RoleSession) -> None:
    """Make a role's session known to both sides (the deployer calls this for each role it assumes)."""
    with _lock:
        stale = _sessions_by_role_arn.get(session.role_arn)
        if stale is not None:
            _sessions_by_key.pop(stale.access_key_id, None)
        _sessions_by_role_arn[session.role_arn] = session
        _sessions_by_key[session.access_key_id] = session


def session_for_role(role_arn: str | None) -> RoleSession | None:
    with _lock:
        return _sessions_by_role_arn.get(role_arn or "")


def session_for_key(access_key_id: str) -> RoleSession | None:
    with _lock:
        return _sessions_by_key.get(access_key_id)


def current_role() -> RoleSession | None:
    """The role whose code is running in this thread (None: the administrator)."""
    return _running_as.get()


@contextmanager
def running_as(session: RoleSession | None) -> Iterator[None]:
    """AWS calls made inside sign with `session`'s keys (None: the administrator's)."""
    token = _running_as.set(session)
    try:
        yield
    finally:
        _running_as.reset(token)


def as_role(handler: Handler, session: RoleSession | None) -> Handler:
    """The handler, running with its function's execution role (unchanged without one)."""
    if session is None:
        return handler

    # The wrapper looks like the handler (module, name), so code that finds a function's module
    # through its handler still does.
    @functools.wraps(handler)
    def run(event: Any, context: Any) -> Any:
        with running_as(session):
            return handler(event, context)

    return run


class RoleCredentials(Credentials):
    """Credentials that are the running code's role, looked up at each signature.

    Clients are made once per process and shared by every function's code, as each function's own
    clients would be on Lambda; what changes per call is whose keys sign it.
    """

    def __init__(self, fallback: Credentials) -> None:
        super().__init__(fallback.access_key, fallback.secret_key, fallback.token)
        self._fallback = fallback

    def get_frozen_credentials(self) -> ReadOnlyCredentials:
        session = _running_as.get()
        return session.frozen if session is not None else self._fallback.get_frozen_credentials()


def install_client_credentials() -> None:
    """Give every botocore session whose credentials are the emulator's keys `RoleCredentials`, and
    let threads a function starts (boto3's transfer pool, for one) call with the function's role."""
    import botocore.session

    _install_thread_inheritance()

    original = botocore.session.Session.get_credentials
    if getattr(original, "__bridge_original__", None) is not None:
        return

    def get_credentials(self: Any) -> Any:
        credentials = original(self)
        if credentials is None or isinstance(credentials, RoleCredentials):
            return credentials
        if credentials.access_key != ADMIN_ACCESS_KEY:
            return credentials
        return RoleCredentials(credentials)

    get_credentials.__bridge_original__ = original  # type: ignore[attr-defined]
    botocore.session.Session.get_credentials = get_credentials  # type: ignore[method-assign]


def _install_thread_inheritance() -> None:
    """A thread started while a role is running runs with that role, as every thread of a Lambda
    function does."""
    original = threading.Thread.start
    if getattr(original, "__bridge_original__", None) is not None:
        return

    def start(self: threading.Thread) -> None:
        session = _running_as.get()
        if session is not None:
            run = self.run

            def run_as_role() -> None:
                with running_as(session):
                    run()

            self.run = run_as_role  # type: ignore[method-assign]
        original(self)

    start.__bridge_original__ = original  # type: ignore[attr-defined]
    threading.Thread.start = start  # type: ignore[method-assign]


# --------------------------------------------------------------------------- what was used


@dataclass(frozen=True)
class Decision:
    role_name: str
    action: str
    resource: str
    allowed: bool


class UsageLog:
    """Every decision, counted; appended to a file per process when a directory is given."""

    def __init__(self) -> None:
        self._counts: Counter[Decision] = Counter()
        self._lock = threading.Lock()
        self._flushed: Counter[Decision] = Counter()

    def record(self, decision: Decision) -> None:
        with self._lock:
            self._counts[decision] += 1

    def snapshot(self) -> Counter[Decision]:
        with self._lock:
            return Counter(self._counts)

    def flush(self, directory: Path) -> None:
        """Append what is new since the last flush as JSON lines."""
        with self._lock:
            new = self._counts - self._flushed
            self._flushed = Counter(self._counts)
        if not new:
            return
        directory.mkdir(parents=True, exist_ok=True)
        with (directory / f"usage-{os.getpid()}.jsonl").open("a", encoding="utf-8") as out:
            for decision, count in new.items():
                out.write(json.dumps(decision.__dict__ | {"count": count}) + "\n")


usage = UsageLog()


def _flush_usage() -> None:
    directory = os.environ.get(USAGE_DIR_ENV)
    if directory:
        usage.flush(Path(directory))


atexit.register(_flush_usage)


def report_denial(decision: Decision) -> None:
    """Say a denied call at once, so a missing grant is seen where it happens."""
    print(
        f"[iam] AccessDenied role={decision.role_name} action={decision.action} resource={decision.resource}",
        file=sys.stderr,
        flush=True,
    )
