"""Times are timezone-aware and stored as ISO 8601 in UTC, so rows sort and compare as text.

A time is accepted from 1970 up to (not including) the year 9000; a deadline a time would set past that
is refused with it (`within_range`), so every time stored reads back and no write makes a claim unreadable.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from claimstate._errors import InvalidInput

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def aware(value: object, *, field: str = "now") -> datetime:
    """Return `value` in UTC; a naive datetime is refused, because its zone would be a guess."""
    if not isinstance(value, datetime):
        raise InvalidInput(f"expected a datetime, not {value!r}", field=field)
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput("a time needs a timezone (e.g. 2026-01-31T12:00:00+00:00)", field=field)
    try:
        utc = value.astimezone(UTC)
    except OverflowError:  # so far out that UTC cannot hold it
        utc = None
    if utc is None or not EARLIEST <= utc < LATEST:
        raise InvalidInput(f"{value.isoformat()} is outside the years 1970 to 8999", field=field)
    return utc


def to_iso(value: datetime) -> str:
    """A time as claimstate writes it, ``2026-01-31T12:00:00.000000+00:00``: UTC, fixed width, so text order
    is time order."""
    return (value if value.tzinfo is UTC else value.astimezone(UTC)).isoformat(timespec="microseconds")


def from_iso(text: object, *, field: str = "time") -> datetime:
    """Parse an ISO 8601 time with an offset (as `--now` takes one) into an aware UTC time; InvalidInput
    naming `field` if it is not one, or lies outside the years 1970 to 8999."""
    if not isinstance(text, str):
        raise InvalidInput(f"expected an ISO 8601 time, not {text!r}", field=field)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{text!r} is not an ISO 8601 time", field=field) from None
    if parsed.tzinfo is UTC and EARLIEST <= parsed < LATEST:
        return parsed  # what aware() returns for it, quicker: the store reads back such times on every fire
    return aware(parsed, field=field)


def within_range(now: datetime, window: timedelta) -> datetime:
    """The time `window` after `now` (a deadline's due time), refused by `now` when it would fall past the
    accepted years: stored, it could not be read back, so the claim would become unreadable."""
    try:
        due = now + window
    except OverflowError:
        due = None
    if due is None or not EARLIEST <= due < LATEST:
        raise InvalidInput(
            f"{now.isoformat()} puts a deadline {window.days} days later, past the years 1970 to 8999", field="now"
        )
    return due
