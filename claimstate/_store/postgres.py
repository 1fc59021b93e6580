"""The PostgreSQL store: many service instances, on many machines, sharing one database.

Each write is one short READ COMMITTED transaction on a pooled connection: it locks the claim's row
(`SELECT ... FOR UPDATE`), the engine decides, and the row is updated (still version-checked) and its
history row inserted. A deadline is claimed with `FOR UPDATE SKIP LOCKED`, so any number of tick workers
fire every deadline once, and a worker that dies mid-tick leaves its claims to the others (its locks go
with its connection). Serialization failures, deadlocks and a unique key another writer took meanwhile
are a `Race`, which `Store.write` runs again whole. Times come from the service's clock, never from the
database's `now()`. Migrations run under an advisory lock, so instances starting together apply each
once. Text columns collate as "C" (bytes), so ids and ISO times sort exactly as in SQLite.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg import conninfo
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from claimstate._chain import Chain
from claimstate._errors import StorageError
from claimstate._store.base import Loaded, Race, Store, StoreContext

SCHEMA_VERSION = 1  # 1: claims, their append-only hash-chained history, and meta
T = TypeVar("T")
_MIGRATION_LOCK = int.from_bytes(b"ClSt-mig", "big") >> 1  # the advisory lock migrations hold (a signed bigint)
_RACES = {"40001": "a serialization failure", "40P01": "a deadlock"}
# Unique keys two writers can both try to take at once; the one that loses runs again and sees the other's.
_RACING_KEYS = {  # (not transitions_pkey: a fire holds its claim's row, so a taken seq is damage, not a race)
    "claims_pkey": "the claim id",
    "claims_one_open_per_order": "the order's one open claim",
    "transitions_idempotency": "the idempotency key",
    "transitions_filing_keys": "the filing's idempotency key",
}
_TEXT = 'TEXT COLLATE "C"'
_INDEXES = {
    "claims_by_state": "CREATE INDEX claims_by_state ON claims (state)",
    "claims_by_buyer": "CREATE INDEX claims_by_buyer ON claims (buyer_id)",
    "claims_by_supplier": "CREATE INDEX claims_by_supplier ON claims (supplier_id)",
    "claims_by_order": "CREATE INDEX claims_by_order ON claims (order_id)",
    "claims_open_deadlines": "CREATE INDEX claims_open_deadlines ON claims (deadline_at) WHERE deadline_at IS NOT NULL",
    "claims_one_open_per_order": "CREATE UNIQUE INDEX claims_one_open_per_order ON claims (order_id) WHERE closed = 0",
    "transitions_idempotency": "CREATE UNIQUE INDEX transitions_idempotency ON transitions (claim_id, idempotency_key)"
    " WHERE idempotency_key IS NOT NULL",
    "transitions_filing_keys": "CREATE UNIQUE INDEX transitions_filing_keys ON transitions (idempotency_key)"
    " WHERE idempotency_key IS NOT NULL AND seq = 1",
}
_TRIGGERS = ("transitions_no_change", "transitions_no_truncate")
_SCHEMA_V1 = (
    f"CREATE TABLE claims (id {_TEXT} PRIMARY KEY, state {_TEXT} NOT NULL, version BIGINT NOT NULL,"
    f" closed INTEGER NOT NULL, order_id {_TEXT} NOT NULL, buyer_id {_TEXT} NOT NULL, supplier_id {_TEXT} NOT NULL,"
    f" amount {_TEXT} NOT NULL, currency {_TEXT} NOT NULL, resolution {_TEXT}, filed_at {_TEXT},"
    f" updated_at {_TEXT}, deadline_at {_TEXT}, deadline_trigger {_TEXT}, details {_TEXT})",
    f"CREATE TABLE transitions (claim_id {_TEXT} NOT NULL REFERENCES claims (id), seq BIGINT NOT NULL,"
    f" trigger {_TEXT} NOT NULL, from_state {_TEXT}, to_state {_TEXT} NOT NULL, actor {_TEXT} NOT NULL,"
    f" at {_TEXT} NOT NULL, data {_TEXT} NOT NULL, deadline_at {_TEXT}, idempotency_key {_TEXT},"
    f" request_hash {_TEXT}, hash {_TEXT}, PRIMARY KEY (claim_id, seq))",
    f"CREATE TABLE meta (name {_TEXT} PRIMARY KEY, value {_TEXT} NOT NULL)",
    *_INDEXES.values(),
    "CREATE FUNCTION claimstate_history_is_append_only() RETURNS trigger LANGUAGE plpgsql AS"
    " $$ BEGIN RAISE EXCEPTION 'the transition history is append-only'; END $$",
    "CREATE TRIGGER transitions_no_change BEFORE UPDATE OR DELETE ON transitions"
    " FOR EACH ROW EXECUTE FUNCTION claimstate_history_is_append_only()",
    "CREATE TRIGGER transitions_no_truncate BEFORE TRUNCATE ON transitions"
    " FOR EACH STATEMENT EXECUTE FUNCTION claimstate_history_is_append_only()",
)
_MIGRATIONS = {1: _SCHEMA_V1}


def shown(target: str) -> str:
    """The URL without its password, for messages."""
    try:
        parts = conninfo.conninfo_to_dict(target)
    except psycopg.ProgrammingError as error:
        raise StorageError(f"not a PostgreSQL URL: {error}", path="postgresql://?") from None
    user = f"{parts['user']}@" if parts.get("user") else ""
    host = str(parts.get("host", ""))
    port = f":{parts['port']}" if parts.get("port") else ""
    if host.startswith("/"):  # a Unix socket's folder
        return f"postgresql://{user}/{parts.get('dbname', '')}?host={host}"
    return f"postgresql://{user}{host}{port}/{parts.get('dbname', '')}"


class PostgresStore(Store):
    """Claims in a PostgreSQL database, from a libpq URL or a psycopg_pool ConnectionPool given.

    A pool given stays the caller's (closing the service does not close it); its connections are used in
    autocommit mode, claimstate opening its own transactions. `busy_timeout` is how long a call waits
    for a connection.
    """

    schema_version = SCHEMA_VERSION
    # The claim is locked on its own: a statement that waited for the lock reads the claims row again but
    # every other table as of its start, so a join would miss the history row the lock's holder just
    # committed. The last hash is read by the next statement, sent in the same round trip.
    _LOCK = "SELECT details FROM claims WHERE id = ? FOR UPDATE"
    _LOCK_SKIPPING = _LOCK + " SKIP LOCKED"
    _LAST_HASH = "SELECT hash FROM transitions WHERE claim_id = ? ORDER BY seq DESC LIMIT 1"

    def __init__(
        self, target: str | ConnectionPool[Any], *, busy_timeout: float, create: bool, read_only: bool, chain: Chain
    ) -> None:
        own = not isinstance(target, ConnectionPool)
        conninfo_text = target if isinstance(target, str) else str(target.conninfo)
        super().__init__(shown(conninfo_text), chain=chain, read_only=read_only)
        self._timeout = busy_timeout
        # A claim's row another writer holds is waited for as long as SQLite waits for its file's lock.
        self._lock_timeout = f"SET LOCAL lock_timeout = {max(1, round(busy_timeout * 1000))}"
        self._conn: psycopg.Connection[Any] | None = None  # of the open transaction or read
        self._piping: contextlib.AbstractContextManager[psycopg.Pipeline] | None = None  # the write's pipeline mode
        self._pipeline: psycopg.Pipeline | None = None  # of the open write transaction
        self._unsent = False  # the open transaction has sent nothing to the server yet
        self._errors = _Errors(self)
        pool: ConnectionPool[psycopg.Connection[Any]]
        if isinstance(target, ConnectionPool):
            pool = target
        else:
            self._probe(target)
            try:
                pool = ConnectionPool(
                    target,
                    min_size=1,
                    max_size=4,
                    kwargs={"autocommit": True},
                    open=False,
                    name="claimstate",
                )
            except psycopg.Error as error:
                raise StorageError(f"{self.path}: {error}", path=self.path) from None
        self._pool, self._own_pool = pool, own
        try:
            if own:
                self._pool.open(wait=True, timeout=busy_timeout)
            self._migrate(create=create and not read_only)
            self._cannot_write = chain.cannot_check(self.chain_record())
        except PoolTimeout:
            self.close()
            raise StorageError(
                f"cannot connect to PostgreSQL at {self.path} within {busy_timeout:g} s: is the server running,"
                " and does the database exist?",
                path=self.path,
            ) from None
        except BaseException:
            self.close()
            raise

    def _probe(self, target: str) -> None:
        """Connect once before making a pool, so a server that is down, or a database that does not exist,
        is one clear error at once (a pool would retry in the background, logging each try)."""
        try:
            psycopg.connect(target, connect_timeout=max(1, round(self._timeout))).close()
        except psycopg.Error as error:
            raise StorageError(f"cannot connect to PostgreSQL at {self.path}: {_said(error)}", path=self.path) from None

    def close(self) -> None:
        if self._own_pool:
            self._pool.close()

    # --- connections and transactions ----------------------------------------------------------------

    def _checkout(self) -> psycopg.Connection[Any]:
        try:
            conn = self._pool.getconn(timeout=self._timeout)
        except PoolTimeout:
            raise StorageError(
                f"no connection to PostgreSQL at {self.path} within {self._timeout:g} s", path=self.path
            ) from None
        except PoolClosed:
            raise StorageError(
                f"the connection pool for {self.path} is closed (the service was closed, or a pool given was"
                " not opened: call its open() first)",
                path=self.path,
            ) from None
        if not conn.autocommit:
            conn.autocommit = True
        return conn

    def _take(self, prepare: Callable[[psycopg.Connection[Any]], T]) -> tuple[psycopg.Connection[Any], T]:
        """A pooled connection on which `prepare` ran (it applies nothing), and what it returned. A
        connection the server dropped, or the pool closed, while it sat there fails in `prepare` and is
        swapped for a new one: so a call after a lost connection works, without a check before every call."""
        for _attempt in range(self._pool.max_size + 1):
            conn = self._checkout()
            try:
                return conn, prepare(conn)
            except psycopg.OperationalError:
                self._pool.putconn(conn)  # broken: the pool discards it
            except BaseException:
                self._pool.putconn(conn)
                raise
        raise StorageError(f"every connection to PostgreSQL at {self.path} failed; is the server up?", path=self.path)

    def _give_back(self) -> None:
        conn, self._conn, self._pipeline, self._piping = self._conn, None, None, None
        if conn is not None:
            self._pool.putconn(conn)  # a broken one is discarded, and the pool makes a new one

    def _start(self) -> None:
        """BEGIN, in pipeline mode: it goes to the server with the first read (locking the claim), and the
        history INSERT goes with the COMMIT, so a fire costs three round trips, not five."""
        with self._errors:
            self._conn, (self._piping, self._pipeline) = self._take(self._begin_piped)
        self._unsent = True

    def _begin_piped(
        self, conn: psycopg.Connection[Any]
    ) -> tuple[contextlib.AbstractContextManager[psycopg.Pipeline], psycopg.Pipeline]:
        piping = conn.pipeline()
        pipeline = piping.__enter__()
        try:  # queued: nothing reaches the server yet
            conn.execute("BEGIN ISOLATION LEVEL READ COMMITTED")
            conn.execute(self._lock_timeout)
        except psycopg.Error:
            with contextlib.suppress(psycopg.Error):
                piping.__exit__(None, None, None)
            raise psycopg.OperationalError("the connection was closed in the pool") from None
        return piping, pipeline

    def _sync(self) -> None:
        """Send what the pipeline holds and read the results. A connection found lost at the first sync
        (it died in the pool) has applied nothing: that is a Race, which `write` runs again."""
        assert self._pipeline is not None
        try:
            self._pipeline.sync()
        except psycopg.OperationalError as error:
            if self._unsent and _lost(error, self._conn):
                raise Race(f"the connection was lost before the transaction began ({_said(error)})") from error
            raise
        self._unsent = False

    def _commit(self) -> None:
        conn, piping = self._connection(), self._piping
        try:
            with self._errors:
                conn.execute("COMMIT")
                if piping is not None:
                    self._piping = None
                    piping.__exit__(None, None, None)  # sends the rest, raising the first error
        except BaseException:
            self._roll_back()
            raise
        self._give_back()

    def _roll_back(self) -> None:
        conn, piping = self._conn, self._piping
        self._piping = None
        try:
            if piping is not None:
                piping.__exit__(None, None, None)
        except psycopg.Error:
            pass  # the statement that failed is why we roll back
        try:
            if conn is not None and not conn.broken:
                conn.execute("ROLLBACK")
        except psycopg.Error:
            pass  # the connection is lost: the server rolled back, and the pool replaces it
        finally:
            self._give_back()

    def read(self, reads: Callable[[], T]) -> T:
        if self._depth:
            return reads()
        with self._errors:
            self._conn, _ = self._take(lambda conn: conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"))
        self._depth = 1
        try:
            return reads()
        finally:
            self._depth = 0
            self._roll_back()  # nothing was written: ending the snapshot is all

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None:
            raise StorageError("no transaction is open", path=self.path)
        return self._conn

    def _execute(self, sql: str, params: Sequence[Any], fetch: Callable[[psycopg.Cursor[Any]], T]) -> T:
        """Run one statement in the open transaction, or, outside one, on its own in one round trip (only
        reads run outside a transaction: `_take` may send them again on a fresh connection)."""
        pg_sql = _translated(sql)
        with self._errors:
            if self._conn is not None:
                cursor = self._conn.execute(pg_sql, params)
                if self._pipeline is not None:
                    self._sync()
                return fetch(cursor)
            conn, result = self._take(lambda conn: fetch(conn.execute(pg_sql, params)))
            self._pool.putconn(conn)
            return result

    def _one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        return self._execute(sql, params, lambda cursor: cursor.fetchone())

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._execute(sql, params, lambda cursor: cursor.fetchall())

    def _run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._execute(sql, params, lambda cursor: cursor.rowcount)

    def _send(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Queue a write whose result nothing waits for; it goes with the next read or the COMMIT. Inside
        a batch it goes at once, so an error is raised by the call that caused it."""
        if self._pipeline is None or self._depth > 1:
            self._run(sql, params)
            return
        with self._errors:
            self._connection().execute(_translated(sql), params)

    def lock_whole(self) -> None:
        self._run("LOCK TABLE claims, transitions IN SHARE ROW EXCLUSIVE MODE")

    def loaded(self, claim_id: str, *, skip_locked: bool = False) -> Loaded | None:
        conn = self._connection()
        with self._errors:
            locked = conn.execute(_translated(self._LOCK_SKIPPING if skip_locked else self._LOCK), (claim_id,))
            last = conn.execute(_translated(self._LAST_HASH), (claim_id,))
            if self._pipeline is not None:
                self._sync()
            row, head = locked.fetchone(), last.fetchone()
        return None if row is None else Loaded(self._claim_of(row[0], claim_id), None if head is None else head[0])

    # --- schema --------------------------------------------------------------------------------------

    def _exists(self, table: str) -> bool:
        """Whether `table` is on the search path (the connection's schema)."""
        row = self._one("SELECT to_regclass(?) IS NOT NULL", (table,))
        return row is not None and bool(row[0])

    def _foreign(self) -> StorageError:
        return StorageError(
            f"{self.path} holds tables named like claimstate's (claims, transitions, meta) that are not its own;"
            " use another database, or a schema of its own (?options=-csearch_path%3Dname)",
            path=self.path,
        )

    def _version(self) -> int:
        """The schema version the database records; 0 for none (no claimstate tables yet)."""
        if not self._exists("meta"):
            if self._exists("claims") or self._exists("transitions"):
                raise self._foreign()
            return 0
        try:
            row = self._one("SELECT value FROM meta WHERE name = 'schema_version'")
        except StorageError:
            raise self._foreign() from None
        if row is None or not str(row[0]).isdigit():
            raise self._foreign()
        return int(row[0])

    def _migrate(self, *, create: bool) -> None:
        """Bring the schema to SCHEMA_VERSION, under an advisory lock: of instances starting together, one
        migrates and the others find it done."""
        self._start()
        self._depth = 1
        try:
            if create:
                self._one("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
            version = self._version()
            if version > SCHEMA_VERSION:
                raise StorageError(
                    f"{self.path} has schema version {version}, newer than this claimstate knows ({SCHEMA_VERSION}):"
                    " upgrade claimstate",
                    path=self.path,
                )
            if version < SCHEMA_VERSION:
                if not create:
                    raise StorageError(
                        f"no claimstate database at {self.path}; create it with `claimstate init` or ClaimService(url)",
                        path=self.path,
                    )
                for number in range(version + 1, SCHEMA_VERSION + 1):
                    for statement in _MIGRATIONS[number]:
                        self._run(statement)
                if version == 0:
                    for name, value in self._chain.record().items():
                        self._run("INSERT INTO meta (name, value) VALUES (?, ?)", (name, value))
                    self._run("INSERT INTO meta (name, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                else:
                    self._run("UPDATE meta SET value = ? WHERE name = 'schema_version'", (str(SCHEMA_VERSION),))
            self._commit()
        except BaseException:
            self._roll_back()
            raise
        finally:
            self._depth = 0

    def schema_problems(self) -> list[str]:
        tables = {row[0] for row in self._all("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}
        indexes = {
            row[0]: row[1]
            for row in self._all("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()")
        }
        triggers = {
            row[0]
            for row in self._all(
                "SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE c.relname = 'transitions'"
                " AND c.relnamespace = current_schema()::regnamespace AND NOT t.tgisinternal"
            )
        }
        problems = [f"the table {name} is missing" for name in ("claims", "transitions", "meta") if name not in tables]
        for name, sql in _INDEXES.items():
            if name not in indexes:
                problems.append(f"the index {name} is missing")
            elif ("UNIQUE" in sql) != ("UNIQUE" in indexes[name]):
                problems.append(f"the index {name} is not the one claimstate made: {indexes[name]}")
        problems += [f"the trigger {name} is missing" for name in _TRIGGERS if name not in triggers]
        problems += [f"the trigger {name} is not claimstate's" for name in sorted(triggers - set(_TRIGGERS))]
        return problems

    def integrity(self) -> list[str]:
        """PostgreSQL checks its pages itself (with data checksums, where the cluster has them)."""
        return []


def _said(error: BaseException) -> str:
    """What psycopg said, on one line."""
    return " ".join(str(error).split())


@functools.lru_cache(maxsize=256)
def _translated(sql: str) -> str:
    """`?` placeholders as psycopg's `%s` (claimstate's statements hold no other ? or %)."""
    return sql.replace("?", "%s")


class _Errors(StoreContext):
    """Turns psycopg errors into StorageError with a plain message, or into a Race to run again. Any error
    inside a transaction spoils it: PostgreSQL refuses every later statement of that transaction."""

    __slots__ = ()
    _store: PostgresStore

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, _tb: object) -> None:
        if not isinstance(error, psycopg.Error):
            return
        store = self._store
        if store._depth:
            store._spoiled = True
        state = error.sqlstate or ""
        if state in _RACES:
            raise Race(f"{_RACES[state]}, SQLSTATE {state}") from error
        constraint = getattr(error.diag, "constraint_name", None) if state == "23505" else None
        if constraint in _RACING_KEYS:
            raise Race(f"another writer took {_RACING_KEYS[constraint]} first") from error
        if state == "55P03":  # lock_timeout: another writer holds the claim's row
            raise StorageError(
                f"{store.path}: the claim is locked by another writer and stayed locked past the busy timeout"
                f" ({store._timeout:g} s); nothing was applied, try again",
                path=store.path,
            ) from error
        if _lost(error, store._conn):
            raise StorageError(
                f"lost the connection to PostgreSQL at {store.path} ({_said(error)}): the call was not applied,"
                " unless the connection broke while committing; read the claim again, or retry with the same"
                " idempotency key",
                path=store.path,
            ) from error
        raise StorageError(f"{store.path}: PostgreSQL failed: {_said(error)}", path=store.path) from error


def _lost(error: psycopg.Error, conn: psycopg.Connection[Any] | None) -> bool:
    """Whether `error` is the connection going away (not, say, a timeout the server raised)."""
    return isinstance(error, psycopg.OperationalError) and (conn is None or conn.broken or conn.closed)
