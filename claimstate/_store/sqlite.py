"""The SQLite store: one file, opened safely, migrated by PRAGMA user_version, one writer at a time.

sqlite-utils creates and migrates the schema; the queries (base.Store's) are plain parameterised SQL on
the same connection, because sqlite-utils' row API costs several times as much on the hot path. Every
sqlite3 error leaves this module as a StorageError with a plain message.

A new file is built under a temporary name and linked into place, so the path never shows a half-made
database and a failed creation leaves nothing behind. A read-only store never creates a file: other
users' readers must not leave a -wal or -shm that the owner then cannot write; nor does a writable one
that may not write the file, which is refused before SQLite opens it.
"""

from __future__ import annotations

import errno
import itertools
import os
import secrets
import sqlite3
import stat
import threading
import time
import urllib.parse
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from claimstate._chain import Chain
from claimstate._errors import ClaimStateError, StorageBusy, StorageError
from claimstate._store.base import Session, Store, StoreContext, StoredDefinition
from claimstate._store.claims import decoded

if TYPE_CHECKING:
    import sqlite_utils

APPLICATION_ID = int.from_bytes(b"ClSt", "big")  # marks the file as claimstate's (PRAGMA application_id)
# 1: claims and their append-only history; 2: the history's hash chain; 3: the event feed; 4: definitions;
# 5: when each event entered the feed, the tick workers' heartbeats, claims by state and age; 6: history
# rows by time; 7: a claim's facts that are columns stored there alone (see _store.rows.IN_COLUMNS)
SCHEMA_VERSION = 7
Synchronous = Literal["NORMAL", "FULL"]
T = TypeVar("T")
_SQLITE_HEADER = b"SQLite format 3\x00"
_READ_ATTEMPTS = 5  # reads of a file that keeps changing under a read-only store, before giving up
_NEARLY_FULL = 1 << 20  # bytes free under which an I/O error is taken for a full disk
_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK}

# The schema objects claimstate makes; those with SQL text must keep it exactly (verify compares it).
_PARTIAL_INDEXES_AND_TRIGGERS = {
    "claims_open_deadlines": "CREATE INDEX claims_open_deadlines ON claims (deadline_at) WHERE deadline_at IS NOT NULL",
    "claims_one_open_per_order": "CREATE UNIQUE INDEX claims_one_open_per_order ON claims (order_id) WHERE closed = 0",
    "transitions_idempotency": "CREATE UNIQUE INDEX transitions_idempotency ON transitions (claim_id, idempotency_key)"
    " WHERE idempotency_key IS NOT NULL",
    "transitions_filing_keys": "CREATE INDEX transitions_filing_keys ON transitions (idempotency_key)"
    " WHERE idempotency_key IS NOT NULL AND seq = 1",
    "transitions_no_update": "CREATE TRIGGER transitions_no_update BEFORE UPDATE ON transitions"
    " BEGIN SELECT RAISE(ABORT, 'the transition history is append-only'); END",
    "transitions_no_delete": "CREATE TRIGGER transitions_no_delete BEFORE DELETE ON transitions"
    " BEGIN SELECT RAISE(ABORT, 'the transition history is append-only'); END",
    "claims_open_by_definition": "CREATE INDEX claims_open_by_definition ON claims (definition) WHERE closed = 0",
    "claims_open_by_state": "CREATE INDEX claims_open_by_state ON claims (state, updated_at) WHERE closed = 0",
}
_SCHEMA = {
    "claims": "table", "transitions": "table", "meta": "table",
    "claims_by_state": "index", "claims_by_buyer": "index", "claims_by_supplier": "index", "claims_by_order": "index",
    "claims_open_deadlines": "index", "claims_one_open_per_order": "index",
    "transitions_idempotency": "index", "transitions_filing_keys": "index",
    "transitions_no_update": "trigger", "transitions_no_delete": "trigger",
    "events": "table", "events_by_lane": "index", "consumers": "table", "definitions": "table",
    "claims_open_by_definition": "index", "workers": "table", "claims_open_by_state": "index",
    "transitions_by_time": "index", "transitions_state_changes": "index",
}  # fmt: skip
_SCHEMA_V4_INDEXES = ("claims_open_by_definition",)  # made by schema 4, with the column it indexes
_SCHEMA_V5_INDEXES = ("claims_open_by_state",)  # made by schema 5 (what `stats` reads per state)
# Made by schema 6, kept exactly as well: the history rows by time (what `flows` reads of a window), and the
# rows that changed state (a filing, or a step to another state) by claim and seq with their time (where
# `flows` finds when a claim entered the state a row of the window leaves, from the index alone).
_SCHEMA_V6_INDEXES = {
    "transitions_by_time": "CREATE INDEX transitions_by_time ON transitions (at)",
    "transitions_state_changes": "CREATE INDEX transitions_state_changes ON transitions (claim_id, seq, at)"
    " WHERE from_state IS NULL OR from_state <> to_state",
}
_EXACT = {**_PARTIAL_INDEXES_AND_TRIGGERS, **_SCHEMA_V6_INDEXES}  # every object whose SQL text verify compares
# One row per worker (a tick runner), its heartbeat: see _store.operations.
_WORKERS = (
    "CREATE TABLE workers (name TEXT PRIMARY KEY, kind TEXT NOT NULL, started_at TEXT NOT NULL,"
    " beat_at TEXT NOT NULL, last_tick_at TEXT, fired INTEGER NOT NULL)"
)
# The event feed (see _store.events). A position is the rowid: pruning keeps the newest event, so one is
# never given twice (AUTOINCREMENT would cost a page written per fire).
_FEED = (
    "CREATE TABLE events (position INTEGER PRIMARY KEY, lane INTEGER NOT NULL,"
    " lane_seq INTEGER NOT NULL, claim_id TEXT NOT NULL, seq INTEGER NOT NULL, trigger TEXT NOT NULL, from_state TEXT,"
    " to_state TEXT NOT NULL, actor TEXT NOT NULL, at TEXT NOT NULL, data TEXT NOT NULL, claim TEXT NOT NULL)",
    "CREATE UNIQUE INDEX events_by_lane ON events (lane, lane_seq)",
    "CREATE TABLE consumers (name TEXT NOT NULL, lane INTEGER NOT NULL, acked INTEGER NOT NULL,"
    " leased_to INTEGER NOT NULL, holder TEXT, lease_until TEXT, PRIMARY KEY (name, lane))",
)


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
    for name, sql in _PARTIAL_INDEXES_AND_TRIGGERS.items():  # sqlite-utils' create_index has no WHERE clause
        if name not in _SCHEMA_V4_INDEXES + _SCHEMA_V5_INDEXES:
            db.execute(sql)


def _schema_v2(db: sqlite_utils.Database) -> None:
    """Each history row's hash (see _chain), and a table recording which kind of chain the file holds."""
    db.execute("ALTER TABLE transitions ADD COLUMN hash TEXT")
    db.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")


def _schema_v3(db: sqlite_utils.Database) -> None:
    """The event feed: one event per transition from now on (history before it is not replayed into it),
    and each consumer's progress."""
    for sql in _FEED:
        db.execute(sql)


def _schema_v4(db: sqlite_utils.Database) -> None:
    """Which definition decided each claim and each history row (its fingerprint), and every definition seen."""
    db.execute("ALTER TABLE claims ADD COLUMN definition TEXT")
    db.execute("ALTER TABLE transitions ADD COLUMN definition TEXT")
    db.execute(
        "CREATE TABLE definitions (fingerprint TEXT PRIMARY KEY, name TEXT NOT NULL, body TEXT NOT NULL,"
        " first_seen TEXT NOT NULL)"
    )
    for name in _SCHEMA_V4_INDEXES:
        db.execute(_PARTIAL_INDEXES_AND_TRIGGERS[name])


def _schema_v5(db: sqlite_utils.Database) -> None:
    """When each event entered the feed (NULL for those before), the tick workers' heartbeats, and claims
    indexed by state and age, for `stats`."""
    db.execute("ALTER TABLE events ADD COLUMN entered_at TEXT")
    db.execute(_WORKERS)
    for name in _SCHEMA_V5_INDEXES:
        db.execute(_PARTIAL_INDEXES_AND_TRIGGERS[name])


def _schema_v6(db: sqlite_utils.Database) -> None:
    """History rows indexed by time, and the rows that changed state by claim and seq, for `flows` (the
    arrows taken and the time in each state over a window). IF NOT EXISTS: an index already made is kept
    (SQLite stores each index's SQL without those words, so verify compares it all the same)."""
    for sql in _SCHEMA_V6_INDEXES.values():
        db.execute(sql.replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS", 1))


def _schema_v7(db: sqlite_utils.Database) -> None:
    """Nothing to change: rows written before read as they are, and each is written slim at its next fire.
    The version stops an earlier claimstate, which would take a slim row for a damaged one."""


_MESSAGES = (  # words in SQLite's message, and what to tell a person instead
    (("locked", "busy"), "{path} is locked by another writer and stayed locked past the busy timeout; try again"),
    (("not a database",), "{path} is not a claimstate database, or is damaged (SQLite says: {text})"),
    (("malformed",), "{path} is damaged (SQLite says: {text}): restore it from a backup"),
    (("unable to open",), "cannot open {path}: check that the folder exists and is writable"),
)


def _plain(error: sqlite3.Error, path: str) -> str:
    """What went wrong, in words a person acts on."""
    text = str(error)
    if "readonly" in text or "read-only" in text or "unable to open" in text:
        left = _left_by_another_user(path)
        if left is not None:
            return left
    if "readonly" in text or "read-only" in text:
        return f"{path} is read-only: claimstate cannot write to it (read_only=True reads it)"
    if "full" in text or (getattr(error, "sqlite_errorname", "").startswith("SQLITE_IOERR") and _disk_full(path)):
        return f"the disk holding {path} is full: nothing was written"
    for words, message in _MESSAGES:
        if any(word in text for word in words):
            return message.format(path=path, text=text)
    return f"{path}: SQLite failed: {text}"


def _left_by_another_user(path: str) -> str | None:
    """Why `path`, which this user may write, still cannot be opened for writing: a -wal or -shm of another
    OS user's beside it that this one may not write (SQLite says "readonly", or "unable to open" where it
    may not even read it), made by a process that has the database open, or was killed, or was not
    claimstate. None if there is none."""
    for suffix in ("-wal", "-shm"):
        with suppress(OSError):
            left = os.stat(path + suffix)
            if os.access(path, os.W_OK) and not os.access(path + suffix, os.W_OK):
                return (
                    f"{path} cannot be written: its {suffix} file belongs to another user (uid {left.st_uid}), whose"
                    " process has the database open, or left it (killed, or another program); once no process has"
                    " it open, remove it if it is empty, else give it to the database's owner"
                )
    return None


def _disk_full(path: str) -> bool:
    """Whether the file system holding `path` is (nearly) out of space or inodes.

    SQLite reports some writes that fail for lack of space (growing the -shm, say) as a plain I/O error,
    and Python does not expose the errno; the file system's free space tells the cause.
    """
    try:
        space = os.statvfs(os.path.dirname(os.path.abspath(path)))
    except OSError:
        return False
    return space.f_bavail * space.f_frsize < _NEARLY_FULL or space.f_favail == 0


def _readable(path: str) -> bool:
    """Whether this process may open `path` for reading (asked of the kernel, so ACLs and root count)."""
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC))
    except OSError:
        return False
    return True


def _busy(error: sqlite3.Error) -> bool:
    return getattr(error, "sqlite_errorname", "").startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))


def _file_stamp(path: str) -> tuple[int, int, int, int] | None:
    """What changes when anything writes the file: device, inode, size and modification time."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


class _Connected(Session):
    """One thread's connection to the file, and (read directly, immutable) the file's stamp when it was made."""

    conn: sqlite3.Connection | None = None
    number = -1  # the connection's number in `_Connections`
    stamp: tuple[int, int, int, int] | None = None
    closer: object = None  # goes with the thread, closing its connection (see `_Connections`)


class _Closer:
    """A token the thread's session holds; when the thread ends it is collected, and its connection closed."""

    __slots__ = ("__weakref__",)


class _Connections:
    """Every open connection of one store and which are in use (a transaction or a read under way), so
    that `close_all` closes the idle ones at once and each busy one as its use ends, never one another
    thread is using; a thread that ends takes its own with it (its session goes, and with it the
    `_Closer` this keeps a finalizer on)."""

    def __init__(self) -> None:
        self._open: dict[int, sqlite3.Connection] = {}
        self._busy: set[int] = set()
        self.closing = False
        self._numbers = itertools.count()
        self._lock = threading.Lock()

    def keep(self, conn: sqlite3.Connection) -> tuple[_Closer, int]:
        closer, number = _Closer(), next(self._numbers)
        with self._lock:
            self._open[number] = conn
        weakref.finalize(closer, self._close, number).atexit = False  # at exit, a thread may still use it
        return closer, number

    def use(self, number: int) -> None:
        with self._lock:
            self._busy.add(number)

    def done(self, number: int) -> None:
        with self._lock:
            self._busy.discard(number)
            conn = self._open.pop(number, None) if self.closing else None
        if conn is not None:
            conn.close()

    def _close(self, number: int) -> None:
        with self._lock:
            conn = self._open.pop(number, None)
        if conn is not None:
            conn.close()

    def close_all(self) -> None:
        with self._lock:
            self.closing = True
            idle = [number for number in self._open if number not in self._busy]
            conns = [self._open.pop(number) for number in idle]
        for conn in conns:
            conn.close()


class SQLiteStore(Store):
    """A claimstate SQLite file (or ":memory:"). A `read_only` store creates no file.

    Each thread opens its own connection to the file when it first uses the store, so readers run beside
    the one writer SQLite allows (WAL) and a writer waits for the file's lock only as long as the busy
    timeout. An in-memory database is one connection, so threads take turns on it, a transaction or a
    read at a time.
    """

    schema_version = SCHEMA_VERSION
    _session: _Connected

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: Synchronous = "NORMAL",
        busy_timeout: float = 5.0,
        create: bool = True,
        read_only: bool = False,
        chain: Chain,
        definition: StoredDefinition,
    ) -> None:
        super().__init__(str(path), chain=chain, definition=definition, read_only=read_only)
        self._busy_timeout = busy_timeout
        self._synchronous = synchronous
        self._errors = _Errors(self)
        self._connections = _Connections()
        self._shared: sqlite3.Connection | None = None  # the one connection of an in-memory database
        self._turns = threading.RLock()  # which thread's turn it is on that connection
        if synchronous not in ("NORMAL", "FULL"):
            raise StorageError(f"synchronous must be NORMAL or FULL, not {synchronous!r}", path=self.path)
        if read_only:
            self._open_read_only()
            return
        conn = self._connect_writable(synchronous, create=create)
        if self.path == ":memory:":
            self._shared = conn  # every thread's, closed by `close` alone
        else:
            self._conn = conn
        try:
            self._open(synchronous)
        except BaseException:
            self.close()
            raise

    def _new_session(self) -> _Connected:
        return _Connected()

    @property
    def _conn(self) -> sqlite3.Connection:
        """This thread's connection, opened on its first use."""
        conn = self._shared or self._session.conn
        if conn is None:
            self._refuse_if_closed()
            if self.read_only:
                self._connect_read_only()
            else:
                conn = self._connect(self._uri("rw"), uri=True)
                try:
                    with self._errors:
                        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
                        conn.execute("PRAGMA foreign_keys = ON")
                except BaseException:
                    conn.close()
                    raise
                self._conn = conn
            conn = self._session.conn
            assert conn is not None
        return conn

    @_conn.setter
    def _conn(self, conn: sqlite3.Connection) -> None:
        self._session.conn = conn
        self._session.closer, self._session.number = self._connections.keep(conn)

    def _connect(self, target: str, *, uri: bool = False) -> sqlite3.Connection:
        with self._errors:
            return sqlite3.connect(
                target, isolation_level=None, timeout=self._busy_timeout, check_same_thread=False, uri=uri
            )

    def _connect_writable(self, synchronous: Synchronous, *, create: bool) -> sqlite3.Connection:
        """Connect to the file for writing, making it first if it is missing and `create`.

        An existing file is first opened here for reading and writing, so a user who may not write it is
        refused, naming the permission, before SQLite opens it: SQLite itself would fall back to reading it
        (even under mode=rw) and leave a -wal and -shm of this user's, which lock its owner out. A permission
        changed between that check and SQLite's open is the one window left.
        """
        if self.path == ":memory:":
            return self._connect(self.path)
        if not os.path.exists(self.path):
            if not create:
                raise self._missing()
            if not self._create(synchronous):  # no hard links: made in place, by this connection
                return self._connect(self._uri("rwc"), uri=True)
        self._check_file(write=True)
        return self._connect(self._uri("rw"), uri=True)

    def _uri(self, mode: str) -> str:
        return f"file:{urllib.parse.quote(os.path.abspath(self.path))}?mode={mode}"

    def _create(self, synchronous: Synchronous) -> bool:
        """Build the database under a temporary name beside `path`, then link it into place.

        Linking never replaces a file: if another process made the database first, this one uses theirs.
        Whatever fails, the temporary files go, so a failed creation (a full disk) leaves nothing behind.
        Where the file system has no hard links the database is made in place, under the write lock: then it
        returns False.
        """
        folder, name = os.path.split(os.path.abspath(self.path))
        temporary = os.path.join(folder, f".{name}.{secrets.token_hex(6)}.new")
        try:
            self._conn = self._connect(temporary)
            try:
                self._open(synchronous)
            finally:
                self._conn.close()  # the last connection: folds the -wal in and removes it and the -shm
            try:
                os.link(temporary, self.path)
            except FileExistsError:
                pass  # another process created it meanwhile
            except OSError as error:
                if error.errno == errno.ENOSPC:
                    raise StorageError(
                        f"the disk holding {self.path} is full: nothing was written", path=self.path
                    ) from error
                if error.errno not in _NO_HARD_LINKS:
                    raise StorageError(f"cannot create {self.path}: {error.strerror}", path=self.path) from error
                return False
        finally:
            for suffix in ("", "-wal", "-shm", "-journal"):
                with suppress(FileNotFoundError):
                    os.remove(temporary + suffix)
        return True

    def _check_file(self, *, write: bool) -> None:
        """Refuse, before SQLite touches it, a file this user may not read (or, to `write`, write), and one
        that is not SQLite (opened without blocking: a FIFO would wait for a writer)."""
        try:
            fd = os.open(self.path, (os.O_RDWR if write else os.O_RDONLY) | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise self._missing() from None
        except OSError as error:
            raise StorageError(self._refused(error, write=write), path=self.path) from error
        with os.fdopen(fd, "rb", buffering=0) as file:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise StorageError(f"{self.path} is not a claimstate database (not a regular file)", path=self.path)
            head = file.read(len(_SQLITE_HEADER))
        if head and head != _SQLITE_HEADER:
            raise StorageError(f"{self.path} is not a claimstate database (not a SQLite file)", path=self.path)

    def _refused(self, error: OSError, *, write: bool) -> str:
        """Why this user may not open the file, naming what it lacks."""
        if error.errno == errno.EROFS:
            return f"{self.path} is read-only: claimstate cannot write to it (its file system is read-only)"
        if error.errno not in (errno.EACCES, errno.EPERM):
            return f"cannot open {self.path}: {error.strerror}"
        uid = os.geteuid()
        try:
            found = os.stat(self.path)
        except OSError:
            return f"cannot read {self.path}: permission denied (uid {uid} may not reach it: a folder above refuses)"
        owner = f"it belongs to uid {found.st_uid}, mode {stat.filemode(found.st_mode)}"
        if write and _readable(self.path):
            return (
                f"{self.path} is read-only: claimstate cannot write to it (uid {uid} may not write it: {owner});"
                " write as a user who may, or read it with read_only=True"
            )
        return f"cannot read {self.path}: permission denied (uid {uid} may not read it: {owner})"

    def _open(self, synchronous: Synchronous) -> None:
        """Check that the file is ours and not newer than this code, then set it up and migrate it.

        Any number of processes may open a new or old file at once: the first check reads everything in one
        statement, migrating re-checks under the write lock (so one process migrates and the others find it
        done), and the switch to WAL is retried while others hold the file. A new file is migrated before
        the switch, so its schema is in the file itself, not in a -wal beside it.
        """
        with self._errors:
            self._conn.execute(f"PRAGMA synchronous = {synchronous}")
            self._conn.execute("PRAGMA foreign_keys = ON")
            if self._check_ours() < SCHEMA_VERSION:
                with self.transaction():
                    self._migrate(self._check_ours())
            if self.path != ":memory:":
                self._wal()
            self._cannot_write = self.chain.cannot_check(self.definitions.chain_record())

    def _identity(self) -> tuple[int, int, int]:
        """(application_id, number of schema objects, user_version), read together in one statement."""
        with self._errors:  # the first read of the file: one that is not a database fails here
            row = self._conn.execute(
                "SELECT (SELECT application_id FROM pragma_application_id),"
                " (SELECT count(*) FROM sqlite_master), (SELECT user_version FROM pragma_user_version)"
            ).fetchone()
        return int(row[0]), int(row[1]), int(row[2])

    def _check_ours(self) -> int:
        """The schema version of a file that is claimstate's (or new), not newer than this code."""
        app_id, objects, version = self._identity()
        if app_id != APPLICATION_ID and (app_id != 0 or objects):
            raise StorageError(
                f"{self.path} is not a claimstate database (it holds other tables); give a new or claimstate file",
                path=self.path,
            )
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"{self.path} has schema version {version}, newer than this claimstate knows"
                f" ({SCHEMA_VERSION}): upgrade claimstate",
                path=self.path,
            )
        return version

    def _wal(self) -> None:
        """Switch to WAL, retrying until the busy timeout: SQLite refuses the switch at once, without its
        busy handler, when another connection is switching or migrating at the same moment."""
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            except sqlite3.OperationalError as error:
                if not _busy(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.002)
                continue
            if mode != "wal":
                raise StorageError(f"{self.path} could not be switched to WAL mode (it stays {mode})", path=self.path)
            return

    def _migrate(self, version: int) -> None:
        """From schema `version` to SCHEMA_VERSION, in the caller's transaction: all of it, or nothing."""
        import sqlite_utils  # noqa: PLC0415  (only to create or migrate a schema: an open costs ~60 ms less)

        schemas = (_schema_v1, _schema_v2, _schema_v3, _schema_v4, _schema_v5, _schema_v6, _schema_v7)
        for number, schema in enumerate(schemas, 1):
            if version < number:
                schema(sqlite_utils.Database(self._conn, execute_plugins=False))
        if version < 2:  # with every column in place, as the history is read the way it is now
            self._chain_history()
            self._conn.executemany("INSERT INTO meta (name, value) VALUES (?, ?)", self.chain.record().items())
        if 0 < version < 4:
            self._adopt_claims()
        self._conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _chain_history(self) -> None:
        """Hash the rows written before the chain existed, claim by claim in seq order."""
        self._conn.execute("DROP TRIGGER transitions_no_update")
        previous: tuple[str, str] | None = None  # (claim id, hash) of the row before
        for row in self.verify.history_rows():
            data = decoded(row["data"], row["claim_id"], self.path)
            before = previous[1] if previous is not None and previous[0] == row["claim_id"] else None
            digest = self.chain.link(before, {**row, "data": data})
            self._conn.execute(
                "UPDATE transitions SET hash = ? WHERE claim_id = ? AND seq = ?", (digest, row["claim_id"], row["seq"])
            )
            previous = (row["claim_id"], digest)
        self._conn.execute(_PARTIAL_INDEXES_AND_TRIGGERS["transitions_no_update"])

    def _missing(self) -> StorageError:
        return StorageError(
            f"no database at {self.path}; create it with `claimstate init` or ClaimService(path)", path=self.path
        )

    def _open_read_only(self) -> None:
        """Open an existing database at this schema version for reading, creating no file."""
        if self.path == ":memory:":
            raise StorageError("an in-memory database cannot be opened read-only: it would be empty", path=self.path)
        if not os.path.exists(self.path):
            raise self._missing()
        self._check_file(write=False)
        self._connect_read_only()
        try:
            version = self.read(self._check_ours)
            if version == 0:
                raise StorageError(f"{self.path} is empty: create it with `claimstate init`", path=self.path)
            if version < SCHEMA_VERSION:
                raise StorageError(
                    f"{self.path} has schema version {version}; migrating it to {SCHEMA_VERSION} needs a writable"
                    " open (ClaimService(path)) once, by the database's owner",
                    path=self.path,
                )
        except BaseException:
            self._conn.close()
            raise

    def _connect_read_only(self) -> None:
        """Connect for reading, without creating a file (measured on SQLite 3.40: README, Reliability).

        With a -wal present (a writer has the file open, or crashed) the connection reads through it and its
        -shm, opened read-only. Without one, SQLite would create both (owned by this user) or, in a folder it
        cannot write, fail; so the file is read directly (immutable) and checked after each read for a
        writer that came meanwhile (`read` then reads again).
        """
        wal = self.path + "-wal"
        uri = self._uri("ro")
        if os.path.exists(wal):
            if not os.path.exists(self.path + "-shm"):
                raise StorageError(
                    f"{wal} holds changes that a writer must fold in first (its -shm is gone): open the database"
                    " writable once, as its owner",
                    path=self.path,
                )
            self._session.stamp = None
            self._conn = self._connect(uri + "&readonly_shm=1", uri=True)
            try:
                with self._errors:
                    self._conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            except StorageError:
                self._conn.close()
                if not self._undo_wal(wal):
                    raise
                self._connect_read_only()  # the writer closed in between: the file now holds everything
            return
        self._session.stamp = _file_stamp(self.path)
        self._conn = self._connect(uri + "&immutable=1", uri=True)

    def _undo_wal(self, wal: str) -> bool:
        """Remove the empty -wal SQLite created when the writer's last connection removed its own just before
        this one opened (the one file a read-only connection makes); True if there was one."""
        with suppress(OSError):
            made = os.stat(wal)
            if made.st_size == 0 and made.st_uid == os.geteuid() != os.stat(self.path).st_uid:
                os.remove(wal)
                return True
        return False

    def _changed(self) -> bool:
        """Whether a file read directly changed, or a writer opened it, since this connection was made."""
        stamp = self._session.stamp
        return stamp is not None and (os.path.exists(self.path + "-wal") or _file_stamp(self.path) != stamp)

    def close(self) -> None:
        """Close every thread's connection: the idle ones now, each one in use when its transaction or read
        ends (never under another thread's feet). Calls after it are a StorageError."""
        if self._shared is not None and self._turns.acquire(timeout=self._busy_timeout):
            self._shared.close()  # in its owner's turn, so no thread is using it
            self._turns.release()
        self._connections.close_all()

    def _take_turn(self) -> None:
        """Mark this thread's connection in use until `_end_turn` (the end of its transaction or read), so
        that `close` leaves it be meanwhile. On an in-memory database's one connection, first wait for this
        thread's turn, held to the same end; a file's threads each have a connection, and need no turns."""
        self._refuse_if_closed()
        if self._shared is None:
            self._conn  # noqa: B018  (opens this thread's connection, which gives it its number)
            self._connections.use(self._session.number)
        elif not self._turns.acquire(timeout=self._busy_timeout):
            raise StorageBusy(
                f"{self.path}: another thread kept the in-memory database past the busy timeout"
                f" ({self._busy_timeout:g} s); nothing was applied, try again",
                path=self.path,
            )

    def _refuse_if_closed(self) -> None:
        if self._connections.closing:
            raise StorageError(f"{self.path} is closed: open a new service to use it", path=self.path)

    def _end_turn(self) -> None:
        if self._shared is None:
            self._connections.done(self._session.number)
        else:
            self._turns.release()

    def read(self, reads: Callable[[], T]) -> T:
        """Run `reads` on one snapshot of the database (inside a batch, on the batch's transaction).

        A read-only store reading the file directly reads again on a fresh connection if a writer came
        meanwhile, so it never returns what a half-done checkpoint showed.
        """
        session = self._session
        if session.depth:
            return reads()
        for _attempt in range(_READ_ATTEMPTS):
            if self._changed():
                self._conn.close()
                self._connect_read_only()
            self._take_turn()
            try:
                with self._errors:
                    self._conn.execute("BEGIN")
                session.depth = 1
                try:
                    result = reads()
                except ClaimStateError:
                    if self._changed():
                        continue
                    raise
                finally:
                    session.depth = 0
                    self._end_read()
            finally:
                self._end_turn()
            if not self._changed():
                return result
        raise StorageError(f"{self.path} kept changing while it was read; try again", path=self.path)

    def _end_read(self) -> None:
        """End a read's transaction. After a read found a damaged page, SQLite's COMMIT fails saying so, yet
        ends the transaction: nothing was written, so what was read stands (and verify reports the damage)."""
        try:
            with self._errors:
                self._conn.execute("COMMIT")
        except StorageError:
            if self._conn.in_transaction:
                raise

    def lock_whole(self) -> None:
        """Nothing to do: BEGIN IMMEDIATE already keeps every other writer out."""

    def _copied(self, table: str) -> None:
        """Nothing to do: the next event's rowid follows the highest position copied."""

    def _start(self) -> None:
        self._take_turn()
        try:
            with self._errors:
                self._conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._end_turn()
            raise

    def _commit(self) -> None:
        with self._errors:
            self._conn.execute("COMMIT")
        self._end_turn()  # if COMMIT failed, the roll back that follows ends the turn

    def _roll_back(self) -> None:
        try:
            with self._errors:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
        finally:
            self._end_turn()

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        with self._errors:
            row: tuple[Any, ...] | None = self._conn.execute(sql, params).fetchone()
        return row

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._errors:
            return self._conn.execute(sql, params).fetchall()

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self._errors:
            return self._conn.execute(sql, params).rowcount

    def send_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._errors:
            self._conn.executemany(sql, rows)

    def stream(self, sql: str, page: int = 1000) -> Iterator[tuple[Any, ...]]:
        with self._errors:
            cursor = self._conn.execute(sql)
        while True:
            with self._errors:
                rows = cursor.fetchmany(page)
            if not rows:
                return
            yield from rows

    def schema_problems(self) -> list[str]:
        """Each schema object claimstate made that is missing or changed, and each trigger it did not make."""
        with self._errors:
            found = {
                row[0]: (row[1], row[2]) for row in self._conn.execute("SELECT name, type, sql FROM sqlite_master")
            }
            columns = {row[1] for row in self._conn.execute("PRAGMA table_info(transitions)")}
            event_columns = {row[1] for row in self._conn.execute("PRAGMA table_info(events)")}
        problems = []
        for name, kind in _SCHEMA.items():
            if name not in found:
                problems.append(f"the {kind} {name} is missing")
            elif found[name][0] != kind or found[name][1] != _EXACT.get(name, found[name][1]):
                problems.append(f"the {kind} {name} is not the one claimstate made: {found[name][1]}")
        if "transitions" in found and not {"hash", "definition"} <= columns:
            problems.append("the table transitions lacks its hash or definition column")
        if "events" in found and "entered_at" not in event_columns:
            problems.append("the table events lacks its entered_at column")
        added = sorted(name for name, (kind, _sql) in found.items() if kind == "trigger" and name not in _SCHEMA)
        problems += [f"the trigger {name} is not claimstate's: {found[name][1]}" for name in added]
        return problems

    def integrity(self) -> list[str]:
        """What SQLite's own integrity check finds wrong with the file (empty when it is sound)."""
        try:
            found = [row[0] for row in self._conn.execute("PRAGMA integrity_check")]
        except sqlite3.Error as error:
            return [f"SQLite cannot check the file: {error}"]
        return [] if found == ["ok"] else found


class _Errors(StoreContext):
    """Turns sqlite3 errors into StorageError with a plain message: StorageBusy (retryable) for the file
    locked by another writer past the busy timeout."""

    __slots__ = ()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, _tb: object) -> None:
        if isinstance(error, sqlite3.Error):
            path = self._store.path
            if _busy(error):
                raise StorageBusy(_plain(error, path), path=path) from error
            raise StorageError(_plain(error, path), path=path) from error
