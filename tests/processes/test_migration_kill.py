"""A migration onto a changed lifecycle SIGKILLed half-way: all or nothing.

Every test runs on both backends (`store_target`). The parent files 300 claims under the built-in lifecycle,
a third of them in `cancellation_pending` (a state the changed lifecycle, tests/changed_lifecycle.py's
INSPECTION, removes), a third in `awaiting_return` (whose window it shortens from 10 days to 7), a third in
`awaiting_evidence`. A child process (tests/processes/_migration_child.py) opens the store with INSPECTION and
`migrating=True` and moves them with one plan, in one transaction; it reports the point it was stopped at
(some claims' rows, history and events written, the transaction still open) and the parent SIGKILLs it
there. No sleep decides an outcome: the parent waits (with a deadline) for that line, then reads the
database, through the service and its tables directly.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from _migration_child import MOVES, PLAN
from changed_lifecycle import INSPECTION
from helpers import EVIDENCE, T0, ChildProcess, child_processes, filing, offer, pump, query

from claimstate import ClaimService
from claimstate._errors import LifecycleChanged

pytestmark = pytest.mark.slow

CHILD = str(Path(__file__).with_name("_migration_child.py"))
CLAIMS = 300  # a third in each of the three states below
KILL_WITHIN = 120.0  # seconds a child may take to reach its stopping point, on a loaded machine
FINISH_WITHIN = 180.0  # seconds a child may take to migrate everything


# --- helpers -------------------------------------------------------------------------------------------


def _start(
    started: list[ChildProcess], tmp_path: Path, target: str, at: datetime, stop: int | str | None
) -> ChildProcess:
    args = {"target": target, "now": at.isoformat(), "stop": stop}
    child = ChildProcess([sys.executable, CHILD, json.dumps(args)], tmp_path / f"stderr-migrate-{len(started)}")
    started.append(child)
    return child


def _tables(target: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tables a migration writes: claims, their history, the events (and on PostgreSQL the
    lanes' counters)."""
    tables = {
        "claims": "SELECT * FROM claims ORDER BY id",
        "transitions": "SELECT * FROM transitions ORDER BY claim_id, seq",
        "events": "SELECT * FROM events ORDER BY position",
    }
    if target.startswith("postgresql://"):
        tables["lanes"] = "SELECT * FROM lanes ORDER BY lane"
    return {name: query(target, sql) for name, sql in tables.items()}


def _seed(target: str) -> tuple[dict[str, str], datetime]:
    """CLAIMS claims under the built-in lifecycle, one second apart from T0, in one transaction: each claim's
    state by id, and the time of the last write."""
    clock = T0

    def tick() -> datetime:
        nonlocal clock
        clock += timedelta(seconds=1)
        return clock

    steps: dict[str, Sequence[tuple[str, str, dict[str, Any] | None]]] = {
        "cancellation_pending": (
            ("submit_evidence", "buyer:alice", {"evidence": EVIDENCE}),
            ("make_offer", "supplier:acme", offer("partial_refund")),
            ("accept_offer", "buyer:alice", None),
            ("cancel_claim", "buyer:alice", None),
        ),
        "awaiting_return": (
            ("submit_evidence", "buyer:alice", {"evidence": EVIDENCE}),
            ("decide_full_refund", "agent:kim", {"rationale": "x"}),
        ),
        "awaiting_evidence": (),
    }
    states: dict[str, str] = {}
    with ClaimService(target) as service, service.batch():
        for n in range(CLAIMS):
            state = list(steps)[n % len(steps)]
            claim = service.file_claim(filing(order_id=f"o-{n}"), now=tick()).claim
            for trigger, actor, data in steps[state]:
                claim = service.fire(claim.id, trigger, actor, data, now=tick()).claim
            assert claim.state == state
            states[claim.id] = state
    return states, clock


def _dues(service: ClaimService) -> dict[str, datetime | None]:
    claims = service.list_claims(limit=CLAIMS + 1)
    assert len(claims) == CLAIMS
    return {c.id: None if c.deadline is None else c.deadline.due for c in claims}


def _stop_id(stop: int | str) -> str:
    return f"after-{stop}-updates" if isinstance(stop, int) else f"before-{stop}"


# --- the test --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stop", [1, 100, "commit"], ids=_stop_id)
def test_a_migration_killed_midway_moves_nothing_and_a_rerun_moves_everything(
    store_target: str, tmp_path: Path, stop: int | str
) -> None:
    """A child migrates the 300 open claims onto INSPECTION (cancellation_pending -> in_mediation, changed
    windows recomputed) and is SIGKILLed inside the migration's transaction: after 1 or 100 of its 300
    claim updates, or with all of them and their events written and only the COMMIT left. Nothing of it is
    kept: the claims, history and events tables are row for row as before, every claim still records the
    built-in definition's fingerprint, no history row or event is a `migrate` one; the built-in definition
    opens (nothing is out of date for it) and verifies clean, and INSPECTION still refuses to open. A second
    child then migrates to the end: every open claim moves, once, onto INSPECTION (its fingerprint on every
    claim, one `migrate` row and one event per claim, the history before untouched, the return windows 3
    days shorter); INSPECTION opens, finds nothing out of date, verifies clean, and the same plan run again
    moves nothing."""
    states, last_write = _seed(store_target)
    with ClaimService(store_target) as service:
        old = service.fingerprint
        dues = _dues(service)
        assert service.verify() == []
    before = _tables(store_target)
    assert {row[0] for row in query(store_target, "SELECT DISTINCT definition FROM claims")} == {old}
    writes = len(before["transitions"])
    assert len(before["events"]) == writes

    with child_processes() as started:
        # 1. killed in the middle of the one transaction
        killed = _start(started, tmp_path, store_target, last_write + timedelta(hours=1), stop)
        pump([killed], time.monotonic() + KILL_WITHIN, lambda: any("halfway" in line for line in killed.lines))
        halfway = [line for line in killed.lines if "halfway" in line]
        assert halfway, f"the child never stopped half-way: {killed.last_words()}"
        assert killed.proc.poll() is None, killed.last_words()
        killed.kill()
        pump([killed], time.monotonic() + 10, lambda: False)
        assert killed.lines[0] == {"migrating": CLAIMS}
        assert halfway == [{"halfway": True, "updated": CLAIMS if stop == "commit" else stop}]
        assert not any("moved" in line for line in killed.lines)

        # nothing of it was kept
        assert query(store_target, "SELECT count(*) FROM transitions WHERE trigger = 'migrate'") == [(0,)]
        assert query(store_target, "SELECT count(*) FROM events WHERE trigger = 'migrate'") == [(0,)]
        assert query(store_target, "SELECT DISTINCT definition FROM claims") == [(old,)]
        assert query(store_target, "SELECT DISTINCT definition FROM transitions") == [(old,)]
        assert _tables(store_target) == before  # row for row
        with ClaimService(store_target) as service:  # opens: no claim is under another definition
            assert service.outdated() == ()
            assert service.verify() == []
            assert {c.id: c.state for c in service.list_claims(limit=CLAIMS + 1)} == states
            assert _dues(service) == dues
        with pytest.raises(LifecycleChanged) as refused:
            ClaimService(store_target, definition=INSPECTION)
        assert [(o.fingerprint, o.claims) for o in refused.value.outdated] == [(old, CLAIMS)]

        # 2. run to the end, in a process of its own
        finisher = _start(started, tmp_path, store_target, last_write + timedelta(hours=2), None)
        assert finisher.finish(time.monotonic() + FINISH_WITHIN) == 0, finisher.errors()
        assert finisher.lines[0] == {"migrating": CLAIMS}
        moved = finisher.lines[-1]["moved"]

    dest = MOVES
    assert sorted(moved) == sorted([claim_id, state, dest.get(state, state)] for claim_id, state in states.items())
    with ClaimService(store_target, definition=INSPECTION) as service:  # opens: nothing left to move
        new = service.fingerprint
        assert new != old
        assert service.outdated() == ()
        assert service.verify() == []
        after = {c.id: c.state for c in service.list_claims(limit=CLAIMS + 1)}
        assert after == {claim_id: dest.get(state, state) for claim_id, state in states.items()}
        for claim_id, due in _dues(service).items():
            was = dues[claim_id]
            if states[claim_id] == "awaiting_return":  # return_due: 10 days from its start, now 7
                assert was is not None and due == was - timedelta(days=3)
            elif states[claim_id] == "awaiting_evidence":  # evidence_due: its window is the same
                assert was is not None and due == was
            else:  # in_mediation runs no deadline
                assert due is None
        for claim_id in list(states)[:3]:  # one claim of each state: its last history row is the move
            history = service.history(claim_id)
            assert [r.trigger for r in history[-1:]] == ["migrate"] and history[-1].actor.role == "system"

        assert query(store_target, "SELECT DISTINCT definition FROM claims") == [(new,)]
        migrate_rows = query(
            store_target, "SELECT claim_id, seq, actor, definition FROM transitions WHERE trigger = 'migrate'"
        )
        assert Counter(row[0] for row in migrate_rows) == dict.fromkeys(states, 1)  # one move per open claim
        assert {row[2:] for row in migrate_rows} == {("system", new)}
        migrate_events = query(store_target, "SELECT claim_id, seq FROM events WHERE trigger = 'migrate'")
        assert sorted(migrate_events) == sorted(row[:2] for row in migrate_rows)  # each move's event, once
        kept = "SELECT * FROM transitions WHERE trigger <> 'migrate' ORDER BY claim_id, seq"
        assert query(store_target, kept) == before["transitions"]  # the history before it is untouched
        assert query(store_target, "SELECT count(*) FROM events") == [(writes + CLAIMS,)]

        # 3. the same plan again: nothing left to move
        again = service.migrate(PLAN, now=last_write + timedelta(hours=3))
        assert again.moves == ()
    assert query(store_target, "SELECT count(*) FROM transitions") == [(writes + CLAIMS,)]
    with pytest.raises(LifecycleChanged):  # and now the built-in definition is the one out of date
        ClaimService(store_target)
