"""The PostgreSQL store: many service instances, on many machines, sharing one database.

Each write is one short READ COMMITTED transaction on a pooled connection: it locks the claim's row
(`SELECT ... FOR UPDATE`), the engine decides, and the row is updated (still version-checked) and its
history row inserted. A deadline is claimed with `FOR UPDATE SKIP LOCKED`, so any number of tick workers
fire every deadline once, and a worker that dies mid-tick leaves its claims to the others (its locks go
with its connection). Serialization failures, deadlocks and a unique key another writer took meanwhile
are a `Race`, which `Store.write` runs again whole. Times come from the service's clock, never from the
database's `now()`. Migrations run under an advisory lock, so instances starting together apply each
once. The schema they make, and what verify compares of it, is `schema`'s.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg import conninfo
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from claimstate._chain import Chain
from claimstate._errors import StorageBusy, StorageError
from claimstate._store.base import Race, Session, Store, StoreContext, StoredDefinition
from claimstate._store.claims import LOADED_HASH, SELECT_LOADED
from claimstate._store.copies import TABLES
from claimstate._store.postgres.schema import _MIGRATIONS, SCHEMA_VERSION, SchemaCheck, _partitioned
from claimstate._store.rows import IN_COLUMNS
from claimstate._store.targets import checked_url, masked, parse_failure

T = TypeVar("T")
_VERSION = IN_COLUMNS.index("version")  # where SELECT_LOADED's row holds the claim's version
_MIGRATION_LOCK = int.from_bytes(b"ClSt-mig", "big") >> 1  # the advisory lock migrations hold (a signed bigint)
_RACES = {"40001": "a serialization failure", "40P01": "a deadlock"}
_GONE = ("08", "57P01", "57P02", "57P03")  # SQLSTATEs of a lost connection, and of the server shutting down
# Unique keys two writers can both try to take at once; the one that loses runs again and sees the other's.
_RACING_KEYS = {  # (not transitions_pkey: a fire holds its claim's row, so a taken seq is damage, not a race)
    "claims_pkey": "the claim id",
    "claims_one_open_per_order": "the order's one open claim",
    "open_orders_pkey": "the order's one open claim",  # the same rules, on a schema partitioned by claim id
    "filing_keys_pkey": "the filing's idempotency key",
    "transitions_idempotency": "the idempotency key",
    "transitions_filing_keys": "the filing's idempotency key",
}
_RECONNECT = 1.0  # seconds the pool retries one new connection before it gives up (see PostgresStore)


def shown(target: str) -> str:
    """The URL (or key=value string) as a URL without its password, for messages; one libpq cannot read as
    meant is refused, shown masked (see targets)."""
    checked_url(target)
    failure: str | None = None
    try:
        parts = conninfo.conninfo_to_dict(target)
    except psycopg.ProgrammingError as error:
        failure = parse_failure(error)
    if failure is not None:  # raised here, so that libpq's words (which quote the password) are not its context
        said = masked(target, malformed=True)
        raise StorageError(f"{said} is not a PostgreSQL URL libpq reads: {failure}", path=said)
    user = f"{parts['user']}@" if parts.get("user") else ""
    host = str(parts.get("host", ""))
    if host.startswith("/"):  # a Unix socket's folder
        return f"postgresql://{user}/{parts.get('dbname', '')}?host={host}"
    hosts, ports = host.split(","), str(parts.get("port") or "").split(",")
    if len(ports) == 1:  # one port for every host (or none)
        ports *= len(hosts)
    hosts = [f"[{name}]" if ":" in name else name for name in hosts]  # an IPv6 address, as a URL writes it
    where = ",".join(f"{name}:{port}" if port else name for name, port in zip(hosts, ports, strict=False))
    return f"postgresql://{user}{where}/{parts.get('dbname', '')}"


class _Pooled(Session):
    """One thread's connection from the pool, held for its open transaction or read."""

    conn: psycopg.Connection[Any] | None = None
    piping: contextlib.AbstractContextManager[psycopg.Pipeline] | None = None  # the write's pipeline mode
    pipeline: psycopg.Pipeline | None = None  # of the open write transaction
    unsent = False  # the open transaction has sent nothing to the server yet


class PostgresStore(Store):
    """Claims in a PostgreSQL database, from a libpq URL or a psycopg_pool ConnectionPool given.

    A pool given stays the caller's (closing the service does not close it); its connections are used in
    autocommit mode, claimstate opening its own transactions. `busy_timeout` is how long a call waits
    for a connection; `pool_size` is the most connections a pool claimstate makes opens (each thread's
    call holds one for its transaction or read, so it bounds how many run at once).
    """

    schema_version = SCHEMA_VERSION
    _session: _Pooled
    _SKIP_LOCKED = " FOR UPDATE SKIP LOCKED"
    _MANY_WRITERS = True
    _PERCENTILE = True
    # The claim is locked with its last history row's hash joined, in one statement. A statement that waited
    # for the lock reads the claims row again but every other table as of its start, so after a wait the
    # join misses the history row the lock's holder just committed: the hash then reads NULL, and the next
    # statement (a new snapshot) reads it.
    _LOCK = f"{SELECT_LOADED} FOR UPDATE OF c"
    _LOCK_SKIPPING = _LOCK + " SKIP LOCKED"
    _LAST_HASH = "SELECT hash FROM transitions WHERE claim_id = ? AND seq = ?"

    def __init__(
        self,
        target: str | ConnectionPool[Any],
        *,
        busy_timeout: float,
        pool_size: int = 10,
        partitions: int | None = None,
        create: bool,
        read_only: bool,
        chain: Chain,
        definition: StoredDefinition,
    ) -> None:
        own = not isinstance(target, ConnectionPool)
        conninfo_text = target if isinstance(target, str) else str(target.conninfo)
        super().__init__(shown(conninfo_text), chain=chain, definition=definition, read_only=read_only)
        self._timeout = busy_timeout
        self._asked_partitions = partitions  # what a new schema is made with; an existing one must have it
        # A claim's row another writer holds is waited for as long as SQLite waits for its file's lock. Set in
        # each write transaction (queued with its BEGIN): reads keep waiting for a table's lock as long as it
        # is held, and a pooler that lends a server connection per transaction (PgBouncer) keeps the setting.
        self._lock_timeout = f"SET LOCAL lock_timeout = {max(1, round(busy_timeout * 1000))}"
        self._cursors = itertools.count()  # names the cursors of `stream`, unique on each connection
        # Connections lent to calls now: all of them lent is "busy"; fewer, and none to be had, is "down" (the
        # pool's own count includes a connection it is still trying to open).
        self._lent, self._lending = 0, threading.Lock()
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
                    max_size=pool_size,
                    kwargs={"autocommit": True},
                    open=False,
                    name="claimstate",
                    # psycopg_pool retries a failed connection after 1 s, then doubling: after a server is back
                    # (a standby promoted), a pool would wait up to as long again as the outage lasted. Giving
                    # up after a second instead, the next call that waits starts a new try at once.
                    reconnect_timeout=_RECONNECT,
                )
            except psycopg.Error as error:
                raise StorageError(f"{self.path}: {_said(error)}", path=self.path) from None
        self._pool, self._own_pool = pool, own
        try:
            if own:
                self._pool.open(wait=True, timeout=busy_timeout)
            self._migrate(create=create and not read_only)
            if self.partitions:
                self.claims.use_kept_rules()
            self._cannot_write = chain.cannot_check(self.definitions.chain_record())
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

    def _new_session(self) -> _Pooled:
        return _Pooled()

    def _probe(self, target: str) -> None:
        """Connect once before making a pool, so a server that is down, or a database that does not exist,
        is one clear error at once (a pool would retry in the background, logging each try)."""
        try:
            psycopg.connect(target, connect_timeout=max(1, round(self._timeout))).close()
        except psycopg.Error as error:
            raise StorageError(f"cannot connect to PostgreSQL at {self.path}: {_said(error)}", path=self.path) from None

    def connection_parameters(self) -> dict[str, str]:
        """What the pool connects with, as libpq keywords (its conninfo, then its connection keywords): for
        PostgreSQL's own programs (`claimstate backup` runs pg_basebackup with them). The password is among
        them: pass it in the environment ($PGPASSWORD), never on a command line or in a message."""
        pool = self._pool
        given = pool.conninfo() if callable(pool.conninfo) else pool.conninfo  # a pool given may compute them
        keywords = (pool.kwargs() if callable(pool.kwargs) else pool.kwargs) or {}
        known = {default.keyword.decode() for default in psycopg.pq.Conninfo.get_defaults()}
        params = conninfo.conninfo_to_dict(given or "")
        params.update({key: value for key, value in keywords.items() if key in known and value is not None})
        return {key: str(value) for key, value in params.items()}

    def close(self) -> None:
        if self._own_pool:
            self._pool.close()

    # --- connections and transactions ----------------------------------------------------------------

    def _checkout(self) -> psycopg.Connection[Any]:
        try:
            conn = self._pool.getconn(timeout=self._timeout)
        except PoolTimeout:
            if self._unreachable():
                raise StorageError(
                    f"no connection to PostgreSQL at {self.path} within {self._timeout:g} s: none could be made (the"
                    " server is down or restarting, or, behind a multi-host URL, no standby is promoted yet);"
                    " nothing was applied, try again",
                    path=self.path,
                    retryable=True,
                ) from None
            # every connection is in use: busy, not down (a call that waits longer may get one)
            raise StorageBusy(
                f"no connection to PostgreSQL at {self.path} within {self._timeout:g} s: all {self._pool.max_size}"
                " of the pool's are in use (a larger pool_size lets more calls run at once)",
                path=self.path,
            ) from None
        except PoolClosed:
            raise StorageError(
                f"the connection pool for {self.path} is closed (the service was closed, or a pool given was"
                " not opened: call its open() first)",
                path=self.path,
            ) from None
        if not conn.autocommit:
            conn.autocommit = True
        with self._lending:
            self._lent += 1
        return conn

    def _unreachable(self) -> bool:
        """Whether a call that got no connection in time found the server down rather than the pool busy: a
        connection was free to make (fewer than the pool's most are lent), and none could be. A pool given
        may be shared with others' calls, so there its own count of connections stands in for ours."""
        if self._own_pool:
            return self._lent < self._pool.max_size
        return int(self._pool.get_stats().get("pool_size", 0)) < self._pool.max_size

    def _put_back(self, conn: psycopg.Connection[Any]) -> None:
        """Give a connection back to the pool (which discards a broken one and makes a new one)."""
        with self._lending:
            self._lent -= 1
        self._pool.putconn(conn)

    def _take(self, prepare: Callable[[psycopg.Connection[Any]], T]) -> tuple[psycopg.Connection[Any], T]:
        """A pooled connection on which `prepare` ran (it applies nothing), and what it returned. A
        connection the server dropped, or the pool closed, while it sat there fails in `prepare` and is
        swapped for a new one: so a call after a lost connection works, without a check before every call."""
        for _attempt in range(self._pool.max_size + 1):
            conn = self._checkout()
            try:
                return conn, prepare(conn)
            except psycopg.OperationalError:
                self._put_back(conn)  # broken: the pool discards it
            except BaseException:
                self._put_back(conn)
                raise
        raise StorageError(f"every connection to PostgreSQL at {self.path} failed; is the server up?", path=self.path)

    def _give_back(self) -> None:
        conn, self._session.conn, self._session.pipeline, self._session.piping = self._session.conn, None, None, None
        if conn is not None:
            self._put_back(conn)  # a broken one is discarded, and the pool makes a new one

    def _start(self) -> None:
        """BEGIN, in pipeline mode: it goes to the server with the first read (locking the claim), and the
        history INSERT goes with the COMMIT, so a fire costs three round trips, not five."""
        with self._errors:
            self._session.conn, (self._session.piping, self._session.pipeline) = self._take(self._begin_piped)
        self._session.unsent = True

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
        assert self._session.pipeline is not None
        try:
            self._session.pipeline.sync()
        except psycopg.OperationalError as error:
            if self._session.unsent and _lost(error, self._session.conn) is not None:
                raise Race(f"the connection was lost before the transaction began ({_said(error)})") from error
            raise
        self._session.unsent = False

    def _commit(self) -> None:
        conn, piping = self._connection(), self._session.piping
        try:
            with self._errors:
                conn.execute("COMMIT")
                if piping is not None:
                    self._session.piping = None
                    piping.__exit__(None, None, None)  # sends the rest, raising the first error
        except BaseException:
            self._roll_back()
            raise
        self._give_back()

    def _roll_back(self) -> None:
        conn, piping = self._session.conn, self._session.piping
        self._session.piping = None
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
        if self._session.depth:
            return reads()
        with self._errors:
            self._session.conn, _ = self._take(
                lambda conn: conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            )
        self._session.depth = 1
        try:
            return reads()
        finally:
            self._session.depth = 0
            self._roll_back()  # nothing was written: ending the snapshot is all

    def _connection(self) -> psycopg.Connection[Any]:
        if self._session.conn is None:
            raise StorageError("no transaction is open", path=self.path)
        return self._session.conn

    def _execute(self, sql: str, params: Sequence[Any], fetch: Callable[[psycopg.Cursor[Any]], T]) -> T:
        """Run one statement in the open transaction, or, outside one, on its own in one round trip (only
        reads run outside a transaction: `_take` may send them again on a fresh connection)."""
        pg_sql = _translated(sql)
        with self._errors:
            if self._session.conn is not None:
                cursor = self._session.conn.execute(pg_sql, params)
                if self._session.pipeline is not None:
                    self._sync()
                return fetch(cursor)
            conn, result = self._take(lambda conn: fetch(conn.execute(pg_sql, params)))
            self._put_back(conn)
            return result

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        return self._execute(sql, params, lambda cursor: cursor.fetchone())

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._execute(sql, params, lambda cursor: cursor.fetchall())

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._execute(sql, params, lambda cursor: cursor.rowcount)

    def stream(self, sql: str, page: int = 1000) -> Iterator[tuple[Any, ...]]:
        """Through a cursor of the open transaction (one not read to its end closes with the transaction)."""
        name = f"claimstate_rows_{next(self._cursors)}"
        self.run(f"DECLARE {name} NO SCROLL CURSOR FOR {sql}")
        while rows := self.all(f"FETCH FORWARD {page} FROM {name}"):
            yield from rows
        self.run(f"CLOSE {name}")

    def send(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Queue a write whose result nothing waits for; it goes with the next read or the COMMIT. Inside
        a batch it goes at once, so an error is raised by the call that caused it."""
        if self._session.pipeline is None or self._session.depth > 1:
            self.run(sql, params)
            return
        with self._errors:
            self._connection().execute(_translated(sql), params)

    def lock_whole(self) -> None:
        self.run(f"LOCK TABLE {', '.join(TABLES)} IN SHARE ROW EXCLUSIVE MODE")

    def _copied(self, table: str) -> None:
        """Events copied with their positions and lane numbers: the next one written must come after them."""
        if table == "events":
            self.run(
                "SELECT setval(pg_get_serial_sequence('events', 'position'), coalesce(max(position), 0) + 1, false)"
                " FROM events"
            )
            self.run(
                "INSERT INTO lanes (lane, last) SELECT lane, max(lane_seq) FROM events GROUP BY lane"
                " ON CONFLICT (lane) DO UPDATE SET last = excluded.last"
            )

    def _lock_claim(self, claim_id: str, skip_locked: bool) -> tuple[Any, ...] | None:
        row = self.one(self._LOCK_SKIPPING if skip_locked else self._LOCK, (claim_id,))
        if row is None or row[LOADED_HASH] is not None:
            return row
        head = self.one(self._LAST_HASH, (claim_id, row[_VERSION]))
        return (*row[:LOADED_HASH], None if head is None else head[0], *row[LOADED_HASH + 1 :])

    # --- schema --------------------------------------------------------------------------------------

    def _exists(self, table: str) -> bool:
        """Whether `table` is on the search path (the connection's schema)."""
        row = self.one("SELECT to_regclass(?) IS NOT NULL", (table,))
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
            row = self.one("SELECT value FROM meta WHERE name = 'schema_version'")
        except StorageError as error:
            if isinstance(error.__cause__, psycopg.errors.InsufficientPrivilege):
                raise  # claimstate's tables, which this role may not read: said as such
            raise self._foreign() from None
        if row is None or not str(row[0]).isdigit():
            raise self._foreign()
        return int(row[0])

    def _migrate(self, *, create: bool) -> None:
        """Bring the schema to SCHEMA_VERSION, under an advisory lock: of instances starting together, one
        migrates and the others find it done."""
        self._start()
        self._session.depth = 1
        try:
            if create:
                self.one("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
            version = self._version()
            self._check_version(version, create=create)
            self.partitions = (self._asked_partitions or 0) if version == 0 else self._recorded_partitions()
            if version < SCHEMA_VERSION:
                schema = self._schema() if self.partitions else ""
                for number in range(version + 1, SCHEMA_VERSION + 1):
                    for statement in _MIGRATIONS[number]:
                        made = _partitioned(statement, self.partitions, schema) if self.partitions else (statement,)
                        for sql in made:
                            self.send(sql)  # all in one round trip, with the next read or the COMMIT
                if 0 < version < 3:
                    self._adopt_claims()
                if version == 0:
                    for name, value in self.chain.record().items():
                        self.send("INSERT INTO meta (name, value) VALUES (?, ?)", (name, value))
                    self.send("INSERT INTO meta (name, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                    if self.partitions:
                        self.send("INSERT INTO meta (name, value) VALUES ('partitions', ?)", (str(self.partitions),))
                else:
                    self.send("UPDATE meta SET value = ? WHERE name = 'schema_version'", (str(SCHEMA_VERSION),))
            self._commit()
        except BaseException:
            self._roll_back()
            raise
        finally:
            self._session.depth = 0

    def _schema(self) -> str:
        """The name of the schema claimstate's tables are in (the search path's first), quoted as an identifier."""
        row = self.one("SELECT quote_ident(current_schema())")
        if row is None or row[0] is None:
            raise StorageError(f"{self.path}: no schema of the search path exists", path=self.path)
        return str(row[0])

    def _recorded_partitions(self) -> int:
        """The partitions by claim id the database's meta records (none: 0, plain tables); refused when the
        open asked for another layout, which cannot be changed in place."""
        row = self.one("SELECT value FROM meta WHERE name = 'partitions'")
        if row is not None and not str(row[0]).isdigit():
            raise StorageError(f"{self.path}: meta records partitions {row[0]!r}, which is no number", path=self.path)
        recorded = 0 if row is None else int(row[0])
        asked = self._asked_partitions
        if asked is not None and asked != recorded:
            raise StorageError(
                f"{self.path} has {_layout(recorded)}, not {'plain tables' if not asked else f'the {asked} asked for'}:"
                " the layout is chosen when the database is created and cannot be changed in place; open it without"
                " partitions (`claimstate init` without --partitions) to take the one it has, or copy its claims"
                f" into a new database created with partitions={asked} (`claimstate migrate-store`)",
                path=self.path,
            )
        return recorded

    def _check_version(self, version: int, *, create: bool) -> None:
        """Refuse a schema newer than this code, and one that needs migrating by an open that may not."""
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"{self.path} has schema version {version}, newer than this claimstate knows ({SCHEMA_VERSION}):"
                " upgrade claimstate",
                path=self.path,
            )
        if version < SCHEMA_VERSION and not create and version == 0:
            raise StorageError(
                f"no claimstate database at {self.path}; create it with `claimstate init` or ClaimService(url)",
                path=self.path,
            )
        if version < SCHEMA_VERSION and not create:
            raise StorageError(
                f"{self.path} has schema version {version}; migrating it to {SCHEMA_VERSION} needs a writable"
                " open (ClaimService(url), or `claimstate init`) once",
                path=self.path,
            )

    def schema_problems(self) -> list[str]:
        """Each schema object claimstate made that is missing or not as it made it, and each trigger or rule on
        its tables it did not make (see `schema.SchemaCheck.problems`)."""
        schema = self._schema() if self.partitions else ""
        return SchemaCheck(self, partitions=self.partitions, schema=schema).problems()

    def integrity(self) -> list[str]:
        """PostgreSQL checks its pages itself (with data checksums, where the cluster has them)."""
        return []


def _layout(partitions: int) -> str:
    return f"{partitions} partitions by claim id" if partitions else "plain tables (no partitions)"


def _said(error: BaseException) -> str:
    """What psycopg said, on one line, any URL in it masked."""
    return masked(" ".join(str(error).split()))


@functools.lru_cache(maxsize=256)
def _translated(sql: str) -> str:
    """`?` placeholders as psycopg's `%s` (claimstate's statements hold no other ? or %)."""
    return sql.replace("?", "%s")


class _Errors(StoreContext):
    """Turns psycopg errors into StorageError with a plain message, or into a Race to run again: StorageBusy
    (retryable) for a lock held past `lock_timeout`, and a lost connection is retryable (with the same
    idempotency key). Any error inside a transaction spoils it: PostgreSQL refuses every later statement of
    that transaction."""

    __slots__ = ()
    _store: PostgresStore

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, _tb: object) -> None:
        if not isinstance(error, psycopg.Error):
            return
        store = self._store
        if store._session.depth:
            store._session.spoiled = True
        state = error.sqlstate or ""
        if state in _RACES:
            raise Race(f"{_RACES[state]}, SQLSTATE {state}") from error
        constraint = getattr(error.diag, "constraint_name", None) if state == "23505" else None
        if constraint in _RACING_KEYS:
            raise Race(f"another writer took {_RACING_KEYS[constraint]} first") from error
        if state == "42501":  # insufficient_privilege
            raise StorageError(
                f"{store.path}: the role may not read or write claimstate's tables ({_said(error)}): grant it SELECT"
                " on them (a service that writes needs INSERT, UPDATE and DELETE too), or connect as their owner",
                path=store.path,
            ) from error
        if state == "55P03":  # lock_timeout: another writer holds the claim's row
            raise StorageBusy(
                f"{store.path}: a row this call needs (the claim, its lane of the event feed, or a consumer's"
                f" progress) is locked by another writer and stayed locked past the busy timeout"
                f" ({store._timeout:g} s); nothing was applied, try again",
                path=store.path,
            ) from error
        lost = _lost(error, store._session.conn)
        if lost is not None:
            raise StorageError(
                f"lost the connection to PostgreSQL at {store.path} ({_said(lost)}): the call was not applied,"
                " unless the connection broke while committing; read the claim again, or retry with the same"
                " idempotency key",
                path=store.path,
                retryable=True,
            ) from error
        raise StorageError(f"{store.path}: PostgreSQL failed: {_said(error)}", path=store.path) from error


def _lost(error: psycopg.Error, conn: psycopg.Connection[Any] | None) -> psycopg.Error | None:
    """The error that says the connection went away, if `error` is one or was raised while handling one; None
    for an error the server raised on a live connection (a timeout, say).

    Besides a connection found broken, that is any error psycopg raised itself (no SQLSTATE) or a connection
    failure or shutdown notice from the server: after a server restart, psycopg can report the loss as
    "cannot exit pipeline mode while busy", raised while handling the shutdown notice, on a connection it
    has not yet marked broken. Whatever was in flight then may or may not have been committed.
    """
    if isinstance(error, psycopg.OperationalError) and (conn is None or conn.broken or conn.closed):
        return error
    found: psycopg.Error | None = None
    seen: BaseException | None = error
    while isinstance(seen, psycopg.Error):
        if isinstance(seen, psycopg.OperationalError) and (seen.sqlstate is None or seen.sqlstate.startswith(_GONE)):
            found = seen  # the deepest one says best what happened
        seen = seen.__cause__ or seen.__context__
    return found
