"""The event feed's rows: written with each transition, delivered to named consumers, pruned once read.

Why lanes, and not "every event after the highest position I saw": on PostgreSQL a position comes from a
sequence when the row is inserted, but transactions commit in another order, so a reader can see
position 11 before 10 commits and then never ask for 10 again. Here each event also takes the next
number of its claim's lane by updating the lane's counter row (table `lanes`), which the writing
transaction holds locked until it commits. A lane's numbers are therefore given out one committed
transaction after another, with no gaps (a rolled-back number is given again): a consumer that has
acknowledged lane number n and reads the ones above n cannot miss one. SQLite has one writer at a
time, so there the lane's highest number plus one is the same, without a counter row to write; pruning
keeps each lane's newest event, so that number never goes back.

A consumer keeps, per lane, the last lane number it acknowledged (`acked`), the highest delivered
(`leased_to`), who holds the lane (`holder`), and until when no other worker may take it (`lease_until`).
A worker takes one lane at a time, so a consumer group's workers never get the same claim's events at
once; a lane whose holder died is taken by another once its lease has run out, and its unacknowledged
events are delivered again. A lane whose event a handler failed on is set aside (no holder, but a
`lease_until` ahead) for a pause, so the consumer's other lanes go on meanwhile.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from claimstate._errors import InvalidInput
from claimstate._feed import LANES, Event, cursor_of, lane_of
from claimstate._json import decode, encode
from claimstate._store.database import Database
from claimstate._time import from_iso, to_iso

COLUMNS = (
    "position", "claim_id", "seq", "trigger", "from_state", "to_state", "actor", "at", "data", "claim", "lane",
    "lane_seq", "entered_at",
)  # fmt: skip
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM events"
_NEXT_IN_LANE = "INSERT INTO lanes (lane, last) VALUES (?, 1) ON CONFLICT (lane) DO UPDATE SET last = lanes.last + 1"
_EVENT_COLUMNS = "claim_id, seq, trigger, from_state, to_state, actor, at, data, claim, entered_at"
# With one writer at a time (SQLite): the lane's next number is its highest plus one.
_INSERT_ALONE = (
    f"INSERT INTO events (lane, lane_seq, {_EVENT_COLUMNS})"
    " VALUES (?, (SELECT coalesce(max(lane_seq), 0) + 1 FROM events WHERE lane = ?), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# With many writers (PostgreSQL): the lane's counter row, locked until commit, then the event, in one statement.
_INSERT_COUNTED = (
    f"WITH next AS ({_NEXT_IN_LANE} RETURNING last) INSERT INTO events (lane, lane_seq, {_EVENT_COLUMNS})"
    " SELECT ?, next.last, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? FROM next"
)
# The first unacknowledged event of a consumer's lane, by position (NULL when the lane is read up).
_OLDEST = "(SELECT position FROM events e WHERE e.lane = c.lane AND e.lane_seq > c.acked ORDER BY e.lane_seq LIMIT 1)"
_FREE_LANE = (
    f"SELECT lane, acked FROM consumers c WHERE name = ? AND (holder = ? OR lease_until IS NULL OR lease_until <= ?)"
    f" AND {_OLDEST} IS NOT NULL ORDER BY CASE WHEN holder = ? THEN 0 ELSE 1 END, {_OLDEST} LIMIT 1"
)
_LEASE = (
    "UPDATE consumers SET holder = ?, lease_until = ?,"
    " leased_to = CASE WHEN leased_to < ? THEN ? ELSE leased_to END WHERE name = ? AND lane = ?"
)
_ACK = (
    "UPDATE consumers SET acked = ?,"
    " lease_until = CASE WHEN holder = ? AND leased_to <= ? THEN NULL ELSE lease_until END,"
    " holder = CASE WHEN holder = ? AND leased_to <= ? THEN NULL ELSE holder END"
    " WHERE name = ? AND lane = ? AND acked < ?"
)
_NEW_CONSUMER = (  # every lane's row of a consumer, unless it has them (workers starting together may both try)
    "INSERT INTO consumers (name, lane, acked, leased_to) VALUES "
    + ", ".join(f"(?, {lane}, 0, 0)" for lane in range(LANES))
    + " ON CONFLICT (name, lane) DO NOTHING"
)
_UNACKED = "e.lane_seq > coalesce((SELECT acked FROM consumers c WHERE c.name = ? AND c.lane = e.lane), 0)"


def _wall_clock() -> datetime:
    return datetime.now(UTC)


class _Pending(threading.local):
    """The event rows of a thread's open transaction: threads sharing a store each have their own."""

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []


class EventRows:
    """The feed's statements, run on `database` inside its transactions. The events a transaction appends
    are written by its before-commit hook (`flush`) and forgotten by its on-rollback hook (`discard`).
    `clock` gives the time each event enters the feed (`entered_at`), read as the transaction commits: the
    service sets it to its own clock."""

    def __init__(self, database: Database, *, skip_locked: str, many_writers: bool) -> None:
        self._db = database
        self._skip_locked = skip_locked  # what makes a lane another worker is taking be passed over
        self._insert = _INSERT_COUNTED if many_writers else _INSERT_ALONE
        self._open = _Pending()  # each thread's open transaction's event rows, their lane first
        self.clock: Callable[[], datetime] = _wall_clock
        database.before_commit(self.flush)
        database.on_rollback(self.discard)

    def append(self, history_row: tuple[Any, ...], claim: Mapping[str, Any]) -> None:
        """The event of the history row just written (its first eight columns), with the claim's summary;
        written by `flush`, when the transaction commits."""
        lane = lane_of(history_row[0])
        self._open.rows.append((lane, lane, *history_row[:8], encode(claim)))

    def flush(self) -> None:
        """Write the transaction's events, just before it commits: the lanes' locks are held only from here
        to the COMMIT, and taken in lane order, so transactions writing several lanes (batches) never wait
        for each other in a circle. A lane's events keep the order they were appended in (sorting is stable).
        One statement, prepared once, for them all; sent, not waited for: on PostgreSQL they go to the
        server with the COMMIT."""
        pending, self._open.rows = self._open.rows, []
        if pending:
            pending.sort(key=itemgetter(0))  # by lane
            entered = to_iso(self.clock())
            self._db.send_many(self._insert, [(*row, entered) for row in pending])

    def discard(self) -> None:
        """Forget pending events, after the transaction that appended them rolled back."""
        self._open.rows = []

    def deliver(self, consumer: str, *, worker: str, now: str, until: str, limit: int) -> list[Event]:
        """In a write transaction: the next events of one lane for `worker` of `consumer`, leased to it until
        `until`. The lane it already holds comes first, so a failed event is retried before any later one;
        else the free lane whose oldest waiting event is oldest."""
        db = self._db
        made = db.one("SELECT count(*) FROM consumers WHERE name = ?", (consumer,))
        if made is None or made[0] < LANES:  # a plain read first: the insert would wait on rows being leased
            db.send(_NEW_CONSUMER, (consumer,) * LANES)
        row = db.one(_FREE_LANE + self._skip_locked, (consumer, worker, now, worker))
        if row is None:
            return []
        lane, acked = row
        events = self._events(
            f"{_SELECT} WHERE lane = ? AND lane_seq > ? ORDER BY lane_seq LIMIT ?", (lane, acked, limit)
        )
        last = events[-1].lane_seq
        db.send(_LEASE, (worker, until, last, last, consumer, lane))
        return events

    def ack(self, consumer: str, lane: int, lane_seq: int, *, worker: str) -> None:
        """In a write transaction: record event `lane_seq` of `lane`, and every event before it in the lane, as
        handled by `consumer`; the lane is given back when all that was delivered is acknowledged."""
        db = self._db
        if not 0 <= lane < LANES:
            raise InvalidInput(f"lane {lane} is not one of this feed's (0 to {LANES - 1})", field="up_to")
        row = db.one("SELECT leased_to FROM consumers WHERE name = ? AND lane = ?", (consumer, lane))
        if row is None:
            raise InvalidInput(f"no consumer {consumer!r} has taken events yet", field="consumer")
        if lane_seq > row[0]:
            raise InvalidInput(
                f"event {cursor_of(lane, lane_seq)} was not delivered to {consumer!r}: only delivered events are"
                " acknowledged",
                field="up_to",
            )
        db.run(_ACK, (lane_seq, worker, lane_seq, worker, lane_seq, consumer, lane, lane_seq))

    def release(self, worker: str, *, consumer: str | None = None) -> None:
        """In a write transaction: give back every lane `worker` holds (of `consumer`, or of any),
        unacknowledged events and all."""
        where, params = (
            ("holder = ?", (worker,)) if consumer is None else ("name = ? AND holder = ?", (consumer, worker))
        )
        self._db.run(f"UPDATE consumers SET holder = NULL, lease_until = NULL WHERE {where}", params)

    def set_aside(self, consumer: str, lane: int, *, worker: str, until: str) -> None:
        """In a write transaction: after a handler failed in `lane`, let no worker take it before `until`."""
        self._db.run(
            "UPDATE consumers SET holder = NULL, lease_until = ? WHERE name = ? AND lane = ? AND holder = ?",
            (until, consumer, lane, worker),
        )

    def forget(self, consumer: str) -> int:
        """In a write transaction: drop `consumer`'s progress (its rows); how many lanes it had."""
        return self._db.run("DELETE FROM consumers WHERE name = ?", (consumer,))

    def listed(self, consumer: str | None, *, after: int, limit: int) -> list[Event]:
        """Events after position `after`, in position order: all retained ones (`consumer` None), or those
        `consumer` has not acknowledged. Reads only: nothing is leased."""
        if consumer is None:
            return self._events(f"{_SELECT} WHERE position > ? ORDER BY position LIMIT ?", (after, limit))
        return self._events(
            f"{_SELECT} e WHERE position > ? AND {_UNACKED} ORDER BY position LIMIT ?", (after, consumer, limit)
        )

    def prune(self, older_than: str) -> int:
        """In a write transaction: delete the events before `older_than` that every consumer has acknowledged
        (none, while no consumer exists), but never a lane's newest, which the next numbers count on from;
        how many."""
        return self._db.run(
            "DELETE FROM events WHERE at < ?"
            " AND lane_seq < (SELECT max(lane_seq) FROM events n WHERE n.lane = events.lane)"
            " AND lane_seq <= (SELECT min(acked) FROM consumers c WHERE c.lane = events.lane)",
            (older_than,),
        )

    def not_in_history(self) -> list[tuple[str, int]]:
        """(claim id, seq) of each retained event whose history row is missing or says something else, or
        that is there twice."""
        rows = self._db.all(
            "SELECT e.claim_id, e.seq FROM events e LEFT JOIN transitions t ON t.claim_id = e.claim_id"
            " AND t.seq = e.seq WHERE t.claim_id IS NULL OR t.trigger <> e.trigger OR t.to_state <> e.to_state"
            " OR coalesce(t.from_state, '') <> coalesce(e.from_state, '') OR t.actor <> e.actor OR t.at <> e.at"
            " OR t.data <> e.data UNION SELECT claim_id, seq FROM events GROUP BY claim_id, seq HAVING count(*) > 1"
            " ORDER BY 1, 2"
        )
        return [(row[0], row[1]) for row in rows]

    def _events(self, sql: str, params: tuple[Any, ...]) -> list[Event]:
        return [
            Event(position, claim_id, seq, trigger, source, dest, actor, from_iso(at), decode(data), decode(claim),
                  lane, lane_seq, None if entered is None else from_iso(entered))
            for position, claim_id, seq, trigger, source, dest, actor, at, data, claim, lane, lane_seq, entered
            in self._db.all(sql, params)
        ]  # fmt: skip
