"""claimstate's loggers: refusals at DEBUG, race retries at INFO, given-up retries and storage faults at
WARNING, and none of the `transitions` library's per-transition INFO lines in a service's logs."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import EVIDENCE, T0, filing, lose_a_race_once

from claimstate import ClaimService, ConcurrentModification, StorageError, TransitionRefused
from claimstate._service.service import core_of
from claimstate._store.base import Race


def _records(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == name]


def test_a_refusal_is_logged_at_debug_with_its_claim_trigger_role_and_codes(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="claimstate.service")
    with ClaimService(":memory:") as service:
        claim_id = service.file_claim(filing(), now=T0).claim.id
        with pytest.raises(TransitionRefused) as refused:
            service.fire(claim_id, "decide_full_refund", "buyer:alice", {"rationale": "mine"}, now=T0)
    codes = [reason.code for reason in refused.value.reasons]
    (record,) = _records(caplog, "claimstate.service")
    assert record.levelno == logging.DEBUG
    assert (record.claim_id, record.trigger, record.actor_role, record.refusal_codes) == (  # type: ignore[attr-defined]
        claim_id,
        "decide_full_refund",
        "buyer",
        codes,
    )
    message = record.getMessage()
    assert claim_id in message and "decide_full_refund" in message and "buyer" in message
    assert all(code in message for code in codes)


def test_a_refused_filing_is_logged_too(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="claimstate.service")
    with ClaimService(":memory:") as service:
        service.file_claim(filing(), now=T0)
        with pytest.raises(TransitionRefused):
            service.file_claim(filing(), now=T0)  # the order has an open claim
    (record,) = _records(caplog, "claimstate.service")
    assert record.levelno == logging.DEBUG and record.actor_role == "buyer"  # type: ignore[attr-defined]
    assert record.refusal_codes  # type: ignore[attr-defined]


def test_nothing_is_logged_at_info_for_a_refusal_or_a_transition(caplog: pytest.LogCaptureFixture) -> None:
    """With the root logger at INFO (a service's usual setting), a fire logs nothing: not the refusal
    (DEBUG) and not the `transitions` library's two INFO lines per transition."""
    caplog.set_level(logging.INFO)
    with ClaimService(":memory:") as service:
        claim_id = service.file_claim(filing(), now=T0).claim.id
        service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0)
        with pytest.raises(TransitionRefused):
            service.fire(claim_id, "decide_full_refund", "buyer:alice", {"rationale": "mine"}, now=T0)
    assert caplog.records == []
    assert logging.getLogger("transitions").level == logging.WARNING


def test_a_lost_race_run_again_is_logged_at_info_with_the_claim_and_the_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="claimstate")
    tries: list[int] = []

    def body() -> str:
        tries.append(1)
        if len(tries) == 1:
            raise Race("could not serialize access due to concurrent update")
        return "written"

    with ClaimService(":memory:") as service:
        assert core_of(service).store.write(body, claim_id="c-7") == "written"
    (record,) = _records(caplog, "claimstate.store")
    assert record.levelno == logging.INFO
    assert (record.claim_id, record.retry) == ("c-7", 1)  # type: ignore[attr-defined]
    assert "c-7" in record.getMessage() and "could not serialize access" in record.getMessage()


def test_a_fire_that_loses_a_race_once_is_applied_and_logged(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="claimstate")
    with ClaimService(":memory:") as service:
        claim_id = service.file_claim(filing(), now=T0).claim.id
        lose_a_race_once(monkeypatch, service)
        fired = service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0)
    assert fired.claim.state == "in_mediation"
    (record,) = _records(caplog, "claimstate.store")
    assert record.levelno == logging.INFO and record.claim_id == claim_id  # type: ignore[attr-defined]
    assert "deadlock detected" in record.getMessage()


def test_retries_given_up_are_logged_at_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="claimstate")

    def body() -> None:
        raise Race("deadlock detected")

    with ClaimService(":memory:") as service, pytest.raises(ConcurrentModification):
        core_of(service).store.write(body, claim_id="c-7")
    records = _records(caplog, "claimstate.store")
    assert [r.levelno for r in records] == [logging.INFO] * 4 + [logging.WARNING]
    assert "giving up" in records[-1].getMessage() and records[-1].claim_id == "c-7"  # type: ignore[attr-defined]


def test_a_storage_fault_is_logged_at_warning(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    caplog.set_level(logging.INFO, logger="claimstate")
    path = tmp_path / "claims.db"
    with ClaimService(path) as service:
        claim_id = service.file_claim(filing(), now=T0).claim.id
    with ClaimService(path, read_only=True) as service, pytest.raises(StorageError):
        service.fire(claim_id, "withdraw", "buyer:alice", now=T0)
    assert _records(caplog, "claimstate.store") == []  # a read-only store's refusal is the caller's, not a fault
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE claims SET details = '{' WHERE id = ?", (claim_id,))
    with ClaimService(path) as service, pytest.raises(StorageError):
        service.fire(claim_id, "withdraw", "buyer:alice", now=T0)
    (record,) = _records(caplog, "claimstate.store")
    assert record.levelno == logging.WARNING and record.claim_id == claim_id  # type: ignore[attr-defined]
    assert "damaged" in record.getMessage()


CHILD = """
import logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(name)s %(levelname)s %(message)s")
{before}
from claimstate import ClaimService
with ClaimService(":memory:") as service:
    service.file_claim({{"order_id": "o-1", "buyer_id": "alice", "supplier_id": "acme", "currency": "USD",
                         "amount": "25.00", "reason": "broken", "resolution": "full_refund"}})
print("level", logging.getLevelName(logging.getLogger("transitions").level))
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("before", "level", "lines"),
    [
        ("", "WARNING", 0),  # claimstate quiets transitions, the root logger untouched
        ('logging.getLogger("transitions").setLevel(logging.INFO)', "INFO", 2),  # the application's choice wins
    ],
)
def test_the_transitions_logger_is_quiet_unless_the_application_set_its_level(
    before: str, level: str, lines: int
) -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHILD.format(before=before)], check=True, capture_output=True, text=True
    ).stdout.splitlines()
    assert out[-1] == f"level {level}"
    assert len([line for line in out if line.startswith("transitions")]) == lines
