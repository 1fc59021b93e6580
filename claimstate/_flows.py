"""`ClaimService.flows`: what the history says of a window of time, in one snapshot: how often each arrow of
the lifecycle was taken, and how long claims stayed in each state, from entering it to leaving it for another.

Every figure comes from one indexed query (see `_store.operations`); this module turns the rows into
values, and those values into plain JSON.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import attrs

from claimstate._stats import _seconds
from claimstate._time import to_iso

# The percentiles `TimeInState` gives, as exact fractions (numerator, denominator): the median and the 90th.
MEDIAN = (1, 2)
P90 = (9, 10)


def nearest_rank(fraction: tuple[int, int], count: int) -> int:
    """The rank (1-based, ascending) of the `fraction` percentile of `count` values by nearest rank:
    ceil(p * count), in whole numbers (at least 1)."""
    numerator, denominator = fraction
    return max(1, (numerator * count + denominator - 1) // denominator)


@attrs.frozen
class ArrowCount:
    """How often one arrow of the lifecycle was taken in the window: `source` (None for a filing), the
    `trigger` and the `dest` state, as the history rows record them (a self loop has source == dest)."""

    source: str | None
    trigger: str
    dest: str
    count: int

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "trigger": self.trigger, "dest": self.dest, "count": self.count}


@attrs.frozen
class TimeInState:
    """The stays in one state that ended in the window: how many, and their median and 90th percentile
    lengths, by nearest rank (the value at rank ceil(p * count) in ascending order: always one of the
    stays, never a mean of two). A stay is a visit: from the history row that entered the state (a filing,
    or a step from another state) to the row that left it for another state. A self loop (an offer made in
    mediation) neither ends a stay nor starts one: the visit runs on through it."""

    state: str
    count: int
    median: timedelta
    p90: timedelta

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "count": self.count, "median_seconds": _seconds(self.median),
                "p90_seconds": _seconds(self.p90)}  # fmt: skip


@attrs.frozen
class Flows:
    """What the history rows with `since <= at < until` say, read on one snapshot: how often each arrow was
    taken (`arrows`, filings first, then by source, trigger and dest; every row, self loops included), and
    per state how long the stays that ended in the window lasted (`states`, by state). A stay ends at each
    row of the window that left its state for another (not at a self loop) and lasts from the claim's
    latest earlier row that changed state, the one that entered it, wherever in time that lies (the self
    loops between do not restart the clock). A state no stay ended in is absent. Durations are
    `timedelta`s; `to_dict` gives them in seconds."""

    since: datetime
    until: datetime
    arrows: tuple[ArrowCount, ...]
    states: tuple[TimeInState, ...]

    @property
    def taken(self) -> int:
        """How many history rows lie in the window (every arrow taken)."""
        return sum(arrow.count for arrow in self.arrows)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: times as ISO 8601, durations in seconds."""
        return {
            "since": to_iso(self.since),
            "until": to_iso(self.until),
            "arrows": [arrow.to_dict() for arrow in self.arrows],
            "states": [state.to_dict() for state in self.states],
        }


def flows_of(
    since: datetime,
    until: datetime,
    arrows: list[tuple[str | None, str, str, int]],
    stays: list[tuple[str, int, int, int]],
) -> Flows:
    """The Flows of the rows read: `arrows` (source, trigger, dest, count) and `stays` (state, count, median
    and 90th percentile in microseconds), as `OperationRows.arrows` and `.stays` give them."""
    in_order = sorted(arrows, key=lambda row: (row[0] is not None, row[0] or "", row[1], row[2]))  # filings first
    return Flows(
        since,
        until,
        tuple(ArrowCount(source, trigger, dest, count) for source, trigger, dest, count in in_order),
        tuple(
            TimeInState(state, count, timedelta(microseconds=median), timedelta(microseconds=p90))
            for state, count, median, p90 in sorted(stays)
        ),
    )
