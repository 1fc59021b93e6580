"""Online backups: a copy of the whole database, taken while writers go on, checked before it is kept.

SQLite: SQLite's online backup API copies the file through a connection of its own into a temporary file
beside DEST; the copy is opened read-only and verified with the service's definition and history key, and
only a clean copy is renamed onto DEST, so a failed or damaged backup never leaves a DEST that looks good.

PostgreSQL: `pg_basebackup` (a base backup of the whole cluster, with the WAL it needs, streamed) into a
temporary folder beside DEST, checked by `pg_verifybackup` against the manifest it wrote, then renamed onto
DEST. Restoring one, and replaying archived WAL up to a chosen point, is the operator's (the docs,
Operations: Backups and restores); `claimstate verify` then checks the restored database.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import sqlite3
import stat
import subprocess
import time
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import attrs

from claimstate._errors import InvalidInput, StorageError
from claimstate._store.base import Store
from claimstate._store.sqlite import _NO_HARD_LINKS, SQLiteStore, _file_stamp, _plain
from claimstate._store.targets import masked
from claimstate._verify import Mismatch

# _NO_HARD_LINKS, _file_stamp and _plain are the SQLite store's file helpers (what a failed hard link means, a
# file's stamp, a SQLite error in words), private to it but shared with this module.

if TYPE_CHECKING:
    from claimstate._store.postgres import PostgresStore

Check = Callable[[Store], list[Mismatch]]  # verify, run on an open store inside one of its reads
_ATTEMPTS = 5  # copies of a file a writer opened while it was copied directly, before giving up
_SIDE_FILES = ("-wal", "-shm", "-journal")
_COUNTS = "SELECT (SELECT count(*) FROM claims), (SELECT count(*) FROM transitions)"
_PG_PACKAGE = "postgresql-client"
_DEBIAN_PG = Path("/usr/lib/postgresql")  # Debian keeps each version's programs in VERSION/bin, off PATH
# pg_verifybackup reads every file of the backup once (checksums) and parses its WAL: bounded by the backup's
# size read at a rate any disk beats (a few MB/s), plus a floor for starting up and the WAL.
_VERIFY_FLOOR = 600.0  # seconds
_VERIFY_SLOWEST = 4 * 1024 * 1024  # bytes a second


@attrs.frozen
class Backup:
    """What `ClaimService.backup` made, and what checking it found.

    `where` is DEST: a SQLite file, or the folder of a PostgreSQL base backup. `claims` and `transitions`
    count the copy's rows: read from the copy itself on SQLite; on PostgreSQL, read from the live database
    as the backup began (the base backup holds at least those, and whatever committed while it ran).
    `bytes` is the copy's size on disk; `seconds` how long the backup and its check took.

    `problems` is what checking the copy found, empty when it is clean: on SQLite, `verify()` of the copy
    (the same `Mismatch` values), on PostgreSQL what `pg_verifybackup` reported (kind ``integrity``). A copy
    with problems is not kept: nothing is written at `where`.
    """

    where: str
    kind: Literal["sqlite", "postgres"]
    source: str  # the database backed up (a URL without its password)
    claims: int
    transitions: int
    bytes: int
    seconds: float
    problems: tuple[Mismatch, ...] = ()

    @property
    def clean(self) -> bool:
        """Whether the copy was checked clean (and so kept at `where`)."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "where": self.where,
            "kind": self.kind,
            "claims": self.claims,
            "transitions": self.transitions,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "clean": self.clean,
            "problems": [m.to_dict() for m in self.problems],
        }


def backup(store: Store, dest: str | os.PathLike[str], *, overwrite: bool, check: Check) -> Backup:
    """Back the database of `store` up into `dest` (see the module's doc); `check` verifies a SQLite copy."""
    if not isinstance(dest, str | os.PathLike) or not os.fspath(dest):
        raise InvalidInput(f"give the path to back up into, not {dest!r}", field="dest")
    if not isinstance(overwrite, bool):
        raise InvalidInput(f"must be True or False, not {overwrite!r}", field="overwrite")
    target = os.fspath(dest)  # named in messages and in the result as the caller named it
    if isinstance(store, SQLiteStore):
        return _sqlite(store, target, overwrite=overwrite, check=check)
    from claimstate._store.postgres import PostgresStore  # noqa: PLC0415  (psycopg is an optional extra)

    if not isinstance(store, PostgresStore):
        raise InvalidInput(f"a {type(store).__name__} cannot be backed up", field="path")
    return _postgres(store, target, overwrite=overwrite)


# --- SQLite --------------------------------------------------------------------------------------------


def _sqlite(store: SQLiteStore, dest: str, *, overwrite: bool, check: Check) -> Backup:
    """Copy the file with the online backup API into a temporary file beside `dest`, verify the copy, and
    rename it onto `dest` only if it is clean; the temporary file goes whatever happens."""
    source = store.path
    if source == ":memory:":
        raise InvalidInput(
            "an in-memory database lives in this process alone: there is no file to back up", field="path"
        )
    _refuse_sqlite_dest(source, dest, overwrite=overwrite)
    started = time.monotonic()
    waits = _busy_timeout(store)
    temporary = _beside(dest)
    try:
        _snapshot(os.path.abspath(source), temporary, dest, timeout=waits)
        size = os.path.getsize(temporary)
        claims, transitions, problems = _checked(store, temporary, check)
        if not problems:
            _keep(temporary, dest, overwrite=overwrite)
    finally:
        for suffix in ("", *_SIDE_FILES):
            with contextlib.suppress(FileNotFoundError):
                os.remove(temporary + suffix)
    return Backup(dest, "sqlite", source, claims, transitions, size, time.monotonic() - started, tuple(problems))


def _refuse_sqlite_dest(source: str, dest: str, *, overwrite: bool) -> None:
    """Refuse, before anything is written (every refusal an InvalidInput of `dest`), a DEST whose folder is
    missing, that is the database itself (or one of its -wal, -shm, -journal), that is not a plain file (a
    folder, a link: overwrite or not), that exists (unless `overwrite`), or that has a -wal, -shm or -journal
    beside it (a database a process has open, or left changes in, that SQLite would apply to the copy)."""
    _folder_exists(dest)
    whole = os.path.abspath(source)
    named = os.path.abspath(dest) in {whole + suffix for suffix in _SIDE_FILES}
    if named or (os.path.exists(dest) and os.path.samefile(dest, whole)):
        raise InvalidInput(f"{dest} is the database being backed up (or one of its files): name another", field="dest")
    if os.path.lexists(dest) and not stat.S_ISREG(os.lstat(dest).st_mode):
        raise InvalidInput(
            f"{dest} exists and is not a plain file: a backup is a file and replaces no other thing; name a new file",
            field="dest",
        )
    if os.path.lexists(dest) and not overwrite:
        raise InvalidInput(f"{dest} exists: name a new file, or overwrite it (--overwrite)", field="dest")
    for suffix in _SIDE_FILES:  # with DEST there or not: opened, DEST would take in what they hold
        if os.path.lexists(dest + suffix):
            raise InvalidInput(
                f"{dest} has a {suffix} beside it: a process has that database open, or left changes in it that"
                f" SQLite would apply to the new copy; stop it (or remove {dest}{suffix} if nothing uses it), or"
                " name another file",
                field="dest",
            )


def _busy_timeout(store: SQLiteStore) -> float:
    """How long, in seconds, the store's own connection waits for a lock (its `busy_timeout`), read through
    the store's public `one` (the store keeps the number it was opened with private); 5 s, SQLite's store
    default, if the store cannot say."""
    try:
        row = store.read(lambda: store.one("PRAGMA busy_timeout"))
    except StorageError:
        return 5.0
    return int(row[0]) / 1000 if row and int(row[0]) > 0 else 5.0


def _snapshot(source: str, temporary: str, dest: str, *, timeout: float) -> None:
    """Copy `source` into the new file `temporary` with SQLite's online backup API, in one step.

    One step (pages=-1): the whole file is copied under one read transaction, so the copy is one consistent
    snapshot, a state the database was in between two commits; in WAL mode writers go on meanwhile (they
    append to the -wal, which this read does not wait for, nor holds back but for the checkpoint). Paged
    steps would release the read between steps, and a step after another connection wrote starts the copy
    over from the first page: under a steady stream of writes it might never finish.

    With a -wal beside the file (a writer has it open) the connection reads through it, as any reader does
    (its -shm read-only if this user may not write it). Without one the file is read directly (immutable),
    creating no -wal or -shm of this user's beside another's database, and the copy is taken again if a
    writer opened the file meanwhile (SQLite's read-only stores read the same way). A lock the read must wait
    for (a -wal being recovered, say) is waited for up to `timeout` seconds, the store's own busy timeout.
    """
    for _attempt in range(_ATTEMPTS):
        wal = os.path.exists(source + "-wal")
        stamp = None if wal else _file_stamp(source)
        uri = f"file:{urllib.parse.quote(source)}?mode=ro"
        if not wal:
            uri += "&immutable=1"
        elif os.path.exists(source + "-shm") and not os.access(source + "-shm", os.W_OK):
            uri += "&readonly_shm=1"
        try:
            reader = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=timeout)
            try:
                writer = sqlite3.connect(temporary, isolation_level=None)
                try:
                    reader.backup(writer, pages=-1)
                finally:
                    writer.close()
            finally:
                reader.close()
        except sqlite3.Error as error:
            raise StorageError(_plain(error, dest if "full" in str(error) else source), path=source) from error
        if wal or (not os.path.exists(source + "-wal") and _file_stamp(source) == stamp):
            return
        for suffix in ("", *_SIDE_FILES):
            with contextlib.suppress(FileNotFoundError):
                os.remove(temporary + suffix)
    raise StorageError(f"{source} kept changing while it was copied; try again", path=source)


def _checked(store: SQLiteStore, temporary: str, check: Check) -> tuple[int, int, list[Mismatch]]:
    """The copy's claims and history rows, and what `check` finds in it, read on one snapshot of a read-only
    store on the copy with the source's definition and chain (key). A copy that cannot even be opened is a
    problem of its own."""
    try:
        copy = SQLiteStore(temporary, read_only=True, chain=store.chain, definition=store.definition)
    except StorageError as error:
        return 0, 0, [Mismatch(None, f"the copy cannot be opened: {error}", kind="integrity")]
    try:

        def reads() -> tuple[int, int, list[Mismatch]]:
            problems = check(copy)
            try:
                counts = copy.one(_COUNTS) or (0, 0)
            except StorageError:  # reported by the check already
                counts = (0, 0)
            return int(counts[0]), int(counts[1]), problems

        return copy.read(reads)
    finally:
        copy.close()


def _keep(temporary: str, dest: str, *, overwrite: bool) -> None:
    """Put the verified copy at `dest`, durably: synced, then renamed (over a file there, with `overwrite`),
    or linked (never over a file another process made meanwhile), and the folder synced."""
    try:
        _sync(temporary)
        if overwrite:
            os.replace(temporary, dest)
        else:
            try:
                os.link(temporary, dest)
            except FileExistsError:
                raise _made_meanwhile(dest) from None
            except OSError as error:
                if error.errno not in _NO_HARD_LINKS:
                    raise
                if os.path.lexists(dest):
                    raise _made_meanwhile(dest) from None
                os.rename(temporary, dest)
        _sync(os.path.dirname(os.path.abspath(dest)))
    except OSError as error:
        full = error.errno == errno.ENOSPC
        why = "the disk is full" if full else error.strerror
        raise StorageError(f"cannot write the backup {dest}: {why}; nothing was written", path=dest) from error


def _folder_exists(dest: str) -> None:
    """Refuse a DEST whose folder does not exist, as the other refusals of DEST are (nothing is made but DEST
    itself: the folder is the operator's to make, on the disk meant for backups)."""
    if not os.path.isdir(os.path.dirname(os.path.abspath(dest))):
        folder = os.path.dirname(dest.rstrip(os.sep)) or "."
        why = "is not a folder" if os.path.lexists(folder) else "does not exist"
        raise InvalidInput(f"cannot back up into {dest}: its folder {folder} {why}; make it first", field="dest")


def _beside(dest: str) -> str:
    """A new temporary name in DEST's folder (so that renaming it onto DEST is one step on one file system)."""
    folder, name = os.path.split(os.path.abspath(dest))
    return os.path.join(folder, f".{name}.{secrets.token_hex(6)}.partial")


def _made_meanwhile(dest: str) -> InvalidInput:
    return InvalidInput(f"{dest} exists (made while the backup ran): name a new file", field="dest")


def _sync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- PostgreSQL ----------------------------------------------------------------------------------------


def _postgres(store: PostgresStore, dest: str, *, overwrite: bool) -> Backup:
    """A base backup with pg_basebackup into a temporary folder beside `dest`, checked with pg_verifybackup,
    then renamed onto `dest`; a backup that does not check clean is removed. The counts are the live
    database's, read as the backup begins."""
    _folder_exists(dest)
    if os.path.lexists(dest) and not (os.path.isdir(dest) and not os.path.islink(dest) and not os.listdir(dest)):
        why = "overwrite replaces a SQLite backup only; remove it first" if overwrite else "name a new folder"
        raise InvalidInput(f"{dest} exists: a base backup goes into a new (or empty) folder: {why}", field="dest")
    basebackup = _pg_tool("pg_basebackup", store.path)
    verifybackup = _pg_tool("pg_verifybackup", store.path, beside=basebackup)
    conninfo, env = _connection(store)
    started = time.monotonic()
    counts = store.read(lambda: store.one(_COUNTS)) or (0, 0)
    temporary = _beside(dest)
    label = f"claimstate backup {datetime.now(UTC).isoformat(timespec='seconds')}"
    try:
        # No time limit: a base backup's length is the cluster's size over the network's and disks' speed,
        # hours for a cluster of terabytes, and any fixed bound would kill a good backup of a large one (the
        # size of the whole cluster, which would give a bound, is not readable by every role that may back up).
        # A server that goes away ends it with a connection error (one that vanishes without a word is noticed
        # by TCP's retries, in minutes: -X stream reports progress every 10 s); an operator stops it (Ctrl-C,
        # `timeout`: _run kills it on any exception), and the temporary folder goes either way.
        made = _run([basebackup, "-d", conninfo, "-D", temporary, "-X", "stream", "-c", "fast", "-l", label], env)
        if made.returncode:
            said = masked(" ".join(made.stderr.split()))
            raise StorageError(
                f"pg_basebackup of {store.path} failed (exit {made.returncode}): {said or 'it said nothing'}",
                path=store.path,
            )
        size = sum(path.stat().st_size for path in Path(temporary).rglob("*") if path.is_file())
        checked = _run([verifybackup, temporary], env, timeout=_VERIFY_FLOOR + size / _VERIFY_SLOWEST)
        problems = () if checked.returncode == 0 else _verify_problems(checked)
        if not problems:
            os.rename(temporary, dest)
            _sync(os.path.dirname(temporary))
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    seconds = time.monotonic() - started
    return Backup(dest, "postgres", store.path, int(counts[0]), int(counts[1]), size, seconds, problems)


def _verify_problems(checked: subprocess.CompletedProcess[str]) -> tuple[Mismatch, ...]:
    """What pg_verifybackup reported, a problem per line (its exit code when it said nothing)."""
    lines = [" ".join(line.split()) for line in (checked.stderr + checked.stdout).splitlines() if line.strip()]
    lines = lines or [f"it exited {checked.returncode}"]
    return tuple(Mismatch(None, f"pg_verifybackup: {masked(line)}", kind="integrity") for line in lines)


def _run(argv: list[str], env: dict[str, str], *, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """Run one of PostgreSQL's programs, its output kept; past `timeout` seconds it is killed (a StorageError),
    as on any exception here (a Ctrl-C, say).

    It stays in this process's group, so a signal to the group (Ctrl-C, `timeout`, a service manager's stop)
    reaches it too. Killed, its output is not read to the end: a program it started (pg_verifybackup runs
    pg_waldump) may still hold it open, and ends by itself once its files are gone."""
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
    except OSError as error:
        raise StorageError(f"cannot run {argv[0]}: {error.strerror}", path=masked(argv[0])) from error
    with proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except BaseException as error:
            proc.kill()
            proc.wait()
            if not isinstance(error, subprocess.TimeoutExpired):
                raise
            name = os.path.basename(argv[0])
            raise StorageError(
                f"{name} did not finish within {timeout:,.0f} s and was stopped; nothing was written",
                path=masked(argv[0]),
            ) from None
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def _pg_tool(name: str, shown: str, *, beside: str | None = None) -> str:
    """The full path of one of PostgreSQL's client programs: beside `beside` (so the two programs used
    together are of one version), on PATH, or the newest in Debian's /usr/lib/postgresql/VERSION/bin."""
    if beside is not None and (Path(beside).parent / name).is_file():
        return str(Path(beside).parent / name)
    found = shutil.which(name)
    if found is not None:
        return found
    installed = sorted(_DEBIAN_PG.glob(f"*/bin/{name}"), key=lambda p: _version(p.parent.parent.name))
    if installed:
        return str(installed[-1])
    raise StorageError(
        f"PostgreSQL's {name} is not installed (on PATH or in /usr/lib/postgresql/VERSION/bin): install the"
        f" {_PG_PACKAGE} package of the server's version or newer (apt-get install {_PG_PACKAGE})",
        path=shown,
    )


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else -1 for part in text.split("."))


def _connection(store: PostgresStore) -> tuple[str, dict[str, str]]:
    """The libpq connection string the store connects with, without its password, and the environment to run
    PostgreSQL's programs in, with the password as PGPASSWORD: a command line shows in every process list."""
    from psycopg import conninfo as libpq  # noqa: PLC0415  (psycopg is an optional extra)

    params = store.connection_parameters()
    env = dict(os.environ)
    password = params.pop("password", None)
    if password is not None:
        env["PGPASSWORD"] = password
    return libpq.make_conninfo("", **params), env
