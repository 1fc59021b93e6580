"""ClaimService on both backends (the contract), and on a SQLite file what people reading the file see."""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlite_utils
from helpers import EVIDENCE, T0, filing, store_for

from claimstate import (
    CLAIM_LIFECYCLE,
    ClaimNotFound,
    ClaimService,
    ConcurrentModification,
    Fired,
    InvalidInput,
    LifecycleChanged,
    StorageError,
    TransitionRefused,
)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "claims.db"


@pytest.fixture
def service(store_target: str) -> ClaimService:
    """A service on each backend (on SQLite alone for a test that also takes db_path, its file)."""
    with ClaimService(store_target) as service:
        yield service


def file_one(service: ClaimService, order: str = "o-1", **changes: object) -> str:
    return service.file_claim(filing(order_id=order, **changes), now=T0).claim.id


def test_a_fire_is_stored_with_its_history(service: ClaimService) -> None:
    """Filing then firing stores the claim's new state and version and one history row per step."""
    claim_id = file_one(service)
    fired = service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0)
    assert service.get(claim_id) == fired.claim
    history = service.history(claim_id)
    assert [(r.seq, r.trigger, r.source, r.dest) for r in history] == [
        (1, "file_claim", None, "awaiting_evidence"),
        (2, "submit_evidence", "awaiting_evidence", "in_mediation"),
    ]
    assert history[1] == fired.record


@pytest.mark.sqlite_only  # reads the SQLite file itself
def test_the_file_reads_plainly_with_sqlite_utils(service: ClaimService, db_path: Path) -> None:
    """Plain columns, ISO times with offsets, and the specification's state and trigger names."""
    claim_id = file_one(service)
    db = sqlite_utils.Database(db_path)
    row = db["claims"].get(claim_id)
    assert (row["state"], row["version"], row["amount"], row["currency"]) == ("awaiting_evidence", 1, "25.00", "USD")
    assert (row["deadline_trigger"], row["deadline_at"]) == ("evidence_deadline", "2026-03-09T09:00:00.000000+00:00")
    assert json.loads(row["details"])["id"] == claim_id
    (record,) = db["transitions"].rows_where("claim_id = ?", [claim_id])
    assert (record["trigger"], record["actor"], record["at"]) == (
        "file_claim",
        "buyer:alice",
        "2026-03-02T09:00:00.000000+00:00",
    )
    indexes = {i.name for i in db["claims"].indexes}
    assert {"claims_by_state", "claims_by_buyer", "claims_by_supplier", "claims_by_order"} <= indexes
    assert {"claims_open_deadlines", "claims_one_open_per_order"} <= indexes
    assert db.execute("PRAGMA user_version").fetchone()[0] == 7  # the schema this version writes
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.sqlite_only  # reads the SQLite file itself
def test_the_history_is_append_only(service: ClaimService, db_path: Path) -> None:
    """Even a hand-written UPDATE or DELETE on the history is refused by the database."""
    file_one(service)
    conn = sqlite3.connect(db_path)
    for sql in ("UPDATE transitions SET trigger = 'x'", "DELETE FROM transitions"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute(sql)
    conn.close()


@pytest.mark.sqlite_only  # reads the SQLite file itself
def test_one_open_claim_per_order(service: ClaimService, db_path: Path) -> None:
    """A second claim on an order is refused while the first is open, by the guard and by the database."""
    first = file_one(service)
    with pytest.raises(TransitionRefused) as refused:
        file_one(service)
    assert [r.code for r in refused.value.reasons] == ["no_open_claim_on_order"]
    twin = (
        "INSERT INTO claims SELECT 'twin', state, version, closed, order_id, buyer_id, supplier_id, amount, currency,"
        " resolution, filed_at, updated_at, deadline_at, deadline_trigger, details, definition FROM claims"
    )
    conn = sqlite3.connect(db_path)
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        conn.execute(twin)
    conn.close()
    service.fire(first, "withdraw", "buyer:alice", now=T0)
    assert service.get(file_one(service)).state == "awaiting_evidence"


def test_unknown_claims_and_bad_input_are_named(service: ClaimService) -> None:
    """A missing claim is ClaimNotFound; bad data, actors or filters are InvalidInput naming the field."""
    with pytest.raises(ClaimNotFound):
        service.get("nope")
    with pytest.raises(ClaimNotFound):
        service.history("nope")
    with pytest.raises(ClaimNotFound):
        service.fire("nope", "withdraw", "buyer:alice")
    claim_id = file_one(service)
    with pytest.raises(InvalidInput) as invalid:
        service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": [{"kind": "x"}]})
    assert invalid.value.field == "evidence[0]"
    with pytest.raises(InvalidInput):
        service.list_claims(state="lost")
    with pytest.raises(InvalidInput):
        service.list_claims(limit=0)


def test_a_stale_expected_version_changes_nothing(service: ClaimService) -> None:
    """A caller holding version 1 after the claim moved to 2 gets ConcurrentModification."""
    claim_id = file_one(service)
    service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, expected_version=1, now=T0)
    with pytest.raises(ConcurrentModification) as stale:
        service.fire(claim_id, "escalate", "buyer:alice", expected_version=1, now=T0)
    assert (stale.value.expected, stale.value.actual) == (1, 2)
    assert service.get(claim_id).version == 2


def test_a_repeated_idempotency_key_applies_once(service: ClaimService) -> None:
    """A retry returns the first result; the same key for another request is refused."""
    claim_id = file_one(service)
    evidence = {"evidence": EVIDENCE}
    first = service.fire(claim_id, "submit_evidence", "buyer:alice", evidence, idempotency_key="k1", now=T0)
    service.fire(claim_id, "escalate", "buyer:alice", idempotency_key="k2", now=T0)
    again = service.fire(claim_id, "submit_evidence", "buyer:alice", evidence, idempotency_key="k1", now=T0)
    assert again == first
    assert [r.trigger for r in service.history(claim_id)] == ["file_claim", "submit_evidence", "escalate"]
    with pytest.raises(InvalidInput, match="different request"):
        service.fire(claim_id, "withdraw", "buyer:alice", idempotency_key="k1")


def test_filing_is_idempotent_too(service: ClaimService) -> None:
    """Filing twice with one key files one claim and returns it both times."""
    first = service.file_claim(filing(), idempotency_key="file-1", now=T0)
    again = service.file_claim(filing(), idempotency_key="file-1", now=T0 + timedelta(seconds=5))
    assert again == first
    assert len(service.list_claims()) == 1


def test_tick_fires_exactly_the_due_deadlines_once_also_after_reopening(db_path: Path) -> None:
    """Deadlines are rows: due ones fire once as the system, others wait, across a close and reopen."""
    with ClaimService(db_path) as service:
        early = file_one(service, "o-1")
        late = service.file_claim(filing(order_id="o-2"), now=T0 + timedelta(days=2)).claim.id
        assert service.tick(T0 + timedelta(days=6)) == []
    with ClaimService(db_path) as service:
        fired = service.tick(T0 + timedelta(days=7))
        assert [(r.claim_id, r.trigger, str(r.actor)) for r in fired] == [(early, "evidence_deadline", "system")]
        assert service.tick(T0 + timedelta(days=7)) == []
        assert service.get(late).state == "awaiting_evidence"
    with ClaimService(db_path) as service:
        assert [r.claim_id for r in service.tick(T0 + timedelta(days=30))] == [late]
        assert service.tick(T0 + timedelta(days=31)) == []
        assert {c.state for c in service.list_claims()} == {"payment_released"}


def test_tick_uses_each_state_s_own_deadline(service: ClaimService) -> None:
    """A return that is not shipped in ten days releases the payment; the clock fires nothing sooner."""
    claim_id = file_one(service)
    service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0)
    service.fire(claim_id, "decide_full_refund", "agent:kim", {"rationale": "broken"}, now=T0)
    assert service.tick(T0 + timedelta(days=9)) == []
    (record,) = service.tick(T0 + timedelta(days=10))
    assert (record.trigger, record.dest) == ("return_deadline", "payment_released")


def test_list_claims_filters_and_pages(service: ClaimService) -> None:
    """Filters combine; paging with `after` walks every claim once, in filing order."""
    ids = [file_one(service, f"o-{i}", supplier_id="acme" if i % 2 else "zeta") for i in range(7)]
    assert [c.id for c in service.list_claims(supplier="zeta")] == ids[0::2]
    assert [c.id for c in service.list_claims(order="o-3")] == [ids[3]]
    assert service.list_claims(state="in_mediation") == []
    pages, after = [], None
    while page := service.list_claims(limit=3, after=after):
        pages.append([c.id for c in page])
        after = page[-1].id
    assert pages == [ids[0:3], ids[3:6], ids[6:7]]


def test_available_reads_the_stored_claim(service: ClaimService) -> None:
    """What the buyer may do now, from the stored claim."""
    claim_id = file_one(service)
    allowed = {a.trigger for a in service.available(claim_id, "buyer:alice", now=T0) if a.allowed}
    assert allowed == {"submit_evidence", "withdraw"}


@pytest.mark.sqlite_only  # reads the SQLite file itself
def test_verify_is_clean_and_finds_hand_edits(service: ClaimService, db_path: Path) -> None:
    """verify() replays every history; a hand-edited row or a broken history is reported, nothing changed."""
    good = file_one(service, "o-1")
    edited = file_one(service, "o-2")
    service.fire(edited, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0)
    assert service.verify() == []
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("UPDATE claims SET state = 'refunded_full' WHERE id = ?", (edited,))
    details = json.loads(conn.execute("SELECT details FROM claims WHERE id = ?", (good,)).fetchone()[0])
    details["refund"] = "25.00"
    conn.execute("UPDATE claims SET details = ? WHERE id = ?", (json.dumps(details), good))
    before = conn.execute("SELECT * FROM claims ORDER BY id").fetchall()
    problems = {m.claim_id: m.problem for m in service.verify()}
    assert conn.execute("SELECT * FROM claims ORDER BY id").fetchall() == before
    conn.close()
    assert set(problems) == {good, edited}
    assert "refund" in problems[good]
    assert "state" in problems[edited]


def test_a_batch_is_all_or_nothing(service: ClaimService) -> None:
    """A batch whose block raises keeps nothing; one that completes keeps everything."""
    ids = [file_one(service, f"o-{i}") for i in range(3)]

    def three_then_a_refusal() -> None:
        with service.batch():
            for claim_id in ids:
                service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0)
            service.fire(ids[0], "approve_cancellation", "agent:kim", now=T0)

    with pytest.raises(TransitionRefused):
        three_then_a_refusal()
    assert {service.get(i).version for i in ids} == {1}
    with service.batch():
        for claim_id in ids:
            service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0)
    assert {service.get(i).version for i in ids} == {2}


def test_synchronous_full_can_be_chosen(tmp_path: Path) -> None:
    """FULL durability is a setting; anything else is refused before the file is touched."""
    with ClaimService(tmp_path / "full.db", synchronous="FULL") as service:
        assert service.verify() == []
    with pytest.raises(InvalidInput) as refused:
        ClaimService(tmp_path / "other.db", synchronous="OFF")  # type: ignore[arg-type]
    assert refused.value.field == "synchronous"
    assert not (tmp_path / "other.db").exists()


def test_the_clock_is_injectable(db_path: Path) -> None:
    """A service built with a clock uses it when a call passes no time."""
    with ClaimService(db_path, clock=lambda: T0 + timedelta(days=1)) as service:
        claim = service.file_claim(filing()).claim
    assert claim.filed_at == T0 + timedelta(days=1)


def test_threads_may_share_one_service(db_path: Path) -> None:
    """Four threads filing and firing through one service: every step applied once, verify clean."""

    with ClaimService(db_path) as service:
        errors: list[BaseException] = []

        def work(n: int) -> None:
            try:
                for i in range(25):
                    claim_id = file_one(service, f"o-{n}-{i}")
                    service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0)
                    with pytest.raises(TransitionRefused):
                        service.fire(claim_id, "approve_cancellation", "agent:kim", now=T0)
            except BaseException as error:  # reported below, with the thread's traceback lost otherwise
                errors.append(error)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        switching = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)  # switch threads as often as possible, so unguarded sharing shows
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
        finally:
            sys.setswitchinterval(switching)
        assert errors == []
        claims = service.list_claims(limit=1000)
        assert len(claims) == 100
        assert {c.version for c in claims} == {2}
        assert service.verify() == []


def test_a_new_policy_does_not_rewrite_the_past(db_path: Path) -> None:
    """After the windows change, a retry returns what was stored and verify still finds the claim sound."""

    def file_and_evidence(service: ClaimService) -> tuple[Fired, Fired]:
        """The same two requests each time: a keyed filing, then keyed evidence on day 5."""
        filed = service.file_claim(filing(), idempotency_key="f", now=T0)
        evidence = {"evidence": EVIDENCE}
        day5 = T0 + timedelta(days=5)
        return filed, service.fire(
            filed.claim.id, "submit_evidence", "buyer:alice", evidence, idempotency_key="e", now=day5
        )

    with ClaimService(db_path) as service:
        first = file_and_evidence(service)
    shorter = CLAIM_LIFECYCLE.policy(evidence_due=timedelta(days=3))
    with pytest.raises(LifecycleChanged):  # new windows are new rules: the open claim waits for a plan
        ClaimService(db_path, policy=shorter)
    with ClaimService(db_path, policy=shorter, migrating=True) as service:
        assert len(service.migrate({}, now=T0 + timedelta(days=6)).moves) == 1
        assert file_and_evidence(service) == first
        assert service.verify() == []
        assert service.file_claim(filing(order_id="o-2"), now=T0).claim.deadline.due == T0 + timedelta(days=3)


@pytest.mark.sqlite_only  # reads the SQLite file itself
@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("deadline_at", "2099-01-01T00:00:00.000000+00:00"),
        ("deadline_at", None),
        ("order_id", "o-x"),
        ("amount", "1.00"),
    ],
)
def test_verify_finds_an_edited_column(service: ClaimService, db_path: Path, column: str, value: object) -> None:
    """Columns that drive deadlines, filters and the one-claim-per-order rule are checked against the claim."""
    claim_id = file_one(service)
    conn = sqlite3.connect(db_path)
    conn.execute(f"UPDATE claims SET {column} = ?", (value,))
    conn.commit()
    conn.close()
    (mismatch,) = service.verify()
    assert (mismatch.claim_id, column in mismatch.problem) == (claim_id, True)


@pytest.mark.sqlite_only  # reads the SQLite file itself
def test_damaged_json_is_reported_not_raised(service: ClaimService, db_path: Path) -> None:
    """A row whose details are not JSON: verify reports it, get raises StorageError, never JSONDecodeError."""
    claim_id = file_one(service)
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE claims SET details = '{not json'")
    conn.commit()
    conn.close()
    (mismatch,) = service.verify()
    assert "damaged" in mismatch.problem
    with pytest.raises(StorageError, match="damaged"):
        service.get(claim_id)


def test_time_does_not_run_backwards(service: ClaimService) -> None:
    """A fire dated before the claim's last change is invalid input: histories stay in time order."""
    claim_id = file_one(service)
    with pytest.raises(InvalidInput) as invalid:
        service.fire(claim_id, "withdraw", "buyer:alice", now=T0 - timedelta(days=1))
    assert invalid.value.field == "now"


def test_odd_inputs_are_refused_by_name(service: ClaimService) -> None:
    """Data that is not an object, an unusable buyer id, a filing key reused for another claim id."""
    claim_id = file_one(service)
    with pytest.raises(InvalidInput):
        service.fire(claim_id, "withdraw", "buyer:alice", [], now=T0)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput) as invalid:
        service.file_claim(filing(buyer_id="bob smith"), now=T0)
    assert invalid.value.field == "buyer_id"
    service.file_claim(filing(order_id="o-2"), claim_id="A", idempotency_key="k", now=T0)
    with pytest.raises(InvalidInput, match="different request"):
        service.file_claim(filing(order_id="o-2"), claim_id="B", idempotency_key="k", now=T0)


# --- what callers pass in is checked at the boundary ---------------------------------------------------

BAD_IDS = [123, "", "   ", "x" * 201, ["c-1"], "tab\there", "r\udcff"]


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
def test_ids_and_keys_are_non_blank_text_of_bounded_length(service: ClaimService, bad: object) -> None:
    """A claim id, an idempotency key or a paging id that is not short, printable, valid text is InvalidInput
    naming it, and nothing is stored."""
    claim_id = file_one(service)
    calls = {
        "claim_id": lambda: service.file_claim(filing(order_id="o-2"), claim_id=bad, now=T0),  # type: ignore[arg-type]
        "idempotency_key": lambda: service.fire(
            claim_id,
            "escalate",
            "buyer:alice",
            idempotency_key=bad,
            now=T0,  # type: ignore[arg-type]
        ),
        "after": lambda: service.list_claims(after=bad),  # type: ignore[arg-type]
    }
    for field, call in calls.items():
        with pytest.raises(InvalidInput) as error:
            call()
        assert error.value.field == field
    for read in (service.get, service.history):
        with pytest.raises(InvalidInput):
            read(bad)  # type: ignore[arg-type]
    assert [c.id for c in service.list_claims()] == [claim_id]
    assert service.get(claim_id).version == 1


@pytest.mark.parametrize("bad", [True, 0, -1, 1.0, "1", 2**63], ids=repr)
def test_versions_and_limits_are_whole_numbers(service: ClaimService, bad: object) -> None:
    """expected_version, list and tick limits refuse bools, floats, text, zero and numbers past SQLite's."""
    claim_id = file_one(service)
    with pytest.raises(InvalidInput, match="whole number"):
        service.fire(claim_id, "withdraw", "buyer:alice", expected_version=bad, now=T0)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="whole number"):
        service.list_claims(limit=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="whole number"):
        service.tick(T0, limit=bad)  # type: ignore[arg-type]
    assert service.get(claim_id).state == "awaiting_evidence"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"evidence": [{"kind": "photo", "description": "r\udcff"}]}, "not valid Unicode"),
        ({"evidence": [{"kind": "photo", "description": "x" * 10_001}]}, "longer than 10000 characters"),
        ({"evidence": [{"kind": "photo", "description": "x", "document": [[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]}]},
         "nested deeper than 16 levels"),
        ({"evidence": [{"kind": "photo", "description": "x", 7: "y"}]}, "object keys must be text"),
        ({"evidence": [{"kind": "photo", "description": "x", "document": 10**4400}]}, "too large"),
        ({"evidence": [{"kind": "photo", "description": "x", "document": float("nan")}]}, "JSON cannot carry"),
    ],
)  # fmt: skip
def test_trigger_data_is_plain_bounded_json(service: ClaimService, data: dict[str, object], message: str) -> None:
    """Lone surrogates, oversized text, deep nesting, non-text keys, huge or non-finite numbers are refused
    by name (with or without an idempotency key), and nothing is stored."""
    claim_id = file_one(service)
    for key in (None, "k-1"):
        with pytest.raises(InvalidInput, match=message):
            service.fire(claim_id, "submit_evidence", "buyer:alice", data, idempotency_key=key, now=T0)
    assert service.get(claim_id).version == 1


def test_a_deep_document_is_refused_without_exhausting_the_stack(service: ClaimService) -> None:
    """Data nested 100,000 deep is InvalidInput, not a RecursionError."""
    claim_id = file_one(service)
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    for key in (None, "k-1"):
        with pytest.raises(InvalidInput, match="nested deeper"):
            service.fire(claim_id, "withdraw", "buyer:alice", {"reason": deep}, idempotency_key=key, now=T0)


def test_a_party_id_must_be_one_the_party_can_act_as(service: ClaimService) -> None:
    """A supplier id that no supplier:<id> actor could carry is refused at filing, naming supplier_id."""
    with pytest.raises(InvalidInput) as error:
        service.file_claim(filing(supplier_id="acme electronics"), now=T0)
    assert error.value.field == "supplier_id"


def test_a_null_item_and_a_missing_one_are_the_same_request(service: ClaimService) -> None:
    """Under one idempotency key, {"note": null} and {} are one request: the retry returns the first result."""
    claim_id = file_one(service)
    service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0)
    first = service.fire(claim_id, "escalate", "buyer:alice", {"note": None}, idempotency_key="e-1", now=T0)
    assert service.fire(claim_id, "escalate", "buyer:alice", {}, idempotency_key="e-1", now=T0) == first


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+14:00", "9999-12-30T00:00:00+00:00", "1969-12-31T23:59:59Z"])
def test_times_outside_the_supported_years_are_refused(service: ClaimService, when: str) -> None:
    """A time whose deadline could not be represented is InvalidInput naming now, not an OverflowError."""
    with pytest.raises(InvalidInput) as error:
        service.file_claim(filing(), now=datetime.fromisoformat(when))
    assert error.value.field == "now"
    assert service.list_claims() == []


# --- damage is a StorageError, not the caller's mistake ---------------------------------------------------


@pytest.mark.sqlite_only  # reads the SQLite file itself
def test_a_damaged_history_time_is_a_storage_error(service: ClaimService, db_path: Path) -> None:
    """A history row whose time was overwritten with garbage: history() says the claim is damaged
    (StorageError, exit 5 in the CLI), not that the caller gave a bad time (InvalidInput, exit 2)."""
    claim_id = file_one(service)
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("DROP TRIGGER transitions_no_update")
    conn.execute("UPDATE transitions SET at = 'garbage'")
    conn.close()
    with pytest.raises(StorageError, match=r"has a damaged history: .*'garbage' is not an ISO 8601 time"):
        service.history(claim_id)


# --- listing without loading everything -------------------------------------------------------------------


@pytest.mark.sqlite_only  # reads the SQLite file itself
def test_iter_claims_reads_a_page_at_a_time(service: ClaimService, db_path: Path) -> None:
    """iter_claims yields every matching claim in id order, reading `page` claims per query and only as far as
    it is iterated; `after` and `limit` bound it like list_claims."""
    with service.batch():
        ids = [file_one(service, f"o-{i}", supplier_id="acme" if i % 3 else "zeta") for i in range(25)]
    queries: list[str] = []
    service._store._conn.set_trace_callback(queries.append)
    claims = service.iter_claims(page=4)
    assert [next(claims).id for _ in range(3)] == ids[:3]
    assert sum("FROM claims" in q for q in queries) == 1  # lazy: one page read so far
    assert [c.id for c in claims] == ids[3:]
    assert sum("FROM claims" in q for q in queries) == 7  # 25 claims, 4 a page: the 7th page is short
    service._store._conn.set_trace_callback(None)
    assert [c.id for c in service.iter_claims(supplier="zeta", page=2)] == ids[0::3]
    assert [c.id for c in service.iter_claims(after=ids[20], limit=3, page=2)] == ids[21:24]
    assert [c.id for c in service.iter_claims(limit=8, page=4)] == ids[:8]
    for bad in ({"page": 0}, {"limit": 0}, {"state": "lost"}, {"after": ""}):
        with pytest.raises(InvalidInput):
            service.iter_claims(**bad)  # type: ignore[arg-type]


# --- creating a database ----------------------------------------------------------------------------------


def test_a_new_database_is_made_in_place_where_files_cannot_be_hard_linked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new file is built under a temporary name and linked into place; on a file system without hard
    links (vfat, some network shares) it is made in place instead, and no temporary file is left."""

    def no_links(_source: str, _target: str) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    with ClaimService(tmp_path / "claims.db") as service:
        file_one(service)
        assert service.verify() == []
    assert [p.name for p in tmp_path.iterdir()] == ["claims.db"]


# --- reading without writing ---------------------------------------------------------------------------------


def test_a_read_only_service_reads_everything_and_creates_no_file(db_path: Path) -> None:
    """read_only=True: every read works, every write is refused, and no -wal or -shm appears, also when a
    writer changes the file between two reads (the next read sees the change)."""
    with ClaimService(db_path) as writer:
        claim_id = file_one(writer)
    folder = sorted(p.name for p in db_path.parent.iterdir())
    assert folder == ["claims.db"]
    with ClaimService(db_path, read_only=True) as reader:
        assert reader.get(claim_id).version == 1
        assert [r.trigger for r in reader.history(claim_id)] == ["file_claim"]
        assert [c.id for c in reader.list_claims()] == [c.id for c in reader.iter_claims()] == [claim_id]
        assert reader.available(claim_id, "buyer:alice", now=T0)
        assert (reader.due(T0 + timedelta(days=30)), reader.verify()) == (1, [])
        assert sorted(p.name for p in db_path.parent.iterdir()) == folder
        with pytest.raises(StorageError, match="open read-only: nothing can be written"):
            reader.fire(claim_id, "withdraw", "buyer:alice", now=T0)
        with pytest.raises(StorageError, match="open read-only"), reader.batch():
            pass
        with ClaimService(db_path) as writer:  # comes, writes, folds its -wal into the file and goes
            writer.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0)
        assert reader.get(claim_id).version == 2
        with ClaimService(db_path) as writer:  # stays: the reader reads through its -wal
            writer.fire(claim_id, "escalate", "buyer:alice", now=T0)
            assert reader.get(claim_id).version == 3
            assert reader.verify() == []
    ClaimService(db_path).close()  # the writer's -wal, kept while the reader had the file open, is folded in now
    assert sorted(p.name for p in db_path.parent.iterdir()) == folder


def test_a_read_only_read_torn_by_a_writer_is_read_again(db_path: Path) -> None:
    """A writer that comes and goes during a read of the file itself may have rewritten pages under it: the
    read is done again on a fresh connection, so what it returns is one consistent state."""
    with ClaimService(db_path) as writer:
        claim_id = file_one(writer)
    store = store_for(db_path, read_only=True)
    with ClaimService(store) as reader:
        read_claim, calls = store.claims.claim, []

        def claim_with_a_writer_meanwhile(wanted: str) -> object:
            calls.append(wanted)
            if len(calls) == 1:
                with ClaimService(db_path) as writer:
                    writer.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0)
            return read_claim(wanted)

        store.claims.claim = claim_with_a_writer_meanwhile  # type: ignore[method-assign]
        assert reader.get(claim_id).version == 2
        assert calls == [claim_id, claim_id]


def test_a_read_only_open_needs_a_database_at_this_schema(tmp_path: Path) -> None:
    """Nothing to read is a StorageError: no file, an empty one, memory; and an older schema, which only a
    writable open may migrate."""
    (tmp_path / "empty.db").touch()
    old = tmp_path / "old.db"
    ClaimService(old).close()
    conn = sqlite3.connect(old)
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    for path, message in [
        (tmp_path / "none.db", "no database at"),
        (tmp_path / "empty.db", "is empty"),
        (":memory:", "in-memory database cannot be opened read-only"),
        (old, "has schema version 1; migrating it to 7 needs a writable open"),
    ]:
        with pytest.raises(StorageError, match=message):
            ClaimService(path, read_only=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.db", "old.db"]


def test_a_write_that_keeps_losing_a_race_is_run_again_then_refused_whole(
    store_target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A race lost to another writer (PostgreSQL's serialization failures, deadlocks, a unique key taken
    meanwhile) runs the call again whole, five times, then raises ConcurrentModification, applying nothing;
    inside a batch it cannot run alone again, so the batch rolls back at once."""
    from claimstate._store.base import Race  # noqa: PLC0415  (the backends raise it; no caller sees it)

    store = store_for(store_target)
    with ClaimService(store) as service:
        claim_id = file_one(service)
        tries = []

        def loses(*_args: object, **_kwargs: object) -> bool:
            tries.append(1)
            raise Race("a deadlock, SQLSTATE 40P01")

        monkeypatch.setattr(store.claims, "update", loses)
        with pytest.raises(ConcurrentModification, match="40P01") as raised:
            service.fire(claim_id, "withdraw", "buyer:alice", now=T0)
        assert (len(tries), raised.value.claim_id, raised.value.expected, raised.value.detail) == (
            5, claim_id, None, "a deadlock, SQLSTATE 40P01"
        )  # fmt: skip
        tries.clear()

        def batch() -> None:
            with service.batch():
                file_one(service, "o-2")
                service.fire(claim_id, "withdraw", "buyer:alice", now=T0)

        with pytest.raises(ConcurrentModification):
            batch()
        assert len(tries) == 1
        monkeypatch.undo()
        assert [c.order_id for c in service.list_claims()] == ["o-1"]
        assert service.get(claim_id).version == 1


def test_a_nul_character_is_refused_by_name_on_every_backend(service: ClaimService) -> None:
    """PostgreSQL cannot store NUL in text, so neither store takes it: the same InvalidInput on both."""
    with pytest.raises(InvalidInput, match="NUL") as refused:
        service.file_claim(filing(order_id="o-\x00"), now=T0)
    assert refused.value.field == "data.order_id"
    with pytest.raises(InvalidInput, match="NUL"):
        service.list_claims(order="\x00")
    assert service.list_claims() == []


def test_a_closed_service_says_so(store_target: str) -> None:
    service = ClaimService(store_target)
    service.close()
    with pytest.raises(StorageError):
        service.get("c-1")
    with pytest.raises(StorageError):
        service.file_claim(filing(), now=T0)


@pytest.mark.parametrize("target", ["postgresq://postgres@127.0.0.1/test", "mysql://root@127.0.0.1/test"])
def test_no_database_or_an_unknown_url_is_refused_by_name(target: str, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=r"is not a database claimstate knows"):
        ClaimService(target)
    with pytest.raises(InvalidInput, match=r"no database given"):  # an argument of the wrong kind
        ClaimService("")
