"""`ClaimService.stats`: what an operator asks of a running claimstate database, in one snapshot.

Every figure comes from one indexed query (see `_store.operations`); this module turns the rows into
values with ages measured from the `now` asked about, and those values into plain JSON.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import attrs

from claimstate._time import from_iso, to_iso

STUCK_AFTER = timedelta(days=1)  # the default age past which a claim in a state without a deadline is stuck
STUCK_SHOWN = 5  # the oldest stuck claims named per state


def _seconds(age: timedelta | None) -> float | None:
    return None if age is None else round(age.total_seconds(), 6)


def _time(at: datetime | None) -> str | None:
    return None if at is None else to_iso(at)


@attrs.frozen
class StateStats:
    """The claims in one state: how many, and (open states) how long they have been in it (`now` - their last
    change): the oldest's age and the median age. A `final` state's claims are only counted: they stay
    there for good, and their ages would cost a read of every claim ever closed."""

    state: str
    count: int
    final: bool
    oldest_age: timedelta | None
    median_age: timedelta | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "count": self.count,
            "final": self.final,
            "oldest_age_seconds": _seconds(self.oldest_age),
            "median_age_seconds": _seconds(self.median_age),
        }


@attrs.frozen
class StuckClaims:
    """Open claims in a state without a deadline (nothing will move them but a person) unchanged for longer
    than `stuck_after`: how many, and the ids of the oldest few, oldest first, with the oldest's age."""

    state: str
    count: int
    oldest_age: timedelta
    oldest_ids: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "count": self.count, "oldest_age_seconds": _seconds(self.oldest_age),
                "oldest_ids": list(self.oldest_ids)}  # fmt: skip


@attrs.frozen
class Overdue:
    """Deadlines due at `now` that no tick has fired yet (none while a tick runner keeps up): how many, the
    earliest one's due time, and how late it is."""

    count: int
    oldest_due: datetime | None
    oldest_late: timedelta | None

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "oldest_due": _time(self.oldest_due),
                "oldest_late_seconds": _seconds(self.oldest_late)}  # fmt: skip


@attrs.frozen
class OverdueState:
    """The deadlines due at `now` and not fired, of the claims in one state: how many, the earliest one's due
    time, and how late it is (what `Overdue` counts, per state)."""

    state: str
    count: int
    oldest_due: datetime
    oldest_late: timedelta

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "count": self.count, "oldest_due": to_iso(self.oldest_due),
                "oldest_late_seconds": _seconds(self.oldest_late)}  # fmt: skip


@attrs.frozen
class LaneLag:
    """One lane of a consumer: events not yet acknowledged, and how long the oldest of them has waited
    since it entered the feed (None if every one of them was written before claimstate recorded that)."""

    lane: int
    pending: int
    oldest_entered_at: datetime | None
    oldest_age: timedelta | None

    def to_dict(self) -> dict[str, Any]:
        return {"lane": self.lane, "pending": self.pending, "oldest_entered_at": _time(self.oldest_entered_at),
                "oldest_age_seconds": _seconds(self.oldest_age)}  # fmt: skip


@attrs.frozen
class ConsumerLag:
    """A consumer's lag: events it has not acknowledged, in all its lanes, the age of the oldest, and the
    lanes that have any."""

    consumer: str
    pending: int
    oldest_age: timedelta | None
    lanes: tuple[LaneLag, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"consumer": self.consumer, "pending": self.pending, "oldest_age_seconds": _seconds(self.oldest_age),
                "lanes": [lane.to_dict() for lane in self.lanes]}  # fmt: skip


@attrs.frozen
class WorkerBeat:
    """A tick worker's last heartbeat: when it started, when it last beat and last ticked (its round's
    time), how many deadlines it fired since it started, and how long ago it beat (`now` - `beat_at`): a
    worker that beats no more has stopped, or died."""

    name: str
    kind: str
    started_at: datetime
    beat_at: datetime
    last_tick_at: datetime | None
    fired: int
    since_beat: timedelta

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "started_at": to_iso(self.started_at),
                "beat_at": to_iso(self.beat_at), "last_tick_at": _time(self.last_tick_at), "fired": self.fired,
                "since_beat_seconds": _seconds(self.since_beat)}  # fmt: skip


@attrs.frozen
class Stats:
    """An operator's view of the database at `now`, read on one snapshot: claims per state with their ages
    (`states`), open claims stuck in states without a deadline for longer than `stuck_after` (`stuck`),
    deadlines due but not fired (`overdue`, and per state, by state, `overdue_states`), each consumer's
    lag (`consumers`) and the tick workers' heartbeats (`workers`). Ages are `timedelta`s; `to_dict` gives
    them in seconds."""

    now: datetime
    stuck_after: timedelta
    states: tuple[StateStats, ...]
    stuck: tuple[StuckClaims, ...]
    overdue: Overdue
    consumers: tuple[ConsumerLag, ...]
    workers: tuple[WorkerBeat, ...]
    overdue_states: tuple[OverdueState, ...] = attrs.field(default=(), kw_only=True)

    @property
    def claims(self) -> int:
        """How many claims there are, in every state."""
        return sum(s.count for s in self.states)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: what `claimstate stats --json` prints."""
        return {
            "now": to_iso(self.now),
            "claims": self.claims,
            "states": [s.to_dict() for s in self.states],
            "stuck_after_seconds": _seconds(self.stuck_after),
            "stuck": [s.to_dict() for s in self.stuck],
            "overdue": self.overdue.to_dict(),
            "overdue_states": [o.to_dict() for o in self.overdue_states],
            "consumers": [c.to_dict() for c in self.consumers],
            "workers": [w.to_dict() for w in self.workers],
        }


def _median(value: float | str, now: datetime) -> timedelta:
    """The median age from a store's median: seconds since the epoch, or the middle times (see OperationRows)."""
    if isinstance(value, str):
        ages = [now - from_iso(text) for text in value.split()]
        return sum(ages, timedelta()) / len(ages)
    return now - datetime.fromtimestamp(value, now.tzinfo)


def built(
    now: datetime,
    stuck_after: timedelta,
    finals: frozenset[str],
    rows: dict[str, Any],
) -> Stats:
    """The Stats of the rows read (`rows`: the `states`, `closed`, `stuck`, `overdue_states`, `lag` and
    `workers` of OperationRows); `finals` are the definition's final states. The overdue deadlines in all
    are summed from those per state, so the two never disagree."""
    states = tuple(
        sorted(
            [
                *(StateStats(state, count, state in finals, now - from_iso(oldest), _median(median, now))
                  for state, count, oldest, median in rows["states"]),
                *(StateStats(state, count, True, None, None) for state, count in rows["closed"]),
            ],
            key=lambda found: found.state,
        )
    )  # fmt: skip
    stuck: dict[str, StuckClaims] = {}
    for state, count, claim_id, updated_at in rows["stuck"]:
        found = stuck.get(state)
        if found is None:
            stuck[state] = StuckClaims(state, count, now - from_iso(updated_at), (claim_id,))
        else:
            stuck[state] = attrs.evolve(found, oldest_ids=(*found.oldest_ids, claim_id))
    overdue_states = tuple(
        OverdueState(state, count, from_iso(due), now - from_iso(due)) for state, count, due in rows["overdue_states"]
    )
    oldest_due = min((o.oldest_due for o in overdue_states), default=None)
    overdue = Overdue(
        sum(o.count for o in overdue_states), oldest_due, None if oldest_due is None else now - oldest_due
    )
    lanes: dict[str, list[LaneLag]] = {}
    for consumer, lane, pending, entered in rows["lag"]:
        kept = lanes.setdefault(consumer, [])
        if pending:
            at = None if entered is None else from_iso(entered)
            kept.append(LaneLag(lane, pending, at, None if at is None else now - at))
    consumers = tuple(
        ConsumerLag(
            consumer,
            sum(lane.pending for lane in kept),
            max((lane.oldest_age for lane in kept if lane.oldest_age is not None), default=None),
            tuple(kept),
        )
        for consumer, kept in lanes.items()
    )
    workers = tuple(
        WorkerBeat(name, kind, from_iso(started), from_iso(beat), None if ticked is None else from_iso(ticked),
                   int(fired), now - from_iso(beat))
        for name, kind, started, beat, ticked, fired in rows["workers"]
    )  # fmt: skip
    return Stats(
        now, stuck_after, states, tuple(stuck.values()), overdue, consumers, workers, overdue_states=overdue_states
    )
