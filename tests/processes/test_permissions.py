"""Files another OS user may not read or write, and files that are no database, through the CLI and the library.

In a folder anyone may write (as /tmp), a command run by a user who may not write the database must be
refused before SQLite opens it: SQLite would otherwise open it read-only and leave a -wal and -shm of that
user's, which the owner then cannot write. The commands run as real processes that drop root to another
user (the interpreter lives where only root may read, so they import claimstate first, then drop).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from claimstate.cli import cli

OWNER = 4242  # the database's owner: an unprivileged uid other than nobody's
MEMBER = 4244  # another user in the database's group
SHARED = 4243  # the group both are in
NOBODY = 65534
NOW = "2026-03-02T09:00:00+00:00"
LATER = "2026-03-02T10:00:00+00:00"
FILE_ARGS = ["--order", "o-1", "--buyer", "alice", "--supplier", "acme", "--amount", "25.00", "--currency", "USD",
             "--reason", "broken", "--resolution", "full_refund", "--now", NOW]  # fmt: skip
_BELONGS = f"it belongs to uid {OWNER}, mode -rw-------"
EVIDENCE = json.dumps({"evidence": [{"kind": "photo", "description": "cracked"}]})
_DROP = """
import json, os, sys
from claimstate import ClaimService, ClaimStateError
from claimstate.cli import main
import sqlite_utils  # claimstate imports it only to create a schema, by then from a folder this user cannot read
uid, _, groups = sys.argv[1].partition(":")
os.setgid(int(uid))
os.setgroups([int(group) for group in groups.split(",") if group])
os.setuid(int(uid))
"""
_CLI = (
    _DROP
    + """
sys.argv = ["claimstate", *sys.argv[2:]]
main()
"""
)
_LIBRARY = (
    _DROP
    + """
opened = {}
for read_only in (False, True):
    try:
        ClaimService(sys.argv[2], read_only=read_only).close()
    except ClaimStateError as error:
        opened[f"read_only={read_only}"] = [type(error).__name__, str(error), error.path]
print(json.dumps(opened))
"""
)
_KILLED = _DROP + "ClaimService(sys.argv[2])\nos._exit(0)\n"  # opened writable, then gone without closing


def _as_user(uid: int, *args: str, code: str = _CLI, groups: tuple[int, ...] = ()) -> subprocess.CompletedProcess[str]:
    """`claimstate ARGS` (or other `code`) run by `uid`, with that number as its group, and `groups` besides."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run a command as another user")
    user = f"{uid}:{','.join(map(str, groups))}"
    return subprocess.run(
        [sys.executable, "-c", code, user, *args], capture_output=True, text=True, cwd="/", timeout=60, check=False
    )


def _owners(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_uid for p in sorted(folder.iterdir())}


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder anyone may write, with the sticky bit (as /tmp), that other users can reach."""
    folder = Path(tempfile.mkdtemp(prefix="claimstate-permissions-"))
    folder.chmod(0o1777)
    try:
        yield folder
    finally:
        folder.chmod(0o700)
        shutil.rmtree(folder)


def _owned_database(folder: Path) -> tuple[str, str]:
    """A database the owner made, holding one claim: its path and the claim's id."""
    db = str(folder / "claims.db")
    made = _as_user(OWNER, "--db", db, "--json", "file", *FILE_ARGS)
    assert made.returncode == 0, made.stderr
    return db, json.loads(made.stdout)["id"]


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single `error:` line a failed command printed, after checking it is all it printed on stderr."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize(
    "command",
    [
        ["init"],
        ["tick", "--now", "2026-04-01T00:00:00+00:00"],
        ["fire", "CLAIM", "submit_evidence", "--actor", "buyer:alice", "--data", EVIDENCE, "--now", LATER],
        ["events", "--consumer", "payments", "--ack"],
    ],
    ids=["init", "tick", "fire", "events-ack"],
)
def test_a_writer_refused_for_permissions_leaves_no_file_and_the_owner_writes_on(
    shared_folder: Path, command: list[str]
) -> None:
    """In a world-writable folder, a command that writes, run by a user who may not write the database, exits 5
    with one line naming the file and the permission it lacks; it leaves no -wal or -shm, and the owner's
    next write works."""
    db, claim = _owned_database(shared_folder)
    assert _owners(shared_folder) == {"claims.db": OWNER}
    refused = _as_user(NOBODY, "--db", db, *[claim if part == "CLAIM" else part for part in command])
    assert refused.returncode == 5, refused.stderr
    line = _one_error_line(refused)
    assert db in line
    assert "cannot write to it" in line
    assert f"uid {NOBODY} may not write it" in line
    assert _owners(shared_folder) == {"claims.db": OWNER}
    fired = _as_user(OWNER, "--db", db, "fire", claim, "submit_evidence", "--actor", "buyer:alice", "--data", EVIDENCE,
                     "--now", LATER)  # fmt: skip
    assert fired.returncode == 0, fired.stderr


def test_a_database_the_user_cannot_read_is_one_clear_error(shared_folder: Path) -> None:
    """A database only its owner may read, opened by another user, writable or read_only, is a StorageError
    naming the file and the permission, never a PermissionError; no file appears."""
    db, _claim = _owned_database(shared_folder)
    Path(db).chmod(0o600)
    opened = _as_user(NOBODY, db, code=_LIBRARY)
    assert opened.returncode == 0, opened.stderr
    said = f"cannot read {db}: permission denied (uid {NOBODY} may not read it: {_BELONGS})"
    assert json.loads(opened.stdout) == {
        "read_only=False": ["StorageError", said, db],
        "read_only=True": ["StorageError", said, db],
    }
    assert _owners(shared_folder) == {"claims.db": OWNER}


@pytest.mark.parametrize("setgid", [False, True], ids=["plain-folder", "setgid-folder"])
def test_a_group_member_killed_leaves_files_the_owner_writes_only_in_a_setgid_folder(
    shared_folder: Path, setgid: bool
) -> None:
    """A database its group may write (0660), opened by another member whose process is then killed: its -wal
    and -shm stay, with the database's mode. In a folder whose setgid bit gives new files its group they
    belong to that group, and the owner writes on; elsewhere they get the member's own group, and the owner's
    write is refused with one line saying whose they are."""
    if setgid:
        os.chown(shared_folder, 0, SHARED)
        shared_folder.chmod(0o3777)
    db, claim = _owned_database(shared_folder)
    os.chown(db, OWNER, SHARED)
    Path(db).chmod(0o660)
    killed = _as_user(MEMBER, db, code=_KILLED, groups=(SHARED,))
    assert killed.returncode == 0, killed.stderr
    left = {p.name: (p.stat().st_uid, p.stat().st_gid, p.stat().st_mode & 0o777) for p in shared_folder.iterdir()}
    group = SHARED if setgid else MEMBER
    assert left == {"claims.db": (OWNER, SHARED, 0o660), "claims.db-wal": (MEMBER, group, 0o660),
                    "claims.db-shm": (MEMBER, group, 0o660)}  # fmt: skip
    fired = _as_user(OWNER, "--db", db, "fire", claim, "submit_evidence", "--actor", "buyer:alice", "--data", EVIDENCE,
                     "--now", LATER, groups=(SHARED,))  # fmt: skip
    if setgid:
        assert fired.returncode == 0, fired.stderr
    else:
        assert fired.returncode == 5, fired.stderr
        assert f"its -wal file belongs to another user (uid {MEMBER})" in _one_error_line(fired)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("command", [["list"], ["verify"], ["show", "x"], ["history", "x"], ["tick"], ["init"]])
def test_random_bytes_after_a_sqlite_header_are_one_clear_error(tmp_path: Path, command: list[str], seed: int) -> None:
    """A file holding SQLite's header and then random bytes is refused, by reading and by writing commands, with
    one line saying it is not a claimstate database or is damaged (exit 5); it is left byte for byte, alone."""
    db = tmp_path / "claims.db"
    content = b"SQLite format 3\x00" + random.Random(seed).randbytes(4096 * (1 + seed))
    db.write_bytes(content)
    result = CliRunner().invoke(cli, ["--db", str(db), *command])
    assert result.exit_code == 5, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.stderr.splitlines() == [
        f"error: {db} is not a claimstate database, or is damaged (SQLite says: file is not a database)"
    ]
    assert db.read_bytes() == content
    assert [p.name for p in tmp_path.iterdir()] == ["claims.db"]


@pytest.mark.parametrize("command", [["list"], ["init"], ["migrate-store", "DB", "COPY"]], ids=["list", "init", "copy"])
def test_the_cli_names_a_database_the_user_cannot_read(shared_folder: Path, command: list[str]) -> None:
    """The command line leaves an unreadable database to the store, which names the file and the permission
    (exit 5), rather than click's own usage error; no file appears."""
    db, _claim = _owned_database(shared_folder)
    Path(db).chmod(0o600)
    copy = str(shared_folder / "copy.db")
    args = [{"DB": db, "COPY": copy}.get(part, part) for part in command]
    refused = _as_user(NOBODY, *(args if command[0] == "migrate-store" else ["--db", db, *args]))
    assert refused.returncode == 5, refused.stderr
    assert f"cannot read {db}: permission denied" in _one_error_line(refused)
    assert _owners(shared_folder) == {"claims.db": OWNER}
