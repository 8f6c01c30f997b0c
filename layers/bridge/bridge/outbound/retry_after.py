"""The one reading of a ``Retry-After`` header, for Router One's answers and webhook receivers'."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date); None if absent or unreadable.

    Only ASCII digits count as delta-seconds: ``str.isdigit`` also accepts "²", which ``float`` refuses.
    A date without a zone is read as UTC, as HTTP dates are; a date in the past asks for no wait.
    """
    text = (value or "").strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
