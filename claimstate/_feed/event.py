"""What a consumer receives for one applied transition, and the lane that keeps a claim's events in order.

Every claim's events go to one of `LANES` lanes, chosen from its id. A lane numbers its events 1, 2, 3 …
under a row lock held until the writing transaction commits, so a lane's numbers are handed out in
commit order with no gaps: a consumer that has acknowledged lane event n and asks for the ones after it
can never miss one that commits later (see `_store.events`). A lane is also the unit a consumer group
shares out, so one claim's events never go to two workers at once, and arrive in seq order.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

from claimstate._errors import InvalidInput
from claimstate._time import to_iso

LANES = 16  # fixed: a claim's lane must never change, or its events could be read out of order
# The claim's summary each event carries: enough for a consumer to act without reading the claim.
SUMMARY = (
    "id", "state", "version", "order_id", "buyer_id", "supplier_id", "amount", "currency", "resolution",
    "refund_amount", "refund", "deadline_name", "deadline_trigger", "deadline_at",
)  # fmt: skip


def lane_of(claim_id: str) -> int:
    """The claim's lane: a stable hash of its id (CRC-32, the same in every process and version)."""
    return zlib.crc32(claim_id.encode()) % LANES


def cursor_of(lane: int, lane_seq: int) -> str:
    """An event's place in its lane as text (``"3.17"``), by which a client with no Event object in hand
    (over HTTP, say) acknowledges it."""
    return f"{lane}.{lane_seq}"


def parse_cursor(text: object) -> tuple[int, int]:
    """The (lane, lane_seq) of a cursor `cursor_of` wrote; InvalidInput for anything else."""
    lane, dot, seq = text.partition(".") if isinstance(text, str) else ("", "", "")
    if not (dot and lane.isascii() and seq.isascii() and lane.isdigit() and seq.isdigit() and len(lane) <= 3
            and len(seq) <= 18):  # fmt: skip
        raise InvalidInput(f"{text!r} is not an event's cursor (like '3.17': its lane, a dot, its place)",
                           field="up_to")  # fmt: skip
    return int(lane), int(seq)


def summary(d: Mapping[str, Any], closed: bool) -> dict[str, Any]:
    """The claim (its `to_dict()`) as an event shows it: parties, amounts, state and running deadline, and
    whether it is over."""
    return {**{k: d[k] for k in SUMMARY}, "closed": closed}


@attrs.frozen
class Event:
    """One applied transition, as the feed delivers it.

    (`claim_id`, `seq`) identifies it: a consumer that may see an event twice (delivery is at least
    once) keeps that pair to act once. `claim` is the claim's summary after the transition (see SUMMARY).
    `position` orders the whole feed roughly by commit; `lane` and `lane_seq` are its place in its lane,
    which is what acknowledging it records. `entered_at` is when it entered the feed (the writing
    service's clock as its transaction committed), unlike `at`, the business time, which may be back-dated;
    None for an event written before claimstate recorded it.
    """

    position: int
    claim_id: str
    seq: int
    trigger: str
    from_state: str | None
    to_state: str
    actor: str
    at: datetime
    data: Mapping[str, Any]
    claim: Mapping[str, Any]
    lane: int
    lane_seq: int
    entered_at: datetime | None = None

    @property
    def cursor(self) -> str:
        """Its place in its lane as text, to acknowledge it by (`ClaimService.ack` takes either)."""
        return cursor_of(self.lane, self.lane_seq)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: what `claimstate events` prints, one per line."""
        return {
            "position": self.position,
            "cursor": self.cursor,
            "claim_id": self.claim_id,
            "seq": self.seq,
            "trigger": self.trigger,
            "from_state": self.from_state,
            "to_state": self.to_state,
            "actor": self.actor,
            "at": to_iso(self.at),
            "data": dict(self.data),
            "claim": dict(self.claim),
            "entered_at": None if self.entered_at is None else to_iso(self.entered_at),
        }
