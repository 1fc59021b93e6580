"""Times are timezone-aware and stored as ISO 8601 in UTC, so rows sort and compare as text."""

from __future__ import annotations

from datetime import UTC, datetime

from claimstate._errors import InvalidInput


def aware(value: object, *, field: str = "now") -> datetime:
    """Return `value` in UTC; a naive datetime is refused, because its zone would be a guess."""
    if not isinstance(value, datetime):
        raise InvalidInput(f"expected a datetime, not {value!r}", field=field)
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput("a time needs a timezone (e.g. 2026-01-31T12:00:00+00:00)", field=field)
    return value.astimezone(UTC)


def to_iso(value: datetime) -> str:
    """``2026-01-31T12:00:00.000000+00:00``: fixed width, so text order is time order."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def from_iso(text: object, *, field: str = "time") -> datetime:
    """Parse an ISO 8601 time with an offset."""
    if not isinstance(text, str):
        raise InvalidInput(f"expected an ISO 8601 time, not {text!r}", field=field)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{text!r} is not an ISO 8601 time", field=field) from None
    return aware(parsed, field=field)
