"""A claim as one read shows it: the claim, its history and, for one actor, what it may do now."""

from __future__ import annotations

from typing import Any

import attrs

from claimstate._claim import Claim, TransitionRecord
from claimstate._engine import Availability


@attrs.frozen
class ClaimView:
    """`ClaimService.view`'s answer, all of it read on one snapshot of the database: the history always
    ends at the claim's version, however many writers fire meanwhile (two calls, `get` then `history`,
    may see two different moments). `available` is None unless an actor was given."""

    claim: Claim
    history: tuple[TransitionRecord, ...]
    available: tuple[Availability, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "claim": self.claim.to_dict(),
            "history": [record.to_dict() for record in self.history],
            "available": None if self.available is None else [a.to_dict() for a in self.available],
        }
