"""A claim's history as the service reads it back: each row as its record, and a history that does not
replay as damage rather than the caller's bad input."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from claimstate._actor import Actor
from claimstate._claim import TransitionRecord
from claimstate._errors import InvalidInput, StorageError, TransitionRefused
from claimstate._service.core import Core
from claimstate._time import from_iso


@contextmanager
def damaged(core: Core, claim_id: str) -> Iterator[None]:
    """A stored history that does not read or replay is damage (StorageError), not the caller's bad input."""
    try:
        yield
    except (InvalidInput, TransitionRefused) as error:
        raise StorageError(
            f"claim {claim_id!r} in {core.path} has a damaged history: {error}; run verify", path=core.path
        ) from None


def record(row: Mapping[str, Any]) -> TransitionRecord:
    """A history row as the TransitionRecord it stores."""
    return TransitionRecord(
        row["claim_id"],
        row["seq"],
        row["trigger"],
        row["from_state"],
        row["to_state"],
        Actor.parse(row["actor"]),
        row["data"],
        from_iso(row["at"]),
    )
