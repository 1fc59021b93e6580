"""The one module that talks to SQLite: schema, migrations, transactions and the rows of claims.

sqlite-utils creates and migrates the schema and runs the queries people write; the hot path (read a
claim, update it, append its history row) is plain parameterised SQL on the same connection, because
sqlite-utils' row API costs several times as much there. Every sqlite3 error leaves this module as a
StorageError (or ConcurrentModification) with a plain message.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import sqlite_utils

from claimstate._claim import Claim, TransitionRecord
from claimstate._errors import ClaimStateError, StorageError

APPLICATION_ID = int.from_bytes(b"ClSt", "big")  # marks the file as claimstate's (PRAGMA application_id)
Synchronous = Literal["NORMAL", "FULL"]
_SQLITE_HEADER = b"SQLite format 3\x00"


def _schema_v1(db: sqlite_utils.Database) -> None:
    """Claims with their current state, and the append-only history of every transition."""
    db.table("claims").create(
        {
            "id": str,
            "state": str,
            "version": int,
            "closed": int,
            "order_id": str,
            "buyer_id": str,
            "supplier_id": str,
            "amount": str,
            "currency": str,
            "resolution": str,
            "filed_at": str,
            "updated_at": str,
            "deadline_at": str,
            "deadline_trigger": str,
            "details": str,
        },
        pk="id",
        not_null={"state", "version", "closed", "order_id", "buyer_id", "supplier_id", "amount", "currency"},
    )
    db.table("transitions").create(
        {
            "claim_id": str,
            "seq": int,
            "trigger": str,
            "from_state": str,
            "to_state": str,
            "actor": str,
            "at": str,
            "data": str,
            "deadline_at": str,
            "idempotency_key": str,
            "request_hash": str,
        },
        pk=("claim_id", "seq"),
        not_null={"trigger", "to_state", "actor", "at", "data"},
        foreign_keys=[("claim_id", "claims", "id")],
    )
    db.table("claims").create_index(["state"], index_name="claims_by_state")
    db.table("claims").create_index(["buyer_id"], index_name="claims_by_buyer")
    db.table("claims").create_index(["supplier_id"], index_name="claims_by_supplier")
    db.table("claims").create_index(["order_id"], index_name="claims_by_order")
    for sql in (
        # sqlite-utils' create_index has no WHERE clause; these two are partial indexes.
        "CREATE INDEX claims_open_deadlines ON claims (deadline_at) WHERE deadline_at IS NOT NULL",
        "CREATE UNIQUE INDEX claims_one_open_per_order ON claims (order_id) WHERE closed = 0",
        "CREATE UNIQUE INDEX transitions_idempotency ON transitions (claim_id, idempotency_key)"
        " WHERE idempotency_key IS NOT NULL",
        "CREATE INDEX transitions_filing_keys ON transitions (idempotency_key)"
        " WHERE idempotency_key IS NOT NULL AND seq = 1",
        "CREATE TRIGGER transitions_no_update BEFORE UPDATE ON transitions"
        " BEGIN SELECT RAISE(ABORT, 'the transition history is append-only'); END",
        "CREATE TRIGGER transitions_no_delete BEFORE DELETE ON transitions"
        " BEGIN SELECT RAISE(ABORT, 'the transition history is append-only'); END",
    ):
        db.execute(sql)


MIGRATIONS: Sequence[Callable[[sqlite_utils.Database], None]] = (_schema_v1,)
SCHEMA_VERSION = len(MIGRATIONS)

# The claims table's columns, and the ones a transition changes (the rest are fixed at filing).
_COLUMNS = (
    "id", "state", "version", "closed", "order_id", "buyer_id", "supplier_id", "amount", "currency", "resolution",
    "filed_at", "updated_at", "deadline_at", "deadline_trigger", "details",
)  # fmt: skip
_CHANGING = ("state", "version", "closed", "updated_at", "deadline_at", "deadline_trigger", "details")
_INSERT_CLAIM = f"INSERT INTO claims ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
_UPDATE_CLAIM = f"UPDATE claims SET {', '.join(f'{c} = ?' for c in _CHANGING)} WHERE id = ? AND version = ?"
_INSERT_RECORD = (
    "INSERT INTO transitions (claim_id, seq, trigger, from_state, to_state, actor, at, data, deadline_at,"
    " idempotency_key, request_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _plain(error: sqlite3.Error, path: str) -> str:
    """What went wrong, in words a person acts on."""
    text = str(error)
    if "locked" in text or "busy" in text:
        return f"{path} is locked by another writer and stayed locked past the busy timeout; try again"
    if "readonly" in text or "read-only" in text:
        return f"{path} is read-only: claimstate cannot write to it"
    if "full" in text:
        return f"the disk holding {path} is full: nothing was written"
    if "not a database" in text or "malformed" in text:
        return f"{path} is not a claimstate database (SQLite says: {text})"
    if "unable to open" in text:
        return f"cannot open {path}: check that the folder exists and is writable"
    return f"{path}: SQLite failed: {text}"


class Store:
    """A claimstate SQLite file: opened safely, migrated by PRAGMA user_version, written in transactions."""

    def __init__(
        self, path: str | Path, *, synchronous: Synchronous = "NORMAL", busy_timeout: float = 5.0, create: bool = True
    ) -> None:
        self.path = str(path)
        self._depth = 0
        self._spoiled = False
        if synchronous not in ("NORMAL", "FULL"):
            raise StorageError(f"synchronous must be NORMAL or FULL, not {synchronous!r}", path=self.path)
        if not create and self.path != ":memory:" and not Path(self.path).exists():
            raise StorageError(
                f"no database at {self.path}; create it with `claimstate init` or ClaimService(path)", path=self.path
            )
        self._check_header()
        with self.errors():
            self._conn = sqlite3.connect(self.path, isolation_level=None, timeout=busy_timeout, check_same_thread=False)
        try:
            with self.errors():
                self.db = sqlite_utils.Database(self._conn, execute_plugins=False)
                self._open(synchronous)
        except BaseException:
            self._conn.close()
            raise

    def _check_header(self) -> None:
        """Refuse a file that is not SQLite before SQLite touches it."""
        if self.path == ":memory:":
            return
        file = Path(self.path)
        if file.is_file() and file.stat().st_size > 0:
            with file.open("rb") as head:
                if head.read(16) != _SQLITE_HEADER:
                    raise StorageError(f"{self.path} is not a claimstate database (not a SQLite file)", path=self.path)

    def _open(self, synchronous: Synchronous) -> None:
        """Check that the file is ours and not newer than this code, then set it up and migrate it."""
        self._check_ours()
        if self.path != ":memory:":
            self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute(f"PRAGMA synchronous = {synchronous}")
        self._conn.execute("PRAGMA foreign_keys = ON")
        if self._version() < SCHEMA_VERSION:
            with self.transaction():
                self._check_ours()
                for migrate in MIGRATIONS[self._version() :]:
                    migrate(self.db)
                self._conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def _check_ours(self) -> None:
        app_id = self._conn.execute("PRAGMA application_id").fetchone()[0]
        tables = self._conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if app_id != APPLICATION_ID and (app_id != 0 or tables):
            raise StorageError(
                f"{self.path} is not a claimstate database (it holds other tables); give a new or claimstate file",
                path=self.path,
            )
        if self._version() > SCHEMA_VERSION:
            raise StorageError(
                f"{self.path} has schema version {self._version()}, newer than this claimstate knows"
                f" ({SCHEMA_VERSION}): upgrade claimstate",
                path=self.path,
            )

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Turn sqlite3 errors into StorageError with a plain message."""
        try:
            yield
        except sqlite3.Error as error:
            raise StorageError(_plain(error, self.path), path=self.path) from error

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction (BEGIN IMMEDIATE), all or nothing.

        Inside an open one (a batch) it joins it. A write that fails there spoils the whole batch, which
        then rolls back even if the caller caught the error, so a batch never commits half a transition.
        """
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        with self.errors():
            self._conn.execute("BEGIN IMMEDIATE")
        self._depth, self._spoiled = 1, False
        try:
            yield
            if self._spoiled:
                raise StorageError(f"a write in this batch failed, so nothing of it was kept in {self.path}")
            with self.errors():
                self._conn.execute("COMMIT")
        except BaseException:
            with self.errors():
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
            raise
        finally:
            self._depth = 0

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Mark the transaction spoiled if a write fails half-way."""
        try:
            with self.errors():
                yield
        except BaseException:
            self._spoiled = True
            raise

    # --- reads -----------------------------------------------------------------------------------------

    def claim(self, claim_id: str) -> Claim | None:
        with self.errors():
            row = self._conn.execute("SELECT details FROM claims WHERE id = ?", (claim_id,)).fetchone()
        return None if row is None else self._claim_of(row[0], claim_id)

    def _decoded(self, text: str, claim_id: str) -> Any:
        try:
            return json.loads(text)
        except (TypeError, ValueError):
            raise StorageError(f"claim {claim_id!r} in {self.path} holds damaged JSON", path=self.path) from None

    def _claim_of(self, details: str, claim_id: str) -> Claim:
        try:
            return Claim.from_dict(self._decoded(details, claim_id))
        except (KeyError, TypeError, ValueError, ClaimStateError) as error:
            raise StorageError(f"claim {claim_id!r} in {self.path} is damaged: {error!r}", path=self.path) from None

    def row_differences(self, claim: Claim, closed: bool) -> dict[str, tuple[Any, Any]]:
        """The claims row's columns that differ from `claim` (a hand edit, or damage): (stored, expected) by name.

        A blob stored by hand is shown as its SQL literal, so every value stays plain JSON.
        """
        stored = self.columns(claim.id)
        expected = claim_columns(claim, closed)
        return {
            k: (f"x'{stored[k].hex()}'" if isinstance(stored[k], bytes) else stored[k], expected[k])
            for k in sorted(_COLUMNS)
            if k != "details" and stored[k] != expected[k]
        }

    def columns(self, claim_id: str) -> dict[str, Any]:
        """The claims row's plain columns (what `sqlite-utils` and Datasette users read)."""
        with self.errors():
            return dict(next(self.db.query("SELECT * FROM claims WHERE id = ?", [claim_id])))

    def order_is_open(self, order_id: str) -> bool:
        with self.errors():
            row = self._conn.execute(
                "SELECT 1 FROM claims WHERE order_id = ? AND closed = 0 LIMIT 1", (order_id,)
            ).fetchone()
        return row is not None

    def keyed(self, claim_id: str | None, key: str) -> tuple[str, int, str | None] | None:
        """The (claim id, seq, request hash) an idempotency key was first used for; claim None: a filing."""
        with self.errors():
            if claim_id is None:
                sql = "SELECT claim_id, seq, request_hash FROM transitions WHERE idempotency_key = ? AND seq = 1"
                row = self._conn.execute(sql, (key,)).fetchone()
            else:
                sql = "SELECT claim_id, seq, request_hash FROM transitions WHERE claim_id = ? AND idempotency_key = ?"
                row = self._conn.execute(sql, (claim_id, key)).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def history(self, claim_id: str) -> list[dict[str, Any]]:
        """The claim's transition rows in order, data decoded."""
        with self.errors():
            rows = self._conn.execute(
                "SELECT claim_id, seq, trigger, from_state, to_state, actor, at, data, deadline_at FROM transitions"
                " WHERE claim_id = ? ORDER BY seq",
                (claim_id,),
            ).fetchall()
        keys = ("claim_id", "seq", "trigger", "from_state", "to_state", "actor", "at", "data", "deadline_at")
        return [{**dict(zip(keys, row, strict=True)), "data": self._decoded(row[7], claim_id)} for row in rows]

    def claims(self, where: Mapping[str, str], *, after: str | None, limit: int) -> list[Claim]:
        """Claims matching every column = value of `where`, in id order, after the id `after`."""
        clauses = [f"[{column}] = ?" for column in where]
        params: list[Any] = list(where.values())
        if after is not None:
            clauses.append("id > ?")
            params.append(after)
        with self.errors():
            rows = self.db.query(
                "SELECT id, details FROM claims"
                + (" WHERE " + " AND ".join(clauses) if clauses else "")
                + " ORDER BY id LIMIT ?",
                [*params, limit],
            )
            return [self._claim_of(row["details"], row["id"]) for row in rows]

    def due(self, now: str, limit: int) -> list[tuple[str, str]]:
        """(claim id, trigger) of deadlines due at `now`, earliest first, from the partial index."""
        with self.errors():
            rows = self._conn.execute(
                "SELECT id, deadline_trigger FROM claims WHERE deadline_at IS NOT NULL AND deadline_at <= ?"
                " ORDER BY deadline_at LIMIT ?",
                (now, limit),
            ).fetchall()
        return [(row[0], row[1]) for row in rows]

    def due_count(self, now: str) -> int:
        with self.errors():
            row = self._conn.execute(
                "SELECT count(*) FROM claims WHERE deadline_at IS NOT NULL AND deadline_at <= ?", (now,)
            ).fetchone()
        return int(row[0])

    def claim_ids(self) -> list[str]:
        with self.errors():
            return [row[0] for row in self._conn.execute("SELECT id FROM claims ORDER BY id")]

    # --- writes (inside `transaction()`) ---------------------------------------------------------------

    def insert(self, claim: Claim, closed: bool, record: TransitionRecord, key: str | None, digest: str | None) -> None:
        """A new claim and its filing record."""
        row = claim_columns(claim, closed)
        with self._writing():
            self._conn.execute(_INSERT_CLAIM, [row[c] for c in _COLUMNS])
            self._conn.execute(_INSERT_RECORD, _record_row(record, row["deadline_at"], key, digest))

    def update(self, claim: Claim, closed: bool, record: TransitionRecord, key: str | None, digest: str | None) -> bool:
        """Write the claim's new version and its record, if the row is still at the version before; else False."""
        row = claim_columns(claim, closed)
        with self._writing():
            changed = self._conn.execute(
                _UPDATE_CLAIM, [*(row[c] for c in _CHANGING), claim.id, claim.version - 1]
            ).rowcount
            if changed != 1:
                return False
            self._conn.execute(_INSERT_RECORD, _record_row(record, row["deadline_at"], key, digest))
        return True


def claim_columns(claim: Claim, closed: bool) -> dict[str, Any]:
    """The claims row of `claim`: plain columns for people and queries, and every detail as JSON."""
    d = claim.to_dict()
    return {
        **{c: d[c] for c in _COLUMNS if c in d},
        "closed": int(closed),
        "details": json.dumps(d),
    }


def _record_row(r: TransitionRecord, deadline_at: str | None, key: str | None, digest: str | None) -> tuple[Any, ...]:
    d = r.to_dict()
    return (
        r.claim_id,
        r.seq,
        r.trigger,
        r.source,
        r.dest,
        d["actor"],
        d["at"],
        json.dumps(d["data"]),
        deadline_at,
        key,
        digest,
    )
