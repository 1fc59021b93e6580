"""What operating a claimstate database reads and writes: claims per state with their ages, claims stuck in
states without a deadline, overdue deadlines per state, each consumer's lag, the tick workers' heartbeats,
and the flows of a window of history (arrows taken, time spent in each state).

`OperationRows` runs on a `database.Database` (the store) and calls nothing else of it. Each read is one
query on an index: open claims by state and age (`claims_open_by_state`, on state and updated_at, of open
claims alone, so the figures cost what the open claims do, however many closed ones pile up), every
claim counted per state (`claims_by_state`, the index alone: the closed ones are these less the open), the open
deadlines (`claims_open_deadlines`), a lane's events (`events_by_lane`), the workers' rows, and the
history rows of a window (`transitions_by_time`, on `at`; for the time in each state, each row that left a
state finds the row that entered it by one probe back of `transitions_state_changes`, the rows that changed
state, on (claim_id, seq, at)). The median age is a backend's own (`median`): PostgreSQL's percentile_cont,
or on SQLite the middle rows of each state picked by a window; the percentiles of the time in a state are
by nearest rank on both (PostgreSQL's percentile_disc, SQLite's window picking the same ranks).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from claimstate._flows import MEDIAN, P90, nearest_rank
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
# Every claim counted per state from `claims_by_state` alone (no claims row read; `closed` is in no index
# with the state): the closed claims of a state are these less its open ones.
_PER_STATE = "SELECT state, count(*) FROM claims GROUP BY state ORDER BY state"
_STUCK = (
    "SELECT state, n, id, updated_at FROM (SELECT state, id, updated_at,"
    " row_number() OVER (PARTITION BY state ORDER BY updated_at) AS place, count(*) OVER (PARTITION BY state)"
    " AS n FROM claims WHERE closed = 0 AND state IN ({states}) AND updated_at < ?) AS ranked"
    " WHERE place <= ? ORDER BY state, place"
)
# Per state: the deadlines due at a time and not fired, and the earliest (from the partial index of deadlines).
_OVERDUE_STATES = (
    "SELECT state, count(*), min(deadline_at) FROM claims WHERE deadline_at IS NOT NULL AND deadline_at <= ?"
    " GROUP BY state ORDER BY state"
)
# The arrows taken by the history rows of a window [since, until): (from_state, trigger, to_state, count).
_ARROWS = (
    "SELECT from_state, trigger, to_state, count(*) FROM transitions WHERE at >= ? AND at < ?"
    " GROUP BY from_state, trigger, to_state"
)
# A history row that changed its claim's state: the filing (no from_state) or a step to another state, not a
# self loop. `transitions_state_changes` indexes these rows alone, on (claim_id, seq, at).
_CHANGED = "({t}.from_state IS NULL OR {t}.from_state <> {t}.to_state)"
# The window's rows that left a state for another (a filing leaves none; a self loop stays): each ends a stay
# in its from_state. Placeholders: since, until.
_LEAVING = "r.at >= ? AND r.at < ? AND r.from_state <> r.to_state"
# The row that entered the state a leaving row `r` leaves: the claim's latest earlier row that changed state
# (the self loops between do not restart the clock), one probe of transitions_state_changes scanning back
# from (r.claim_id, r.seq), its `at` read from the index alone.
_ENTERED = (
    f"SELECT {{at}} FROM transitions e WHERE e.claim_id = r.claim_id AND e.seq < r.seq AND {_CHANGED.format(t='e')}"
    " ORDER BY e.seq DESC LIMIT 1"
)
# Lengths in whole microseconds, exact on both stores (times are stored as to_iso writes them:
# "YYYY-MM-DDTHH:MM:SS.ffffff+00:00"). SQLite: a scalar subquery, NULL for a leaving row with no entry
# (a damaged history: verify names it), which the ranking below leaves out.
_SQLITE_MICROS = "(CAST(strftime('%s', substr({t}, 1, 19)) AS INTEGER) * 1000000 + CAST(substr({t}, 21, 6) AS INTEGER))"
_SQLITE_STAYS = (
    f"SELECT r.from_state AS state, {_SQLITE_MICROS.format(t='r.at')}"
    f" - ({_ENTERED.format(at=_SQLITE_MICROS.format(t='e.at'))}) AS micros FROM transitions r WHERE {_LEAVING}"
)
# PostgreSQL: a LATERAL join (evaluated once per row, where a scalar subquery would run once per percentile;
# a leaving row with no entry drops out).
_POSTGRES_STAYS = (
    "SELECT r.from_state AS state, (extract(epoch FROM r.at::timestamptz - entered.at::timestamptz) * 1000000)::bigint"
    f" AS micros FROM transitions r CROSS JOIN LATERAL ({_ENTERED.format(at='e.at')}) AS entered WHERE {_LEAVING}"
)


def _rank(fraction: tuple[int, int]) -> str:
    """SQL for the nearest rank of `fraction` of `n` rows: ceil(n * p), in whole numbers."""
    numerator, denominator = fraction
    return f"({numerator} * n + {denominator - 1}) / {denominator}"


# SQLite has no percentile: rows (state, count, rank, micros) of the median's and the 90th percentile's ranks,
# of the stays with a length. LIMIT -1 OFFSET 0 (no limit) keeps SQLite from merging the stays into the
# ranking query, which would run the scalar subquery once per use of `micros`, or push the IS NOT NULL into it.
STAY_RANKS = (
    "SELECT state, n, place, micros FROM (SELECT state, micros,"
    " row_number() OVER (PARTITION BY state ORDER BY micros) AS place, count(*) OVER (PARTITION BY state) AS n"
    f" FROM ({_SQLITE_STAYS} LIMIT -1 OFFSET 0) AS stays WHERE micros IS NOT NULL) AS ranked"
    f" WHERE place = {_rank(MEDIAN)} OR place = {_rank(P90)} ORDER BY state, place"
)
# PostgreSQL: rows (state, count, median micros, 90th percentile micros). percentile_disc takes the row at
# rank ceil(p * n) (computed in floating point: for 0.5 and 0.9 the same rank as in whole numbers, checked
# for every n up to 20 million).
STAY_PERCENTILES = (
    "SELECT state, count(*), percentile_disc(?) WITHIN GROUP (ORDER BY micros),"
    " percentile_disc(?) WITHIN GROUP (ORDER BY micros)"
    f" FROM ({_POSTGRES_STAYS}) AS stays GROUP BY state ORDER BY state"
)
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

    def closed(self, opened: Mapping[str, int]) -> list[tuple[str, int]]:
        """(state, count) of the closed claims per state: every claim of the state less its open ones
        (`opened`, as `states` counted them in the same snapshot), where any are left."""
        counted = [(row[0], int(row[1]) - opened.get(row[0], 0)) for row in self._db.all(_PER_STATE)]
        return [(state, count) for state, count in counted if count > 0]

    def stuck(self, states: Sequence[str], before: str, few: int) -> list[tuple[str, int, str, str]]:
        """(state, how many, claim id, updated_at) of the claims in `states` last changed before `before`, the
        `few` oldest of each state."""
        if not states:
            return []
        sql = _STUCK.format(states=", ".join("?" * len(states)))
        return [(row[0], int(row[1]), row[2], row[3]) for row in self._db.all(sql, (*states, before, few))]

    def overdue_states(self, now: str) -> list[tuple[str, int, str]]:
        """(state, how many, the earliest due time) of the deadlines due at `now` and not fired, per state."""
        return [(row[0], int(row[1]), row[2]) for row in self._db.all(_OVERDUE_STATES, (now,))]

    def arrows(self, since: str, until: str) -> list[tuple[str | None, str, str, int]]:
        """(from_state, trigger, to_state, count) of the history rows with `since` <= at < `until`."""
        return [(row[0], row[1], row[2], int(row[3])) for row in self._db.all(_ARROWS, (since, until))]

    def stays(self, since: str, until: str) -> list[tuple[str, int, int, int]]:
        """(state, count, median, 90th percentile) of the stays that ended in [`since`, `until`), lengths in
        microseconds, percentiles by nearest rank. A stay is a visit: it ends at a row of the window that left
        its state for another (not a self loop, not a filing) and lasts from the claim's latest earlier row
        that changed state (the one that entered it; self loops in between do not restart the clock)."""
        if self._percentile:
            fractions = [numerator / denominator for numerator, denominator in (MEDIAN, P90)]
            rows = self._db.all(STAY_PERCENTILES, (*fractions, since, until))
            return [(row[0], int(row[1]), int(row[2]), int(row[3])) for row in rows]
        found: dict[str, list[int]] = {}
        for state, count, place, micros in self._db.all(STAY_RANKS, (since, until)):
            picked = found.setdefault(state, [int(count), 0, 0])
            for column, fraction in ((1, MEDIAN), (2, P90)):
                if place == nearest_rank(fraction, int(count)):
                    picked[column] = int(micros)
        return [(state, count, median, p90) for state, (count, median, p90) in found.items()]

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
