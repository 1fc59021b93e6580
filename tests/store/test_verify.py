"""verify() sees everything: each way a file can be damaged or tampered with is reported, by kind.

Every tampering is plain SQL on a connection of its own, as someone with write access to the file would
do it (sqlite3 leaves foreign keys off, so rows can lose their claim). The hash chain catches a forged
row that replays cleanly; with a key, even a forger who recomputes the plain chain.
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from changed_lifecycle import INSPECTION
from helpers import EVIDENCE, T0, execute, filing, query, rechain

from claimstate import CLAIM_LIFECYCLE, ClaimService, Difference, Engine, InvalidInput, Mismatch, StorageError
from claimstate._chain import Chain
from claimstate._store.rows import COLUMNS as _COLUMNS
from claimstate._store.rows import claim_columns
from claimstate._store.sqlite import _PARTIAL_INDEXES_AND_TRIGGERS
from claimstate.definition import Definition

KEY = b"the deploying service's secret"
APPEND_ONLY = ("transitions_no_update", "transitions_no_delete")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """Two claims: c-1 filed on o-1 and in mediation, c-2 filed on o-2."""
    path = tmp_path / "claims.db"
    with ClaimService(path) as service:
        service.file_claim(filing(order_id="o-1"), claim_id="c-1", now=T0)
        service.fire("c-1", "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0 + timedelta(hours=1))
        service.file_claim(filing(order_id="o-2"), claim_id="c-2", now=T0)
    return path


@contextmanager
def tampering(path: Path, *, triggers: bool = True) -> Iterator[sqlite3.Connection]:
    """A plain connection to `path`; with `triggers`, the append-only triggers dropped for the edit and put
    back exactly as claimstate made them, so that only the edit itself is left to find."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for name in APPEND_ONLY if triggers else ():
            conn.execute(f"DROP TRIGGER {name}")
        yield conn
        for name in APPEND_ONLY if triggers else ():
            conn.execute(_PARTIAL_INDEXES_AND_TRIGGERS[name])
    finally:
        conn.close()


def verify(path: Path, key: bytes | None = None) -> list[Mismatch]:
    with ClaimService(path, history_key=key) as service:
        return service.verify()


def kinds(found: list[Mismatch]) -> list[tuple[str | None, str]]:
    return [(m.claim_id, m.kind) for m in found]


def test_a_sound_database_verifies_clean_and_reports_carry_their_kind(db: Path) -> None:
    """Nothing to report on a file only claimstate wrote; a report's dict names its kind and row."""
    assert verify(db) == []
    mismatch = Mismatch("c-1", "the hash chain breaks at seq 2", kind="chain", seq=2)
    assert mismatch.to_dict() == {
        "claim_id": "c-1",
        "kind": "chain",
        "seq": 2,
        "problem": "the hash chain breaks at seq 2",
        "differences": [],
    }


# --- rows that went missing, or never had a claim ------------------------------------------------------------


def test_a_deleted_claims_row_is_reported_and_its_history_is_not_shown(db: Path) -> None:
    """With c-2's claims row deleted, verify names it; history and get say the claim is damaged; an order
    whose open claim was deleted can be filed on again, and verify still shows the deleted claim."""
    with tampering(db, triggers=False) as conn:
        conn.execute("DELETE FROM claims WHERE id = 'c-2'")
    assert kinds(verify(db)) == [("c-2", "claim_missing")]
    with ClaimService(db) as service:
        for read in (service.history, service.get):
            with pytest.raises(StorageError, match=r"'c-2' .* is damaged: its history is there but its claims row"):
                read("c-2")
        service.file_claim(filing(order_id="o-2"), claim_id="c-3", now=T0)
        assert kinds(service.verify()) == [("c-2", "claim_missing")]


def test_history_rows_of_a_claim_that_never_was_are_reported(db: Path) -> None:
    """Rows copied under the id 'ghost', which has no claims row, are orphans."""
    with tampering(db, triggers=False) as conn:
        conn.execute("INSERT INTO transitions SELECT 'ghost', seq, trigger, from_state, to_state, actor, at, data,"
                     " deadline_at, NULL, NULL, hash, definition FROM transitions WHERE claim_id = 'c-1'")  # fmt: skip
    found = verify(db)
    assert ("ghost", "claim_missing") in kinds(found)
    assert {m.claim_id for m in found} == {"ghost"}


def test_a_claims_row_without_history_is_reported(db: Path) -> None:
    """The other way round: a claim whose history rows are all gone."""
    with tampering(db) as conn:
        conn.execute("DELETE FROM transitions WHERE claim_id = 'c-2'")
    assert kinds(verify(db)) == [("c-2", "no_history"), ("c-2", "event")]  # its event outlived the row


# --- rows that say something else than happened ------------------------------------------------------------


def test_edited_states_of_a_history_row_are_reported(db: Path) -> None:
    """A row's to_state edited: the chain breaks there, and the replay names the state it went through. With
    the chain recomputed (no key), the replay still catches it."""
    with tampering(db) as conn:
        conn.execute("UPDATE transitions SET to_state = 'under_review' WHERE claim_id = 'c-1' AND seq = 2")
    found = verify(db)
    assert kinds(found) == [("c-1", "chain"), ("c-1", "states"), ("c-1", "event")]  # the event says otherwise
    assert found[1].differences == (Difference("to_state", "under_review", "in_mediation"),)
    assert found[1].seq == 2
    with tampering(db) as conn:
        rechain(conn, "c-1", Chain())
    assert kinds(verify(db)) == [
        ("c-1", "states"),
        ("c-1", "event"),
    ]  # a rechained forgery still differs from its event


def test_a_filing_row_with_another_trigger_is_reported(db: Path) -> None:
    """The first row must be the definition's filing, whatever the replay makes of it."""
    with tampering(db) as conn:
        conn.execute("UPDATE transitions SET trigger = 'escalate' WHERE claim_id = 'c-2' AND seq = 1")
        rechain(conn, "c-2", Chain())
    found, event = verify(db)
    assert (found.claim_id, found.kind, found.seq) == ("c-2", "filing", 1)
    assert (event.claim_id, event.kind, event.seq) == ("c-2", "event", 1)
    assert "'escalate' from None, not the filing ('file_claim' from nothing)" in found.problem


def test_a_gap_in_the_history_is_reported(db: Path) -> None:
    """A middle row deleted: the seqs say so, and the chain breaks at the row after the gap."""
    with ClaimService(db) as service:
        service.fire("c-1", "escalate", "buyer:alice", now=T0 + timedelta(hours=2))
    with tampering(db) as conn:
        conn.execute("DELETE FROM transitions WHERE claim_id = 'c-1' AND seq = 2")
    found = verify(db)
    assert kinds(found) == [("c-1", "sequence"), ("c-1", "chain"), ("c-1", "event")]
    assert "[1, 3], not 1..2" in found[0].problem
    assert found[1].seq == 3


def test_a_second_open_claim_on_an_order_is_reported(db: Path) -> None:
    """With the unique index dropped, a twin of c-2 (same order, still open, own history) is let in."""
    with tampering(db) as conn:
        conn.execute("DROP INDEX claims_one_open_per_order")
        twin = claim_columns(Engine().file_claim("c-9", "buyer:alice", filing(order_id="o-2"), T0).claim, False)
        conn.execute(f"INSERT INTO claims VALUES ({', '.join('?' * (len(_COLUMNS) + 1))})",
                     [*(twin[c] for c in _COLUMNS), CLAIM_LIFECYCLE.fingerprint()])  # fmt: skip
        conn.execute("INSERT INTO transitions SELECT 'c-9', seq, trigger, from_state, to_state, actor, at, data,"
                     " deadline_at, NULL, NULL, NULL, definition FROM transitions WHERE claim_id = 'c-2'")  # fmt: skip
        rechain(conn, "c-9", Chain())
    found = verify(db)
    assert kinds(found) == [(None, "schema"), ("c-9", "open_twice")]
    assert found[0].problem == "the index claims_one_open_per_order is missing"
    assert found[1].problem == "order 'o-2' has 2 open claims: c-2, c-9"


# --- the schema, and the file itself ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "problem"),
    [
        ("DROP TRIGGER transitions_no_update", "the trigger transitions_no_update is missing"),
        ("DROP TRIGGER transitions_no_delete", "the trigger transitions_no_delete is missing"),
        ("DROP INDEX claims_one_open_per_order", "the index claims_one_open_per_order is missing"),
        ("DROP INDEX claims_one_open_per_order; CREATE INDEX claims_one_open_per_order ON claims (order_id)",
         "the index claims_one_open_per_order is not the one claimstate made: CREATE INDEX"),
        ("DROP INDEX claims_by_state", "the index claims_by_state is missing"),
        ("CREATE TRIGGER rewrite AFTER INSERT ON transitions BEGIN SELECT 1; END",
         "the trigger rewrite is not claimstate's: CREATE TRIGGER rewrite"),
    ],
)  # fmt: skip
def test_a_missing_or_changed_schema_object_is_a_database_problem(db: Path, sql: str, problem: str) -> None:
    """The append-only triggers, the one-open-claim-per-order index and the rest are checked by name and, for
    those claimstate wrote by hand, by their SQL; a trigger someone added is named too."""
    with tampering(db, triggers=False) as conn:
        conn.executescript(sql)
    (found,) = verify(db)
    assert (found.claim_id, found.kind) == (None, "schema")
    assert found.problem.startswith(problem)


def _twenty_claims_and_root_page(path: Path, name: str) -> tuple[bytearray, int, int]:
    """A file of 20 claims, as bytes, with the offset of the root page of table or index `name`, and the page size."""
    with ClaimService(path) as service:
        for n in range(20):
            service.file_claim(filing(order_id=f"o-{n}"), now=T0)
    conn = sqlite3.connect(path)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (name,)).fetchone()
    conn.close()
    return bytearray(path.read_bytes()), (root - 1) * page_size, page_size


def test_a_byte_flip_that_breaks_the_file_is_caught_by_sqlites_integrity_check(tmp_path: Path) -> None:
    """One byte changed in an index page: every row still replays, but SQLite's integrity check finds the index
    no longer matches its table, and verify reports that instead of clean."""
    path = tmp_path / "claims.db"
    data, start, page_size = _twenty_claims_and_root_page(path, "claims_by_state")
    at = data.index(b"awaiting_evidence", start, start + page_size)
    data[at] ^= 0x01  # 'a' becomes '`' in one index entry
    path.write_bytes(bytes(data))
    found = verify(path)
    assert found
    assert {m.kind for m in found} == {"integrity"}
    assert all(m.claim_id is None for m in found)
    assert any("claims_by_state" in m.problem for m in found)


def test_a_damaged_page_is_an_integrity_mismatch_not_an_error(tmp_path: Path) -> None:
    """The header of the claims table's root page overwritten: SQLite fails every read of that table, and its
    own check, with "malformed". verify, writable or read-only, returns that as `integrity` first (and each
    claim it cannot read), rather than raising."""
    path = tmp_path / "claims.db"
    data, start, _ = _twenty_claims_and_root_page(path, "claims")
    data[start : start + 12] = b"\xff" * 12
    path.write_bytes(bytes(data))
    for read_only in (False, True):
        with ClaimService(path, read_only=read_only) as service:
            found = service.verify()
        assert (found[0].claim_id, found[0].kind) == (None, "integrity")
        assert "malformed" in found[0].problem


def test_random_bytes_after_a_sqlite_header_are_one_storage_error(tmp_path: Path) -> None:
    """A file that starts like SQLite but holds random bytes is refused at the open, as damaged, by a
    StorageError (never another exception), writable or read-only."""
    path = tmp_path / "claims.db"
    path.write_bytes(b"SQLite format 3\x00" + random.Random(21).randbytes(40_000))
    for read_only in (False, True):
        with pytest.raises(StorageError, match=r"is damaged|is not a claimstate database"):
            ClaimService(path, read_only=read_only)


# --- the hash chain -------------------------------------------------------------------------------------------


def forge(path: Path, chain: Chain | None) -> None:
    """Append a well-formed decision for the supplier by agent:evil to c-1 and rewrite its claims row to the
    replay, so only the chain can tell; `chain`: the forger recomputes the claim's hashes with it."""
    with ClaimService(path, read_only=True) as service:
        claim = service.get("c-1")
    at = T0 + timedelta(hours=3)
    fired = Engine().fire(claim, "decide_for_supplier", "agent:evil", {"rationale": "as described"}, at)
    row = claim_columns(fired.claim, True)
    with tampering(path) as conn:
        conn.execute(
            "INSERT INTO transitions (claim_id, seq, trigger, from_state, to_state, actor, at, data, hash, definition)"
            " SELECT 'c-1', 3, 'decide_for_supplier', 'in_mediation', 'payment_released', 'agent:evil', ?, ?, ?,"
            " definition FROM claims WHERE id = 'c-1'",
            (fired.record.to_dict()["at"], json.dumps({"rationale": "as described"}), "0" * 64),
        )
        conn.execute(
            f"UPDATE claims SET {', '.join(f'{c} = ?' for c in _COLUMNS)} WHERE id = 'c-1'", [row[c] for c in _COLUMNS]
        )
        if chain is not None:
            rechain(conn, "c-1", chain)


def test_a_forged_transition_that_replays_cleanly_is_caught_by_the_chain(db: Path) -> None:
    """The forged decision replays (an agent may decide) and the claims row matches it: only the chain breaks."""
    forge(db, None)
    with ClaimService(db) as service:
        assert [r.trigger for r in service.history("c-1")][-1] == "decide_for_supplier"
        (found,) = service.verify()
    assert (found.claim_id, found.kind, found.seq) == ("c-1", "chain", 3)


def test_without_a_key_a_forger_who_recomputes_the_chain_is_not_caught(db: Path) -> None:
    """The plain chain's limit, as the README says: whoever can write the file can recompute SHA-256."""
    forge(db, Chain())
    assert verify(db) == []


def test_with_a_key_a_forger_who_recomputes_the_plain_chain_is_caught(tmp_path: Path) -> None:
    """With history_key the chain is HMAC-SHA256: a forger without the key cannot make the row verify."""
    path = tmp_path / "claims.db"
    with ClaimService(path, history_key=KEY) as service:
        service.file_claim(filing(order_id="o-1"), claim_id="c-1", now=T0)
        service.fire("c-1", "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0 + timedelta(hours=1))
        assert service.verify() == []
    forge(path, Chain())
    assert kinds(verify(path, KEY)) == [("c-1", "chain")]
    assert verify(path, KEY)[0].seq == 1  # recomputed from the filing on, every row is now the forger's


def test_a_missing_or_wrong_key_is_named_not_every_row_reported(tmp_path: Path) -> None:
    """A keyed database read without its key, or with another, reports that once instead of every row as forged,
    and refuses every write; with its key it verifies and writes."""
    path = tmp_path / "claims.db"
    with ClaimService(path, history_key=KEY) as service:
        for n in range(3):
            service.file_claim(filing(order_id=f"o-{n}"), claim_id=f"c-{n}", now=T0)
    no_key, wrong_key = verify(path), verify(path, b"another secret of sixteen bytes")
    assert kinds(no_key) == kinds(wrong_key) == [(None, "chain_key")]
    assert "chained with HMAC-SHA256 under a key" in no_key[0].problem
    assert "give that key (history_key)" in no_key[0].problem
    assert "chained under another key" in wrong_key[0].problem
    for key in (None, b"another secret of sixteen bytes"):
        with (
            ClaimService(path, history_key=key) as service,
            pytest.raises(StorageError, match="nothing can be written"),
        ):
            service.fire("c-0", "withdraw", "buyer:alice", now=T0)
    with ClaimService(path, history_key=KEY) as service:
        service.fire("c-0", "withdraw", "buyer:alice", now=T0)
        assert service.verify() == []


def test_a_service_with_a_key_accepts_no_plain_chain(db: Path) -> None:
    """A plain-SHA-256 database, or a keyed one whose record of its kind was rewritten to plain and its rows
    re-chained, is refused by a service holding a key: reported by verify, and no write goes through."""
    found = verify(db, KEY)
    assert kinds(found) == [(None, "chain_key")]
    assert "accepts only an HMAC-SHA256 chain" in found[0].problem
    with ClaimService(db, history_key=KEY) as service, pytest.raises(StorageError, match="nothing can be written"):
        service.fire("c-1", "escalate", "buyer:alice", now=T0 + timedelta(hours=2))
    keyed = db.with_name("keyed.db")
    with ClaimService(keyed, history_key=KEY) as service:
        service.file_claim(filing(), claim_id="c-1", now=T0)
    with tampering(keyed) as conn:
        conn.execute("UPDATE meta SET value = 'sha256' WHERE name = 'chain'")
        rechain(conn, "c-1", Chain())
    assert kinds(verify(keyed, KEY)) == [(None, "chain_key")]


def test_a_history_key_is_bytes_of_some_length() -> None:
    for bad in ("a text key of sixteen characters", b"short"):
        with pytest.raises(InvalidInput) as error:
            ClaimService(":memory:", history_key=bad)  # type: ignore[arg-type]
        assert error.value.field == "history_key"


# --- schema 1 to 2 ---------------------------------------------------------------------------------------


def to_schema_1(path: Path) -> None:
    """Take a database back to what schema 1 wrote: no hash column, no meta table, no event feed, no
    definitions recorded."""
    with tampering(path, triggers=False) as conn:
        for table in ("meta", "events", "consumers", "definitions", "workers"):
            conn.execute(f"DROP TABLE {table}")
        conn.execute("DROP INDEX claims_open_by_state")
        conn.execute("DROP INDEX transitions_by_time")
        conn.execute("ALTER TABLE transitions DROP COLUMN hash")
        conn.execute("DROP INDEX claims_open_by_definition")
        conn.execute("ALTER TABLE transitions DROP COLUMN definition")
        conn.execute("ALTER TABLE claims DROP COLUMN definition")
        conn.execute("PRAGMA user_version = 1")


def hashes(path: Path) -> list[tuple[str, int, str]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT claim_id, seq, hash FROM transitions ORDER BY claim_id, seq").fetchall()
    finally:
        conn.close()


@pytest.mark.parametrize("key", [None, KEY], ids=["sha256", "hmac"])
def test_migrating_schema_1_chains_the_existing_history(db: Path, key: bytes | None) -> None:
    """Opening a schema 1 file chains every history row in the migration, under the opener's key if it has one:
    the hashes are the ones the rows would have had if written chained, and the file verifies clean."""
    to_schema_1(db)
    with ClaimService(db, history_key=key) as service:
        assert service.verify() == []
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone() == (7,)
    assert dict(conn.execute("SELECT name, value FROM meta").fetchall())["chain"] == Chain(key).kind
    conn.close()
    migrated = hashes(db)
    with tampering(db) as conn:  # a schema 1 row records no definition, so its hash covers none
        for claim_id in ("c-1", "c-2"):
            rechain(conn, claim_id, Chain(key))
    assert hashes(db) == migrated
    with tampering(db) as conn:
        for claim_id in ("c-1", "c-2"):
            rechain(conn, claim_id, Chain())
    assert (hashes(db) == migrated) is (key is None)
    assert kinds(verify(db, None if key else KEY)) == [(None, "chain_key")]


def test_a_migration_that_fails_changes_nothing(db: Path) -> None:
    """A schema 1 row whose data is not JSON cannot be chained: the open fails naming it, and the file is
    still schema 1, as it was."""
    to_schema_1(db)
    with tampering(db) as conn:
        conn.execute("UPDATE transitions SET data = '{damaged' WHERE claim_id = 'c-2'")
    before = db.read_bytes()
    with pytest.raises(StorageError, match=r"'c-2' .* holds damaged JSON"):
        ClaimService(db)
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone() == (1,)
    assert "hash" not in {row[1] for row in conn.execute("PRAGMA table_info(transitions)")}
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'transitions_no_update'").fetchone() is not None
    conn.close()
    assert db.read_bytes() == before


# --- the event feed, on both stores ------------------------------------------------------------------------


def walked(target: str, key: bytes | None) -> str:
    """A claim filed, given evidence and refunded in full, on `target`: its id."""
    with ClaimService(target, history_key=key) as service:
        claim_id = service.file_claim(filing(order_id="o-1"), now=T0).claim.id
        service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0 + timedelta(hours=1))
        service.fire(claim_id, "decide_full_refund", "agent:kim", {"rationale": "shown"}, now=T0 + timedelta(hours=2))
        assert service.verify() == []
    return claim_id


@pytest.mark.parametrize("key", [None, KEY], ids=["sha256", "hmac"])
@pytest.mark.parametrize(
    ("field", "value"),
    [("amount", "4900.00"), ("state", "refunded_full"), ("version", 7), ("closed", True), ("buyer_id", "mallory")],
)
def test_an_event_whose_claim_summary_was_changed_is_named(
    store_target: str, key: bytes | None, field: str, value: object
) -> None:
    """An event's claim summary edited by hand (the amount a payments consumer refunds, the state, the
    version...) is an `event` mismatch naming its seq and the value its history rebuilds, with or without a
    key: the summary is checked against the claim the replay rebuilds at that step."""
    claim_id = walked(store_target, key)
    (summary,) = query(store_target, f"SELECT claim FROM events WHERE claim_id = '{claim_id}' AND seq = 2")
    changed = {**json.loads(summary[0]), field: value}
    execute(store_target, "UPDATE events SET claim = %s WHERE seq = 2", (json.dumps(changed),))
    found = verify_target(store_target, key)
    assert [(m.claim_id, m.kind, m.seq) for m in found] == [(claim_id, "event", 2)]
    ((difference),) = found[0].differences
    assert difference == Difference(f"claim.{field}", value, json.loads(summary[0])[field])


def test_an_event_moved_to_another_lane_or_holding_damaged_json_is_named(store_target: str) -> None:
    """The event's lane is its claim's (else a consumer could get its events out of order), and its summary
    must be JSON: either changed is an `event` mismatch."""
    claim_id = walked(store_target, None)
    execute(store_target, "UPDATE events SET lane = mod(lane + 1, 16) WHERE seq = 1")
    execute(store_target, "UPDATE events SET claim = '{damaged' WHERE seq = 3")
    found = verify_target(store_target, None)
    assert [(m.claim_id, m.kind, m.seq) for m in found] == [(claim_id, "event", 1), (claim_id, "event", 3)]
    assert [d.field for d in found[0].differences] == ["lane"]
    assert "damaged" in found[1].problem


def verify_target(target: str, key: bytes | None) -> list[Mismatch]:
    with ClaimService(target, history_key=key) as service:
        return service.verify()


# --- PostgreSQL's schema ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "problem"),
    [
        ("ALTER TABLE transitions DISABLE TRIGGER transitions_no_change",
         "the trigger transitions_no_change on transitions is not enabled as claimstate made it"
         " (pg_trigger.tgenabled 'D')"),
        ("ALTER TABLE transitions ENABLE REPLICA TRIGGER transitions_no_truncate",
         "the trigger transitions_no_truncate on transitions is not enabled as claimstate made it"
         " (pg_trigger.tgenabled 'R')"),
        ("CREATE OR REPLACE FUNCTION claimstate_history_is_append_only() RETURNS trigger LANGUAGE plpgsql AS"
         " $$ BEGIN RETURN NEW; END $$",
         "the function claimstate_history_is_append_only, which the append-only triggers run, is not claimstate's"),
        ("CREATE FUNCTION forged() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;"
         " CREATE TRIGGER rewrite BEFORE UPDATE ON claims FOR EACH ROW EXECUTE FUNCTION forged()",
         "the trigger rewrite on claims is not claimstate's: CREATE TRIGGER rewrite BEFORE UPDATE ON claims"),
        ("CREATE FUNCTION forged() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;"
         " CREATE TRIGGER transitions_no_change BEFORE INSERT OR UPDATE ON claims FOR EACH ROW EXECUTE FUNCTION"
         " forged()",
         "the trigger transitions_no_change on claims is not claimstate's: CREATE TRIGGER transitions_no_change"),
        ("DROP TRIGGER transitions_no_change ON transitions; CREATE TRIGGER transitions_no_change BEFORE DELETE"
         " ON transitions FOR EACH ROW EXECUTE FUNCTION claimstate_history_is_append_only()",
         "the trigger transitions_no_change is not the one claimstate made: CREATE TRIGGER transitions_no_change"
         " BEFORE DELETE ON transitions"),
        ("DROP INDEX claims_one_open_per_order;"
         " ALTER TABLE claims ADD CONSTRAINT claims_one_open_per_order UNIQUE (order_id, id)",
         "the index claims_one_open_per_order is not the one claimstate made: CREATE UNIQUE INDEX"
         " claims_one_open_per_order ON claims USING btree (order_id, id)"),
        ("ALTER TABLE transitions DROP CONSTRAINT transitions_pkey;"
         " ALTER TABLE transitions ADD PRIMARY KEY (claim_id, seq, at)",
         "the index transitions_pkey is not the one claimstate made"),
        ("CREATE RULE hide AS ON UPDATE TO events DO INSTEAD NOTHING", "the rule hide on events is not claimstate's"),
    ],
)  # fmt: skip
def test_postgres_a_changed_trigger_function_or_index_is_a_schema_problem(
    postgres_url: str, sql: str, problem: str
) -> None:
    """On PostgreSQL, as on SQLite, verify compares the schema with what claimstate made: each append-only
    trigger enabled and as written, the function it runs, no other trigger or rule on its tables, and each
    index's exact definition (a unique constraint of the same name included)."""
    walked(postgres_url, None)
    execute(postgres_url, sql)
    (found,) = verify_target(postgres_url, None)
    assert (found.claim_id, found.kind) == (None, "schema")
    assert found.problem.startswith(problem)


def test_postgres_an_internal_trigger_disabled_is_a_schema_problem(postgres_url: str) -> None:
    """`DISABLE TRIGGER ALL` also turns off the foreign key's own triggers: each is named."""
    walked(postgres_url, None)
    execute(postgres_url, "ALTER TABLE transitions DISABLE TRIGGER ALL")
    found = verify_target(postgres_url, None)
    assert {m.kind for m in found} == {"schema"}
    assert len([m for m in found if m.problem.startswith("the trigger RI_ConstraintTrigger_c_")]) == 2
    assert len(found) == 4


# --- under a changed definition ------------------------------------------------------------------------------

NO_WITHDRAWN = Definition(
    name="buyer claim, never withdrawn",
    states=tuple(s for s in CLAIM_LIFECYCLE.states if s.name != "withdrawn"),
    transitions=tuple(t for t in CLAIM_LIFECYCLE.transitions if t.dest != "withdrawn"),
    earlier=(CLAIM_LIFECYCLE,),
)
# Claims of the built-in lifecycle: (order, the steps after filing), each ending in the state named.
OLD_CLAIMS = {
    "withdrawn": [("withdraw", "buyer:alice", None)],
    "cancellation_pending": [
        ("submit_evidence", "buyer:alice", {"evidence": EVIDENCE}),
        ("make_offer", "supplier:acme", {"kind": "partial_refund", "amount": "10.00"}),
        ("accept_offer", "buyer:alice", None),
        ("cancel_claim", "buyer:alice", None),
    ],
    "awaiting_return": [
        ("submit_evidence", "buyer:alice", {"evidence": EVIDENCE}),
        ("decide_full_refund", "agent:kim", {"rationale": "damaged"}),
    ],
}


def old_claims(target: str) -> dict[str, str]:
    """One claim of the built-in lifecycle in each state of OLD_CLAIMS (one closed, two open): ids by state."""
    ids = {}
    with ClaimService(target) as service:
        for n, (state, steps) in enumerate(OLD_CLAIMS.items()):
            claim_id = service.file_claim(filing(order_id=f"o-{n}"), now=T0).claim.id
            for hours, (trigger, actor, data) in enumerate(steps, 1):
                service.fire(claim_id, trigger, actor, data, now=T0 + timedelta(hours=hours))
            assert service.get(claim_id).state == state
            ids[state] = claim_id
    return ids


@pytest.mark.parametrize(
    ("definition", "plan"),
    [
        (INSPECTION, {"states": {"cancellation_pending": "in_mediation"}, "deadlines": "recompute"}),
        (NO_WITHDRAWN, {}),
    ],
    ids=["an-open-state-removed", "a-final-state-retired"],
)
def test_verify_under_a_changed_definition_replays_every_claim_before_and_after_migrating(
    store_target: str, definition: Definition, plan: dict[str, object]
) -> None:
    """A definition that lists the old one in `earlier` verifies every claim, open or closed, while claims
    still sit in a state it lacks (between deploying and migrating) and after the migration, when a closed
    claim stays in a state it retired; each claim is still read, and damage is still found."""
    ids = old_claims(store_target)
    with ClaimService(store_target, definition=definition, migrating=True) as service:
        assert service.verify() == []
        assert {c.id for c in service.list_claims()} == set(ids.values())
        service.migrate(plan, now=T0 + timedelta(days=1))
        assert service.verify() == []
        assert {c.id for c in service.list_claims()} == set(ids.values())
        assert service.get(ids["withdrawn"]).state == "withdrawn"  # a state the new definition may lack
        assert [r.trigger for r in service.history(ids["withdrawn"])] == ["file_claim", "withdraw"]
    execute(store_target, "UPDATE claims SET closed = 0 WHERE id = %s", (ids["withdrawn"],))
    with ClaimService(store_target, definition=definition, read_only=True) as service:
        assert [(m.claim_id, m.kind) for m in service.verify()] == [(ids["withdrawn"], "columns")]
