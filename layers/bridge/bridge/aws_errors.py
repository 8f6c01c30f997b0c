"""The AWS SDK's exception classes, looked up when an `except` clause first matches against them.

Importing botocore costs a poll's cold start about 16 ms before any AWS call is made, so modules
write `except aws_errors.ClientError:` (evaluated only while an exception is being handled)
instead of importing the class at the top.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botocore.exceptions import BotoCoreError, ClientError

__all__ = ["BotoCoreError", "ClientError"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from botocore import exceptions  # deferred on purpose: see the module docstring

        return getattr(exceptions, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
