"""Throw-away PostgreSQL clusters for the replication, failover and restore tests: made with Debian's
PostgreSQL tools (initdb, pg_ctl, pg_basebackup) in a folder of the test's own, on free local ports, and
removed after.

A primary and, on asking, a synchronous standby streaming from it (`synchronous_standby_names`), so a
COMMIT returns only once the standby has the transaction on disk. The primary archives its WAL to a folder
beside it, for the point-in-time restore drill. The servers run as the `postgres` user when the tests run
as root (PostgreSQL refuses to run as root). Nothing here is claimstate's: it is what an operator does.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

_STARTUP = 60.0  # seconds a server may take to start, or a standby to catch up, on a loaded machine


def bin_dir() -> Path | None:
    """The newest installed PostgreSQL's programs (Debian keeps them off PATH), or None."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def tool(name: str) -> str:
    """The full path of one of PostgreSQL's programs; the test is skipped (failed, where CI requires
    PostgreSQL) when they are not installed."""
    folder = bin_dir()
    if folder is None or not (folder / name).exists():
        if os.environ.get("CLAIMSTATE_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL's {name} is not installed (apt-get install postgresql)")
        pytest.skip(f"PostgreSQL's {name} is not installed")
    return str(folder / name)


def _owner() -> pwd.struct_passwd | None:
    """The user the servers run as: postgres when we are root, else ourselves (None)."""
    return pwd.getpwnam("postgres") if os.geteuid() == 0 else None


def run(*argv: str, check: bool = True, timeout: float = _STARTUP) -> subprocess.CompletedProcess[str]:
    """Run one of PostgreSQL's programs as the servers' user; its output is kept for a failure's message."""
    owner = _owner()
    user = {} if owner is None else {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, **user)  # type: ignore[call-overload]
    if check and done.returncode:
        raise AssertionError(f"{' '.join(argv)} exited {done.returncode}: {done.stdout}{done.stderr}")
    return done  # type: ignore[no-any-return]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """One PostgreSQL server of a throw-away cluster: its data folder, port and log."""

    def __init__(self, folder: Path, name: str) -> None:
        self.name = name
        self.data = folder / name
        self.log = folder / f"{name}.log"
        self.port = free_port()
        self.sockets = folder

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def configure(self, **settings: object) -> None:
        lines = [
            f"{key} = {value!r}" if isinstance(value, str) else f"{key} = {value}" for key, value in settings.items()
        ]
        with (self.data / "postgresql.auto.conf").open("a") as conf:
            conf.write("".join(f"{line}\n" for line in lines))

    def start(self) -> None:
        run(tool("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", str(int(_STARTUP)), "start")

    def stop(self, mode: str = "fast") -> None:
        run(tool("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def pid(self) -> int | None:
        pidfile = self.data / "postmaster.pid"
        with contextlib.suppress(FileNotFoundError, ValueError):
            return int(pidfile.read_text().split()[0])
        return None

    def kill(self) -> None:
        """SIGKILL the postmaster, as a machine that dies would stop it: nothing is flushed or said to
        clients; its backends notice the postmaster gone and exit within moments, dropping their clients."""
        pid = self.pid()
        assert pid is not None, f"{self.name} is not running"
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + _STARTUP
        while self._backends_alive() and time.monotonic() < deadline:
            time.sleep(0.02)

    def _backends_alive(self) -> bool:
        """Whether any process still has this server's data folder as its working folder (its backends)."""
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if Path(os.readlink(entry / "cwd")) == self.data:
                        return True
        return False

    def promote(self) -> None:
        run(tool("pg_ctl"), "-D", str(self.data), "-w", "-t", str(int(_STARTUP)), "promote")

    def sql(self, statement: str, database: str = "postgres") -> str:
        """One statement through psql, its rows as text (|-separated)."""
        done = run(tool("psql"), "-X", "-At", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                   "-d", database, "-c", statement)  # fmt: skip
        return done.stdout.strip()


class Cluster:
    """A primary archiving its WAL, and optionally a synchronous standby streaming from it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.archive = folder / "archive"
        self.primary = Server(folder, "primary")
        self.standby: Server | None = None
        self.others: list[Server] = []  # servers made from a data folder of the test's (a restored backup)

    def start_primary(self) -> Server:
        server = self.primary
        run(tool("initdb"), "-D", str(server.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync",
            "--no-instructions")  # fmt: skip
        self.archive.mkdir()
        _hand_over(self.archive)
        server.configure(
            port=server.port,
            listen_addresses="127.0.0.1",
            unix_socket_directories=str(server.sockets),
            wal_level="replica",
            max_wal_senders=8,
            max_replication_slots=4,
            archive_mode="on",
            archive_command=f"cp %p {self.archive}/%f",
            shared_buffers="32MB",
            max_connections=100,
            wal_sender_timeout="5s",
        )
        server.start()
        return server

    def start_standby(self, *, synchronous: bool = True) -> Server:
        """A hot standby made from a base backup of the primary, streaming from it; with `synchronous`, the
        primary's commits wait for it (`synchronous_commit = on`: flushed to its disk)."""
        standby = self.standby = Server(self.folder, "standby")
        run(tool("pg_basebackup"), "-h", "127.0.0.1", "-p", str(self.primary.port), "-U", "postgres",
            "-D", str(standby.data), "-X", "stream", "-R", "--checkpoint=fast", "--no-sync")  # fmt: skip
        standby.configure(port=standby.port, cluster_name="standby", hot_standby="on", archive_mode="off")
        standby.start()
        if synchronous:
            self.primary.sql("ALTER SYSTEM SET synchronous_standby_names = 'standby'")
            self.primary.sql("SELECT pg_reload_conf()")
        wanted = "sync" if synchronous else "async"
        deadline = time.monotonic() + _STARTUP
        while (
            self.primary.sql("SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby'") != wanted
        ):
            assert time.monotonic() < deadline, f"the standby never became {wanted}: {standby.log.read_text()}"
            time.sleep(0.05)
        return standby

    def both_url(self, database: str = "postgres", **params: object) -> str:
        """A multi-host URL naming the primary then the standby, asking for the one that takes writes."""
        assert self.standby is not None
        hosts = f"127.0.0.1:{self.primary.port},127.0.0.1:{self.standby.port}"
        query = "&".join(f"{key}={value}" for key, value in {"target_session_attrs": "read-write", **params}.items())
        return f"postgresql://postgres@{hosts}/{database}?{query}"

    def server_from(self, data: Path, name: str) -> Server:
        """A server on the data folder `data` (a copy of a base backup, say): moved into the cluster's folder as
        `name` (so it goes with it), handed to the servers' user with mode 0700, given a free port, and
        stopped with the others. Not started: configure it first."""
        server = Server(self.folder, name)
        shutil.move(data, server.data)
        _hand_over_tree(server.data)
        server.data.chmod(0o700)
        server.configure(port=server.port)
        self.others.append(server)
        return server

    def stop(self) -> None:
        for server in (*self.others, self.standby, self.primary):
            if server is not None and server.pid() is not None:
                server.stop("immediate")


def _hand_over(path: Path) -> None:
    owner = _owner()
    if owner is not None:
        os.chown(path, owner.pw_uid, owner.pw_gid)


def _hand_over_tree(path: Path) -> None:
    """`_hand_over` of `path` and everything in it (what PostgreSQL's programs run as root wrote)."""
    _hand_over(path)
    for folder, folders, files in os.walk(path):
        for name in (*folders, *files):
            _hand_over(Path(folder) / name)


@contextlib.contextmanager
def cluster(*, standby: bool = True, synchronous: bool = True) -> Iterator[Cluster]:
    """A running primary (and standby), removed with its folder afterwards, whatever happened."""
    tool("initdb")
    folder = Path(tempfile.mkdtemp(prefix="claimstate-cluster-"))
    _hand_over(folder)
    made = Cluster(folder)
    try:
        made.start_primary()
        if standby:
            made.start_standby(synchronous=synchronous)
        yield made
    finally:
        made.stop()
        shutil.rmtree(folder, ignore_errors=True)
