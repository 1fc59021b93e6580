"""A lock or busy timeout is StorageBusy: a StorageError (so `except StorageError` still catches it) that is
retryable and means 503, on both stores. Another connection holds the lock; nothing waits on a timing but
the store's own busy timeout, and no test asserts how long anything took."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
from helpers import EVIDENCE, T0, filing

from claimstate import ClaimService, StorageBusy, StorageError

BUSY_TIMEOUT = 0.05  # seconds the store waits for the lock before it gives up


def assert_busy(error: StorageError) -> None:
    assert isinstance(error, StorageBusy)
    assert (error.retryable, error.status) == (True, 503)
    problem = error.to_problem()
    assert (problem["type"], problem["status"], problem["retryable"]) == ("urn:claimstate:problem:storage-busy", 503,
                                                                        True)  # fmt: skip


@pytest.mark.sqlite_only  # holds the SQLite file's write lock from a connection of its own
def test_a_sqlite_file_locked_past_the_busy_timeout_is_storage_busy(store_target: str) -> None:
    """A second connection holding BEGIN IMMEDIATE keeps the service's writes out: each is StorageBusy and
    applies nothing; once the lock goes, the same calls work."""
    with ClaimService(store_target, busy_timeout=BUSY_TIMEOUT) as service:
        claim_id = service.file_claim(filing(), now=T0).claim.id
        holder = sqlite3.connect(store_target, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            with pytest.raises(StorageError) as fired:  # what code written before StorageBusy catches
                service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0)
            assert_busy(fired.value)
            assert "locked" in str(fired.value)
            with pytest.raises(StorageBusy) as filed:
                service.file_claim(filing(order_id="o-2"), now=T0)
            assert_busy(filed.value)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert service.get(claim_id).version == 1
        assert len(service.list_claims()) == 1
        fired_after = service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0)
        assert fired_after.claim.version == 2


def test_a_postgres_row_locked_past_the_lock_timeout_is_storage_busy(postgres_url: str) -> None:
    """Another connection holding the claim's row FOR UPDATE: the fire is StorageBusy (SQLSTATE 55P03) and
    applies nothing; a claim nobody locks is still written; once the lock goes, the same call works."""
    with ClaimService(postgres_url, busy_timeout=BUSY_TIMEOUT) as service:
        claim_id = service.file_claim(filing(), now=T0).claim.id
        other_id = service.file_claim(filing(order_id="o-2"), now=T0).claim.id
        with psycopg.connect(postgres_url) as holder:
            holder.execute("SELECT 1 FROM claims WHERE id = %s FOR UPDATE", (claim_id,))
            with pytest.raises(StorageError) as fired:  # what code written before StorageBusy catches
                service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0)
            assert_busy(fired.value)
            assert isinstance(fired.value.__cause__, psycopg.errors.LockNotAvailable)
            service.fire(other_id, "withdraw", "buyer:alice", now=T0)  # another claim's row is free
            holder.rollback()
        assert service.get(claim_id).version == 1
        fired_after = service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0)
        assert fired_after.claim.version == 2


def test_storage_errors_that_are_not_a_lock_stay_storage_errors(store_target: str) -> None:
    """A store that cannot be used for another reason is a plain StorageError, not retryable: routing on
    StorageBusy never retries a fault a retry does not mend."""
    with ClaimService(store_target) as service:
        service.file_claim(filing(), now=T0)
    with ClaimService(store_target, read_only=True) as reader, pytest.raises(StorageError) as refused:
        reader.file_claim(filing(order_id="o-2"), now=T0)
    assert not isinstance(refused.value, StorageBusy)
    assert (refused.value.retryable, refused.value.status) == (False, 503)
