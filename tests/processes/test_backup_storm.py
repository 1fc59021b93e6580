"""An online backup of a SQLite file taken while three processes write to it as fast as they can.

The children (tests/processes/_durability_child.py, mode ``storm``) file claims and fire on them, printing each
acknowledged transition as a JSON line stamped with the machine's monotonic clock, read right after the call
that committed it returned (``time.monotonic()``: one clock for every process on the machine, which, unlike
the wall clock, never steps). Once each has acknowledged some, the parent backs the file up through the library
while they go on, noting the same clock as the backup begins and ends. After the children are killed and all
they printed is read, every acknowledgement stamped before the backup began is one committed before it began,
whether or not the parent had read it by then: the copy must be clean, hold every one of those, and be one
state the database really was in; the stamps show that the children went on acknowledging while it was taken.
Every wait is bounded, and no sleep decides an outcome.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
from helpers import EVIDENCE, ChildProcess, child_processes, filing, pump

from claimstate import ClaimService

pytestmark = pytest.mark.slow

CHILD = str(Path(__file__).with_name("_durability_child.py"))
WORKERS = 3
BEFORE = 200  # acknowledgements each child makes before the backup begins
PREFILLED = 2_000  # claims in the file before the storm (so the copy and its verify take a while)
Row = tuple[str, int, str]  # (claim id, seq, trigger): one transition as acknowledged or stored


def _acks(child: ChildProcess) -> list[tuple[Row, float]]:
    """Each transition the child acknowledged, with the monotonic time it was acknowledged at."""
    return [((line["ack"][0], line["ack"][1], line["ack"][2]), line["t"]) for line in child.lines if "ack" in line]


def _rows(service: ClaimService) -> dict[str, list[Row]]:
    """Every claim's history rows, in seq order."""
    return {
        c.id: [(r.claim_id, r.seq, r.trigger) for r in service.history(c.id)] for c in service.iter_claims(page=1_000)
    }


def test_a_backup_taken_during_a_write_storm_is_clean_and_holds_every_earlier_ack(tmp_path: Path) -> None:
    db, dest = tmp_path / "claims.db", tmp_path / "backup.db"
    with ClaimService(db) as service, service.batch():  # one transaction: the prefill takes a second or two
        for n in range(PREFILLED):
            filed = service.file_claim(filing(order_id=f"pre-{n}"))
            service.fire(filed.claim.id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE})
    deadline = time.monotonic() + 60
    with child_processes() as children:
        for worker in range(WORKERS):
            args = f'{{"db": "{db}", "worker": {worker}}}'
            children.append(ChildProcess([sys.executable, CHILD, "storm", args], tmp_path / f"stderr-{worker}"))
        pump(children, deadline, lambda: all(len(_acks(c)) >= BEFORE for c in children))
        read_before = {row for c in children for row, _t in _acks(c)}  # what the parent had read: fewer
        size = os.path.getsize(db) + os.path.getsize(f"{db}-wal")
        with ClaimService(db, read_only=True) as reader:
            began = time.monotonic()
            made = reader.backup(dest)
            ended = time.monotonic()
        pump(children, deadline, lambda: all(_acks(c)[-1][1] > ended for c in children))  # still writing after
        for child in children:
            assert child.proc.poll() is None, child.last_words()
            child.kill()
            pump([child], deadline, lambda: False)  # what it printed before the kill counts too
    acks = [(row, t) for c in children for row, t in _acks(c)]
    acked_before = {row for row, t in acks if t < began}  # each stamped after its commit returned
    during = [row for row, t in acks if began <= t <= ended]
    assert read_before <= acked_before, "an acknowledgement read before the backup began is stamped after it"

    assert made.problems == ()
    with ClaimService(dest, read_only=True) as copy:
        assert copy.verify() == []
        copied = _rows(copy)
        versions = {c.id: c.version for c in copy.iter_claims(page=1_000)}
    stored = {row for rows in copied.values() for row in rows}
    assert acked_before - stored == set(), "a transition acknowledged before the backup began is not in it"
    for claim_id, rows in copied.items():  # each history whole: seq 1..n, and the claim at version n
        assert [seq for _c, seq, _t in rows] == list(range(1, versions[claim_id] + 1)), claim_id
    assert (made.claims, made.transitions) == (len(copied), len(stored))
    with ClaimService(db) as after:  # the copy is a state the database was in: every row of it is the file's
        assert after.verify() == []
        final = {row for rows in _rows(after).values() for row in rows}
    assert stored - final == set()
    assert final - stored, "the copy is the file's end state: nothing was written after its snapshot"
    assert during, "no child acknowledged a transition while the backup ran"
    print(  # the figures the report quotes (pytest -s shows them)
        f"\nstorm backup: {len(acked_before)} acks before it began ({len(acked_before) - len(read_before)} not"
        f" yet read then), {len(during)} during its"
        f" {ended - began:.3f} s (copy and verify), {len(acks)} in all; database {size / 1e6:.1f} MB (file and"
        f" -wal) as it began, copy {made.bytes / 1e6:.1f} MB: {made.claims} claims, {made.transitions} transitions"
    )
