"""The claims row keeps each fact once (issue 27): the facts that are plain columns live there alone, and
`details` holds the rest. Rows written before read, verify and fire as they did, and the claims a service
keeps decoded never hide a row changed behind its back."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from helpers import EVIDENCE, T0, execute, filing, offer, query

from claimstate import ClaimService, StorageError
from claimstate._store.rows import IN_COLUMNS

OLD_SCHEMA = {
    "sqlite": "PRAGMA user_version = 6",
    "postgres": "UPDATE meta SET value = '5' WHERE name = 'schema_version'",
}


def _details(target: str, claim_id: str) -> dict[str, object]:
    ((text,),) = query(target, f"SELECT details FROM claims WHERE id = '{claim_id}'")
    return dict(json.loads(text))


def _walked(service: ClaimService) -> list[str]:
    """Claims in several states: just filed, in mediation with an offer open, and closed."""
    filed = service.file_claim(filing(order_id="o-1"), now=T0).claim.id
    offered = service.file_claim(filing(order_id="o-2"), now=T0).claim.id
    service.fire(offered, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0 + timedelta(hours=1))
    service.fire(offered, "make_offer", "supplier:acme", offer("partial_refund"), now=T0 + timedelta(hours=2))
    closed = service.file_claim(filing(order_id="o-3"), now=T0).claim.id
    service.fire(closed, "withdraw", "buyer:alice", now=T0 + timedelta(hours=1))
    return [filed, offered, closed]


def test_a_claims_row_keeps_each_fact_once(store_target: str) -> None:
    """`details` holds the id and what no column holds; the row read back is the claim."""
    with ClaimService(store_target) as service:
        ids = _walked(service)
        for claim_id in ids:
            details = _details(store_target, claim_id)
            assert details["id"] == claim_id
            assert not set(details) & set(IN_COLUMNS), details
            assert {"evidence", "offers", "reason", "deadline_name"} <= set(details)
        assert [service.get(claim_id).id for claim_id in ids] == ids
        assert service.verify() == []


def test_rows_written_before_read_verify_and_fire_as_they_did(store_target: str, backend: str) -> None:
    """A database whose rows hold every fact in `details` (as before schema 7) opens, migrates, lists, verifies
    clean and fires; a fired claim's row is written slim, and the history's chain goes on."""
    with ClaimService(store_target) as service:
        ids = _walked(service)
        before = [service.get(claim_id) for claim_id in ids]
        for claim in before:  # the row as claimstate wrote it before: every fact in details
            execute(
                store_target, "UPDATE claims SET details = %s WHERE id = %s", (json.dumps(claim.to_dict()), claim.id)
            )
    execute(store_target, OLD_SCHEMA[backend])
    with ClaimService(store_target) as service:
        assert service.schema_version == (7 if backend == "sqlite" else 6)
        assert [service.get(claim_id) for claim_id in ids] == before
        assert service.list_claims() == sorted(before, key=lambda claim: claim.id)
        assert service.verify() == []
        assert "state" in _details(store_target, ids[1])  # untouched until fired
        fired = service.fire(ids[1], "accept_offer", "buyer:alice", now=T0 + timedelta(hours=3))
        assert (fired.claim.version, fired.claim.agreement is not None) == (4, True)
        assert "state" not in _details(store_target, ids[1])
        assert service.get(ids[1]) == fired.claim
        assert service.verify() == []


@pytest.mark.parametrize(
    ("edit", "kind", "field"),
    [
        ("UPDATE claims SET amount = '2.50' WHERE id = %s", "columns", "amount"),
        ("UPDATE claims SET state = 'withdrawn' WHERE id = %s", "columns", "state"),
        ("UPDATE claims SET details = replace(details, 'arrived broken', 'never came') WHERE id = %s", "details",
         "details.reason"),
        ("UPDATE claims SET state = 'withdrawn', details = replace(details, '\"awaiting_evidence\"', '\"withdrawn\"')"
         " WHERE id = %s", "details", "details.state"),  # both alike: details, as before
    ],
)  # fmt: skip
def test_a_row_written_before_and_edited_by_hand_is_reported_as_before(
    store_target: str, edit: str, kind: str, field: str
) -> None:
    """In a row holding every fact in `details`, a column edited by hand still differs from the claim (kind
    `columns`), and an edited detail from the history (kind `details`)."""
    with ClaimService(store_target) as service:
        claim = service.file_claim(filing(), now=T0).claim
        execute(store_target, "UPDATE claims SET details = %s WHERE id = %s", (json.dumps(claim.to_dict()), claim.id))
        assert service.verify() == []
        execute(store_target, edit, (claim.id,))
        found = service.verify()
    assert [(m.claim_id, m.kind) for m in found] == [(claim.id, kind)], found
    assert [d.field for d in found[0].differences] == [field]


def test_a_row_changed_behind_the_service_is_read_as_it_is_now(store_target: str) -> None:
    """The claims a service keeps decoded are kept by their row's exact content: a hand edit, a write by
    another service, or a batch rolled back all show at the next read."""
    with ClaimService(store_target) as service, ClaimService(store_target) as other:
        claim_id = service.file_claim(filing(), now=T0).claim.id
        execute(store_target, "UPDATE claims SET details = replace(details, 'arrived broken', 'edited') WHERE id = %s",
                (claim_id,))  # fmt: skip
        assert service.get(claim_id).reason == "edited"
        other.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0 + timedelta(hours=1))
        assert service.get(claim_id).state == "in_mediation"

        def withdrawn_then_rolled_back() -> None:
            with service.batch():
                service.fire(claim_id, "withdraw", "buyer:alice", now=T0 + timedelta(hours=2))
                raise RuntimeError("rolled back")

        with pytest.raises(RuntimeError, match="rolled back"):
            withdrawn_then_rolled_back()
        assert service.get(claim_id).state == "in_mediation"
        fired = service.fire(claim_id, "withdraw", "buyer:alice", now=T0 + timedelta(days=1))
        assert (fired.claim.version, fired.claim.reason) == (3, "edited")
        assert [m.kind for m in service.verify()] == ["details"]  # the hand edit, carried by the fires since
        execute(store_target, "UPDATE claims SET details = replace(details, 'edited', 'arrived broken') WHERE id = %s",
                (claim_id,))  # fmt: skip
        assert service.get(claim_id) == other.get(claim_id) != fired.claim
        assert service.verify() == []


def test_a_version_edited_by_hand_stops_every_fire_of_the_claim(store_target: str) -> None:
    """The claims row's version is the claim's own now: one its history lacks is damage, which a fire refuses
    (rather than append a row after a gap), writing nothing; verify names the column."""
    with ClaimService(store_target) as service:
        claim = service.file_claim(filing(), now=T0).claim
        service.fire(claim.id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0 + timedelta(hours=1))
        execute(store_target, "UPDATE claims SET version = 5 WHERE id = %s", (claim.id,))
        with pytest.raises(StorageError, match="is at version 5, which its history lacks"):
            service.fire(claim.id, "withdraw", "buyer:alice", now=T0 + timedelta(hours=2))
        assert [r.seq for r in service.history(claim.id)] == [1, 2]
        assert [(m.kind, [d.field for d in m.differences]) for m in service.verify()] == [("columns", ["version"])]
        execute(store_target, "UPDATE claims SET version = 2 WHERE id = %s", (claim.id,))
        assert service.fire(claim.id, "withdraw", "buyer:alice", now=T0 + timedelta(hours=2)).claim.version == 3
        assert service.verify() == []
