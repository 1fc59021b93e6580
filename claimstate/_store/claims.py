"""The claims and their history: read a claim (locked for a write, or not), list them, find the due
deadlines, and write a fire as one UPDATE (or INSERT) plus one history row and its event.

`ClaimRows` runs on a `database.Database` (the store) and calls nothing else of it: a backend that reads a
claim for a write its own way (PostgreSQL locks the claims row alone, then reads the last hash) gives it
that read as the `lock` hook.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from claimstate._chain import Chain
from claimstate._claim import Claim, TransitionRecord
from claimstate._errors import ClaimStateError, StorageError
from claimstate._feed import summary
from claimstate._json import decode
from claimstate._store.database import Database
from claimstate._store.definitions import StoredDefinition
from claimstate._store.events import EventRows
from claimstate._store.rows import (
    CHANGING,
    COLUMNS,
    HISTORY,
    IN_COLUMNS,
    INSERT_CLAIM,
    INSERT_RECORD,
    SELECT_CLAIM,
    SELECT_HISTORY,
    UPDATE_CLAIM,
    claim_dict,
    columns_of,
    linked,
    stored,
)

# The claim with its last history row's hash, its definition and whether it is closed, in one read.
SELECT_LOADED = (
    f"SELECT {', '.join(f'c.{column}' for column in (*IN_COLUMNS, 'details'))}, t.hash, c.definition, c.closed"
    " FROM claims c LEFT JOIN transitions t ON t.claim_id = c.id AND t.seq = c.version WHERE c.id = ?"
)
# How a backend reads a claim for a write: (the claim's SELECT_CLAIM columns, last hash, definition, closed), or None.
Lock = Callable[[str, bool], tuple[Any, ...] | None]
LOADED_HASH = len(IN_COLUMNS) + 1  # where a SELECT_LOADED row holds the hash, after the claim's columns
_KEPT = 128  # claims kept decoded, by the row they were read from or written as (see `ClaimRows._claim_of`)


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


class _Written(threading.local):
    """The claims one thread's open transaction wrote (see `ClaimRows._written`)."""

    def __init__(self) -> None:
        self.claims: dict[str, StoredClaim] = {}

    def forget(self) -> None:
        self.claims = {}


def decoded(text: str, claim_id: str, path: str) -> Any:
    """A claim's (or history row's) JSON text of the database `path`, decoded; damaged, a StorageError."""
    try:
        return decode(text)
    except (TypeError, ValueError, RecursionError):
        raise StorageError(f"claim {claim_id!r} in {path} holds damaged JSON", path=path) from None


class ClaimRows:
    """Claims and history rows, on `database` (named `path` in messages). Every row written records the
    fingerprint of `definition` and is hashed by `chain`; each history row's event goes to `events`."""

    def __init__(
        self,
        database: Database,
        *,
        path: str,
        definition: StoredDefinition,
        chain: Chain,
        events: EventRows,
        lock: Lock,
    ) -> None:
        self._db = database
        self._path = path
        self._definition = definition
        self._chain = chain
        self._events = events
        self._lock = lock
        # The claims last written or read for a write, by id: (their row, the claim). A fire reads its claim's
        # row anyway (for the lock and the chain head), and when that row is the one kept, byte for byte, the
        # claim it makes is the one kept: decoding it again is skipped, and a row changed by anyone is decoded.
        self._kept: dict[str, tuple[tuple[Any, ...], Claim]] = {}
        self._keeping = threading.Lock()
        # The claims this thread's open transaction wrote, as written: their rows stay so until it ends (the
        # one writer SQLite lets in holds the file, PostgreSQL's row lock the row), so the next fire of the
        # same claim in a batch reads nothing. Forgotten when the transaction ends, either way.
        self._written = _Written()
        database.before_commit(self._written.forget)
        database.on_rollback(self._written.forget)
        # Where a claim's open order, and a filing's idempotency key, are found: on a schema partitioned by
        # claim id, in the small tables that keep them (one index probe), not in every partition's index.
        self._open_order = "SELECT 1 FROM claims WHERE order_id = ? AND closed = 0 LIMIT 1"
        self._filing_key = "SELECT claim_id, seq, request_hash FROM transitions WHERE idempotency_key = ? AND seq = 1"

    def use_kept_rules(self) -> None:
        """Find open orders and filings' keys in the tables a partitioned schema keeps them in (`open_orders`,
        `filing_keys`: see _store.postgres.schema), then the filing's row in its claim's partition alone."""
        self._open_order = "SELECT 1 FROM open_orders WHERE order_id = ?"
        self._filing_key = (
            "SELECT t.claim_id, t.seq, t.request_hash FROM filing_keys f JOIN transitions t"
            " ON t.claim_id = f.claim_id AND t.seq = 1 WHERE f.idempotency_key = ?"
        )

    # --- reads ---------------------------------------------------------------------------------------

    def claim(self, claim_id: str) -> Claim | None:
        row = self._db.one(f"SELECT {SELECT_CLAIM} FROM claims WHERE id = ?", (claim_id,))
        return None if row is None else self._claim_of(row, claim_id)

    def loaded(self, claim_id: str, *, skip_locked: bool = False) -> StoredClaim | None:
        """The claim, to be written in this transaction, with its last history row's hash (one read for both).

        Where the backend locks rows, the claim's row is locked until the transaction ends; `skip_locked`
        returns None instead of waiting for a row another transaction holds.
        """
        written = self._written.claims.get(claim_id)
        if written is not None:
            return written
        stored = self._stored(self._lock(claim_id, skip_locked), claim_id)
        if stored is not None and stored.last_hash is None:  # the row's version is not its history's last
            raise StorageError(
                f"claim {claim_id!r} in {self._path} is damaged: its claims row is at version"
                f" {stored.claim.version}, which its history lacks (run verify)",
                path=self._path,
            )
        return stored

    def loaded_for_reading(self, claim_id: str) -> StoredClaim | None:
        """The claim as `loaded` gives it, without locking anything (for reads, and a dry run)."""
        return self._stored(self._db.one(SELECT_LOADED, (claim_id,)), claim_id)

    def _stored(self, row: tuple[Any, ...] | None, claim_id: str) -> StoredClaim | None:
        if row is None:
            return None
        claim = self._claim_of(row[:LOADED_HASH], claim_id, keep=True)
        return StoredClaim(claim, row[LOADED_HASH], row[LOADED_HASH + 1], bool(row[LOADED_HASH + 2]))

    def _claim_of(self, row: tuple[Any, ...], claim_id: str, *, keep: bool = False) -> Claim:
        """The claim of its SELECT_CLAIM columns `row`: the one kept for that very row, else decoded (and kept,
        if `keep`: read for a write)."""
        kept = self._kept.get(claim_id)
        if kept is not None and kept[0] == row:
            return kept[1]
        found = decoded(row[-1], claim_id, self._path)
        try:
            if not isinstance(found, dict):
                raise TypeError(f"details hold {type(found).__name__}, not an object")
            claim = Claim.from_dict(claim_dict(row[:-1], found))
        except (KeyError, TypeError, ValueError, ClaimStateError) as error:
            raise StorageError(f"claim {claim_id!r} in {self._path} is damaged: {error!r}", path=self._path) from None
        if keep:
            self._keep(claim_id, row, claim)
        return claim

    def _keep(self, claim_id: str, row: tuple[Any, ...], claim: Claim) -> None:
        with self._keeping:
            self._kept.pop(claim_id, None)
            if len(self._kept) >= _KEPT:
                del self._kept[next(iter(self._kept))]  # the one kept longest ago
            self._kept[claim_id] = row, claim

    def order_is_open(self, order_id: str) -> bool:
        return self._db.one(self._open_order, (order_id,)) is not None

    def keyed(self, claim_id: str | None, key: str) -> tuple[str, int, str | None] | None:
        """The (claim id, seq, request hash) an idempotency key was first used for; claim None: a filing."""
        if claim_id is None:
            row = self._db.one(self._filing_key, (key,))
        else:
            sql = "SELECT claim_id, seq, request_hash FROM transitions WHERE claim_id = ? AND idempotency_key = ?"
            row = self._db.one(sql, (claim_id, key))
        return None if row is None else (row[0], row[1], row[2])

    def history(self, claim_id: str) -> list[dict[str, Any]]:
        """The claim's transition rows in order, data decoded."""
        rows = self._db.all(f"{SELECT_HISTORY} WHERE claim_id = ? ORDER BY seq", (claim_id,))
        return [{**dict(zip(HISTORY, row, strict=True)), "data": decoded(row[7], claim_id, self._path)} for row in rows]

    def has_history(self, claim_id: str) -> bool:
        return self._db.one("SELECT 1 FROM transitions WHERE claim_id = ? LIMIT 1", (claim_id,)) is not None

    def claims(
        self,
        where: Mapping[str, str],
        *,
        after: str | None,
        limit: int,
        below: Mapping[str, str] | None = None,
        up_to: Mapping[str, str] | None = None,
    ) -> Listed:
        """Claims matching every column = value of `where`, column < value of `below` and column <= value of
        `up_to` (columns of COLUMNS; a NULL column matches no bound), in id order, after `after`: the
        readable ones, and the damaged ones apart, so one damaged row does not hide the others."""
        below, up_to = below or {}, up_to or {}
        unknown = {*where, *below, *up_to} - set(COLUMNS)
        if unknown:
            raise StorageError(f"no claims column {', '.join(sorted(unknown))}", path=self._path)
        clauses = [
            *(f"{column} = ?" for column in where),
            *(f"{column} < ?" for column in below),
            *(f"{column} <= ?" for column in up_to),
        ]
        params: list[Any] = [*where.values(), *below.values(), *up_to.values()]
        if after is not None:
            clauses.append("id > ?")
            params.append(after)
        rows = self._db.all(
            f"SELECT id, {SELECT_CLAIM} FROM claims" + (" WHERE " + " AND ".join(clauses) if clauses else "")
            + " ORDER BY id LIMIT ?",
            [*params, limit],
        )  # fmt: skip
        listed = Listed([], [], None if not rows else rows[-1][0])
        for claim_id, *row in rows:
            try:
                listed.claims.append(self._claim_of(tuple(row), claim_id))
            except StorageError as error:
                listed.unreadable.append((claim_id, str(error)))
        return listed

    def due(self, now: str, limit: int, after: tuple[str, str] | None = None) -> list[tuple[str, str, str]]:
        """(due time, claim id, trigger) of deadlines due at `now`, earliest first, from the partial index;
        after the (due time, claim id) `after`, so a caller pages through them holding one page at a time."""
        sql = "SELECT deadline_at, id, deadline_trigger FROM claims WHERE deadline_at IS NOT NULL AND deadline_at <= ?"
        if after is None:
            rows = self._db.all(f"{sql} ORDER BY deadline_at, id LIMIT ?", (now, limit))
        else:
            rows = self._db.all(
                f"{sql} AND (deadline_at, id) > (?, ?) ORDER BY deadline_at, id LIMIT ?", (now, *after, limit)
            )
        return [(row[0], row[1], row[2]) for row in rows]

    def due_count(self, now: str) -> int:
        row = self._db.one("SELECT count(*) FROM claims WHERE deadline_at IS NOT NULL AND deadline_at <= ?", (now,))
        return 0 if row is None else int(row[0])

    # --- writes (inside the database's transaction) --------------------------------------------------

    def insert(
        self, claim: Claim, record: TransitionRecord, *, closed: bool, key: str | None, digest: str | None
    ) -> None:
        """A new claim and its filing record; `key` and `digest` are the request's idempotency key and hash."""
        d = claim.to_dict()
        row = columns_of(d, closed)
        with self._db.writing:
            self._db.run(INSERT_CLAIM, [*(row[c] for c in COLUMNS), self._definition.fingerprint])
            head = self._append(record, row["deadline_at"], summary(d, closed), key, digest, previous=None)
        self._wrote(claim, row, head, closed)

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
        self._written.claims.pop(claim.id, None)  # until the write is whole
        with self._db.writing:
            moving = before.definition != self._definition.fingerprint  # only a migration fires across definitions
            changing = [row[c] for c in CHANGING]
            changing += [1] if closed else []
            changing += [self._definition.fingerprint] if moving else []
            if self._db.run(UPDATE_CLAIM[closed, moving], [*changing, claim.id, before.claim.version]) != 1:
                return False
            head = self._append(record, row["deadline_at"], summary(d, closed), key, digest, previous=before.last_hash)
        self._wrote(claim, row, head, closed)
        return True

    def _wrote(self, claim: Claim, row: Mapping[str, Any], head: str, closed: bool) -> None:
        """Keep what was just written: for this transaction's next fire of the claim, and decoded, by its row."""
        self._written.claims[claim.id] = StoredClaim(claim, head, self._definition.fingerprint, closed)
        self._keep(claim.id, _read_back(row), claim)

    def _append(
        self,
        record: TransitionRecord,
        deadline_at: str | None,
        claim: Mapping[str, Any],
        key: str | None,
        digest: str | None,
        *,
        previous: str | None,
    ) -> str:
        """The history row of `record`, chained to `previous`, the hash of the claim's row before it; and its
        event, with `claim`'s summary, in the same transaction, so neither is ever kept without the other.
        Its hash, which the claim's next row chains to."""
        values = linked(record, deadline_at, self._definition.fingerprint)
        row = stored(values, key, digest)
        head = self._chain.link(previous, values)
        self._db.send(INSERT_RECORD, (*row, head, self._definition.fingerprint))
        self._events.append(row, claim)
        return head


def _read_back(row: Mapping[str, Any]) -> tuple[Any, ...]:
    """The SELECT_CLAIM columns of a claims row about to be written, as reading it back gives them."""
    return (*(row[c] for c in IN_COLUMNS), row["details"])
