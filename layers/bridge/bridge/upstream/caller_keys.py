"""Pass-through mode: a caller's own Router One key, used for their job and kept only encrypted.

With `CallerRouterOneKeys=allowed`, a submit may carry `X-Router-One-Key`. The job then runs on
that key (Router One bills the caller's account) instead of the stack's own. The key is
encrypted with the stack's KMS key before Router One is asked anything, stored only as that
ciphertext on the job's row, decrypted by each poll for one request, and removed from the row by
the same write that records the job's end. It never enters the state machine's input, a queue
message in plain text, a log line, an event or an answer.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from bridge import aws_errors
from bridge.clients import kms
from bridge.errors import InvalidRequest, ServiceUnavailable, UpstreamTransientError
from bridge.settings import UpstreamSettings, get_settings

CALLER_KEY_HEADER = "X-Router-One-Key"
MAX_CALLER_KEY_LENGTH = 512
# Printable ASCII without spaces: any API key format, nothing that could split a header.
_KEY_SHAPE = re.compile(rf"[\x21-\x7e]{{1,{MAX_CALLER_KEY_LENGTH}}}")
# KMS refuses to decrypt under another context: a ciphertext lifted into another use fails.
_CONTEXT = {"purpose": "router-one-caller-key"}


@dataclass(frozen=True)
class CallerKey:
    plaintext: str
    ciphertext: str  # base64 of the KMS ciphertext blob

    def __repr__(self) -> str:  # never in a log or a traceback by accident
        return "CallerKey(<redacted>)"


def seal(header_value: str | None) -> CallerKey | None:
    """Check and encrypt the caller's key; None when they sent none. Raises before anything upstream."""
    if header_value is None:
        return None
    key_id = get_settings(UpstreamSettings).caller_key_kms_key_id
    if not key_id:
        raise InvalidRequest(
            f"this bridge submits with its own Router One key; '{CALLER_KEY_HEADER}' is not accepted",
            code="caller_keys_disabled",
            param=CALLER_KEY_HEADER,
        )
    key = header_value.strip()
    if not _KEY_SHAPE.fullmatch(key):
        raise InvalidRequest(
            f"'{CALLER_KEY_HEADER}' must be 1 to {MAX_CALLER_KEY_LENGTH} printable characters without spaces",
            param=CALLER_KEY_HEADER,
        )
    try:
        blob = kms().encrypt(KeyId=key_id, Plaintext=key.encode(), EncryptionContext=_CONTEXT)["CiphertextBlob"]
    except (aws_errors.ClientError, aws_errors.BotoCoreError):
        raise ServiceUnavailable(
            "the bridge could not encrypt the Router One key; nothing was submitted, retry shortly",
            code="caller_key_unavailable",
        ) from None
    return CallerKey(plaintext=key, ciphertext=base64.b64encode(blob).decode("ascii"))


def unseal(ciphertext: str) -> str:
    """The key for one poll; a KMS failure is transient (the state machine retries the poll)."""
    try:
        answer = kms().decrypt(
            CiphertextBlob=base64.b64decode(ciphertext),
            KeyId=get_settings(UpstreamSettings).caller_key_kms_key_id,
            EncryptionContext=_CONTEXT,
        )
    except (aws_errors.ClientError, aws_errors.BotoCoreError) as exc:
        raise UpstreamTransientError(f"could not decrypt the caller's Router One key ({type(exc).__name__})") from None
    return bytes(answer["Plaintext"]).decode()
