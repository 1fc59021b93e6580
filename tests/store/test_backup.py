"""Online backups (`ClaimService.backup`, `claimstate backup`): a clean copy equal to its source, refusals that
change nothing, a damaged source's copy reported and not kept, the command's JSON, line and exit codes, the
async twin, and on PostgreSQL how pg_basebackup and pg_verifybackup are run (fake programs on PATH: the
real ones run in tests/clusters/test_restore_drill.py).

The copy taken while other processes write is tests/processes/test_backup_storm.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import signal
import sqlite3
import stat
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from helpers import EVIDENCE, T0, filing

from claimstate import AsyncClaimService, Backup, ClaimService, InvalidInput, StorageError
from claimstate._store import backups
from claimstate._store.sqlite import _PARTIAL_INDEXES_AND_TRIGGERS
from claimstate.cli import cli

KEY = b"the deploying service's secret"


def _fill(service: ClaimService) -> None:
    """Three claims: c-1 in mediation with an offer made and rejected, c-2 filed, c-3 withdrawn; and a
    consumer that has read two events."""
    service.file_claim(filing(order_id="o-1"), claim_id="c-1", now=T0)
    service.fire("c-1", "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0 + timedelta(hours=1))
    offer = {"kind": "partial_refund", "amount": "10.00"}
    service.fire("c-1", "make_offer", "supplier:acme", offer, now=T0 + timedelta(hours=2))
    service.fire("c-1", "reject_offer", "buyer:alice", now=T0 + timedelta(hours=3))
    service.file_claim(filing(order_id="o-2"), claim_id="c-2", now=T0)
    service.file_claim(filing(order_id="o-3"), claim_id="c-3", now=T0)
    service.fire("c-3", "withdraw", "buyer:alice", now=T0 + timedelta(hours=3))
    events = service.events("billing", limit=2)
    service.ack("billing", events[-1])


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "claims.db"
    with ClaimService(path) as service:
        _fill(service)
    return path


def _contents(service: ClaimService) -> dict[str, Any]:
    """Everything a service reads of a database: its claims, every history, the feed and the consumers' progress."""
    claims = service.list_claims(limit=1000)
    return {
        "claims": claims,
        "histories": {c.id: service.history(c.id) for c in claims},
        "feed": service.feed(limit=1000),
        "billing": service.feed("billing", limit=1000),
        "definitions": service.definitions(),
    }


def _files(folder: Path) -> dict[str, str]:
    """Every file in `folder` with the sha256 of its bytes (so a new or changed file shows)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def _damage(path: Path) -> None:
    """Edit c-1's second history row by hand, as someone with write access to the file would: the
    append-only trigger dropped for the edit, then put back as claimstate made it."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("DROP TRIGGER transitions_no_update")
        conn.execute("UPDATE transitions SET actor = 'buyer:mallory' WHERE claim_id = 'c-1' AND seq = 2")
        conn.execute(_PARTIAL_INDEXES_AND_TRIGGERS["transitions_no_update"])
    finally:
        conn.close()


# --- SQLite: the library ----------------------------------------------------------------------------------


def test_a_backup_verifies_clean_and_holds_what_the_source_holds(db: Path, tmp_path: Path) -> None:
    """The copy is checked clean, counted, and reads exactly as the source does (claims, histories, feed,
    each consumer's progress, the definitions); only DEST is left beside the source's own files."""
    dest = tmp_path / "backup.db"
    before = set(os.listdir(tmp_path))
    with ClaimService(db) as service:
        made = service.backup(dest)
        source = _contents(service)
    assert isinstance(made, Backup)
    assert (made.where, made.kind, made.source, made.claims, made.transitions) == (str(dest), "sqlite", str(db), 3, 7)
    assert made.problems == ()
    assert made.clean
    assert made.bytes == dest.stat().st_size > 0
    assert made.seconds > 0
    assert set(os.listdir(tmp_path)) - before <= {"backup.db", "claims.db-wal", "claims.db-shm"}
    with ClaimService(dest, read_only=True) as copy:
        assert copy.verify() == []
        assert _contents(copy) == source
    assert made.to_dict() == {
        "source": str(db), "where": str(dest), "kind": "sqlite", "claims": 3, "transitions": 7,
        "bytes": made.bytes, "seconds": round(made.seconds, 3), "clean": True, "problems": [],
    }  # fmt: skip


def test_a_copy_is_verified_with_the_services_history_key(tmp_path: Path) -> None:
    """A service with a history key checks the copy with that key (so clean); read without the key the copy
    says its chain cannot be checked, as its source would."""
    source, dest = tmp_path / "keyed.db", tmp_path / "keyed-backup.db"
    with ClaimService(source, history_key=KEY) as service:
        _fill(service)
        assert service.backup(dest).problems == ()
    with ClaimService(dest, history_key=KEY, read_only=True) as copy:
        assert copy.verify() == []
    with ClaimService(dest, read_only=True) as copy:
        assert [m.kind for m in copy.verify()] == ["chain_key"]


def test_a_read_only_service_backs_up_without_leaving_a_file_beside_the_source(db: Path, tmp_path: Path) -> None:
    """With no writer on the file, a read-only service copies it directly: no -wal or -shm appears beside
    it, and nothing of it changes; the copy, opened writable, takes fires."""
    (tmp_path / "backups").mkdir()
    sources = _files(tmp_path)
    assert not (tmp_path / "claims.db-wal").exists()
    with ClaimService(db, read_only=True) as service:
        made = service.backup(tmp_path / "backups" / "copy.db")
    assert made.clean
    assert made.where == str(tmp_path / "backups" / "copy.db")
    assert _files(tmp_path) == sources
    with ClaimService(made.where) as restored:
        restored.fire("c-2", "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0 + timedelta(hours=5))
        assert restored.verify() == []
    assert sorted(os.listdir(tmp_path / "backups")) == ["copy.db"]  # the last connection took its -wal away


def _everything(folder: Path) -> dict[str, str]:
    """Every file and folder under `folder` (a folder as "folder"), with the sha256 of each file's bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "folder"
        for p in sorted(folder.rglob("*"))
    }


def test_overwrite_replaces_an_older_backup(db: Path, tmp_path: Path) -> None:
    """`overwrite=True` replaces a plain file at DEST with the new, verified copy."""
    dest = tmp_path / "backup.db"
    dest.write_bytes(b"an older backup")
    with ClaimService(db) as service:
        assert service.backup(dest, overwrite=True).clean
    with ClaimService(dest, read_only=True) as copy:
        assert len(copy.list_claims()) == 3
        assert copy.verify() == []


@pytest.mark.parametrize("side", ["-wal", "-shm", "-journal"])
@pytest.mark.parametrize("dest_there", [True, False])
def test_a_dest_with_a_wal_shm_or_journal_beside_it_is_refused(
    db: Path, tmp_path: Path, side: str, dest_there: bool
) -> None:
    """A -wal, -shm or -journal beside DEST (a process has that database open, or left changes in it: SQLite
    would apply a stale -wal, or roll a stale -journal back, into the new copy the first time it is opened)
    is refused, overwrite or not, DEST there or not; nothing changes on disk."""
    if dest_there:
        (tmp_path / "backup.db").write_bytes(b"an older backup")
    (tmp_path / f"backup.db{side}").write_bytes(b"left by a process that died mid-write")
    with ClaimService(db) as service:
        before = _everything(tmp_path)
        for overwrite in (True, False) if dest_there else (False, True):
            expected = "exists: name a new file" if dest_there and not overwrite else f"has a {side} beside it"
            with pytest.raises(InvalidInput, match=expected) as refused:
                service.backup(tmp_path / "backup.db", overwrite=overwrite)
            assert refused.value.field == "dest"
        assert _everything(tmp_path) == before


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_dest_that_is_not_a_plain_file_is_refused_as_such_overwrite_or_not(
    db: Path, tmp_path: Path, overwrite: bool
) -> None:
    """A folder (or a link) at DEST is refused for what it is, before DEST existing is: the message never
    suggests --overwrite, which would not take it either; nothing changes on disk."""
    (tmp_path / "dd").mkdir()
    (tmp_path / "dd" / "inside.db").write_bytes(b"kept")
    (tmp_path / "link.db").symlink_to(tmp_path / "elsewhere.db")
    with ClaimService(db) as service:
        before = _everything(tmp_path)
        for name in ("dd", "link.db"):
            with pytest.raises(InvalidInput, match=rf"{name} exists and is not a plain file") as refused:
                service.backup(tmp_path / name, overwrite=overwrite)
            assert "--overwrite" not in str(refused.value)
            assert refused.value.field == "dest"
        assert _everything(tmp_path) == before


@pytest.mark.parametrize(
    ("dest", "words", "overwrites"),
    [
        ("backup.db", "backup.db exists: name a new file, or overwrite it", (False,)),
        ("no/such/folder/backup.db", "its folder .*no/such/folder does not exist; make it first", (False, True)),
        ("backup.db/inside.db", "its folder .*backup.db is not a folder", (False, True)),
        ("claims.db", "claims.db is the database being backed up", (False, True)),
        ("claims.db-wal", "claims.db-wal is the database being backed up", (False, True)),
        ("", "give the path to back up into", (False,)),
    ],
)
def test_a_refused_backup_names_the_problem_and_changes_nothing(
    db: Path, tmp_path: Path, dest: str, words: str, overwrites: tuple[bool, ...]
) -> None:
    """DEST existing (without overwrite), its folder missing or a file, DEST the database itself or one of its
    files, no DEST: each an InvalidInput of DEST naming it, before anything is written."""
    (tmp_path / "backup.db").write_bytes(b"kept as it is")
    with ClaimService(db) as service:
        before = _everything(tmp_path)
        for overwrite in overwrites:
            with pytest.raises(InvalidInput, match=words) as refused:
                service.backup(str(tmp_path / dest) if dest else "", overwrite=overwrite)
            assert refused.value.field == "dest"
        assert _everything(tmp_path) == before


def test_a_file_read_directly_is_copied_again_when_a_writer_came_meanwhile(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no writer on the file it is copied directly; if its stamp (size, time) changed by the end of the
    copy, a writer came meanwhile and the copy is taken again; a file that never holds still is a
    StorageError, and no temporary file is left."""
    stamps = iter([(1,), (2,), (3,), (3,)])  # the first copy sees a change, the second none
    monkeypatch.setattr(backups, "_file_stamp", lambda _path: next(stamps))
    connects: list[str] = []
    connect = sqlite3.connect
    monkeypatch.setattr(
        backups.sqlite3, "connect", lambda target, **kw: connects.append(target) or connect(target, **kw)
    )
    with ClaimService(db, read_only=True) as service:
        connects.clear()  # the service's own connection aside
        assert service.backup(tmp_path / "backup.db").clean
        readers = [target for target in connects if f"{db}?mode=ro&immutable=1" in target]
        assert len(readers) == 2
        counter = iter(range(1_000))
        monkeypatch.setattr(backups, "_file_stamp", lambda _path: (next(counter),))
        with pytest.raises(StorageError, match="kept changing while it was copied; try again"):
            service.backup(tmp_path / "never.db")
    assert sorted(os.listdir(tmp_path)) == ["backup.db", "claims.db"]


def test_an_in_memory_database_has_no_file_to_back_up(tmp_path: Path) -> None:
    with ClaimService(":memory:") as service:
        service.file_claim(filing())
        with pytest.raises(InvalidInput, match="in-memory database lives in this process alone"):
            service.backup(tmp_path / "backup.db")
    assert list(tmp_path.iterdir()) == []


def test_the_copy_of_a_damaged_database_is_reported_and_not_kept(db: Path, tmp_path: Path) -> None:
    """A history row edited by hand: the copy's verify finds it (the same mismatches as the source's), and
    neither DEST nor a temporary file is left."""
    _damage(db)
    with ClaimService(db) as service:
        found = service.verify()
        made = service.backup(tmp_path / "backup.db")
    assert found
    assert not made.clean
    assert list(made.problems) == found
    assert {m.kind for m in made.problems} >= {"chain"}
    assert (made.claims, made.transitions) == (3, 7)
    assert not (tmp_path / "backup.db").exists()
    assert [name for name in os.listdir(tmp_path) if "backup" in name] == []


def test_a_copy_that_cannot_be_opened_is_a_problem(db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If the copy cannot even be opened (here: it came out empty), that is the problem reported. (The copy
    waits for a lock as long as the service's own connection does: its busy timeout.)"""
    waits: list[float] = []

    def empty(source: str, temporary: str, dest: str, *, timeout: float) -> None:
        waits.append(timeout)
        Path(temporary).write_bytes(b"")

    monkeypatch.setattr(backups, "_snapshot", empty)
    with ClaimService(db, busy_timeout=7.25) as service:
        made = service.backup(tmp_path / "backup.db")
    assert waits == [7.25]
    assert [(m.kind, m.claim_id) for m in made.problems] == [("integrity", None)]
    assert "the copy cannot be opened" in made.problems[0].problem
    assert not (tmp_path / "backup.db").exists()


def test_the_async_twin_backs_up_on_its_worker_thread(db: Path, tmp_path: Path) -> None:
    async def main() -> Backup:
        async with AsyncClaimService(db) as service:
            return await service.backup(tmp_path / "async.db")

    made = asyncio.run(main())
    assert made.clean
    assert (made.claims, made.transitions) == (3, 7)
    with ClaimService(tmp_path / "async.db", read_only=True) as copy:
        assert copy.verify() == []


# --- SQLite: the command ----------------------------------------------------------------------------------


def _run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def test_the_command_prints_one_line_or_json_and_exits_0(db: Path, tmp_path: Path) -> None:
    human = _run("--db", str(db), "backup", str(tmp_path / "one.db"))
    assert human.exit_code == 0, human.output
    line = human.stdout.rstrip("\n")
    assert "\n" not in line
    assert re.fullmatch(rf"{re.escape(str(db))} -> {re.escape(str(tmp_path / 'one.db'))}: 3 claims, 7 transitions,"
                        r" \d+\.\d kB, verified clean", line), line  # fmt: skip
    as_json = _run("--db", str(db), "--json", "backup", str(tmp_path / "two.db"))
    assert as_json.exit_code == 0, as_json.output
    body = json.loads(as_json.stdout)
    assert body == {
        "source": str(db), "where": str(tmp_path / "two.db"), "kind": "sqlite", "claims": 3, "transitions": 7,
        "bytes": (tmp_path / "two.db").stat().st_size, "seconds": body["seconds"], "clean": True, "problems": [],
    }  # fmt: skip
    again = _run("--db", str(db), "backup", str(tmp_path / "two.db"), "--overwrite")
    assert again.exit_code == 0, again.output


def test_the_command_exits_5_when_the_copy_has_problems(db: Path, tmp_path: Path) -> None:
    """A damaged source: the summary says the copy was not kept, each problem follows, one error line on
    stderr, exit 5 (as verify's); with --json one object, its problems listed."""
    _damage(db)
    human = _run("--db", str(db), "backup", str(tmp_path / "backup.db"))
    assert human.exit_code == 5
    first, *rest = human.stdout.splitlines()
    assert first.endswith("problem(s) found: not kept")
    assert any(line.startswith("c-1: ") for line in rest), rest
    assert human.stderr.count("\n") == 1
    assert "nothing was written at" in human.stderr
    as_json = _run("--db", str(db), "--json", "backup", str(tmp_path / "backup.db"))
    assert as_json.exit_code == 5
    body = json.loads(as_json.stdout)
    assert body["clean"] is False
    assert body["problems"] and body["problems"][0]["claim_id"] == "c-1"
    assert not (tmp_path / "backup.db").exists()


def test_the_command_exits_2_on_every_refusal_of_dest_and_5_on_storage(db: Path, tmp_path: Path) -> None:
    """Every refusal of DEST is invalid input: exit 2, one line on stderr naming the problem, and with --json
    the error object, its field dest: DEST existing; a folder (with --overwrite too, which the message never
    offers); a -journal beside it (with --overwrite); its folder missing; the database itself. The database
    missing is storage (5); --now after the name is refused (2). Nothing changes on disk."""
    (tmp_path / "taken.db").write_bytes(b"x")
    (tmp_path / "dd").mkdir()
    (tmp_path / "stale.db").write_bytes(b"an older backup")
    (tmp_path / "stale.db-journal").write_bytes(b"a transaction left half done")
    before = _everything(tmp_path)
    for args, code, words in [
        (["backup", str(tmp_path / "taken.db")], 2, "taken.db exists: name a new file, or overwrite it (--overwrite)"),
        (["backup", str(tmp_path / "dd")], 2, "dd exists and is not a plain file"),
        (["backup", str(tmp_path / "dd"), "--overwrite"], 2, "dd exists and is not a plain file"),
        (["backup", str(tmp_path / "stale.db"), "--overwrite"], 2, "stale.db has a -journal beside it"),
        (["backup", str(tmp_path / "no" / "b.db")], 2, f"its folder {tmp_path / 'no'} does not exist"),
        (["backup", str(db)], 2, "is the database being backed up"),
        (["--db", str(tmp_path / "none.db"), "backup", str(tmp_path / "b.db")], 5, "none.db"),
        (["backup", str(tmp_path / "b.db"), "--now", "2026-03-02T09:00:00+00:00"], 2, "--now"),
    ]:
        for json_flag in ([], ["--json"]):
            result = _run("--db", str(db), *json_flag, *args)
            assert result.exit_code == code, (args, result.output)
            assert result.stderr.count("\n") == 1, result.stderr
            assert result.stderr.startswith("error: ") and words in result.stderr, result.stderr
            if "not a plain file" in words:
                assert "(--overwrite)" not in result.stderr, result.stderr
            if json_flag and code == 2 and "--now" not in args:
                body = json.loads(result.stdout)
                assert (body["error"], body["field"], body["exit_code"]) == ("InvalidInput", "dest", 2)
                assert words in body["message"]
    assert _everything(tmp_path) == before


# --- PostgreSQL: how the programs are run (fake programs; the real ones in the restore drill) --------------


def _fake_tools(folder: Path, *, made: int = 0, checked: int = 0, hang: bool = False) -> Path:
    """pg_basebackup and pg_verifybackup stand-ins in `folder`: each writes its arguments and $PGPASSWORD
    to a file of its name; pg_basebackup makes the -D folder with one file, then exits `made` (saying its
    arguments on stderr when it fails); pg_verifybackup exits `checked`, saying what a failure says, or with
    `hang` waits a minute on a program of its own (as it waits on pg_waldump), holding its output open."""
    folder.mkdir()
    script = {
        "pg_basebackup": (
            'printf "%s\\n" "$@" > "$(dirname "$0")/pg_basebackup.args"\n'
            'printf "%s" "$PGPASSWORD" > "$(dirname "$0")/pg_basebackup.password"\n'
            'while [ "$1" != "-D" ]; do shift; done; mkdir "$2"; echo data > "$2/PG_VERSION"\n'
            f'if [ {made} != 0 ]; then echo "pg_basebackup: error: could not connect ($*)" >&2; exit {made}; fi\n'
        ),
        "pg_verifybackup": (
            'printf "%s\\n" "$@" > "$(dirname "$0")/pg_verifybackup.args"\n'
            + ('sleep 60 & echo $! > "$(dirname "$0")/sleeper.pid"; wait\n' if hang else "")
            + f'if [ {checked} != 0 ]; then echo "pg_verifybackup: error: \\"base/1/1259\\" has size 8 on disk but'
            f' size 16 in the manifest" >&2; exit {checked}; fi\necho "backup successfully verified"\n'
        ),
    }
    for name, body in script.items():
        path = folder / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return folder


def _with_password(url: str) -> str:
    return url.replace("://postgres@", "://postgres:s3cret-word@", 1)


def test_postgres_runs_basebackup_then_verifybackup_with_the_password_kept_off_the_command_line(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pg_basebackup gets the store's connection without the password (that goes as $PGPASSWORD), -X stream
    and a fast checkpoint into a temporary folder, pg_verifybackup checks that folder, and it becomes DEST; the
    counts are the database's as the backup began."""
    tools = _fake_tools(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    with ClaimService(_with_password(postgres_url)) as service:
        _fill(service)
        made = service.backup(tmp_path / "base")
    argv = (tools / "pg_basebackup.args").read_text().splitlines()
    assert "s3cret-word" not in " ".join(argv)
    assert (tools / "pg_basebackup.password").read_text() == "s3cret-word"
    conninfo = argv[argv.index("-d") + 1]
    assert "host=127.0.0.1" in conninfo
    assert "port=5432" in conninfo
    assert argv[argv.index("-X") + 1] == "stream"
    assert argv[argv.index("-c") + 1] == "fast"
    temporary = argv[argv.index("-D") + 1]
    assert Path(temporary).parent == tmp_path
    assert Path(temporary).name.startswith(".base.")
    assert (tools / "pg_verifybackup.args").read_text().splitlines() == [temporary]
    assert (made.kind, made.where, made.problems) == ("postgres", str(tmp_path / "base"), ())
    assert (made.claims, made.transitions) == (3, 7)
    assert "s3cret" not in made.source
    assert made.bytes == 5
    assert sorted(os.listdir(tmp_path)) == ["base", "bin"]
    assert os.listdir(tmp_path / "base") == ["PG_VERSION"]


def test_postgres_a_backup_that_does_not_verify_is_reported_and_removed(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pg_verifybackup's complaint is the backup's problem (kind integrity), and the command exits 5: no DEST
    and no temporary folder is left."""
    tools = _fake_tools(tmp_path / "bin", checked=1)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    ClaimService(postgres_url).close()
    result = _run("--db", postgres_url, "--json", "backup", str(tmp_path / "base"))
    assert result.exit_code == 5, result.output
    body = json.loads(result.stdout)
    assert body["kind"] == "postgres"
    assert [(p["kind"], p["claim_id"]) for p in body["problems"]] == [("integrity", None)]
    assert "has size 8 on disk but size 16 in the manifest" in body["problems"][0]["problem"]
    assert sorted(os.listdir(tmp_path)) == ["bin"]


def test_postgres_a_verifybackup_that_does_not_finish_is_stopped_at_its_bound(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pg_verifybackup runs with a time bound (a floor plus the backup's size at a slow disk's rate): past it,
    it is killed, the backup is a StorageError, and no DEST nor temporary folder is left; the wait ends at the
    bound, not when a program it started, still holding its output open, would have."""
    tools = _fake_tools(tmp_path / "bin", hang=True)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(backups, "_VERIFY_FLOOR", 1.0)
    try:
        with ClaimService(postgres_url) as service:
            started = time.monotonic()
            with pytest.raises(StorageError, match=r"pg_verifybackup did not finish within 1 s and was stopped"):
                service.backup(tmp_path / "base")
            assert time.monotonic() - started < 30  # not the minute its own program holds the output open
    finally:
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
            os.kill(int((tools / "sleeper.pid").read_text()), signal.SIGKILL)
    assert sorted(os.listdir(tmp_path)) == ["bin"]


def test_postgres_a_failed_basebackup_is_a_storage_error_without_the_password(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tools = _fake_tools(tmp_path / "bin", made=1)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    ClaimService(postgres_url).close()
    result = _run("--db", _with_password(postgres_url), "backup", str(tmp_path / "base"))
    assert result.exit_code == 5
    assert "pg_basebackup of postgresql://postgres@127.0.0.1:5432/" in result.stderr
    assert "failed (exit 1): pg_basebackup: error: could not connect" in result.stderr
    assert "s3cret" not in result.output
    assert sorted(os.listdir(tmp_path)) == ["bin"]


def test_postgres_refuses_a_folder_in_use_and_names_the_missing_package(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DEST a folder holding files is refused (a base backup goes into a new or empty one, overwrite or not);
    without PostgreSQL's programs the error names the package to install."""
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "PG_VERSION").write_text("15")
    with ClaimService(postgres_url) as service:
        for overwrite in (False, True):
            with pytest.raises(InvalidInput, match="a base backup goes into a new"):
                service.backup(tmp_path / "base", overwrite=overwrite)
        monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
        monkeypatch.setattr(backups, "_DEBIAN_PG", tmp_path / "nowhere")
        missing = r"pg_basebackup is not installed .* \(apt-get install postgresql-client\)"
        with pytest.raises(StorageError, match=missing):
            service.backup(tmp_path / "new")
    assert not (tmp_path / "new").exists()
