"""What operating a claimstate database reads and writes: claims per state with their ages, claims stuck in
states without a deadline, overdue deadlines, each consumer's lag, and the tick workers' heartbeats.

`OperationRows` runs on a `database.Database` (the store) and calls nothing else of it. Each read is one
query on an index: open claims by state and age (`claims_open_by_state`, on state and updated_at, of open
claims alone, so the figures cost what the open claims do, however many closed ones pile up), closed
claims counted per state (`claims_by_state`), the open
deadlines (`claims_open_deadlines`), a lane's events (`events_by_lane`) and the workers' rows. The median
is a backend's own (`median`): PostgreSQL's percentile_cont, or on SQLite the middle rows of each state
picked by a window.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from claimstate._store.database import Database

# Per state: the count, the oldest updated_at, and the one or two middle ones (SQLite has no percentile):
# rows (state, count, rank, updated_at) for the first row of each state and its middle ones.
MIDDLE_ROWS = (
    "SELECT state, n, place, updated_at FROM (SELECT state, updated_at,"
    " row_number() OVER (PARTITION BY state ORDER BY updated_at) AS place,"
    " count(*) OVER (PARTITION BY state) AS n FROM claims WHERE closed = 0) AS ranked"
    " WHERE place = 1 OR place = (n + 1) / 2 OR place = (n + 2) / 2 ORDER BY state, place"
)
# PostgreSQL: rows (state, count, oldest updated_at, median updated_at as seconds since the epoch).
PERCENTILE = (
    "SELECT state, count(*), min(updated_at),"
    " percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM updated_at::timestamptz)) FROM claims"
    " WHERE closed = 0 GROUP BY state ORDER BY state"
)
_CLOSED = "SELECT state, count(*) FROM claims WHERE closed = 1 GROUP BY state ORDER BY state"
_STUCK = (
    "SELECT state, n, id, updated_at FROM (SELECT state, id, updated_at,"
    " row_number() OVER (PARTITION BY state ORDER BY updated_at) AS place, count(*) OVER (PARTITION BY state)"
    " AS n FROM claims WHERE closed = 0 AND state IN ({states}) AND updated_at < ?) AS ranked"
    " WHERE place <= ? ORDER BY state, place"
)
_OVERDUE = "SELECT count(*), min(deadline_at) FROM claims WHERE deadline_at IS NOT NULL AND deadline_at <= ?"
_LAG = (
    "SELECT c.name, c.lane, count(e.position), min(e.entered_at) FROM consumers c"
    " LEFT JOIN events e ON e.lane = c.lane AND e.lane_seq > c.acked GROUP BY c.name, c.lane ORDER BY c.name, c.lane"
)
_WORKERS = "SELECT name, kind, started_at, beat_at, last_tick_at, fired FROM workers ORDER BY name"
_START = (
    "INSERT INTO workers (name, kind, started_at, beat_at, last_tick_at, fired) VALUES (?, ?, ?, ?, NULL, 0)"
    " ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, started_at = excluded.started_at,"
    " beat_at = excluded.beat_at, last_tick_at = NULL, fired = 0"
)
_BEAT = "UPDATE workers SET beat_at = ?, last_tick_at = ?, fired = fired + ? WHERE name = ?"


class OperationRows:
    """The operational reads, and the workers' heartbeat rows, on `database`; `percentile` says whether it
    has percentile_cont (PostgreSQL) for the median age per state."""

    def __init__(self, database: Database, *, percentile: bool) -> None:
        self._db = database
        self._percentile = percentile

    def states(self) -> list[tuple[str, int, str, float | str]]:
        """(state, count, oldest updated_at, median) per state with open claims: the median as seconds since the
        epoch (PostgreSQL), or as the one or two middle updated_at joined by a space (SQLite)."""
        if self._percentile:
            return [(row[0], int(row[1]), row[2], float(row[3])) for row in self._db.all(PERCENTILE)]
        found: dict[str, tuple[str, int, str, list[str]]] = {}
        for state, count, rank, updated_at in self._db.all(MIDDLE_ROWS):
            row = found.setdefault(state, (state, int(count), updated_at, []))
            if rank in ((count + 1) // 2, (count + 2) // 2):
                row[3].append(updated_at)
        return [(state, count, oldest, " ".join(middle)) for state, count, oldest, middle in found.values()]

    def closed(self) -> list[tuple[str, int]]:
        """(state, count) of the closed claims per final state."""
        return [(row[0], int(row[1])) for row in self._db.all(_CLOSED)]

    def stuck(self, states: Sequence[str], before: str, few: int) -> list[tuple[str, int, str, str]]:
        """(state, how many, claim id, updated_at) of the claims in `states` last changed before `before`, the
        `few` oldest of each state."""
        if not states:
            return []
        sql = _STUCK.format(states=", ".join("?" * len(states)))
        return [(row[0], int(row[1]), row[2], row[3]) for row in self._db.all(sql, (*states, before, few))]

    def overdue(self, now: str) -> tuple[int, str | None]:
        """How many deadlines are due at `now` and not fired, and the earliest one's due time."""
        row = self._db.one(_OVERDUE, (now,))
        return (0, None) if row is None else (int(row[0]), row[1])

    def lag(self) -> list[tuple[str, int, int, str | None]]:
        """(consumer, lane, events not acknowledged, the oldest entered_at among them) per consumer and lane
        (a lane's events are numbered in commit order, so its unacknowledged ones follow `acked`)."""
        return [(row[0], int(row[1]), int(row[2]), row[3]) for row in self._db.all(_LAG)]

    def workers(self) -> list[tuple[Any, ...]]:
        """(name, kind, started_at, beat_at, last_tick_at, fired) of every worker that recorded a heartbeat."""
        return self._db.all(_WORKERS)

    def start(self, name: str, kind: str, now: str) -> None:
        """In a write transaction: the worker `name` starts (its row made, or begun again)."""
        with self._db.writing:
            self._db.run(_START, (name, kind, now, now))

    def beat(self, name: str, now: str, ticked_at: str, fired: int) -> None:
        """In a write transaction: the worker's heartbeat after a round that ticked at `ticked_at`."""
        with self._db.writing:
            self._db.run(_BEAT, (now, ticked_at, fired, name))
