"""Moving a database onto another store (`migrate-store`), and the command line on a PostgreSQL URL."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from helpers import EVIDENCE, T0, filing

from claimstate import ClaimService, StorageError, copy_claims
from claimstate.cli import cli


def _cli(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def _seeded(path: Path) -> list[str]:
    """A SQLite file with three claims at different points, one with an idempotency key, one closed."""
    with ClaimService(path) as service:
        ids = [
            service.file_claim(filing(order_id=f"o-{n}"), now=T0, idempotency_key=f"f{n}").claim.id for n in range(3)
        ]
        service.fire(ids[0], "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0, idempotency_key="k")
        service.fire(ids[1], "withdraw", "buyer:alice", now=T0)
    return ids


def test_every_claim_and_row_moves_unchanged_and_verifies(tmp_path: Path, store_target: str) -> None:
    ids = _seeded(tmp_path / "source.db")
    with ClaimService(tmp_path / "source.db", read_only=True) as source, ClaimService(store_target) as target:
        moved = copy_claims(source, target)
        assert (moved.claims, moved.transitions, moved.mismatches) == (3, 5, ())
        for claim_id in ids:
            assert target.get(claim_id) == source.get(claim_id)
            assert target.history(claim_id) == source.history(claim_id)
        # the copied keys still answer retries, and the copy goes on like the source
        retry = target.fire(
            ids[0], "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0, idempotency_key="k"
        )
        assert retry.record.seq == 2
        target.fire(ids[0], "escalate", "buyer:alice", now=T0)
        assert target.verify() == []


def test_a_target_that_is_not_empty_is_refused_and_unchanged(tmp_path: Path, store_target: str) -> None:
    _seeded(tmp_path / "source.db")
    with ClaimService(tmp_path / "source.db", read_only=True) as source, ClaimService(store_target) as target:
        kept = target.file_claim(filing(order_id="mine"), now=T0).claim
        with pytest.raises(StorageError, match="not empty"):
            copy_claims(source, target)
        assert [c.id for c in target.list_claims()] == [kept.id]


def test_another_history_key_is_refused(tmp_path: Path, store_target: str) -> None:
    _seeded(tmp_path / "source.db")
    with (
        ClaimService(tmp_path / "source.db", read_only=True) as source,
        ClaimService(store_target, history_key=b"k" * 16) as target,
    ):
        with pytest.raises(StorageError, match="history chain"):
            copy_claims(source, target)
        assert target.list_claims() == []


def test_migrate_store_on_the_command_line(tmp_path: Path, store_target: str) -> None:
    ids = _seeded(tmp_path / "source.db")
    result = _cli("--json", "migrate-store", str(tmp_path / "source.db"), store_target)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) | {"source": None, "target": None} == {
        "source": None, "target": None, "claims": 3, "transitions": 5, "events": 5, "mismatches": []
    }  # fmt: skip
    again = _cli("migrate-store", str(tmp_path / "source.db"), store_target)
    assert again.exit_code == 5
    assert "not empty" in again.stderr
    listed = _cli("--db", store_target, "--json", "list")
    assert [c["id"] for c in json.loads(listed.stdout)] == ids
    ignored = _cli("--db", store_target, "migrate-store", str(tmp_path / "a.db"), str(tmp_path / "b.db"))
    assert ignored.exit_code == 5  # a global --db is ignored here: the command names both databases
    assert "no database at" in ignored.stderr and "a.db" in ignored.stderr
    assert _cli("migrate-store", "a", "b", "--db", store_target).exit_code == 2  # after the name, refused


def test_the_command_line_works_on_a_url(postgres_url: str) -> None:
    assert _cli("--db", postgres_url, "list").exit_code == 5  # only init, file, script and demo create
    created = _cli("--db", postgres_url, "--json", "init")
    assert created.exit_code == 0, created.output
    assert json.loads(created.stdout)["schema_version"] == 6
    filing_args = ["--order", "o-1", "--buyer", "alice", "--supplier", "acme", "--amount", "25.00", "--currency",
                   "USD", "--reason", "broken", "--resolution", "full_refund"]  # fmt: skip
    filed = _cli("--db", postgres_url, "--json", "file", *filing_args)
    assert filed.exit_code == 0, filed.output
    assert _cli("--db", postgres_url, "verify").exit_code == 0


def test_the_demo_walks_on_the_database_typed(tmp_path: Path, store_target: str) -> None:
    """The demo walks into the database --db names once it is made (on a server it makes none itself)."""
    assert _cli("--db", store_target, "init").exit_code == 0
    result = _cli("--json", "--db", store_target, "demo", "--dir", str(tmp_path / "demo"))
    assert result.exit_code == 0, result.output
    walked = json.loads(result.stdout)
    assert walked["verify"] == []
    with ClaimService(store_target) as service:
        assert [c.id for c in service.list_claims()] == [c["claim"]["id"] for c in walked["claims"]]
    assert not (tmp_path / "demo" / "claims.db").exists()


def test_a_server_that_does_not_answer_is_one_clear_error() -> None:
    result = _cli("--db", "postgresql://postgres@127.0.0.1:1/test", "list")
    assert result.exit_code == 5
    assert result.stderr.count("\n") == 1
    assert "cannot connect to PostgreSQL at postgresql://postgres@127.0.0.1:1/test" in result.stderr


def test_without_the_extra_a_url_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "claimstate._store.postgres", None)  # as if psycopg were not installed
    with pytest.raises(StorageError, match=r"pip install 'claimstate\[postgres\]'"):
        ClaimService("postgresql://postgres@127.0.0.1:5432/test")
    with ClaimService(tmp_path / "still.db") as service:  # SQLite needs nothing more
        assert service.list_claims() == []


@pytest.mark.parametrize(("old", "new"), [("move_claims", "copy_claims"), ("Moved", "Copied")])
def test_the_old_names_still_work_for_one_release_with_a_warning(old: str, new: str) -> None:
    """`move_claims` and `Moved`, this function's names before it was named for what it does, still import,
    with a DeprecationWarning naming the new name."""
    import claimstate  # noqa: PLC0415

    with pytest.warns(DeprecationWarning, match=f"claimstate.{old} is now claimstate.{new}"):
        assert getattr(claimstate, old) is getattr(claimstate, new)
    with pytest.raises(AttributeError):
        _ = claimstate.nothing_of_the_kind  # type: ignore[attr-defined]
