"""Durability of the SQLite store: processes at once, SIGKILL mid-write, bad files, atomicity and batches.

Child processes run tests/processes/_durability_child.py. Every wait on a child is bounded by a deadline, and no
sleep decides an outcome: children print each acknowledged transition, and the parent checks the file.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils
from helpers import EVIDENCE, ChildLines, filing, pump

from claimstate import (
    ClaimNotFound,
    ClaimService,
    ConcurrentModification,
    InvalidInput,
    StorageError,
    TransitionRefused,
)
from claimstate._store.sqlite import APPLICATION_ID, _schema_v1

pytestmark = pytest.mark.slow

CHILD = str(Path(__file__).with_name("_durability_child.py"))
OFFER = {"kind": "partial_refund", "amount": "10.00"}
Row = tuple[str, int, str]  # (claim id, seq, trigger): one transition as acknowledged or stored


# --- helpers -------------------------------------------------------------------------------------------


def _spawn(mode: str, args: dict[str, Any], stderr: Path, **popen: Any) -> subprocess.Popen[bytes]:
    with stderr.open("wb") as err:
        return subprocess.Popen(
            [sys.executable, CHILD, mode, json.dumps(args)], stdout=subprocess.PIPE, stderr=err, **popen
        )


class _Out(ChildLines):
    """A child's stdout, with the rows it acknowledged."""

    def acks(self) -> list[Row]:
        return [(c, s, t) for c, s, t in (line["ack"] for line in self.lines if "ack" in line)]


def _reap(proc: subprocess.Popen[bytes]) -> None:
    """Make sure a child is gone, whatever happened in the test."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)
    for stream in (proc.stdout, proc.stdin):
        if stream is not None:
            stream.close()


def _released(
    procs: list[subprocess.Popen[bytes]], rounds: int, seconds: float, ready: Callable[[list[_Out], int], bool]
) -> tuple[list[_Out], list[int]]:
    """Release the processes together `rounds` times (each time once `ready(outs, round)`, by a "go" line on
    their stdin), then collect their output and exit codes; none outlives `seconds` or this call."""
    try:
        outs = [_Out(p) for p in procs]
        deadline = time.monotonic() + seconds
        for number in range(rounds):
            pump(outs, deadline, lambda n=number: ready(outs, n))
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.write(b"go\n")
                proc.stdin.flush()
        pump(outs, deadline, lambda: False)
        codes = [p.wait(timeout=max(deadline - time.monotonic(), 1)) for p in procs]
    finally:
        for proc in procs:
            _reap(proc)
    return outs, codes


def _rows(service: ClaimService) -> set[Row]:
    return {(r.claim_id, r.seq, r.trigger) for c in service.list_claims(limit=100_000) for r in service.history(c.id)}


def _in_mediation(service: ClaimService, count: int, acks: set[Row], prefix: str = "o") -> list[str]:
    """`count` claims on orders of their own, each past its evidence step; their transitions go to `acks`."""
    ids = []
    for n in range(count):
        filed = service.file_claim(filing(order_id=f"{prefix}-{n}"))
        fired = service.fire(filed.claim.id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE})
        acks |= {(r.claim_id, r.seq, r.trigger) for r in (filed.record, fired.record)}
        ids.append(filed.claim.id)
    return ids


def _files(directory: Path) -> dict[str, str]:
    """Every file in `directory` (so a new -wal, -shm or -journal shows) with the sha256 of its bytes."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir()) if p.is_file()}


def _checkpoint(db: Path) -> None:
    """Move the WAL into the main file and truncate it, with a connection of our own."""
    with sqlite3.connect(db, isolation_level=None) as con:
        busy, _log, _done = con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    con.close()
    assert busy == 0


def _database_bytes(db: Path) -> tuple[bytes, bytes]:
    wal = db.with_name(db.name + "-wal")
    return db.read_bytes(), wal.read_bytes() if wal.exists() else b""


def _seqs_are_whole(service: ClaimService, claim_ids: Iterable[str]) -> None:
    for claim_id in claim_ids:
        seqs = [r.seq for r in service.history(claim_id)]
        assert seqs == list(range(1, len(seqs) + 1)), claim_id
        assert service.get(claim_id).version == len(seqs), claim_id


# --- 1. several processes at once ------------------------------------------------------------------------


def test_processes_firing_at_once_keep_every_acknowledged_transition_once(tmp_path: Path) -> None:
    """Four processes firing on one file at once: each acknowledged transition is stored once, seqs run 1..n."""
    db = tmp_path / "claims.db"
    workers, steps = 4, 40
    acks: set[Row] = set()
    with ClaimService(db) as service:
        ids = _in_mediation(service, 2 * workers + 2, acks)
    owned = [ids[2 * w : 2 * w + 2] for w in range(workers)]
    shared, offers = ids[-2], ids[-1]
    procs = [
        _spawn(
            "contend",
            {
                "db": str(db),
                "worker": w,
                "owned": owned[w],
                "shared": shared,
                "offers": offers,
                "iterations": steps,
            },
            tmp_path / f"stderr-{w}",
            stdin=subprocess.PIPE,
        )
        for w in range(workers)
    ]
    outs, codes = _released(procs, 1, 25, lambda outs, _round: all(o.lines for o in outs))
    assert [o.lines[0] for o in outs] == [{"ready": w} for w in range(workers)]
    errors = [(tmp_path / f"stderr-{w}").read_text() for w in range(workers)]
    assert codes == [0] * workers, errors

    acked = [row for o in outs for row in o.acks()]
    assert len(acked) == len(set(acked)), "two processes were acknowledged the same seq of a claim"
    for out in outs:  # an optimistic fire is applied exactly at the version it read
        assert all(line["ack"][1] == line["expected"] + 1 for line in out.lines if "expected" in line)
    done = [o.lines[-1] for o in outs]
    assert [d["done"] for d in done] == list(range(workers))
    offer_acks = [row for row in acked if row[0] == offers]
    assert len(offer_acks) + sum(d["refused"] for d in done) == workers * steps

    with ClaimService(db) as service:
        assert _rows(service) == acks | set(acked)  # every acknowledged fire is there, and nothing else
        _seqs_are_whole(service, ids)
        assert service.get(shared).version == 2 + 2 * workers * steps
        offer_triggers = [r.trigger for r in service.history(offers)][2:]
        assert offer_triggers == ["make_offer", "reject_offer"] * (len(offer_triggers) // 2) + (
            ["make_offer"] if len(offer_triggers) % 2 else []
        )
        assert service.verify() == []
    # the processes really overlapped: the shared claim's history switches between workers many times
    writers = [w for _seq, w in sorted((r[1], w) for w, o in enumerate(outs) for r in o.acks() if r[0] == shared)]
    assert sum(a != b for a, b in itertools.pairwise(writers)) > 3


def _schema_1(path: Path) -> None:
    """An empty claimstate database as schema version 1 wrote it (before the hash chain)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    _schema_v1(sqlite_utils.Database(conn))
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 1")
    conn.close()


def test_processes_opening_one_new_database_at_once_all_succeed(tmp_path: Path) -> None:
    """Eight processes released at once open one database, 15 times over: not there yet (each builds one, the
    first to link it into place wins), an empty file (set up in place under the write lock) or schema 1
    (migrated under it). Every open succeeds, and each database ends with all eight filings, verified clean."""
    workers, kinds = 8, ["new", "empty", "schema 1"] * 5
    paths = [tmp_path / f"round-{n}.db" for n in range(len(kinds))]
    for path, kind in zip(paths, kinds, strict=True):
        if kind == "empty":
            path.touch()
        elif kind == "schema 1":
            _schema_1(path)
    args = {"paths": [str(p) for p in paths]}
    procs = [
        _spawn("first_open", {**args, "worker": w}, tmp_path / f"stderr-{w}", stdin=subprocess.PIPE)
        for w in range(workers)
    ]
    ready = lambda outs, n: all({"ready": n} in o.lines for o in outs)  # noqa: E731
    outs, codes = _released(procs, len(paths), 60, ready)
    assert codes == [0] * workers, [(tmp_path / f"stderr-{w}").read_text() for w in range(workers)]
    failed = [(kinds[line["round"]], line["error"]) for o in outs for line in o.lines if line.get("error")]
    assert failed == []
    for path in paths:
        with ClaimService(path) as service:
            assert sorted(c.order_id for c in service.list_claims()) == [f"o-{w}" for w in range(workers)]
            assert service.verify() == []
    leftovers = [p.name for p in tmp_path.iterdir() if p not in paths and not p.name.startswith("stderr-")]
    assert leftovers == []  # no temporary file of a creation that lost the race


# --- 2. SIGKILL in the middle of a stream of fires --------------------------------------------------------


def test_sigkill_mid_stream_three_times_loses_no_acknowledged_transition(tmp_path: Path) -> None:
    """A writer SIGKILLed mid-stream, three rounds on one file: it reopens, verifies, and keeps every ack."""
    db = tmp_path / "claims.db"
    acked: set[Row] = set()
    with ClaimService(db) as service:
        _in_mediation(service, 6, acked, prefix="setup")
    unacked: set[Row] = set()
    # round 2 commits with fsync (FULL), which widens the window in which a kill lands after a commit
    for round_no, (threshold, synchronous) in enumerate(((50, "NORMAL"), (90, "FULL"), (140, "NORMAL")), start=1):
        args = {"db": str(db), "round": round_no, "seed": round_no, "synchronous": synchronous}
        proc = _spawn("stream", args, tmp_path / f"stderr-{round_no}")
        try:
            out = _Out(proc)
            deadline = time.monotonic() + 20
            pump([out], deadline, lambda out=out, threshold=threshold: len(out.acks()) >= threshold)
            assert proc.poll() is None, (tmp_path / f"stderr-{round_no}").read_text()
            os.kill(proc.pid, signal.SIGKILL)
            pump([out], deadline, lambda: False)  # lines written before the kill are acknowledged too
            assert proc.wait(timeout=10) == -signal.SIGKILL
        finally:
            _reap(proc)
        round_acks = set(out.acks())
        assert len(round_acks) >= threshold
        acked |= round_acks
        with ClaimService(db) as service:  # a new service on the file the killed process left
            assert service.verify() == []
            rows = _rows(service)
            assert acked - rows == set(), "acknowledged transitions are missing after SIGKILL"
            # at most the one unit in flight at the kill was applied unacknowledged: one fire or one batch of two
            new_unacked = rows - acked - unacked
            assert len(new_unacked) <= 2, new_unacked
            unacked |= new_unacked
            claims = service.list_claims(limit=100_000)
            _seqs_are_whole(service, (c.id for c in claims))
            # the stream's batches make and reject an offer together: no claim is left with half a batch
            assert [c.id for c in claims if c.open_offer is not None] == []


# --- 3. bad files ------------------------------------------------------------------------------------------


def _refused_open(path: Path, match: str) -> StorageError:
    """Opening `path` raises StorageError matching `match`, and no file in its folder changed or appeared."""
    before = _files(path.parent)
    with pytest.raises(StorageError, match=match) as error:
        ClaimService(path)
    assert _files(path.parent) == before
    assert error.value.path == str(path)
    return error.value


def test_a_text_file_is_refused_unchanged(tmp_path: Path) -> None:
    """A text file that is not SQLite is refused as not a claimstate database, and left byte for byte as it was."""
    path = tmp_path / "notes.txt"
    path.write_text("shopping list\n- milk\n- eggs\n" * 100)
    error = _refused_open(path, "not a claimstate database")
    assert "not a SQLite file" in str(error)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # no -wal or -shm appeared


def test_another_applications_sqlite_file_is_refused_unchanged(tmp_path: Path) -> None:
    """A SQLite file of another application is refused (it holds other tables), and left byte for byte as it was."""
    path = tmp_path / "people.db"
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT)")
        con.execute("INSERT INTO people (name) VALUES ('Ada'), ('Grace')")
    con.close()
    _refused_open(path, "not a claimstate database .*holds other tables")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["people.db"]
    with sqlite3.connect(path) as con:
        assert con.execute("SELECT name FROM people ORDER BY id").fetchall() == [("Ada",), ("Grace",)]
    con.close()


def test_a_sqlite_file_with_garbage_after_the_header_is_refused_unchanged(tmp_path: Path) -> None:
    """A file with the SQLite header but garbage after it is refused with SQLite's words, and left as it was."""
    path = tmp_path / "damaged.db"
    path.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 16)
    _refused_open(path, "not a claimstate database")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["damaged.db"]


def test_a_newer_schema_version_is_refused_unchanged(tmp_path: Path) -> None:
    """A claimstate file whose user_version is newer than the code is refused (upgrade), and left as it was."""
    path = tmp_path / "claims.db"
    with ClaimService(path) as service:
        claim_id = service.file_claim(filing()).claim.id
    assert sorted(p.name for p in tmp_path.iterdir()) == ["claims.db"]  # closing folded the WAL in
    con = sqlite3.connect(path)
    con.execute("PRAGMA user_version = 99")
    con.close()
    error = _refused_open(path, "schema version 99, newer than this claimstate knows")
    assert "upgrade claimstate" in str(error)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["claims.db"]
    con = sqlite3.connect(path)
    assert con.execute("SELECT count(*) FROM claims WHERE id = ?", (claim_id,)).fetchone() == (1,)
    con.close()


def _as_another_user(tmp_path: Path, mode: str, args: dict[str, Any]) -> Any:
    """Run a child mode that drops root to another user first; its one line of output, decoded."""
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to another user (a non-root user may still own the file)")
    proc = _spawn(mode, args, tmp_path / "stderr", cwd="/")
    try:
        stdout, _ = proc.communicate(timeout=30)
    finally:
        _reap(proc)
    stderr = (tmp_path / "stderr").read_text()
    if proc.returncode != 0 and "PermissionError" in stderr and "os.set" in stderr:
        pytest.skip(f"cannot drop privileges with os.setuid here: {stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0, stderr
    return json.loads(stdout)


def _owners(folder: Path) -> dict[str, int]:
    """Every file in `folder` with the uid that owns it."""
    return {p.name: p.stat().st_uid for p in sorted(folder.iterdir())}


@pytest.fixture
def shared_folder() -> Iterable[Path]:
    """A folder the unprivileged children can reach (pytest's tmp_path sits in a root-only one)."""
    folder = Path(tempfile.mkdtemp(prefix="claimstate-users-"))
    try:
        yield folder
    finally:
        folder.chmod(0o700)
        shutil.rmtree(folder)


def test_a_read_only_file_is_refused_unchanged_and_still_read(tmp_path: Path, shared_folder: Path) -> None:
    """A read-only file in a read-only folder, opened by an unprivileged user, is refused as read-only for a
    write; opened read_only it reads in full. Not a byte changes, and no -wal or -shm appears."""
    path = shared_folder / "claims.db"
    with ClaimService(path) as service:
        claim_id = _in_mediation(service, 1, set())[0]
    path.chmod(0o444)
    shared_folder.chmod(0o555)
    before = _files(shared_folder)
    report = _as_another_user(tmp_path, "readonly", {"db": str(path), "claim": claim_id})
    assert report["uid"] == 65534
    assert report["error"] == "StorageError"
    assert "is read-only: claimstate cannot write to it" in report["message"]
    read = _as_another_user(tmp_path, "reader", {"db": str(path), "claim": claim_id})
    assert (read["version"], read["history"], read["listed"], read["verify"]) == (2, 2, [claim_id], [])
    assert _files(shared_folder) == before


OWNER = 4242  # the database's owner in the two-user test: an unprivileged uid other than nobody's


def test_another_users_reads_never_lock_the_owner_out(tmp_path: Path, shared_folder: Path) -> None:
    """In a folder anyone may write (as /tmp), nobody reads everything through read_only=True while the owner's
    service is closed (no -wal), and while it is open with its last fire only in the -wal; no file appears,
    and the owner writes on. A writable service opened by nobody is refused; another program's plain open is
    what leaves a -wal and -shm the owner cannot write, and the owner's refusal then says whose they are."""
    shared_folder.chmod(0o777)
    db = str(shared_folder / "claims.db")
    claim = _as_another_user(tmp_path, "owner", {"uid": OWNER, "db": db, "action": "create"})["claim"]
    closed = _owners(shared_folder)
    assert closed == {"claims.db": OWNER}
    read = _as_another_user(tmp_path, "reader", {"db": db, "claim": claim})
    assert (read["version"], read["history"], read["listed"], read["iterated"]) == (2, 2, [claim], [claim])
    assert (read["verify"], read["due"], "escalate" in read["available"]) == ([], 0, True)
    assert "open read-only: nothing can be written" in read["write"]
    assert _owners(shared_folder) == closed
    read = _as_another_user(tmp_path, "reader", {"db": db, "claim": claim, "wal_vanishes": True})
    assert (read["version"], read["verify"]) == (2, [])
    assert _owners(shared_folder) == closed  # the -wal SQLite made in that moment was taken away

    holder = _spawn("owner", {"uid": OWNER, "db": db, "action": "hold", "claim": claim}, tmp_path / "holder",
                    stdin=subprocess.PIPE, cwd="/")  # fmt: skip
    try:
        out = _Out(holder)
        pump([out], time.monotonic() + 20, lambda: bool(out.lines))
        assert out.lines == [{"claim": claim, "version": 3}], (tmp_path / "holder").read_text()
        held = _owners(shared_folder)
        assert held == {"claims.db": OWNER, "claims.db-shm": OWNER, "claims.db-wal": OWNER}
        read = _as_another_user(tmp_path, "reader", {"db": db, "claim": claim})
        assert (read["version"], read["history"], read["verify"]) == (3, 3, [])  # the fire still in the -wal
        assert _owners(shared_folder) == held
        assert holder.stdin is not None
        holder.stdin.write(b"go\n")
        holder.stdin.close()
        assert holder.wait(timeout=10) == 0
    finally:
        _reap(holder)
    assert _as_another_user(tmp_path, "owner", {"uid": OWNER, "db": db, "action": "fire", "claim": claim}) == {
        "claim": claim,
        "version": 4,
    }
    plain = _as_another_user(tmp_path, "reader", {"db": db, "writable": True})
    assert plain["listed"] == 1
    assert "uid 65534 may not write it" in plain["refused"]
    assert _owners(shared_folder)["claims.db-shm"] == 65534
    refused = _as_another_user(tmp_path, "owner", {"uid": OWNER, "db": db, "action": "fire", "claim": claim})
    assert "its -wal file belongs to another user (uid 65534)" in refused["error"]


def test_a_locked_file_times_out_and_changes_nothing(tmp_path: Path) -> None:
    """While another connection holds the write lock, fires fail after busy_timeout saying locked; nothing changed."""
    db = tmp_path / "claims.db"
    with ClaimService(db) as service:
        claim_id = _in_mediation(service, 1, set())[0]
    service = ClaimService(db, busy_timeout=0.2)
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        before_claim, before_history = service.get(claim_id), service.history(claim_id)
        _checkpoint(db)
        before_bytes = _database_bytes(db)
        holder.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        with pytest.raises(StorageError, match="is locked by another writer") as error:
            service.fire(claim_id, "submit_evidence", "supplier:acme", {"evidence": EVIDENCE})
        assert time.monotonic() - started < 4  # it gave up near the busy timeout instead of hanging
        assert "try again" in str(error.value)
        with pytest.raises(StorageError, match="locked"):
            service.file_claim(filing(order_id="o-locked"))
        with ClaimService(db, busy_timeout=0.2) as reader:  # readers are not blocked by the writer
            assert reader.get(claim_id) == before_claim
        holder.execute("ROLLBACK")
        assert _database_bytes(db) == before_bytes
        assert service.get(claim_id) == before_claim
        assert service.history(claim_id) == before_history
        assert service.list_claims(order="o-locked") == []
        # once released, the same fire goes through
        fired = service.fire(claim_id, "submit_evidence", "supplier:acme", {"evidence": EVIDENCE})
        assert fired.record.seq == before_claim.version + 1
        assert service.verify() == []
    finally:
        holder.close()
        service.close()


def _on_a_small_disk(mount: Path, size: str, *runs: tuple[str, dict[str, Any]]) -> subprocess.CompletedProcess[bytes]:
    """Run child modes one after the other (while each succeeds) on a private tmpfs of `size` mounted at `mount`.

    The tmpfs lives in a mount namespace of its own (a user namespace too where allowed), so nothing outside
    the test sees it; the test is skipped where neither can be made.
    """
    script = f'mount -t tmpfs -o size={size} tmpfs "$1" || exit 77; ' + " && ".join(
        shlex.join([sys.executable, CHILD, mode, json.dumps(args)]) for mode, args in runs
    )
    for unshare in (["unshare", "-rm"], ["unshare", "-m"]):  # user+mount namespace, else mount namespace as root
        if shutil.which("unshare") is None:
            break
        proc = subprocess.run(
            [*unshare, "sh", "-c", script, "sh", str(mount)], capture_output=True, timeout=60, check=False
        )
        if proc.returncode != 77 and not proc.stderr.startswith(b"unshare:"):
            return proc
    pytest.skip("cannot mount a small tmpfs in a private mount namespace here")


def test_a_full_disk_refuses_writes_and_keeps_every_acknowledged_filing(tmp_path: Path) -> None:
    """On a full tmpfs filings fail saying full; the file keeps exactly the acknowledged ones and verifies clean."""
    mount = tmp_path / "small"
    mount.mkdir()
    args = {"db": str(mount / "claims.db")}
    proc = _on_a_small_disk(mount, "2m", ("fill", args), ("check", args))
    assert proc.returncode == 0, proc.stderr.decode()
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    acked = {tuple(line["ack"]) for line in lines if "ack" in line}
    full = next(line["full"] for line in lines if "full" in line)
    assert "is full: nothing was written" in full
    fire_when_full = next(line["full_fire"] for line in lines if "full_fire" in line)
    assert fire_when_full is None or "is full" in fire_when_full
    filings = [row for row in acked if row[2] == "file_claim"]
    assert len(filings) >= 5  # the disk held several claims before it filled
    after_full = lines[next(i for i, line in enumerate(lines) if "full_fire" in line) + 1 :]
    assert "file_claim" in [line["ack"][2] for line in after_full if "ack" in line]  # works again once space is freed
    report = lines[-1]  # from a fresh process, after the filler exited
    assert report["claims"] == len(filings)
    assert {tuple(row) for row in report["rows"]} == acked
    assert report["verify"] == []


def test_a_completely_full_disk_says_full_and_a_failed_creation_leaves_no_file(tmp_path: Path) -> None:
    """With not a byte free, creating a database fails saying full and leaves no file (not even an empty one),
    and a fire on an existing database says full too, where SQLite says only "disk I/O error"."""
    mount = tmp_path / "small"
    mount.mkdir()
    proc = _on_a_small_disk(mount, "1m", ("brim", {"db": str(mount / "claims.db")}))
    assert proc.returncode == 0, proc.stderr.decode()
    report = json.loads(proc.stdout)
    assert report["free"] == 0
    assert "new.db is full: nothing was written" in report["create"]
    assert report["left"] == []
    assert "claims.db is full: nothing was written" in report["fire"]


# --- 4. atomicity ----------------------------------------------------------------------------------------


def test_a_failing_history_insert_leaves_claim_and_history_unchanged(tmp_path: Path) -> None:
    """When the history insert fails, the claim row does not change either; without the fault the fire succeeds."""
    db = tmp_path / "claims.db"
    with ClaimService(db) as service:
        claim_id = _in_mediation(service, 1, set())[0]
        injector = sqlite3.connect(db, isolation_level=None)
        try:
            injector.execute(
                "CREATE TRIGGER fail_history BEFORE INSERT ON transitions BEGIN SELECT RAISE(ABORT, 'injected'); END"
            )
            row_sql = "SELECT version, state, details, updated_at FROM claims WHERE id = ?"
            before_row = injector.execute(row_sql, (claim_id,)).fetchone()
            before_claim, before_history = service.get(claim_id), service.history(claim_id)
            evidence = {"evidence": [{"kind": "shipping", "description": "tracking shows delivered"}]}
            with pytest.raises(StorageError, match="injected"):
                service.fire(claim_id, "submit_evidence", "supplier:acme", evidence)
            assert injector.execute(row_sql, (claim_id,)).fetchone() == before_row
            assert service.get(claim_id) == before_claim
            assert service.history(claim_id) == before_history
            # a filing is all or nothing too: no claims row without its history row
            with pytest.raises(StorageError, match="injected"):
                service.file_claim(filing(order_id="o-2"))
            assert injector.execute("SELECT count(*) FROM claims").fetchone() == (1,)

            injector.execute("DROP TRIGGER fail_history")
            fired = service.fire(claim_id, "submit_evidence", "supplier:acme", evidence)
            assert fired.claim.version == before_claim.version + 1
            assert len(service.history(claim_id)) == len(before_history) + 1
            assert service.file_claim(filing(order_id="o-2")).claim.version == 1
            assert service.verify() == []
        finally:
            injector.close()


_BAD_CALLS: dict[str, tuple[Callable[[ClaimService, str, int], object], type[Exception], str]] = {
    "refused: no offer open": (
        lambda s, c, v: s.fire(c, "accept_offer", "buyer:alice"),
        TransitionRefused,
        "no offer is open",
    ),
    "refused: wrong party": (
        lambda s, c, v: s.fire(c, "escalate", "supplier:acme"),
        TransitionRefused,
        "escalate refused",
    ),
    "refused: second claim on the order": (
        lambda s, c, v: s.file_claim(filing(order_id="o-0")),
        TransitionRefused,
        "another claim on this order is still open",
    ),
    "invalid: evidence kind": (
        lambda s, c, v: s.fire(c, "submit_evidence", "buyer:alice", {"evidence": [{"kind": "x", "description": "y"}]}),
        InvalidInput,
        "kind must be one of",
    ),
    "invalid: evidence not a list": (
        lambda s, c, v: s.fire(c, "submit_evidence", "buyer:alice", {"evidence": "receipt.pdf"}),
        InvalidInput,
        "expected a list",
    ),
    "invalid: not JSON data": (
        lambda s, c, v: s.fire(c, "submit_evidence", "buyer:alice", {"evidence": {1, 2}}),
        InvalidInput,
        "holds a set, which is not a JSON value",
    ),
    "invalid: unknown data field": (
        lambda s, c, v: s.fire(c, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE, "when": object()}),
        InvalidInput,
        "takes no when",
    ),
    "invalid: filing amount": (
        lambda s, c, v: s.file_claim(filing(order_id="o-9", amount="lots")),
        InvalidInput,
        "amount",
    ),
    "stale expected_version": (
        lambda s, c, v: s.fire(c, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, expected_version=v - 1),
        ConcurrentModification,
        "not the expected",
    ),
    "unknown claim": (
        lambda s, c, v: s.fire("no-such-claim", "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}),
        ClaimNotFound,
        "no-such-claim",
    ),
}


@pytest.mark.parametrize("case", list(_BAD_CALLS))
def test_a_rejected_call_changes_no_byte_of_the_database(tmp_path: Path, case: str) -> None:
    """A refusal, invalid input, stale expected_version or unknown claim changes no byte of the file or its WAL."""
    call, error, match = _BAD_CALLS[case]
    db = tmp_path / "claims.db"
    with ClaimService(db) as service:
        claim_id = _in_mediation(service, 1, set())[0]
        before_claim = service.get(claim_id)
        _checkpoint(db)
        before = _database_bytes(db)
        with pytest.raises(error, match=match):
            call(service, claim_id, before_claim.version)
        assert _database_bytes(db) == before
        assert service.get(claim_id) == before_claim
        assert service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}).record.seq == 3


# --- 5. batch() --------------------------------------------------------------------------------------------


def test_a_batch_whose_third_fire_is_refused_applies_none(tmp_path: Path) -> None:
    """Three fires in a batch, the third refused: the refusal propagates and none of the three is applied."""
    db = tmp_path / "claims.db"
    with ClaimService(db) as service:
        first, second = _in_mediation(service, 2, set())
        before = {c: (service.get(c), service.history(c)) for c in (first, second)}
        applied = []
        refusal = "accept_offer refused.*only the party that did not make the open offer"
        with pytest.raises(TransitionRefused, match=refusal), service.batch() as batch:  # noqa: PT012
            applied.append(batch.fire(first, "submit_evidence", "supplier:acme", {"evidence": EVIDENCE}))
            applied.append(batch.fire(second, "make_offer", "buyer:alice", OFFER))
            batch.fire(second, "accept_offer", "buyer:alice")  # the offer's own maker may not accept it
        assert [f.record.seq for f in applied] == [3, 3]  # the first two went through inside the batch
        assert {c: (service.get(c), service.history(c)) for c in (first, second)} == before
        # the service is usable afterwards, and nothing of the batch is left over
        assert service.fire(second, "make_offer", "buyer:alice", OFFER)
        assert service.verify() == []


def test_a_successful_batch_commits_all_fires_in_one_transaction(tmp_path: Path) -> None:
    """A batch applies all its fires at its end: another connection sees none of them until the batch exits."""
    db = tmp_path / "claims.db"
    with ClaimService(db) as service, ClaimService(db) as other:
        claim_id = _in_mediation(service, 1, set())[0]
        version = service.get(claim_id).version
        with service.batch() as batch:
            batch.fire(claim_id, "submit_evidence", "supplier:acme", {"evidence": EVIDENCE})
            assert other.get(claim_id).version == version  # another connection does not see the first fire yet
            assert len(other.history(claim_id)) == version
            batch.fire(claim_id, "make_offer", "buyer:alice", OFFER)
            batch.fire(claim_id, "reject_offer", "supplier:acme")
            assert other.get(claim_id).version == version
        assert other.get(claim_id).version == version + 3
        triggers = Counter(r.trigger for r in other.history(claim_id)[version:])
        assert triggers == {"submit_evidence": 1, "make_offer": 1, "reject_offer": 1}
        assert other.verify() == []


def test_a_batch_with_a_failed_write_keeps_nothing_even_if_the_caller_caught_it(tmp_path: Path) -> None:
    """A storage failure inside a batch, caught by the caller, still rolls the whole batch back at its end."""
    db = tmp_path / "claims.db"
    with ClaimService(db) as service:
        first, second = _in_mediation(service, 2, set())
        before = {c: (service.get(c), service.history(c)) for c in (first, second)}
        injector = sqlite3.connect(db, isolation_level=None)
        try:
            injector.execute(
                "CREATE TRIGGER fail_history BEFORE INSERT ON transitions WHEN NEW.claim_id = ?"
                " BEGIN SELECT RAISE(ABORT, 'injected'); END".replace("?", f"'{second}'")
            )
            with pytest.raises(StorageError, match="nothing of it was kept"), service.batch() as batch:  # noqa: PT012
                batch.fire(first, "submit_evidence", "supplier:acme", {"evidence": EVIDENCE})
                with pytest.raises(StorageError, match="injected"):
                    batch.fire(second, "submit_evidence", "supplier:acme", {"evidence": EVIDENCE})
            assert {c: (service.get(c), service.history(c)) for c in (first, second)} == before
            injector.execute("DROP TRIGGER fail_history")
        finally:
            injector.close()
        assert service.verify() == []
