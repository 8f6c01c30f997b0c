"""Embedded AWS: a moto server in this process whose Lambda invokes run real Python handlers.

Here: the server's lifecycle and environment, the Lambda context and handler registry, and how a
handler's result or death becomes Lambda's answer. What is changed inside moto (and why) is in
`bridge_local.moto_patches`, each patch checked against the pinned moto version.
"""

from __future__ import annotations

import io
import json
import logging
import os
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, ClassVar

import boto3
import httpx
from moto.server import ThreadedMotoServer

from bridge_local import iam
from bridge_local.http_server import Service

ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "us-east-1"
ROLE_NAME = "video-bridge-local"
DUMMY_ROLE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:role/{ROLE_NAME}"
# moto's Lambda refuses a role it does not know; one role serves every local function and machine.
_TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]},
            "Action": "sts:AssumeRole",
        }
    ],
}

MOTO_CONFIG: dict[str, Any] = {
    "stepfunctions": {"execute_state_machine": True},
    "lambda": {"use_docker": False},
}

Handler = Callable[[Any, Any], Any]


# --------------------------------------------------------------------------- Lambda context


@dataclass
class LambdaContext:
    """What the Lambda Python runtime hands a handler, enough for Powertools and our code."""

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    timeout_s: float
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = ""
    _deadline: float = 0.0

    def __post_init__(self) -> None:
        self.log_group_name = self.log_group_name or f"/aws/lambda/{self.function_name}"
        if not self.log_stream_name:
            day = time.strftime("%Y/%m/%d", time.gmtime())
            self.log_stream_name = f"{day}/[{self.function_version}]{uuid.uuid4().hex}"
        self._deadline = time.monotonic() + self.timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


# --------------------------------------------------------------------------- handler registry


class HandlerRegistry:
    """Function name → handler. ARNs (with or without qualifier) resolve to their name."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._lock = threading.Lock()

    @staticmethod
    def function_name_of(name_or_arn: str) -> str:
        # arn:aws:lambda:region:account:function:name[:qualifier] or name[:qualifier]
        if name_or_arn.startswith("arn:"):
            parts = name_or_arn.split(":")
            return parts[6] if len(parts) > 6 else name_or_arn
        return name_or_arn.split(":", 1)[0]

    def register(self, name_or_arn: str, handler: Handler) -> None:
        with self._lock:
            self._handlers[self.function_name_of(name_or_arn)] = handler

    def unregister(self, name_or_arn: str) -> None:
        with self._lock:
            self._handlers.pop(self.function_name_of(name_or_arn), None)

    def lookup(self, name_or_arn: str) -> Handler | None:
        with self._lock:
            return self._handlers.get(self.function_name_of(name_or_arn))

    def clear(self) -> None:
        with self._lock:
            self._handlers.clear()


# moto's backend is process-global, so the routing table is too.
registry = HandlerRegistry()


class LambdaFault(Exception):
    """Raise from a handler to end the invocation as the Lambda service itself reports a death.

    The handler's own exceptions come back under their class name; a timeout, running out of
    memory or a runtime crash come back under names no Python class has, and Step Functions
    matches its Retry and Catch rules on those names.
    """

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type

    @classmethod
    def timed_out(cls, after_s: float = 40.0) -> LambdaFault:
        return cls("Sandbox.Timedout", f"Task timed out after {after_s:.2f} seconds")

    @classmethod
    def out_of_memory(cls) -> LambdaFault:
        return cls("Runtime.OutOfMemory", "Runtime exited with error: signal: killed")

    @classmethod
    def unknown(cls) -> LambdaFault:
        # What Step Functions names a function error whose payload says nothing.
        return cls("Lambda.Unknown", "The cause could not be determined because Lambda did not return an error type.")


def _error_payload(exc: BaseException) -> dict[str, Any]:
    # Lambda's Python runtime shape; Step Functions reads errorType as the error name.
    error_type = exc.error_type if isinstance(exc, LambdaFault) else type(exc).__name__
    return {"errorType": error_type, "errorMessage": str(exc), "stackTrace": []}


def _run_handler(handler: Handler, event: Any, context: LambdaContext) -> tuple[bytes, bool]:
    """Run one invocation; return (payload, failed)."""
    try:
        result = handler(event, context)
    except Exception as exc:  # every handler failure becomes a function error
        payload = _error_payload(exc)
        message = str(exc).splitlines()[0] if str(exc) else ""
        print(f"[lambda {context.function_name}] {payload['errorType']}: {message}", file=sys.stderr)
        return json.dumps(payload).encode("utf-8"), True
    try:
        return json.dumps(result).encode("utf-8"), False
    except (TypeError, ValueError) as exc:
        # The Lambda runtime reports an unserializable result under this name.
        print(f"[lambda {context.function_name}] Runtime.MarshalError: {exc}", file=sys.stderr)
        error = {"errorType": "Runtime.MarshalError", "errorMessage": f"Unable to marshal response: {exc}"}
        return json.dumps(error | {"stackTrace": []}).encode("utf-8"), True


# --------------------------------------------------------------------------- the server


def _dummy_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", "def handler(event, context):\n    return event\n")
    return buf.getvalue()


DUMMY_ZIP = _dummy_zip()


def _apply_environ(values: dict[str, str | None]) -> None:
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


class EmbeddedAws(Service):
    """A moto server on 127.0.0.1 that boto3 clients made later in this process will reach.

    moto's backends are process-global, so every EmbeddedAws in a process is a door into the
    same AWS: the state is wiped when the first one starts and when the last one stops. The
    environment (what boto3 clients made later reach) points at one live door at a time, so a
    client cached while a second emulator lives keeps working after that one stops.
    """

    _live: ClassVar[list[EmbeddedAws]] = []
    _live_lock: ClassVar[threading.Lock] = threading.Lock()
    _environ_owner: ClassVar[EmbeddedAws | None] = None
    _original_environ: ClassVar[dict[str, str | None]] = {}

    def __init__(self, region: str = DEFAULT_REGION, port: int = 0) -> None:
        self.region = region
        self._port = port
        self._server: ThreadedMotoServer | None = None
        self.endpoint_url = ""

    @property
    def port(self) -> int:
        return self._port

    def start(self) -> EmbeddedAws:
        if self._server is not None:
            return self
        # Every change to moto lives in bridge_local.moto_patches (why, and the pinned version).
        from bridge_local import moto_patches

        moto_patches.install_all()
        iam.install_client_credentials()
        # Werkzeug logs every request at INFO; the local run wants to show events, not that.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=self._port, verbose=False)
        server.start()
        self._server = server
        self._port = server.get_host_and_port()[1]
        self.endpoint_url = f"http://127.0.0.1:{self._port}"
        with EmbeddedAws._live_lock:
            first = not EmbeddedAws._live
            EmbeddedAws._live.append(self)
            if first:
                # Remember what was there, so the last stop() leaves later code as it found it.
                EmbeddedAws._original_environ = {key: os.environ.get(key) for key in self._environ()}
                self._own_environ()
        if first:
            self.reset()
        else:
            self.ensure_role()
        return self

    def _environ(self) -> dict[str, str | None]:
        # The interpreter calls back to localhost:$MOTO_PORT, read per call: set before any execution.
        # (Binding port 0 first and then setting it avoids a pick-then-bind race.)
        return {
            "MOTO_PORT": str(self._port),
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_PROFILE": None,
            "AWS_SESSION_TOKEN": None,
            # The roles SAM generates attach AWS managed policies (AWSLambdaBasicExecutionRole and
            # others); moto knows their documents only when asked to load them.
            "MOTO_IAM_LOAD_MANAGED_POLICIES": "true",
        }

    def _own_environ(self) -> None:
        EmbeddedAws._environ_owner = self
        _apply_environ(self._environ())

    def ensure_role(self) -> str:
        """Create the one IAM role every local function and state machine uses."""
        iam = self.client("iam")
        try:
            iam.get_role(RoleName=ROLE_NAME)
        except iam.exceptions.NoSuchEntityException:
            iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(_TRUST_POLICY))
        return DUMMY_ROLE_ARN

    def stop(self) -> None:
        """Shut the server, forget every resource if no other emulator is live, restore the env."""
        if self._server is None:
            return
        with EmbeddedAws._live_lock:
            EmbeddedAws._live.remove(self)
            last = not EmbeddedAws._live
            if last:
                EmbeddedAws._environ_owner = None
                _apply_environ(EmbeddedAws._original_environ)
            elif EmbeddedAws._environ_owner is self:
                EmbeddedAws._live[0]._own_environ()
        if last:
            # Best effort: if this fails the state dies with the process anyway.
            with suppress(httpx.HTTPError):
                httpx.post(f"{self.endpoint_url}/moto-api/reset", timeout=10)
        self._server.stop()
        self._server = None

    def reset(self) -> None:
        """Forget every resource: moto's backends are process-global, so a new emulator starts empty."""
        httpx.post(f"{self.endpoint_url}/moto-api/reset", timeout=10).raise_for_status()
        # Config lives outside the backends; set it here so every start and reset runs state machines.
        httpx.post(f"{self.endpoint_url}/moto-api/config", json=MOTO_CONFIG, timeout=10).raise_for_status()
        self.ensure_role()

    def client(self, service: str) -> Any:
        return boto3.session.Session().client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def register_function(
        self,
        name: str,
        handler: Handler,
        *,
        memory_mb: int = 128,
        timeout_s: int = 30,
        environment: dict[str, str] | None = None,
        description: str = "",
    ) -> str:
        """Create (or keep) the function in moto and route its invokes to `handler`; return its ARN."""
        lam = self.client("lambda")
        try:
            arn: str = lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"]
        except lam.exceptions.ResourceNotFoundException:
            arn = lam.create_function(
                FunctionName=name,
                Runtime="python3.11",
                Role=DUMMY_ROLE_ARN,
                Handler="app.handler",
                Code={"ZipFile": DUMMY_ZIP},
                Description=description,
                MemorySize=memory_mb,
                Timeout=timeout_s,
                Environment={"Variables": environment or {}},
            )["FunctionArn"]
        registry.register(name, handler)
        return arn


@contextmanager
def embedded_aws(region: str = DEFAULT_REGION) -> Iterator[EmbeddedAws]:
    with EmbeddedAws(region=region) as aws:
        yield aws
