"""The contract every store keeps: the database object its queries run on.

The service talks to a `Store`: it opens the connection, runs transactions (with their before-commit and
on-rollback hooks), runs a write again when it lost a race, and migrates the schema. The queries are
classes of their own, one per concern, each given the store as the `database.Database` it runs on and
calling nothing else of it: `claims` (claims and their history, `claims.ClaimRows`), `definitions`
(definitions and meta rows, `definitions.DefinitionRows`), `verify` (what a verify reads,
`verify.VerifyRows`), `events` (the feed, `events.EventRows`), `copy` (the whole-store copy,
`copies.CopyRows`) and `operations` (stats and the workers' heartbeats, `operations.OperationRows`). A
backend supplies the connection, the transactions, the schema and how its errors read; the statements are
plain SQL that SQLite and PostgreSQL both run, and what a backend does its own way it gives a query class
as a hook (PostgreSQL's locking read of a claim, its counters after a copy).
"""

from __future__ import annotations

import abc
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from claimstate._chain import Chain
from claimstate._errors import ConcurrentModification, StorageError
from claimstate._json import decode
from claimstate._store import events
from claimstate._store.claims import SELECT_LOADED, ClaimRows, StoredClaim
from claimstate._store.copies import CopyRows
from claimstate._store.definitions import DefinitionRows, StoredDefinition
from claimstate._store.operations import OperationRows
from claimstate._store.verify import VerifyRows
from claimstate._telemetry import gave_up, retrying, storage_fault
from claimstate._time import to_iso

__all__ = ["Race", "Session", "Store", "StoreContext", "StoredClaim", "StoredDefinition"]  # the last two re-exported

T = TypeVar("T")
_ATTEMPTS = 5  # tries of a write that lost a race another writer won (PostgreSQL), before giving up


class Race(ConcurrentModification):
    """A write lost a race with another writer (a serialization failure, a deadlock, or a unique key taken
    meanwhile) and can be run again whole: `write` does. Where it cannot (a read inside a batch), it reaches
    the caller as the ConcurrentModification it is."""

    def __init__(self, detail: str) -> None:
        super().__init__(None, None, None, detail=detail)


class Session(threading.local):
    """One thread's use of a store: its open transaction (how deep: 0 none, 1 one, more when calls join a
    batch) and whether a write in it failed. Each thread has its own, so threads sharing one store never
    wait for each other's calls; a backend adds its connection to it."""

    depth = 0
    spoiled = False


class Store(abc.ABC):
    """Claims and their append-only history in one database. `path` names it for messages.

    Threads may share a store: each thread's calls run on a connection and transaction of their own (its
    `Session`), so a call waiting for one claim's lock delays no call on another claim. A batch is the
    thread's open transaction, which that thread's calls join.

    `chain` hashes the history rows this store appends; a store whose chain cannot extend the database's
    (no key, or the wrong one) refuses every write, as does a `read_only` store. Every claims row and
    history row it writes records the fingerprint of `definition`, the definition the service decides with.
    """

    schema_version: int  # the backend's schema version, which opening the database migrates it to
    partitions = 0  # how many partitions by claim id its tables have (PostgreSQL's option; 0: plain tables)
    _SKIP_LOCKED = ""  # what a backend that locks rows adds to a query, to pass over rows others hold
    _MANY_WRITERS = False  # whether writers run at once (then a lane's numbers come from a locked counter)
    _PERCENTILE = False  # whether the database has percentile_cont (the median age per state)

    def __init__(self, path: str, *, chain: Chain, definition: StoredDefinition, read_only: bool) -> None:
        self.path = path
        self.definition = definition
        self.chain = chain  # how the history rows this store appends are hashed
        self._read_only = read_only
        self._before_commit: list[Callable[[], None]] = []  # run in the transaction, just before COMMIT
        self._on_rollback: list[Callable[[], None]] = []  # run after a write transaction rolled back
        self._session = self._new_session()
        self._cannot_write: str | None = None
        self.writing = _Writing(self)  # entered around a write's statements (see `database.Database`)
        self._transaction = _Transaction(self)
        self.events = events.EventRows(self, skip_locked=self._SKIP_LOCKED, many_writers=self._MANY_WRITERS)
        self.claims = ClaimRows(
            self, path=path, definition=definition, chain=chain, events=self.events, lock=self._lock_claim
        )
        self.definitions = DefinitionRows(self, definition=definition)
        self.verify = VerifyRows(self)
        self.copy = CopyRows(self, copied=self._copied)
        self.operations = OperationRows(self, percentile=self._PERCENTILE)

    @property
    def many_writers(self) -> bool:
        """Whether writers on many machines share the database at once (PostgreSQL, which has standbys)."""
        return self._MANY_WRITERS

    def _new_session(self) -> Session:
        """The per-thread state of this backend's transactions (a subclass of `Session` adds a connection)."""
        return Session()

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
    def stream(self, sql: str, page: int = 1000) -> Iterator[tuple[Any, ...]]:
        """Every row of a query (no placeholders) in a read's snapshot, fetched a page at a time as they are
        used, so memory stays flat however many there are."""

    @abc.abstractmethod
    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a write statement (`?` placeholders); how many rows it changed."""

    def send(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run a write whose result nothing waits for (a backend may send it with the next statement)."""
        self.run(sql, params)

    def send_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """`send` of one statement for each of `rows` (a backend may run it prepared once)."""
        for params in rows:
            self.send(sql, params)

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
        with self.writing:
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
            transaction = self.transaction()  # a store that may not write refuses here: a refusal, not a fault
            try:
                with transaction:
                    return body()
            except Race as race:
                if self._session.depth or attempt == _ATTEMPTS:
                    gave_up(claim_id, attempt, race.detail, batch=bool(self._session.depth))
                    raise ConcurrentModification(claim_id, None, None, detail=race.detail) from None
                retrying(claim_id, attempt, race.detail)
                time.sleep(0.001 * 2**attempt)
            except StorageError as error:
                storage_fault(claim_id, error)
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    # --- what a backend does its own way, given to its query classes as hooks -----------------------

    def _lock_claim(self, claim_id: str, skip_locked: bool) -> tuple[Any, ...] | None:
        """`ClaimRows.loaded`'s read: (details, last hash, definition, closed) of the claim, locked until the
        transaction ends where the backend locks rows; None if there is none (or, `skip_locked`, it is held)."""
        return self.one(SELECT_LOADED, (claim_id,))

    @abc.abstractmethod
    def _copied(self, table: str) -> None:
        """After rows were copied into `table` with their keys: what the backend must then set right."""

    @abc.abstractmethod
    def lock_whole(self) -> None:
        """In a write transaction: keep every other writer out until it ends (for a copy into this store)."""

    # --- schema --------------------------------------------------------------------------------------

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
            self.definitions.set_baseline(self.definition.fingerprint)
        self.definitions.register(to_iso(datetime.now(UTC)))


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
            self._store._session.spoiled = True


class _Transaction(StoreContext):
    """The store's write transaction: begun on the way in, committed or rolled back on the way out; an
    inner one (inside a batch) joins the open one."""

    __slots__ = ()

    def __enter__(self) -> None:
        session = self._store._session
        if session.depth:
            session.depth += 1
            return
        self._store._start()
        session.depth, session.spoiled = 1, False

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, _tb: object) -> None:
        store, session = self._store, self._store._session
        if session.depth <= 0:  # ended on a thread that never began it (a batch's generator collected elsewhere)
            return
        session.depth -= 1
        if session.depth:
            return
        try:
            if error is None and session.spoiled:
                raise StorageError(f"a write in this batch failed, so nothing of it was kept in {store.path}")
            if error is None:
                store._finish()
        except BaseException:
            store._abandon()
            raise
        if error is not None:
            store._abandon()
