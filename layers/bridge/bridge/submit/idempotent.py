"""Submit with an `Idempotency-Key`: a retry with the same key and body gets the first answer,
without a second upstream call (Powertools idempotency, records in DynamoDB).

A key is scoped to its caller: the record is found by (owner, Router One account, key), so two
callers' keys never meet, and in pass-through mode the same key with another Router One key is a
new submit. The Router One key enters the scope only as its keyed hash (`tenancy`).

Powertools' idempotency package imports boto3 when it loads, so it is imported by the first submit
that carries a key, not with the API function: most submits never need it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from bridge.errors import BridgeError, Conflict, InvalidRequest
from bridge.models import GenerationRequest
from bridge.settings import IdempotencySettings, get_settings
from bridge.submit.submission import submit
from bridge.tenancy import Caller, router_one_account
from bridge.upstream.caller_keys import CallerKey

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig

MAX_KEY_LENGTH = 255


def submit_with_key(
    request: GenerationRequest,
    key: str | None,
    caller: Caller,
    context: Any = None,
    caller_key: CallerKey | None = None,
) -> dict[str, Any]:
    if key is None:
        return submit(request, caller.owner_id, caller_key).model_dump()
    if not key.strip() or len(key) > MAX_KEY_LENGTH:
        raise InvalidRequest(f"'Idempotency-Key' must be 1 to {MAX_KEY_LENGTH} characters", param="Idempotency-Key")
    from aws_lambda_powertools.utilities.idempotency.exceptions import (  # deferred: see the module docstring
        IdempotencyAlreadyInProgressError,
        IdempotencyValidationError,
    )

    submit_once, config = _idempotent_submit()
    if context is not None:
        # Lets an in-progress record expire with this invocation if it dies mid-way.
        config.register_lambda_context(context)
    try:
        # Only `submission` is hashed and remembered; the caller's key rides along outside it.
        scope = {
            "owner_id": caller.owner_id,
            "router_one_account": router_one_account(caller_key.plaintext) if caller_key else None,
            "key": key,
        }
        return submit_once(
            submission={"scope": scope, "body": request.model_dump(mode="json", exclude_none=True)},
            caller_key=caller_key,
        )
    except IdempotencyValidationError:
        raise BridgeError(
            "this Idempotency-Key was already used with a different request body",
            status=422,
            type="invalid_request_error",
            code="idempotency_key_reused",
            param="Idempotency-Key",
        ) from None
    except IdempotencyAlreadyInProgressError:
        raise Conflict(
            "a request with this Idempotency-Key is still being processed; retry shortly",
            code="idempotency_in_progress",
        ) from None


def _submit_once(submission: dict[str, Any], caller_key: CallerKey | None = None) -> dict[str, Any]:
    owner_id = submission["scope"]["owner_id"]
    return submit(GenerationRequest.model_validate(submission["body"]), owner_id, caller_key).model_dump()


@lru_cache(maxsize=1)
def _idempotent_submit() -> tuple[Callable[..., dict[str, Any]], IdempotencyConfig]:
    from aws_lambda_powertools.utilities.idempotency import (  # deferred: see the module docstring
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )

    settings = get_settings(IdempotencySettings)
    persistence = DynamoDBPersistenceLayer(table_name=settings.idempotency_table_name)
    config = IdempotencyConfig(
        event_key_jmespath="scope",
        # The same key with another body is an error, not a replay of the first answer.
        payload_validation_jmespath="body",
        expires_after_seconds=settings.idempotency_ttl_seconds,
        raise_on_no_idempotency_key=True,
    )
    wrapped = idempotent_function(data_keyword_argument="submission", persistence_store=persistence, config=config)(
        _submit_once
    )
    return wrapped, config


def reset() -> None:
    _idempotent_submit.cache_clear()
