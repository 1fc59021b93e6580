"""The contract every store keeps, and the queries all of them share.

The service talks to a `Store` only: read a claim (and lock it, where the backend locks rows), write a
fire as one UPDATE plus one INSERT, list, count and check. A backend supplies the connection, the
transactions, the schema and how its errors read; the statements here are plain SQL that SQLite and
PostgreSQL both run. A store is also the `database.Database` its query classes are given (the feed's
`events.EventRows`): their statements go through its public `one`/`all`/`run`/`send`, and what they must
do as a transaction ends they register as its before-commit and on-rollback hooks.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import attrs

from claimstate._chain import Chain
from claimstate._claim import Claim, TransitionRecord
from claimstate._errors import ClaimStateError, ConcurrentModification, StorageError
from claimstate._feed import summary
from claimstate._json import decode
from claimstate._store import events
from claimstate._store.rows import (
    CHANGING,
    COLUMNS,
    HISTORY,
    INSERT_CLAIM,
    INSERT_RECORD,
    SELECT_HISTORY,
    UPDATE_CLAIM,
    claim_columns,
    columns_of,
    linked,
    stored,
)
from claimstate._time import to_iso

T = TypeVar("T")
_KEYED = "claim_id IS NOT NULL AND seq IS NOT NULL"
# Every column of each table a copy moves (the lanes' counters are PostgreSQL's own, made again from the
# events), as it writes them, and the key each is read in order of.
TABLES = {
    "definitions": ("fingerprint", "name", "body", "first_seen"),
    "claims": (*COLUMNS, "definition"),
    "transitions": (*HISTORY, "idempotency_key", "request_hash"),
    "events": events.COLUMNS,
    "consumers": ("name", "lane", "acked", "leased_to", "holder", "lease_until"),
}
_KEYS = {
    "definitions": ("fingerprint",),
    "claims": ("id",),
    "transitions": ("claim_id", "seq"),
    "events": ("position",),
    "consumers": ("name", "lane"),
}
_MERGED = {"definitions"}  # tables a copy adds to, keeping the rows the target has (each store records its own)
BASELINE = "baseline_definition"  # meta: the definition of the history rows written before rows recorded one
CURRENT = "definition"  # meta: the definition the last writable service to open decides by; only it files claims
# Each history row with its event, in one sorted pass (the feed keeps no index by claim, which would cost
# every fire a page); an event stored twice is reported apart (events.not_in_history).
_HISTORY_WITH_EVENTS = (
    f"SELECT {', '.join(f't.{c}' for c in HISTORY)}, e.claim, e.lane FROM transitions t LEFT JOIN"
    " (SELECT claim_id, seq, min(claim) AS claim, min(lane) AS lane FROM events GROUP BY claim_id, seq) e"
    " ON e.claim_id = t.claim_id AND e.seq = t.seq WHERE t.claim_id IS NOT NULL AND t.seq IS NOT NULL"
    " ORDER BY t.claim_id, t.seq"
)
_SELECT_COLUMNS = f"SELECT {', '.join(COLUMNS)} FROM claims WHERE id = ?"
_ATTEMPTS = 5  # tries of a write that lost a race another writer won (PostgreSQL), before giving up


@attrs.frozen
class StoredClaim:
    """A claim as read for a write, with the hash of its last history row, which the next row chains to,
    and the fingerprint of the definition it was last decided under."""

    claim: Claim
    last_hash: str | None
    definition: str | None = None
    closed: bool = False


@attrs.frozen
class Listed:
    """One page of a listing: the claims read, the (id, why) of the rows that could not be read, and the id
    of the page's last row, readable or not (where the next page starts; None when the page is empty)."""

    claims: list[Claim]
    unreadable: list[tuple[str, str]]
    last: str | None


@attrs.frozen
class StoredDefinition:
    """The definition a store writes under: its fingerprint, its name and its export as JSON text."""

    fingerprint: str
    name: str
    body: str


class Race(ConcurrentModification):
    """A write lost a race with another writer (a serialization failure, a deadlock, or a unique key taken
    meanwhile) and can be run again whole: `write` does. Where it cannot (a read inside a batch), it reaches
    the caller as the ConcurrentModification it is."""

    def __init__(self, detail: str) -> None:
        super().__init__(None, None, None, detail=detail)


class Store(abc.ABC):
    """Claims and their append-only history in one database. `path` names it for messages.

    `chain` hashes the history rows this store appends; a store whose chain cannot extend the database's
    (no key, or the wrong one) refuses every write, as does a `read_only` store. Every claims row and
    history row it writes records the fingerprint of `definition`, the definition the service decides with.
    """

    schema_version: int  # the backend's schema version, which opening the database migrates it to
    _SKIP_LOCKED = ""  # what a backend that locks rows adds to a query, to pass over rows others hold
    _MANY_WRITERS = False  # whether writers run at once (then a lane's numbers come from a locked counter)
    _SELECT_LOADED = (
        "SELECT c.details, t.hash, c.definition, c.closed FROM claims c"
        " LEFT JOIN transitions t ON t.claim_id = c.id AND t.seq = c.version WHERE c.id = ?"
    )

    def __init__(self, path: str, *, chain: Chain, definition: StoredDefinition, read_only: bool) -> None:
        self.path = path
        self.definition = definition
        self.chain = chain  # how the history rows this store appends are hashed
        self._read_only = read_only
        self._before_commit: list[Callable[[], None]] = []  # run in the transaction, just before COMMIT
        self._on_rollback: list[Callable[[], None]] = []  # run after a write transaction rolled back
        self._depth = 0  # open transactions: 0 none, 1 one, more when calls join a batch
        self._spoiled = False
        self._cannot_write: str | None = None
        self._writing = _Writing(self)
        self._transaction = _Transaction(self)
        self.events = events.EventRows(self, skip_locked=self._SKIP_LOCKED, many_writers=self._MANY_WRITERS)

    @property
    def read_only(self) -> bool:
        """Whether the store was opened for reads alone (every write is then a StorageError)."""
        return self._read_only

    # --- what a backend supplies (the statements are the `database.Database` its queries use) ---------

    @abc.abstractmethod
    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        """The first row of a query (`?` placeholders), or None."""

    @abc.abstractmethod
    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Every row of a query (`?` placeholders)."""

    @abc.abstractmethod
    def _stream(self, sql: str, page: int = 1000) -> Iterator[tuple[Any, ...]]:
        """Every row of a query (no placeholders) in a read's snapshot, fetched a page at a time as they are
        used, so memory stays flat however many there are."""

    @abc.abstractmethod
    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a write statement (`?` placeholders); how many rows it changed."""

    def send(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run a write whose result nothing waits for (a backend may send it with the next statement)."""
        self.run(sql, params)

    def before_commit(self, hook: Callable[[], None]) -> None:
        """Run `hook` in every outermost write transaction, just before its COMMIT, in the order hooks were
        registered; one that fails rolls the transaction back."""
        self._before_commit.append(hook)

    def on_rollback(self, hook: Callable[[], None]) -> None:
        """Run `hook` after every outermost write transaction rolled back (even if the ROLLBACK failed)."""
        self._on_rollback.append(hook)

    @abc.abstractmethod
    def _start(self) -> None:
        """Begin a write transaction."""

    @abc.abstractmethod
    def _commit(self) -> None: ...

    @abc.abstractmethod
    def _roll_back(self) -> None:
        """Roll back the write transaction, if one is open."""

    @abc.abstractmethod
    def read(self, reads: Callable[[], T]) -> T:
        """Run `reads` on one snapshot of the database (inside a batch, on the batch's transaction)."""

    @abc.abstractmethod
    def close(self) -> None: ...

    @abc.abstractmethod
    def integrity(self) -> list[str]:
        """What the database's own check finds wrong with it (empty when it is sound)."""

    @abc.abstractmethod
    def schema_problems(self) -> list[str]:
        """Each schema object claimstate made that is missing or changed, and each trigger it did not make."""

    # --- transactions --------------------------------------------------------------------------------

    def _finish(self) -> None:
        """Commit the outermost write transaction: its before-commit hooks (a failure spoils it), then COMMIT."""
        with self._writing:
            for hook in self._before_commit:
                hook()
        self._commit()

    def _abandon(self) -> None:
        """Roll back the outermost write transaction, then run its on-rollback hooks, whatever happened."""
        try:
            self._roll_back()
        finally:
            for hook in self._on_rollback:
                hook()

    def transaction(self) -> _Transaction:
        """One write transaction, all or nothing (a context manager).

        Inside an open one (a batch) it joins it. A write that fails there spoils the whole batch, which
        then rolls back even if the caller caught the error, so a batch never commits half a transition.
        """
        if self._read_only:
            raise StorageError(f"{self.path} is open read-only: nothing can be written through it", path=self.path)
        if self._cannot_write is not None:
            raise StorageError(f"{self.path}: nothing can be written: {self._cannot_write}", path=self.path)
        return self._transaction

    def write(self, body: Callable[[], T], *, claim_id: str | None = None) -> T:
        """Run `body` (a write to `claim_id`, if known) in one write transaction; if it lost a race to another
        writer, run it again whole, a few times, then raise ConcurrentModification. Inside a batch it cannot
        run again alone: the race spoils the batch and is raised at once."""
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                with self.transaction():
                    return body()
            except Race as race:
                if self._depth or attempt == _ATTEMPTS:
                    raise ConcurrentModification(claim_id, None, None, detail=race.detail) from None
                time.sleep(0.001 * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    # --- reads ---------------------------------------------------------------------------------------

    def claim(self, claim_id: str) -> Claim | None:
        row = self.one("SELECT details FROM claims WHERE id = ?", (claim_id,))
        return None if row is None else self._claim_of(row[0], claim_id)

    def loaded(self, claim_id: str, *, skip_locked: bool = False) -> StoredClaim | None:
        """The claim, to be written in this transaction, with its last history row's hash (one read for both).

        Where the backend locks rows, the claim's row is locked until the transaction ends; `skip_locked`
        returns None instead of waiting for a row another transaction holds.
        """
        row = self.one(self._SELECT_LOADED, (claim_id,))
        return None if row is None else StoredClaim(self._claim_of(row[0], claim_id), row[1], row[2], bool(row[3]))

    def loaded_for_reading(self, claim_id: str) -> StoredClaim | None:
        """The claim as `loaded` gives it, without locking anything (for reads, and a dry run)."""
        row = self.one(Store._SELECT_LOADED, (claim_id,))
        return None if row is None else StoredClaim(self._claim_of(row[0], claim_id), row[1], row[2], bool(row[3]))

    def _decoded(self, text: str, claim_id: str) -> Any:
        try:
            return decode(text)
        except (TypeError, ValueError, RecursionError):
            raise StorageError(f"claim {claim_id!r} in {self.path} holds damaged JSON", path=self.path) from None

    def _claim_of(self, details: str, claim_id: str) -> Claim:
        decoded = self._decoded(details, claim_id)
        try:
            return Claim.from_dict(decoded)
        except (KeyError, TypeError, ValueError, ClaimStateError) as error:
            raise StorageError(f"claim {claim_id!r} in {self.path} is damaged: {error!r}", path=self.path) from None

    def row_differences(self, claim: Claim, closed: bool) -> dict[str, tuple[Any, Any]]:
        """The claims row's columns that differ from `claim` (a hand edit, or damage): (stored, expected) by name.

        A blob stored by hand is shown as its SQL literal, so every value stays plain JSON.
        """
        stored_row = self.columns(claim.id)
        expected = claim_columns(claim, closed)
        return {
            k: (f"x'{bytes(stored_row[k]).hex()}'" if isinstance(stored_row[k], bytes | memoryview) else stored_row[k],
                expected[k])
            for k in sorted(COLUMNS)
            if k != "details" and stored_row[k] != expected[k]
        }  # fmt: skip

    def columns(self, claim_id: str) -> dict[str, Any]:
        """The claims row's plain columns (what people reading the database see)."""
        row = self.one(_SELECT_COLUMNS, (claim_id,))
        return {} if row is None else dict(zip(COLUMNS, row, strict=True))

    def order_is_open(self, order_id: str) -> bool:
        return self.one("SELECT 1 FROM claims WHERE order_id = ? AND closed = 0 LIMIT 1", (order_id,)) is not None

    def keyed(self, claim_id: str | None, key: str) -> tuple[str, int, str | None] | None:
        """The (claim id, seq, request hash) an idempotency key was first used for; claim None: a filing."""
        if claim_id is None:
            sql = "SELECT claim_id, seq, request_hash FROM transitions WHERE idempotency_key = ? AND seq = 1"
            row = self.one(sql, (key,))
        else:
            sql = "SELECT claim_id, seq, request_hash FROM transitions WHERE claim_id = ? AND idempotency_key = ?"
            row = self.one(sql, (claim_id, key))
        return None if row is None else (row[0], row[1], row[2])

    def history(self, claim_id: str) -> list[dict[str, Any]]:
        """The claim's transition rows in order, data decoded."""
        rows = self.all(f"{SELECT_HISTORY} WHERE claim_id = ? ORDER BY seq", (claim_id,))
        return [{**dict(zip(HISTORY, row, strict=True)), "data": self._decoded(row[7], claim_id)} for row in rows]

    def has_history(self, claim_id: str) -> bool:
        return self.one("SELECT 1 FROM transitions WHERE claim_id = ? LIMIT 1", (claim_id,)) is not None

    def histories(self) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        """Every claim id that has history rows, whether or not its claims row exists, with its rows in seq
        order as stored (data still its JSON text), each with its retained `event`'s (claim summary as JSON
        text, lane), or None: read as one stream, inside `read`."""
        claim_id, rows = None, list[dict[str, Any]]()
        for values in self._stream(_HISTORY_WITH_EVENTS):
            event = None if values[-2] is None else values[-2:]
            row = {**dict(zip(HISTORY, values[: len(HISTORY)], strict=True)), "event": event}
            if row["claim_id"] != claim_id and rows:
                yield str(claim_id), rows
                rows = []
            claim_id = row["claim_id"]
            rows.append(row)
        if rows:
            yield str(claim_id), rows

    def history_rows(self, page: int = 1000) -> Iterator[dict[str, Any]]:
        """Every history row with a claim id and seq, in (claim id, seq) order, by keyset paging on the key."""
        after: tuple[str, int] | None = None
        while True:
            if after is None:
                rows = self.all(f"{SELECT_HISTORY} WHERE {_KEYED} ORDER BY claim_id, seq LIMIT ?", (page,))
            else:
                sql = f"{SELECT_HISTORY} WHERE (claim_id, seq) > (?, ?) AND {_KEYED} ORDER BY claim_id, seq LIMIT ?"
                rows = self.all(sql, (*after, page))
            yield from (dict(zip(HISTORY, row, strict=True)) for row in rows)
            if len(rows) < page:
                return
            after = (rows[-1][0], rows[-1][1])

    def unkeyed_history_rows(self) -> int:
        """How many history rows lack a claim id or a seq (SQLite lets a hand edit store NULL in the key)."""
        row = self.one("SELECT count(*) FROM transitions WHERE claim_id IS NULL OR seq IS NULL")
        return 0 if row is None else int(row[0])

    def claims_without_history(self) -> list[str]:
        rows = self.all(
            "SELECT id FROM claims WHERE NOT EXISTS (SELECT 1 FROM transitions WHERE claim_id = claims.id) ORDER BY id"
        )
        return [row[0] for row in rows]

    def orders_open_twice(self) -> list[tuple[str, list[str]]]:
        """Orders with more than one open claim (only if the unique index was dropped), with those claims."""
        rows = self.all(
            "SELECT order_id, id FROM claims WHERE closed = 0 AND order_id IN (SELECT order_id FROM claims"
            " WHERE closed = 0 GROUP BY order_id HAVING count(*) > 1) ORDER BY order_id, id"
        )
        found: dict[str, list[str]] = {}
        for order_id, claim_id in rows:
            found.setdefault(order_id, []).append(claim_id)
        return list(found.items())

    def chain_record(self) -> dict[str, str]:
        """What the database records about its hash chain (see Chain.record); empty if the record is gone."""
        try:
            return {
                row[0]: row[1]
                for row in self.all("SELECT name, value FROM meta WHERE name IN ('chain', 'key_fingerprint')")
            }
        except StorageError:
            return {}

    def claims(self, where: Mapping[str, str], *, after: str | None, limit: int) -> Listed:
        """Claims matching every column = value of `where` (columns of COLUMNS), in id order, after `after`:
        the readable ones, and the damaged ones apart, so one damaged row does not hide the others."""
        unknown = set(where) - set(COLUMNS)
        if unknown:
            raise StorageError(f"no claims column {', '.join(sorted(unknown))}", path=self.path)
        clauses = [f"{column} = ?" for column in where]
        params: list[Any] = list(where.values())
        if after is not None:
            clauses.append("id > ?")
            params.append(after)
        rows = self.all(
            "SELECT id, details FROM claims" + (" WHERE " + " AND ".join(clauses) if clauses else "")
            + " ORDER BY id LIMIT ?",
            [*params, limit],
        )  # fmt: skip
        listed = Listed([], [], None if not rows else rows[-1][0])
        for claim_id, details in rows:
            try:
                listed.claims.append(self._claim_of(details, claim_id))
            except StorageError as error:
                listed.unreadable.append((claim_id, str(error)))
        return listed

    def due(self, now: str, limit: int, after: tuple[str, str] | None = None) -> list[tuple[str, str, str]]:
        """(due time, claim id, trigger) of deadlines due at `now`, earliest first, from the partial index;
        after the (due time, claim id) `after`, so a caller pages through them holding one page at a time."""
        sql = "SELECT deadline_at, id, deadline_trigger FROM claims WHERE deadline_at IS NOT NULL AND deadline_at <= ?"
        if after is None:
            rows = self.all(f"{sql} ORDER BY deadline_at, id LIMIT ?", (now, limit))
        else:
            rows = self.all(
                f"{sql} AND (deadline_at, id) > (?, ?) ORDER BY deadline_at, id LIMIT ?", (now, *after, limit)
            )
        return [(row[0], row[1], row[2]) for row in rows]

    def due_count(self, now: str) -> int:
        row = self.one("SELECT count(*) FROM claims WHERE deadline_at IS NOT NULL AND deadline_at <= ?", (now,))
        return 0 if row is None else int(row[0])

    def table_rows(self, table: str, page: int = 1000) -> Iterator[tuple[Any, ...]]:
        """Every row of `table` (one of TABLES) as stored, all of TABLES[table]'s columns, in key
        order, a page at a time: what a copy to another store writes."""
        columns, key = TABLES[table], _KEYS[table]
        select = f"SELECT {', '.join(columns)} FROM {table}"
        order = f" ORDER BY {', '.join(key)} LIMIT ?"
        after: tuple[Any, ...] | None = None
        while True:
            if after is None:
                rows = self.all(select + order, (page,))
            else:
                rows = self.all(
                    f"{select} WHERE ({', '.join(key)}) > ({', '.join('?' * len(key))}){order}", (*after, page)
                )
            yield from rows
            if len(rows) < page:
                return
            after = tuple(rows[-1][columns.index(k)] for k in key)

    # --- definitions ---------------------------------------------------------------------------------

    def definitions(self) -> dict[str, tuple[str, str, str]]:
        """Every definition the database has seen: (name, export as JSON text, first seen) by fingerprint."""
        rows = self.all("SELECT fingerprint, name, body, first_seen FROM definitions ORDER BY first_seen, fingerprint")
        return {row[0]: (row[1], row[2], row[3]) for row in rows}

    def knows(self) -> bool:
        """Whether the database keeps `definition` among its definitions."""
        sql = "SELECT 1 FROM definitions WHERE fingerprint = ?"
        return self.one(sql, (self.definition.fingerprint,)) is not None

    def baseline(self) -> str | None:
        """The definition the history rows that record none were decided under (see `adopt`)."""
        row = self.one("SELECT value FROM meta WHERE name = ?", (BASELINE,))
        return None if row is None else str(row[0])

    def outdated(self) -> list[tuple[str | None, str, int]]:
        """(definition, state, how many) of the open claims decided under another definition than `definition`.

        Three seeks of the index of open claims by definition answer "none" (what every open finds) without
        reading the claims; only when there are some are they counted."""
        probe = " UNION ALL ".join(
            f"SELECT 1 FROM (SELECT 1 FROM claims WHERE closed = 0 AND {where} LIMIT 1) AS probe"
            for where in ("definition < ?", "definition > ?", "definition IS NULL")
        )
        if not self.all(probe, (self.definition.fingerprint, self.definition.fingerprint)):
            return []
        rows = self.all(
            "SELECT definition, state, count(*) FROM claims WHERE closed = 0"
            " AND (definition IS NULL OR definition <> ?) GROUP BY definition, state ORDER BY definition, state",
            (self.definition.fingerprint,),
        )
        return [(row[0], row[1], int(row[2])) for row in rows]

    def outdated_ids(self) -> list[str]:
        """The ids of the open claims decided under another definition than `definition`, in id order."""
        rows = self.all(
            "SELECT id FROM claims WHERE closed = 0 AND (definition IS NULL OR definition <> ?) ORDER BY id",
            (self.definition.fingerprint,),
        )
        return [row[0] for row in rows]

    def open_states(self, fingerprint: str) -> dict[str, int]:
        """How many open claims decided under `fingerprint` sit in each state."""
        rows = self.all(
            "SELECT state, count(*) FROM claims WHERE closed = 0 AND definition = ? GROUP BY state", (fingerprint,)
        )
        return {row[0]: int(row[1]) for row in rows}

    def register(self, first_seen: str) -> None:
        """In a write transaction: keep `definition` among the definitions, unless the database has it."""
        self.send(
            "INSERT INTO definitions (fingerprint, name, body, first_seen) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (fingerprint) DO NOTHING",
            (self.definition.fingerprint, self.definition.name, self.definition.body, first_seen),
        )

    def set_baseline(self, fingerprint: str) -> None:
        """In a write transaction: record the definition of the history rows that record none."""
        self._set_meta(BASELINE, fingerprint)

    def current(self) -> str | None:
        """The definition the last writable service to open decides by (None before any recorded one)."""
        row = self.one("SELECT value FROM meta WHERE name = ?", (CURRENT,))
        return None if row is None else str(row[0])

    def make_current(self) -> None:
        """In a write transaction: record `definition` as the definition claims are now filed under."""
        self._set_meta(CURRENT, self.definition.fingerprint)

    def _set_meta(self, name: str, value: str) -> None:
        self.send(
            "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    def _adopt_claims(self) -> None:
        """Upgrading a database written before claims recorded their definition: its claims were decided under
        `definition` (the opener's), unless one sits in a state `definition` lacks; the history keeps no definition,
        and the meta row `baseline_definition` says which one it was."""
        rules = decode(self.definition.body)
        known = {state["name"] for state in rules["states"]}
        moves = {(t["trigger"], source, t["dest"]) for t in rules["transitions"] for source in t["sources"] or [None]}
        strange = sorted({row[0] for row in self.all("SELECT DISTINCT state FROM claims")} - known)
        strange += sorted(
            f"{trigger}: {source or '(new claim)'} -> {dest}"
            for trigger, source, dest in self.all("SELECT DISTINCT trigger, from_state, to_state FROM transitions")
            if (trigger, source, dest) not in moves
        )
        if strange:
            raise StorageError(
                f"{self.path} holds claims in states, or history through transitions, this lifecycle lacks"
                f" ({', '.join(strange)}): upgrade the database by opening it once with the definition its claims"
                " were decided under, then change the lifecycle (see the README: Changing the lifecycle)",
                path=self.path,
            )
        self.run("UPDATE claims SET definition = ? WHERE definition IS NULL", (self.definition.fingerprint,))
        if self.one("SELECT 1 FROM transitions LIMIT 1") is not None:
            self.set_baseline(self.definition.fingerprint)
        self.register(to_iso(datetime.now(UTC)))

    @abc.abstractmethod
    def lock_whole(self) -> None:
        """In a write transaction: keep every other writer out until it ends (for a copy into this store)."""

    def is_empty(self) -> bool:
        """Whether the database holds no claim, history row, event or consumer (definitions do not count)."""
        return all(self.one(f"SELECT 1 FROM {table} LIMIT 1") is None for table in TABLES if table not in _MERGED)

    # --- writes (inside `transaction()`) -------------------------------------------------------------

    def insert_rows(self, table: str, rows: Iterable[Sequence[Any]]) -> int:
        """Write rows read by another store's `table_rows`, unchanged (hashes included); how many."""
        columns = TABLES[table]
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        if table in _MERGED:
            sql += f" ON CONFLICT ({', '.join(_KEYS[table])}) DO NOTHING"
        count = 0
        with self._writing:
            for row in rows:
                self.send(sql, row)
                count += 1
            self._copied(table)
        return count

    @abc.abstractmethod
    def _copied(self, table: str) -> None:
        """After rows were copied into `table` with their keys: what the backend must then set right."""

    def insert(
        self, claim: Claim, record: TransitionRecord, *, closed: bool, key: str | None, digest: str | None
    ) -> None:
        """A new claim and its filing record; `key` and `digest` are the request's idempotency key and hash."""
        d = claim.to_dict()
        row = columns_of(d, closed)
        with self._writing:
            self.run(INSERT_CLAIM, [*(row[c] for c in COLUMNS), self.definition.fingerprint])
            self._append(record, row["deadline_at"], summary(d, closed), key, digest, previous=None)

    def update(
        self,
        before: StoredClaim,
        claim: Claim,
        record: TransitionRecord,
        *,
        closed: bool,
        key: str | None,
        digest: str | None,
    ) -> bool:
        """Write the claim's new version and its record, if the row is still at the version `before` read;
        else False."""
        d = claim.to_dict()
        row = columns_of(d, closed)
        with self._writing:
            moving = before.definition != self.definition.fingerprint  # only a migration fires across definitions
            changing = [row[c] for c in CHANGING]
            changing += [1] if closed else []
            changing += [self.definition.fingerprint] if moving else []
            if self.run(UPDATE_CLAIM[closed, moving], [*changing, claim.id, before.claim.version]) != 1:
                return False
            self._append(record, row["deadline_at"], summary(d, closed), key, digest, previous=before.last_hash)
        return True

    def _append(
        self,
        record: TransitionRecord,
        deadline_at: str | None,
        claim: Mapping[str, Any],
        key: str | None,
        digest: str | None,
        *,
        previous: str | None,
    ) -> None:
        """The history row of `record`, chained to `previous`, the hash of the claim's row before it; and its
        event, with `claim`'s summary, in the same transaction, so neither is ever kept without the other."""
        values = linked(record, deadline_at, self.definition.fingerprint)
        row = stored(values, key, digest)
        self.send(INSERT_RECORD, (*row, self.chain.link(previous, values), self.definition.fingerprint))
        self.events.append(row, claim)


class StoreContext:
    """A context manager over a store that every statement enters: a class with slots, not a generator,
    because a generator-based one costs several microseconds per fire."""

    __slots__ = ("_store",)

    def __init__(self, store: Store) -> None:
        self._store = store

    def __enter__(self) -> None:
        return None


class _Writing(StoreContext):
    """Marks the transaction spoiled when a write fails half-way."""

    __slots__ = ()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> None:
        if error is not None:
            self._store._spoiled = True


class _Transaction(StoreContext):
    """The store's write transaction: begun on the way in, committed or rolled back on the way out; an
    inner one (inside a batch) joins the open one."""

    __slots__ = ()

    def __enter__(self) -> None:
        store = self._store
        if store._depth:
            store._depth += 1
            return
        store._start()
        store._depth, store._spoiled = 1, False

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, _tb: object) -> None:
        store = self._store
        store._depth -= 1
        if store._depth:
            return
        try:
            if error is None and store._spoiled:
                raise StorageError(f"a write in this batch failed, so nothing of it was kept in {store.path}")
            if error is None:
                store._finish()
        except BaseException:
            store._abandon()
            raise
        if error is not None:
            store._abandon()
