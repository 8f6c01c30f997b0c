"""Each function sees only its own variables, as on AWS, although the local run shares one process.

The deploy puts the union of every function's environment into `os.environ` (the handlers run in
this process), so a function whose code asks for a setting only another function is given would
work here and fail on AWS. While a handler runs, the settings it asks for are checked against
its own variables: a required one it lacks fails the same way a deployed function would, with
`SettingsError` naming the variable.
"""

from __future__ import annotations

import functools
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from bridge_local.emulator import Handler


@dataclass(frozen=True)
class FunctionEnvironment:
    logical_id: str
    names: frozenset[str]


_current: ContextVar[FunctionEnvironment | None] = ContextVar("bridge_local_function_env", default=None)


def with_own_environment(handler: Handler, logical_id: str, variables: dict[str, str]) -> Handler:
    """The handler, its settings checked against `variables` (its own) while it runs."""
    install()
    own = FunctionEnvironment(logical_id, frozenset(variables))

    @functools.wraps(handler)
    def run(event: Any, context: Any) -> Any:
        token = _current.set(own)
        try:
            return handler(event, context)
        finally:
            _current.reset(token)

    return run


def install() -> None:
    """Check every settings lookup made inside a wrapped handler (patched once per process)."""
    from bridge.settings import SettingsError, _Loaded

    original = _Loaded.__call__
    if getattr(original, "__bridge_original__", None) is not None:
        return

    def call(self: Any, kind: Any) -> Any:
        own = _current.get()
        if own is not None:
            required = (name.upper() for name, field in kind.model_fields.items() if field.is_required())
            missing = sorted(name for name in required if name not in own.names)
            if missing:
                raise SettingsError(
                    f"invalid bridge settings ({kind.__name__}): {', '.join(missing)}: Field required "
                    f"({own.logical_id} is not given it; on AWS a function sees only its own variables)"
                )
        return original(self, kind)

    call.__bridge_original__ = original  # type: ignore[attr-defined]
    _Loaded.__call__ = call  # type: ignore[method-assign]
