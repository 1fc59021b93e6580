"""Changing the lifecycle while claims are open: fingerprints, the refusal, checked migrations, verify.

The changed lifecycle is `changed_lifecycle.INSPECTION`: a new state between return_in_transit and
refunded_full, cancellation_pending removed, and the return window shortened from 10 days to 7.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
from changed_lifecycle import INSPECTION
from helpers import EVIDENCE, T0, filing, forget_definitions, offer, query, rechain

from claimstate import (
    CLAIM_LIFECYCLE,
    ClaimService,
    InvalidInput,
    LifecycleChanged,
    PlanRefused,
    StorageError,
    TransitionRefused,
    copy_claims,
)
from claimstate._chain import Chain
from claimstate.definition import Definition, fingerprint_of

PLAN = {"states": {"cancellation_pending": "in_mediation"}, "deadlines": "recompute"}
# How to bring a claim of the built-in lifecycle into each open state (after filing), by (trigger, actor, data).
PATHS: dict[str, list[tuple[str, str, dict[str, Any] | None]]] = {
    "awaiting_evidence": [],
    "in_mediation": [("submit_evidence", "buyer:alice", {"evidence": EVIDENCE})],
    "awaiting_buyer_response": [
        ("submit_evidence", "buyer:alice", {"evidence": EVIDENCE}),
        ("request_buyer_response", "agent:kim", {"question": "photos?"}),
    ],
    "awaiting_supplier_response": [
        ("submit_evidence", "buyer:alice", {"evidence": EVIDENCE}),
        ("request_supplier_response", "agent:kim", {"question": "tracking?"}),
    ],
    "under_review": [("submit_evidence", "buyer:alice", {"evidence": EVIDENCE}), ("escalate", "buyer:alice", None)],
    "cancellation_pending": [
        ("submit_evidence", "buyer:alice", {"evidence": EVIDENCE}),
        ("make_offer", "supplier:acme", offer("partial_refund")),
        ("accept_offer", "buyer:alice", None),
        ("cancel_claim", "buyer:alice", None),
    ],
    "awaiting_return": [
        ("submit_evidence", "buyer:alice", {"evidence": EVIDENCE}),
        ("decide_full_refund", "agent:kim", {"rationale": "damaged"}),
    ],
    "return_in_transit": [
        ("submit_evidence", "buyer:alice", {"evidence": EVIDENCE}),
        ("decide_full_refund", "agent:kim", {"rationale": "damaged"}),
        ("confirm_return_address", "supplier:acme", {"address": "1 Dock Rd"}),
        ("ship_return", "buyer:alice", {"carrier": "DHL", "tracking_number": "JD0001"}),
    ],
}
OPEN_STATES = sorted(PATHS)
MOVED_AT = T0 + timedelta(days=1)


def put_claims(service: ClaimService) -> dict[str, str]:
    """One claim in each open state of the built-in lifecycle, and one closed (refunded): ids by state."""
    ids, now = {}, T0
    for n, (state, steps) in enumerate([*PATHS.items(), ("withdrawn", [("withdraw", "buyer:alice", None)])]):
        claim = service.file_claim(filing(order_id=f"o-{n}"), now=now).claim
        for trigger, actor, data in steps:
            now += timedelta(minutes=1)
            claim = service.fire(claim.id, trigger, actor, data, now=now).claim
        assert claim.state == state
        ids[state] = claim.id
    return ids


@pytest.fixture
def old_claims(store_target: str) -> Iterator[dict[str, str]]:
    """The store holds claims in every open state, decided under the built-in lifecycle."""
    with ClaimService(store_target) as service:
        yield put_claims(service)


def rows(target: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table claimstate keeps, to show that something wrote nothing."""
    tables = ("claims", "transitions", "events", "consumers", "definitions", "meta")
    return {t: sorted(query(target, f"SELECT * FROM {t}"), key=repr) for t in tables}


# --- the fingerprint ---------------------------------------------------------------------------------


def test_the_fingerprint_covers_the_rules_and_not_the_words() -> None:
    """Rewording a title, a meaning or a label keeps the fingerprint; a deadline window, a guard, a state or
    who may fire changes it. The export carries it, and it is recomputed from the export alone."""
    base = CLAIM_LIFECYCLE.fingerprint()
    exported = CLAIM_LIFECYCLE.to_dict()
    assert (
        exported["fingerprint"] == base == fingerprint_of(exported) == fingerprint_of(json.loads(json.dumps(exported)))
    )
    assert len(base) == 64 and CLAIM_LIFECYCLE.fingerprint() == base

    def changed(**edits: Any) -> str:
        return attrs.evolve(CLAIM_LIFECYCLE, **edits).fingerprint()

    reworded = tuple(attrs.evolve(s, title=s.title.upper(), meaning="words") for s in CLAIM_LIFECYCLE.states)
    relabelled = tuple(attrs.evolve(t, label="other words", description="d") for t in CLAIM_LIFECYCLE.transitions)
    assert changed(states=reworded, transitions=relabelled, name="renamed", views=()) == base
    assert CLAIM_LIFECYCLE.fingerprint(CLAIM_LIFECYCLE.policy(return_due=timedelta(days=7))) != base
    unguarded = tuple(
        attrs.evolve(t, guards=t.guards[:-1]) if t.trigger == "submit_evidence" else t
        for t in CLAIM_LIFECYCLE.transitions
    )
    assert changed(transitions=unguarded) != base
    widened = tuple(
        attrs.evolve(t, actors={"buyer", "supplier"}) if t.trigger == "escalate" else t
        for t in CLAIM_LIFECYCLE.transitions
    )
    assert changed(transitions=widened) != base
    assert INSPECTION.fingerprint() != base


def test_migrate_is_claimstates_own_trigger() -> None:
    """A lifecycle cannot name a trigger `migrate`: that word marks a migration's history row."""
    renamed = tuple(attrs.evolve(t, trigger="migrate") if t.trigger == "escalate" else t
                    for t in CLAIM_LIFECYCLE.transitions)  # fmt: skip
    with pytest.raises(Exception, match="trigger migrate is claimstate's own"):
        Definition("x", CLAIM_LIFECYCLE.states, renamed)


def test_every_claim_and_step_records_its_definition(store_target: str, old_claims: dict[str, str]) -> None:
    """Claims rows and history rows carry the fingerprint; the database keeps the definition's export."""
    with ClaimService(store_target) as service:
        stored = service.definitions()
        assert list(stored) == [service.fingerprint]
        assert stored[service.fingerprint]["name"] == CLAIM_LIFECYCLE.name
        assert {s["name"] for s in stored[service.fingerprint]["states"]} == {s.name for s in CLAIM_LIFECYCLE.states}
        assert service.open_claims() == dict.fromkeys(OPEN_STATES, 1)
    found = rows(store_target)
    fingerprints = {CLAIM_LIFECYCLE.fingerprint()}
    assert {row[-1] for row in found["claims"]} == fingerprints
    assert len(found["transitions"]) > len(found["claims"])


# --- the refusal -------------------------------------------------------------------------------------


def test_a_changed_definition_is_refused_listing_the_open_claims(store_target: str, old_claims: dict[str, str]) -> None:
    """Opening with the changed lifecycle is refused, writing nothing: per old definition, the open claims in
    each state, the states the new one lacks, and the transitions out of them it lacks."""
    before = rows(store_target)
    with pytest.raises(LifecycleChanged) as refused:
        ClaimService(store_target, definition=INSPECTION)
    assert rows(store_target) == before
    (outdated,) = refused.value.outdated
    assert outdated.fingerprint == CLAIM_LIFECYCLE.fingerprint() and outdated.name == CLAIM_LIFECYCLE.name
    assert outdated.states == dict.fromkeys(OPEN_STATES, 1)  # the closed claim is not listed
    assert outdated.missing_states == ("cancellation_pending",)
    assert outdated.missing_transitions == (
        "approve_cancellation: cancellation_pending -> awaiting_return",
        "approve_cancellation: cancellation_pending -> refunded_partial",
        "cancel_claim: in_mediation -> cancellation_pending",
        "confirm_return_received: return_in_transit -> refunded_full",
        "reject_cancellation: cancellation_pending -> in_mediation",
    )
    assert refused.value.definition == INSPECTION.fingerprint()
    assert "8 open claim(s) decided under another lifecycle definition" in str(refused.value)
    assert refused.value.to_dict()["outdated"][0]["open_claims"]["cancellation_pending"] == 1


def test_a_claim_of_another_definition_is_not_fired_until_migrated(
    store_target: str, old_claims: dict[str, str]
) -> None:
    """Opened to migrate, the service refuses every fire and every tick on an old claim (no guard of either
    definition is run on it), and "what can I do" too; reads work. Nothing is written."""
    before = rows(store_target)
    with ClaimService(store_target, definition=INSPECTION, migrating=True) as service:
        after_open = rows(store_target)
        claim_id = old_claims["return_in_transit"]
        with pytest.raises(LifecycleChanged, match="migrate it first") as refused:
            service.fire(claim_id, "confirm_return_received", "supplier:acme", now=MOVED_AT)
        assert refused.value.claim_id == claim_id
        with pytest.raises(LifecycleChanged):
            service.available(claim_id, "supplier:acme")
        assert service.tick(T0 + timedelta(days=400)) == []
        assert service.get(claim_id).state == "return_in_transit"
        assert len(service.history(claim_id)) == 5
    assert rows(store_target) == after_open
    # opening to migrate only added the new definition to those the database keeps, and made it the one
    # claims are filed under
    assert {k: v for k, v in after_open.items() if k not in ("definitions", "meta")} == {
        k: v for k, v in before.items() if k not in ("definitions", "meta")
    }
    assert ("definition", INSPECTION.fingerprint()) in after_open["meta"]
    with ClaimService(store_target, read_only=True, definition=INSPECTION) as reader:  # a reader is not refused
        assert reader.get(claim_id).state == "return_in_transit"


# --- the plan ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("plan", "problems"),
    [
        ({"states": {}}, [
            "1 open claim(s) in cancellation_pending (definition 1c3d3b8a9f70) have no state to go to in the new"
            " definition: map 'cancellation_pending' in the plan's states",
            "1 open claim(s) run deadline return_due, whose window changes: say in the plan's deadlines whether it"
            ' is "keep" (due as before) or "recompute" (from when its clock started, with the new window)',
        ]),
        ({**PLAN, "states": {"cancellation_pending": "inspection"}}, [
            "states maps 'cancellation_pending' to 'inspection', which the new definition has no state of",
        ]),
        ({**PLAN, "states": {"cancellation_pending": "refunded_partial"}}, [
            "states maps 'cancellation_pending' to 'refunded_partial', a final state: a migration moves open"
            " claims; close one by its own transition",
        ]),
        ({**PLAN, "states": {**PLAN["states"], "cancelation_pending": "in_mediation"}}, [
            "states maps 'cancelation_pending', which is no state of the definitions claims are moved from",
        ]),
        ({**PLAN, "deadlines": {"return_due": "stretch", "due_soon": "keep"}}, [
            "deadlines: return_due: 'stretch' is not \"keep\" or \"recompute\"",
        ]),
        ({**PLAN, "deadlines": {"due_soon": "keep", "return_due": "keep"}}, [
            "deadlines names 'due_soon', which the new definition has no deadline of",
        ]),
        ({**PLAN, "definition": CLAIM_LIFECYCLE.fingerprint()}, [
            "the plan was written for definition 1c3d3b8a9f70, not this service's 871106216cd0",
        ]),
        ({**PLAN, "state": {}}, ["unknown key 'state' (a plan has definition, states, deadlines)"]),
        (["not", "an", "object"], ["a plan is a JSON object, not list"]),
    ],
)  # fmt: skip
def test_a_plan_that_does_not_fit_is_refused_whole(
    store_target: str, old_claims: dict[str, str], plan: Any, problems: list[str]
) -> None:
    """Every problem of a plan is named at once (unmapped claims, unknown or final targets, undecided or
    unknown deadlines, a plan for another definition), dry run or not, and nothing is written."""
    with ClaimService(store_target, definition=INSPECTION, migrating=True) as service:
        before = rows(store_target)
        for dry_run in (True, False):
            with pytest.raises(PlanRefused) as refused:
                service.migrate(plan, dry_run=dry_run, now=MOVED_AT)
            assert list(refused.value.problems) == problems
            assert isinstance(refused.value, InvalidInput) and refused.value.field == "plan"
        assert rows(store_target) == before
        assert service.outdated() != ()


def test_a_dry_run_writes_nothing_and_shows_every_move(store_target: str, old_claims: dict[str, str]) -> None:
    """A dry run lists each claim's move and deadline (a read-only service can make one), and changes no byte."""
    with ClaimService(store_target, definition=INSPECTION, read_only=True) as service:
        before = rows(store_target)
        file_bytes = Path(store_target).read_bytes() if not store_target.startswith("postgresql") else b""
        migration = service.migrate(PLAN, dry_run=True, now=MOVED_AT)
        assert rows(store_target) == before
        if file_bytes:
            assert Path(store_target).read_bytes() == file_bytes
    assert migration.dry_run and migration.definition == INSPECTION.fingerprint()
    moves = {m.source: m for m in migration.moves}
    assert sorted(moves) == OPEN_STATES
    assert {s: m.dest for s, m in moves.items()} == {s: s for s in OPEN_STATES} | {
        "cancellation_pending": "in_mediation"
    }
    awaiting_return = moves["awaiting_return"]
    assert awaiting_return.how == "recomputed"
    assert awaiting_return.due_before is not None and awaiting_return.due_after is not None
    assert awaiting_return.due_before - awaiting_return.due_after == timedelta(days=3)
    assert moves["return_in_transit"].how == "kept" and moves["in_mediation"].how == "none"
    assert migration.to_dict()["moves"][0]["from_definition"] == CLAIM_LIFECYCLE.fingerprint()


# --- the migration -----------------------------------------------------------------------------------


def test_a_migration_moves_every_open_claim_records_it_and_verifies_clean(
    store_target: str, old_claims: dict[str, str]
) -> None:
    """One history row per open claim (trigger migrate, actor system, both fingerprints and what became of
    its deadline), and its event; the closed claim stays as it was; verify replays each step under its own
    definition; a second run moves nothing."""
    with ClaimService(store_target, definition=INSPECTION, migrating=True) as service:
        migration = service.migrate(PLAN, now=MOVED_AT)
        assert len(migration.moves) == len(OPEN_STATES) and not migration.dry_run
        assert service.outdated() == ()
        moved_states = {s: 1 for s in OPEN_STATES if s != "cancellation_pending"} | {"in_mediation": 2}
        assert service.open_claims() == moved_states
        for state, claim_id in old_claims.items():
            history = service.history(claim_id)
            if state == "withdrawn":
                assert all(r.trigger != "migrate" for r in history)
                continue
            last = history[-1]
            assert (last.trigger, last.source, str(last.actor), last.at) == ("migrate", state, "system", MOVED_AT)
            assert last.dest == ("in_mediation" if state == "cancellation_pending" else state)
            assert last.data["from_definition"] == CLAIM_LIFECYCLE.fingerprint()
            assert last.data["to_definition"] == INSPECTION.fingerprint()
        migrate_events = [e for e in service.feed(limit=1000) if e.trigger == "migrate"]
        assert len(migrate_events) == len(OPEN_STATES)
        assert service.verify() == []
        again = rows(store_target)
        assert service.migrate(PLAN, now=MOVED_AT + timedelta(hours=1)).moves == ()
        assert rows(store_target) == again
    with ClaimService(store_target, definition=INSPECTION) as service:  # opens now without a plan
        assert service.verify() == []
        states = {s: service.get(i).state for s, i in old_claims.items()}
    assert states["cancellation_pending"] == "in_mediation" and states["withdrawn"] == "withdrawn"
    found = rows(store_target)
    assert {row[-1] for row in found["claims"]} == {CLAIM_LIFECYCLE.fingerprint(), INSPECTION.fingerprint()}


def test_after_the_migration_claims_follow_the_new_rules(store_target: str, old_claims: dict[str, str]) -> None:
    """The received return now waits for the inspection; the removed trigger is unknown; the agreed offer is
    closed on by the new trigger; the shortened return window fires at its recomputed time."""
    with ClaimService(store_target, definition=INSPECTION, migrating=True) as service:
        service.migrate(PLAN, now=MOVED_AT)
        now = MOVED_AT + timedelta(minutes=1)
        fired = service.fire(old_claims["return_in_transit"], "confirm_return_received", "supplier:acme", now=now)
        assert fired.claim.state == "awaiting_inspection" and fired.claim.refund is None
        with pytest.raises(TransitionRefused):
            service.fire(old_claims["return_in_transit"], "pass_inspection", "buyer:alice", now=now)
        passed = service.fire(old_claims["return_in_transit"], "pass_inspection", "supplier:acme", now=now)
        assert passed.claim.state == "refunded_full" and passed.claim.refund is not None
        with pytest.raises(InvalidInput, match="unknown trigger 'cancel_claim'"):
            service.fire(old_claims["in_mediation"], "cancel_claim", "buyer:alice", now=now)
        closed = service.fire(old_claims["cancellation_pending"], "close_on_agreement", "buyer:alice", now=now)
        assert closed.claim.state == "refunded_partial"
        awaiting_return = service.get(old_claims["awaiting_return"])
        assert awaiting_return.deadline is not None
        filed_return = service.history(old_claims["awaiting_return"])[2].at  # decide_full_refund set the clock
        assert awaiting_return.deadline.due == filed_return + timedelta(days=7)
        early = service.tick(awaiting_return.deadline.due - timedelta(seconds=1))
        assert awaiting_return.id not in {r.claim_id for r in early}
        (released,) = [r for r in service.tick(awaiting_return.deadline.due) if r.claim_id == awaiting_return.id]
        assert released.dest == "payment_released"
        assert service.verify() == []


def test_keep_leaves_a_running_deadline_as_it_was_due(store_target: str, old_claims: dict[str, str]) -> None:
    with ClaimService(store_target, definition=INSPECTION, migrating=True) as service:
        due = service.get(old_claims["awaiting_return"]).deadline
        service.migrate({**PLAN, "deadlines": {"return_due": "keep"}}, now=MOVED_AT)
        assert service.get(old_claims["awaiting_return"]).deadline == due
        assert service.verify() == []


def test_verify_names_steps_it_cannot_replay(store_target: str, old_claims: dict[str, str]) -> None:
    """A service whose definition does not list the one earlier steps were decided under cannot replay them,
    and says so rather than calling the claim damaged; a stored definition edited by hand is named."""
    with ClaimService(store_target, definition=INSPECTION, migrating=True) as service:
        service.migrate(PLAN, now=MOVED_AT)
    forgetful = attrs.evolve(INSPECTION, earlier=())
    with ClaimService(store_target, definition=forgetful) as service:
        found = service.verify()
    assert {m.kind for m in found} == {"definition"}
    assert len(found) == len(old_claims)
    assert "which this service cannot replay: give that definition in the current one's `earlier`" in found[0].problem


def test_a_claim_row_that_records_another_definition_is_named(tmp_path: Path) -> None:
    db = str(tmp_path / "claims.db")
    with ClaimService(db) as service:
        ids = put_claims(service)
    conn = sqlite3.connect(db)
    conn.execute("UPDATE claims SET definition = ? WHERE id = ?", (INSPECTION.fingerprint(), ids["in_mediation"]))
    conn.execute("UPDATE definitions SET body = replace(body, '\"window_seconds\":864000', '\"window_seconds\":1')")
    conn.commit()
    conn.close()
    with ClaimService(db, read_only=True) as service:
        found = [(m.claim_id, m.kind) for m in service.verify()]
    assert (ids["in_mediation"], "definition") in found
    assert (None, "definition") in found  # the stored export no longer matches its fingerprint


# --- upgrading a database from before definitions were recorded -------------------------------------------


def to_schema_3(path: str) -> None:
    """Take a SQLite database back to what schema 3 wrote: no definitions recorded."""
    forget_definitions(path, version=3)


def test_an_older_database_adopts_the_definition_it_is_opened_with(tmp_path: Path) -> None:
    """Claims written before definitions were recorded are taken as decided under the definition of the open
    that upgrades the file; their old steps keep their hashes and replay under it (the baseline)."""
    db = str(tmp_path / "claims.db")
    with ClaimService(db) as service:
        ids = put_claims(service)
    to_schema_3(db)
    with ClaimService(db) as service:
        assert service.schema_version == 7
        assert service.verify() == []
        service.fire(ids["in_mediation"], "escalate", "buyer:alice", now=MOVED_AT)
        assert service.verify() == []
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT value FROM meta WHERE name = 'baseline_definition'").fetchone() == (
        CLAIM_LIFECYCLE.fingerprint(),
    )
    assert conn.execute("SELECT count(*) FROM transitions WHERE definition IS NOT NULL").fetchone() == (1,)
    conn.close()
    with pytest.raises(LifecycleChanged):
        ClaimService(db, definition=INSPECTION)


def test_an_older_database_is_not_adopted_by_a_definition_lacking_its_states(tmp_path: Path) -> None:
    """Upgrading with a changed lifecycle whose states do not hold the claims is refused, changing nothing."""
    db = str(tmp_path / "claims.db")
    with ClaimService(db) as service:
        put_claims(service)
    to_schema_3(db)
    before = Path(db).read_bytes()
    lacking = r"this lifecycle lacks \(cancellation_pending, cancel_claim: in_mediation -> cancellation_pending\)"
    with pytest.raises(StorageError, match=lacking):
        ClaimService(db, definition=INSPECTION)
    assert Path(db).read_bytes() == before


def test_an_older_database_is_not_adopted_by_a_definition_lacking_its_past_transitions(tmp_path: Path) -> None:
    """A claim closed through a transition the opener lacks would not replay under it: refused too."""
    db = str(tmp_path / "claims.db")
    with ClaimService(db) as service:
        claim = service.file_claim(filing(), now=T0).claim
        for trigger, actor, data in PATHS["cancellation_pending"]:
            service.fire(claim.id, trigger, actor, data, now=T0)
        assert service.fire(claim.id, "approve_cancellation", "agent:kim", now=T0).claim.state == "refunded_partial"
    to_schema_3(db)
    with pytest.raises(StorageError, match=r"approve_cancellation: cancellation_pending -> refunded_partial"):
        ClaimService(db, definition=INSPECTION)


# --- the docs' walk through a change (docs/guides/changing-the-lifecycle.md) ---------------------------


def _section() -> str:
    return (Path(__file__).parents[2] / "docs" / "guides" / "changing-the-lifecycle.md").read_text()


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", _section(), re.S)


def test_the_readmes_change_runs_and_prints_what_it_shows(tmp_path: Path) -> None:
    """The shell walk-through runs as written, in a new folder, and prints each line the page shows (claim
    ids aside) in that order; then the Python example runs on claims of the old definition."""
    (script,) = _blocks("sh")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(Path(__file__).parents[1]),
    }
    env.pop("CLAIMSTATE_DB", None)
    env.pop("CLAIMSTATE_DEFINITION", None)
    ran = subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, timeout=300, check=False)  # fmt: skip
    assert ran.returncode == 0, ran.stdout
    printed = ran.stdout.splitlines()
    ulid = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")
    shown = [line for block in _blocks("text") for line in block.splitlines() if line != "..."]
    at = 0
    for line in shown:
        pattern = re.compile(re.escape(ulid.sub("ULID", line)).replace("ULID", ulid.pattern) + "$")
        found = next((n for n in range(at, len(printed)) if pattern.match(printed[n])), None)
        assert found is not None, f"not printed (in this order): {line!r}"
        at = found + 1
    (example,) = _blocks("python")
    folder = tmp_path / "python"
    folder.mkdir()
    with ClaimService(str(folder / "claims.db")) as service:
        put_claims(service)
    cwd = Path.cwd()
    os.chdir(folder)
    try:
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            exec(compile(example, "changing-the-lifecycle.md", "exec"), {})
    finally:
        os.chdir(cwd)
    assert "1 in cancellation_pending" in output.getvalue()
    with ClaimService(str(folder / "claims.db"), definition=INSPECTION) as service:
        assert service.outdated() == () and service.verify() == []


def test_moving_a_database_keeps_its_definitions_and_its_baseline(tmp_path: Path, postgres_url: str) -> None:
    """migrate-store copies the definitions and the baseline of the rows that record none, so an upgraded
    and then migrated SQLite file verifies on PostgreSQL, old steps and new."""
    db = str(tmp_path / "claims.db")
    with ClaimService(db) as service:
        put_claims(service)
    to_schema_3(db)
    ClaimService(db).close()  # the upgrade: its claims are the built-in lifecycle's
    with ClaimService(db, definition=INSPECTION, migrating=True) as service:
        service.migrate(PLAN, now=MOVED_AT)
    with (
        ClaimService(db, definition=INSPECTION, read_only=True) as source,
        ClaimService(postgres_url, definition=INSPECTION) as target,
    ):
        moved = copy_claims(source, target)
        assert moved.mismatches == ()
        assert set(target.definitions()) == {CLAIM_LIFECYCLE.fingerprint(), INSPECTION.fingerprint()}
        assert target.outdated() == ()


def test_a_definition_that_does_not_list_the_old_one_cannot_migrate(
    store_target: str, old_claims: dict[str, str]
) -> None:
    """Moving claims onto a definition that could not replay their past would leave verify unable to check
    them: the plan is refused, saying what to add."""
    forgetful = attrs.evolve(INSPECTION, earlier=())
    with (
        ClaimService(store_target, definition=forgetful, migrating=True) as service,
        pytest.raises(PlanRefused) as refused,
    ):
        service.migrate(PLAN, now=MOVED_AT)
    assert refused.value.problems == (
        "the claims decided under definition 1c3d3b8a9f70 (buyer claim) could not be verified once moved: list"
        " that definition in this one's `earlier`, so their past steps can be replayed",
    )


# --- the command line --------------------------------------------------------------------------------


def _claimstate(folder: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), **(env or {})}
    environment.pop("CLAIMSTATE_DB", None)
    return subprocess.run([sys.executable, "-m", "claimstate", *args], cwd=folder, env=environment,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def test_a_definition_module_that_fails_is_one_line_naming_it(tmp_path: Path) -> None:
    """A module that raises as it loads, a name it lacks, a value that is not a Definition: one line, exit 2,
    naming where it came from; a bad $CLAIMSTATE_DEFINITION does not stop the demo, which never uses it."""
    (tmp_path / "raising.py").write_text("raise RuntimeError('half written')\n")
    (tmp_path / "typo.py").write_text("from claimstate import CLAIM_LIFECYCLE\nLIFE = CLAIM_LIFECYCLE.stats\n")
    (tmp_path / "number.py").write_text("LIFE = 3\n")
    for target, said in [
        ("raising:LIFE", "error: --definition: raising fails as it loads: RuntimeError: half written"),
        ("typo:LIFE", "error: --definition: typo fails as it loads: AttributeError: 'Definition' object has no"
                      " attribute 'stats'"),
        ("number:NOPE", "error: --definition: number has no NOPE"),
        ("number:LIFE", "error: --definition: number:LIFE is a int, not a Definition"),
        ("nosuch:LIFE", "error: --definition: cannot import nosuch: No module named 'nosuch'"),
    ]:  # fmt: skip
        ran = _claimstate(tmp_path, "--definition", target, "model")
        assert (ran.returncode, ran.stderr.strip()) == (2, said)
    from_env = _claimstate(tmp_path, "model", env={"CLAIMSTATE_DEFINITION": "raising:LIFE"})
    assert from_env.returncode == 2 and from_env.stderr.startswith("error: $CLAIMSTATE_DEFINITION: raising fails")
    demo = _claimstate(tmp_path, "demo", "--dir", "d", env={"CLAIMSTATE_DEFINITION": "raising:LIFE"})
    assert demo.returncode == 0, demo.stderr


def test_the_commands_speak_of_the_definition_given(tmp_path: Path) -> None:
    """`fire --help` lists the triggers of the definition given; `diff` names a file that is not an export;
    a plan that is not JSON is named with its line; `model --export` writes the export with its fingerprint."""
    changed = ["--definition", "changed_lifecycle:INSPECTION"]
    fire_help = _claimstate(tmp_path, *changed, "fire", "--help").stdout
    assert "pass_inspection" in fire_help and "cancel_claim" not in fire_help
    assert "cancel_claim" in _claimstate(tmp_path, "fire", "--help").stdout
    exported = _claimstate(tmp_path, *changed, "model", "--export", "new.json")
    assert exported.returncode == 0, exported.stderr
    assert json.loads((tmp_path / "new.json").read_text())["fingerprint"] == INSPECTION.fingerprint()
    (tmp_path / "other.json").write_text('{"states": 3}')
    wrong = _claimstate(tmp_path, "diff", "other.json", "new.json")
    assert (wrong.returncode, wrong.stderr.strip()) == (
        2, "error: OLD.json: other.json is not an exported definition (`claimstate model --export`): its states"
        " and transitions do not read",
    )  # fmt: skip
    (tmp_path / "plan.json").write_text('{\n  "states": {}\n  "deadlines": "keep"\n}\n')
    with ClaimService(str(tmp_path / "claims.db")) as service:
        put_claims(service)
    bad_plan = _claimstate(tmp_path, *changed, "migrate", "--plan", "plan.json")
    assert (bad_plan.returncode, bad_plan.stderr.strip()) == (
        2, "error: plan: not JSON: Expecting ',' delimiter at line 3, column 3",
    )  # fmt: skip
    (tmp_path / "plan.json").write_text('{"states": {"withdrawn": "in_mediation"}, "deadlines": "keep"}')
    closed = _claimstate(tmp_path, *changed, "--json", "migrate", "--plan", "plan.json", "--dry-run")
    assert closed.returncode == 2
    assert json.loads(closed.stdout)["problems"] == [
        "states maps 'withdrawn', a final state: closed claims are never moved",
        "1 open claim(s) in cancellation_pending (definition 1c3d3b8a9f70) have no state to go to in the new"
        " definition: map 'cancellation_pending' in the plan's states",
    ]
    refused = _claimstate(tmp_path, *changed, "tick")
    assert refused.returncode == 7 and "8 open claim(s)" in refused.stderr and "Traceback" not in refused.stderr


# --- what a review found --------------------------------------------------------------------------------


def test_a_forged_migration_row_does_not_verify(tmp_path: Path) -> None:
    """A `migrate` row that stays within one definition (skipping the steps the rules require), or whose
    deadline does not fit its state, is caught by the replay, even with the hash chain recomputed."""
    db = str(tmp_path / "claims.db")
    with ClaimService(db) as service:
        ids = put_claims(service)
    fingerprint = CLAIM_LIFECYCLE.fingerprint()
    data = {"from_definition": fingerprint, "to_definition": fingerprint, "deadline": "started"}
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER transitions_no_update")
    conn.execute(
        "INSERT INTO transitions (claim_id, seq, trigger, from_state, to_state, actor, at, data, deadline_at,"
        " definition) VALUES (?, 2, 'migrate', 'awaiting_evidence', 'awaiting_return', 'system', ?, ?, ?, ?)",
        (ids["awaiting_evidence"], "2026-03-02T10:00:00.000000+00:00", json.dumps(data),
         "2027-01-01T00:00:00.000000+00:00", fingerprint),
    )  # fmt: skip
    rechain(conn, ids["awaiting_evidence"], Chain())  # a forger who knows the algorithm recomputes the chain
    conn.commit()
    conn.close()
    with ClaimService(db, read_only=True) as service:
        found = [m for m in service.verify() if m.claim_id == ids["awaiting_evidence"]]
    assert found[0].kind == "replay" and found[0].seq == 2
    assert "not a migration: it does not move the claim from definition 1c3d3b8a9f70 to another" in found[0].problem


def test_a_claim_closed_meanwhile_is_not_moved(
    store_target: str, old_claims: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claim listed as open but closed by another writer before the migration locked it is left alone
    (here, the listing is made to include the closed claim)."""
    with ClaimService(store_target, definition=INSPECTION, migrating=True) as service:
        listed = service._store.definitions.outdated_ids()
        monkeypatch.setattr(service._store.definitions, "outdated_ids", lambda: [*listed, old_claims["withdrawn"]])
        moved = service.migrate(PLAN, now=MOVED_AT)
        assert old_claims["withdrawn"] not in {m.claim_id for m in moved.moves}
        assert service.get(old_claims["withdrawn"]).state == "withdrawn"
        assert service.verify() == []


def test_recompute_counts_from_when_the_clock_started_after_an_earlier_keep(tmp_path: Path) -> None:
    """10 days kept through one change (7 days), then recomputed to 5 days by the next: due 5 days after the
    claim entered its state, not 5 days before the kept due time."""
    db = str(tmp_path / "claims.db")
    with ClaimService(db) as service:
        claim_id = put_claims(service)["awaiting_return"]
        entered = service.history(claim_id)[-1].at
    with ClaimService(db, definition=INSPECTION, migrating=True) as service:
        service.migrate({**PLAN, "deadlines": "keep"}, now=MOVED_AT)
        assert service.get(claim_id).deadline.due == entered + timedelta(days=10)  # type: ignore[union-attr]
    shorter = tuple(
        attrs.evolve(s, deadline=attrs.evolve(s.deadline, window=timedelta(days=5)))
        if s.deadline is not None and s.deadline.name == "return_due" else s
        for s in INSPECTION.states
    )  # fmt: skip
    third = attrs.evolve(INSPECTION, states=shorter, earlier=(INSPECTION,))
    with ClaimService(db, definition=third, migrating=True) as service:
        service.migrate({"deadlines": "recompute"}, now=MOVED_AT + timedelta(hours=1))
        assert service.get(claim_id).deadline.due == entered + timedelta(days=5)  # type: ignore[union-attr]
        assert service.verify() == []


def test_a_service_left_running_on_the_old_definition_files_no_more(store_target: str) -> None:
    """Once a service with a changed definition opens, one still running the old one is refused a filing
    (and, claim by claim, every fire on a claim moved), rather than filing under superseded rules."""
    with ClaimService(store_target) as old:
        old.file_claim(filing(order_id="o-1"), now=T0)
        with ClaimService(store_target, definition=INSPECTION, migrating=True) as new:
            new.migrate(PLAN, now=MOVED_AT)
            with pytest.raises(LifecycleChanged, match="files claims under definition 871106216cd0 now"):
                old.file_claim(filing(order_id="o-2"), now=MOVED_AT)
            (moved,) = new.list_claims()
            with pytest.raises(LifecycleChanged, match="migrate it first"):
                old.fire(moved.id, "withdraw", "buyer:alice", now=MOVED_AT)
            assert new.file_claim(filing(order_id="o-2"), now=MOVED_AT).claim.state == "awaiting_evidence"
