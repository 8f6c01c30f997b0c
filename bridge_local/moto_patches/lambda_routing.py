"""Lambda invokes run the registered Python handler in this process (moto's non-Docker backend
would return the event unchanged)."""

from __future__ import annotations

import inspect
import json
import threading
from typing import Any

from bridge_local.emulator import LambdaContext, _run_handler, registry

# The signature the patch is written against; a moto upgrade that changes it must fail here.
_EXPECTED_INVOKE_PARAMS = ["self", "function_name", "qualifier", "body", "headers", "response_headers"]


def _lambda_simple_backend_class() -> type:
    from moto.awslambda_simple.models import LambdaSimpleBackend

    return LambdaSimpleBackend


def verify_lambda_routing() -> None:
    """Raise if moto no longer has the method we patch, with the shape we patch it for."""
    cls = _lambda_simple_backend_class()
    invoke = cls.__dict__.get("invoke")
    if invoke is None:
        raise RuntimeError("moto changed: LambdaSimpleBackend.invoke is gone; Lambda routing cannot work")
    original = getattr(invoke, "__bridge_original__", invoke)
    params = list(inspect.signature(original).parameters)
    if params != _EXPECTED_INVOKE_PARAMS:
        raise RuntimeError(f"moto changed: LambdaSimpleBackend.invoke{params} != {_EXPECTED_INVOKE_PARAMS}")
    if not hasattr(cls, "get_function"):
        raise RuntimeError("moto changed: LambdaSimpleBackend.get_function is gone")


def install_lambda_routing() -> None:
    """Patch LambdaSimpleBackend.invoke once so registered functions run in this process."""
    verify_lambda_routing()
    cls = _lambda_simple_backend_class()
    if getattr(cls.invoke, "__bridge_original__", None) is not None:
        return
    original = cls.invoke

    def invoke(
        self: Any,
        function_name: str,
        qualifier: str | None,
        body: Any,
        headers: Any,
        response_headers: Any,
    ) -> str | bytes | None:
        handler = registry.lookup(function_name)
        if handler is None:
            return original(self, function_name, qualifier, body, headers, response_headers)
        # Unknown functions raise ResourceNotFound here, as on AWS.
        fn = self.get_function(function_name, qualifier)
        raw = body.decode("utf-8") if isinstance(body, bytes) else body
        event = json.loads(raw) if raw else {}
        context = LambdaContext(
            function_name=fn.function_name,
            function_version=fn.version,
            invoked_function_arn=fn.function_arn,
            memory_limit_in_mb=int(fn.memory_size or 128),
            timeout_s=float(fn.timeout or 3),
        )
        invocation_type = headers.get("X-Amz-Invocation-Type", "RequestResponse") if headers else "RequestResponse"
        if invocation_type == "DryRun":
            return b""
        if invocation_type == "Event":
            # Async invoke: AWS answers 202 at once and runs the function later.
            threading.Thread(target=_run_handler, args=(handler, event, context), daemon=True).start()
            return b""
        payload, failed = _run_handler(handler, event, context)
        if failed:
            response_headers["x-amz-function-error"] = "Unhandled"
        response_headers["Content-Length"] = str(len(payload))
        return payload

    invoke.__bridge_original__ = original  # type: ignore[attr-defined]
    cls.invoke = invoke
