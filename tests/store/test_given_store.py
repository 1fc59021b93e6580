"""A store built apart and given to ClaimService, and the store's transaction hooks the feed relies on."""

from __future__ import annotations

from pathlib import Path

import pytest
from changed_lifecycle import INSPECTION
from helpers import T0, filing, store_for

from claimstate import ClaimService, InvalidInput


def test_a_service_works_on_a_store_given_open(store_target: str) -> None:
    """`ClaimService(store)` files and reads through the store it is given, as through one it opened."""
    store = store_for(store_target)
    with ClaimService(store) as service:
        assert service.path == store.path
        claim_id = service.file_claim(filing(), now=T0).claim.id
        assert service.verify() == []
    with ClaimService(store_target) as again:
        assert again.get(claim_id).state == "awaiting_evidence"


def test_a_store_given_open_is_refused_for_another_definition_or_options_of_opening(tmp_path: Path) -> None:
    """A store opened for another definition, or given with what only opening a database takes (a history
    key, synchronous, busy_timeout, create) or read_only over a writable store, is InvalidInput naming it."""
    ClaimService(tmp_path / "claims.db").close()
    other = store_for(tmp_path / "claims.db", INSPECTION)
    with pytest.raises(InvalidInput, match="opened for definition") as raised:
        ClaimService(other)
    assert raised.value.field == "path"
    other.close()
    store = store_for(tmp_path / "claims.db")
    for options, field in [
        ({"history_key": b"k" * 16}, "history_key"),
        ({"synchronous": "FULL"}, "synchronous"),
        ({"busy_timeout": 1.0}, "busy_timeout"),
        ({"create": False}, "create"),
        ({"read_only": True}, "read_only"),
    ]:
        with pytest.raises(InvalidInput) as raised:
            ClaimService(store, **options)  # type: ignore[arg-type]
        assert raised.value.field == field
    store.close()
    reading = store_for(tmp_path / "claims.db", read_only=True)
    with ClaimService(reading, read_only=True) as service:
        assert service.list_claims() == []


def test_before_commit_hooks_run_in_the_transaction_and_on_rollback_hooks_after_it(store_target: str) -> None:
    """A store runs its before-commit hooks in each outermost write transaction, just before the COMMIT (a
    batch's inner transactions run none), and its on-rollback hooks after one rolled back; a failing
    before-commit hook rolls the transaction back, so what it wrote is not kept."""
    store = store_for(store_target)
    seen: list[str] = []
    count = "SELECT count(*) FROM meta WHERE name IN ('x', 'z')"
    store.before_commit(lambda: seen.append(f"commit, {store.all(count)[0][0]}"))
    store.on_rollback(lambda: seen.append("rollback"))
    with store.transaction():
        store.run("INSERT INTO meta (name, value) VALUES ('x', '1')")
        with store.transaction():
            pass
    assert seen == ["commit, 1"]
    seen.clear()

    def gives_up() -> None:
        with store.transaction():
            store.run("INSERT INTO meta (name, value) VALUES ('y', '1')")
            raise RuntimeError("given up")

    with pytest.raises(RuntimeError, match="given up"):
        gives_up()
    assert seen == ["rollback"]
    seen.clear()

    def fails() -> None:
        raise RuntimeError("a hook failed")

    store.before_commit(fails)
    with pytest.raises(RuntimeError, match="a hook failed"), store.transaction():
        store.run("INSERT INTO meta (name, value) VALUES ('z', '1')")
    assert seen == ["commit, 2", "rollback"]
    assert store.read(lambda: store.all("SELECT name FROM meta WHERE name IN ('x', 'y', 'z')")) == [("x",)]
    store.close()
