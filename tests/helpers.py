"""Shared test data and helpers: a fixed clock and claims walked to any state of the built-in lifecycle.

Tests import these by name (``from helpers import ...``); the fixtures that use them live in conftest.py.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

from claimstate import CLAIM_LIFECYCLE, Claim, Engine
from claimstate._chain import Chain
from claimstate._json import encode
from claimstate._service.service import core_of
from claimstate._store import Store, StoredDefinition, open_store
from claimstate._store.base import Race
from claimstate.definition import Definition

C = TypeVar("C", bound="ChildLines")
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ACTORS = {"buyer": "buyer:alice", "supplier": "supplier:acme", "agent": "agent:kim", "system": "system"}
# The specification's states (the README's lifecycle section), written out by hand so that tests compare
# the definition with it.
STATE_NAMES = [
    "awaiting_evidence",
    "in_mediation",
    "awaiting_buyer_response",
    "awaiting_supplier_response",
    "under_review",
    "cancellation_pending",
    "awaiting_return",
    "return_in_transit",
    "refunded_full",
    "refunded_partial",
    "payment_released",
    "withdrawn",
]
EVIDENCE = [{"kind": "photo", "description": "the lid arrived cracked"}]


def filing(**changes: Any) -> dict[str, Any]:
    """Valid file_claim data: order o-1, 25.00 USD, alice against acme, full refund unless changed."""
    data = {
        "order_id": "o-1",
        "buyer_id": "alice",
        "supplier_id": "acme",
        "currency": "USD",
        "amount": "25.00",
        "reason": "arrived broken",
        "resolution": "full_refund",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


class Walker:
    """Takes a claim along the specification's main paths, one minute per step."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.now = T0

    def step(self, claim: Claim, trigger: str, role: str, data: dict[str, Any] | None = None) -> Claim:
        self.now += timedelta(minutes=1)
        return self.engine.fire(claim, trigger, ACTORS[role], data, self.now).claim

    def filed(self, **changes: Any) -> Claim:
        return self.engine.file_claim("c-1", "buyer:alice", filing(**changes), self.now).claim

    def reach(self, state: str, *, resolution: str = "full_refund", agreement: str = "partial_refund") -> Claim:
        """A claim in `state`, reached the way the specification describes."""
        refund = "10.00" if resolution == "partial_refund" else None
        claim = self.filed(resolution=resolution, refund_amount=refund)
        if state == "awaiting_evidence":
            return claim
        if state == "withdrawn":
            return self.step(claim, "withdraw", "buyer")
        claim = self.step(claim, "submit_evidence", "buyer", {"evidence": EVIDENCE})
        paths: dict[str, list[tuple[str, str, dict[str, Any] | None]]] = {
            "in_mediation": [],
            "awaiting_buyer_response": [("request_buyer_response", "agent", {"question": "photos?"})],
            "awaiting_supplier_response": [("request_supplier_response", "agent", {"question": "tracking?"})],
            "under_review": [("escalate", "buyer", None)],
            "cancellation_pending": [
                ("make_offer", "supplier", offer(agreement)),
                ("accept_offer", "buyer", None),
                ("cancel_claim", "buyer", None),
            ],
            "awaiting_return": [("decide_full_refund", "agent", {"rationale": "damaged"})],
            "return_in_transit": [
                ("decide_full_refund", "agent", {"rationale": "damaged"}),
                ("confirm_return_address", "supplier", {"address": "1 Dock Rd"}),
                ("ship_return", "buyer", {"carrier": "DHL", "tracking_number": "JD0001"}),
            ],
            "refunded_full": [
                ("decide_full_refund", "agent", {"rationale": "damaged"}),
                ("confirm_return_address", "supplier", {"address": "1 Dock Rd"}),
                ("ship_return", "buyer", {"carrier": "DHL", "tracking_number": "JD0001"}),
                ("confirm_return_received", "supplier", None),
            ],
            "refunded_partial": [("decide_partial_refund", "agent", {"amount": "10.00", "rationale": "scratch"})],
            "payment_released": [("decide_for_supplier", "agent", {"rationale": "as described"})],
        }
        for trigger, role, data in paths[state]:
            claim = self.step(claim, trigger, role, data)
        assert claim.state == state
        return claim

    def returned_then(self, state: str, *, via: str = "report_return_problem") -> Claim:
        """A claim whose return shipment is recorded, put under review by `via`, then moved on to `state`.

        `via` is report_return_problem (the supplier reports the goods lost or damaged) or receipt_deadline
        (the supplier never confirmed receipt); `state` is under_review or, after a response, in_mediation.
        """
        claim = self.reach("return_in_transit")
        if via == "receipt_deadline":
            assert claim.deadline is not None
            self.now = claim.deadline.due - timedelta(minutes=1)
            claim = self.step(claim, "receipt_deadline", "system")
        else:
            claim = self.step(claim, "report_return_problem", "supplier", GOOD_DATA["report_return_problem"])
        if state == "in_mediation":
            claim = self.step(claim, "request_buyer_response", "agent", {"question": "where is the parcel?"})
            claim = self.step(claim, "respond", "buyer", {"message": "the carrier lost it"})
        assert claim.state == state and claim.shipment is not None
        return claim


def offer(kind: str) -> dict[str, str]:
    """Offer data of `kind` on the 25.00 order: 10.00 partial, 25.00 full."""
    return {"kind": kind, "amount": "10.00" if kind == "partial_refund" else "25.00"}


# Data each trigger accepts on the walker's claims (25.00 USD orders).
GOOD_DATA: dict[str, dict[str, Any]] = {
    "submit_evidence": {"evidence": EVIDENCE},
    "make_offer": offer("partial_refund"),
    "reject_offer": {"note": "too low"},
    "reject_cancellation": {"reason": "the amounts do not match"},
    "request_buyer_response": {"question": "can you send a photo?"},
    "request_supplier_response": {"question": "what is the tracking number?"},
    "respond": {"message": "here it is", "evidence": EVIDENCE},
    "appeal": {"evidence": [{"kind": "shipping", "description": "delivered intact, signed"}]},
    "escalate": {"note": "no answer"},
    "decide_full_refund": {"rationale": "damaged in transit"},
    "decide_partial_refund": {"amount": "10.00", "rationale": "cosmetic damage"},
    "decide_for_supplier": {"rationale": "as described"},
    "confirm_return_address": {"address": "1 Dock Rd, Shenzhen"},
    "ship_return": {"carrier": "DHL", "tracking_number": "JD0001", "shipping_cost": "7.50"},
    "report_return_problem": {"description": "box empty", "evidence": [{"kind": "photo", "description": "empty"}]},
    "withdraw": {"reason": "sorted it out"},
}


class ChildLines:
    """A child process's stdout, read without blocking: its complete lines, decoded from JSON."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self.proc = proc
        self.fd = proc.stdout.fileno()
        self.buffer = b""
        self.lines: list[dict[str, Any]] = []
        self.eof = False

    def read(self) -> None:
        chunk = os.read(self.fd, 65536)
        if not chunk:
            self.eof = True
        self.buffer += chunk
        *complete, self.buffer = self.buffer.split(b"\n")
        self.lines += [json.loads(line) for line in complete]

    def last_words(self) -> str:
        """What to show when the child did not report in time."""
        return repr(self.lines[-3:])

    def reap(self) -> None:
        """Kill the child if it still runs, wait for it, and close its pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        for stream in (self.proc.stdout, self.proc.stdin):
            if stream is not None:
                with suppress(BrokenPipeError):  # a line a child that had exited never read
                    stream.close()


class ChildProcess(ChildLines):
    """A child process started from `argv` (stdin a pipe, $CLAIMSTATE_DB unset), its stdout read as JSON lines
    without blocking, its stderr kept in the file `stderr`."""

    def __init__(self, argv: Sequence[str], stderr: Path) -> None:
        self.stderr = stderr
        env = {k: v for k, v in os.environ.items() if k != "CLAIMSTATE_DB"}
        with stderr.open("wb") as err:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=env)
        super().__init__(proc)

    def kill(self) -> None:
        """SIGKILL, and wait for it: whatever it printed before is still read."""
        os.kill(self.proc.pid, signal.SIGKILL)
        assert self.proc.wait(timeout=10) == -signal.SIGKILL

    def finish(self, deadline: float) -> int:
        """Read the rest of its output; its exit code."""
        pump([self], deadline, lambda: False)
        return self.proc.wait(timeout=max(deadline - time.monotonic(), 1))

    def errors(self) -> str:
        return self.stderr.read_text()

    def last_words(self) -> str:
        return f"{self.lines[-3:]!r}; stderr: {self.errors()[-2000:]}"


@contextmanager
def child_processes(_kind: type[C] = ChildProcess) -> Iterator[list[C]]:  # type: ignore[assignment]
    """A list to start children (of `_kind`) into; whatever happens in the test, none outlives the block."""
    started: list[C] = []
    try:
        yield started
    finally:
        for child in started:
            child.reap()


def pump(children: Sequence[ChildLines], deadline: float, until: Callable[[], bool]) -> None:
    """Read every child's output until `until()` holds or all reached EOF; fail at the deadline."""
    while not until() and not all(c.eof for c in children):
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"children did not report in time: {[c.last_words() for c in children]}")
        ready, _, _ = select.select([c.fd for c in children if not c.eof], [], [], left)
        for child in children:
            if child.fd in ready:
                child.read()


def rechain(conn: sqlite3.Connection, claim_id: str, chain: Chain) -> None:
    """What a forger who knows the algorithm does: recompute every hash of the claim with `chain`."""
    rows = conn.execute(
        "SELECT claim_id, seq, trigger, from_state, to_state, actor, at, data, deadline_at, definition"
        " FROM transitions WHERE claim_id = ? ORDER BY seq",
        (claim_id,),
    ).fetchall()
    names = ("claim_id", "seq", "trigger", "from_state", "to_state", "actor", "at", "data", "deadline_at", "definition")
    previous = None
    for row in rows:
        linked = {**dict(zip(names, row, strict=True)), "data": json.loads(row[7])}
        previous = chain.link(previous, linked)
        conn.execute("UPDATE transitions SET hash = ? WHERE claim_id = ? AND seq = ?", (previous, claim_id, row[1]))


_KEPT: dict[str, tuple[str, Any]] = {}  # per use ("read", "admin"): the last server URL, and its connection


def on_server(url: str, sql: str, *, use: str = "read") -> list[tuple[Any, ...]]:
    """Run `sql` on a server through a kept connection, and its rows (none for a statement that has none).

    One connection per use (autocommit: it holds nothing between calls) serves calls to one URL in a row: a
    test reads some tables a thousand times, and each test makes a schema, and a new backend for each costs
    the server more than the statement. One a test terminated is replaced."""
    import psycopg  # noqa: PLC0415  (an optional extra: the SQLite runs do without it)

    for attempt in range(2):
        kept_url, conn = _KEPT.get(use, (None, None))
        if kept_url != url or conn is None or conn.closed:
            if conn is not None:
                conn.close()
            conn = psycopg.connect(url, autocommit=True)
            _KEPT[use] = (url, conn)
        try:
            cursor = conn.execute(sql)
            return cursor.fetchall() if cursor.description is not None else []
        except psycopg.OperationalError:
            conn.close()
            if attempt:
                raise
    raise AssertionError("unreachable")


def execute(target: str, sql: str, params: tuple[object, ...] = ()) -> None:
    """Run one statement on a store's tables directly, as someone with write access would (`%s` placeholders)."""
    if target.startswith("postgresql://"):
        import psycopg  # noqa: PLC0415  (an optional extra: the SQLite runs do without it)

        with psycopg.connect(target, autocommit=True) as server:
            server.execute(sql, params)
        return
    conn = sqlite3.connect(target, isolation_level=None)
    try:
        conn.execute(sql.replace("%s", "?"), params)
    finally:
        conn.close()


def query(target: str, sql: str) -> list[tuple[Any, ...]]:
    """Rows of `sql`, read from a store's tables directly (not through claimstate): a SQLite file or a URL."""
    if target.startswith("postgresql://"):
        return on_server(target, sql)
    conn = sqlite3.connect(target)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def before_operations(path: str | Path, *, version: int | None = None) -> None:
    """Take a SQLite database back to what schema 4 wrote: no workers table, no index of claims by state and
    age (nor schema 6's of history rows by time), events without their entered_at; and to schema `version`
    where given (else the caller sets it)."""
    conn = sqlite3.connect(path)
    conn.execute("DROP INDEX transitions_by_time")
    conn.execute("DROP TABLE workers")
    conn.execute("DROP INDEX claims_open_by_state")
    conn.execute("ALTER TABLE events DROP COLUMN entered_at")
    if version is not None:
        conn.execute(f"PRAGMA user_version = {int(version)}")
    conn.commit()
    conn.close()


def forget_definitions(path: str | Path, *, version: int | None = None) -> None:
    """Take a SQLite database back to before schema 4: no definitions kept or recorded, and each history row
    hashed without one (as schema 3 hashed it); and to schema `version` where given (else the caller sets it)."""
    before_operations(path)
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE definitions")
    conn.execute("DROP INDEX claims_open_by_definition")
    conn.execute("DROP TRIGGER transitions_no_update")
    conn.execute("ALTER TABLE transitions DROP COLUMN definition")
    conn.execute("ALTER TABLE claims DROP COLUMN definition")
    previous: dict[str, str] = {}
    columns = ("claim_id", "seq", "trigger", "from_state", "to_state", "actor", "at", "data", "deadline_at")
    for values in conn.execute(f"SELECT {', '.join(columns)} FROM transitions ORDER BY claim_id, seq").fetchall():
        row = {**dict(zip(columns, values, strict=True)), "data": json.loads(values[7])}
        digest = previous[row["claim_id"]] = Chain().link(previous.get(row["claim_id"]), row)
        conn.execute("UPDATE transitions SET hash = ? WHERE claim_id = ? AND seq = ?", (digest, *values[:2]))
    conn.execute(
        "CREATE TRIGGER transitions_no_update BEFORE UPDATE ON transitions"
        " BEGIN SELECT RAISE(ABORT, 'the transition history is append-only'); END"
    )
    if version is not None:
        conn.execute(f"PRAGMA user_version = {int(version)}")
    conn.commit()
    conn.close()


def store_for(target: str | Path, definition: Definition = CLAIM_LIFECYCLE, *, read_only: bool = False) -> Store:
    """A store opened as a service deciding by `definition` (its default policy) opens it: one to give
    `ClaimService(store)`, keeping a handle on it to patch or inspect."""
    engine = Engine(definition)
    decides_by = StoredDefinition(engine.fingerprint, definition.name, encode(definition.to_dict(engine.policy)))
    return open_store(target, chain=Chain(None), definition=decides_by, read_only=read_only)


class Clock:
    """A clock the test moves: the service reads it for leases, entered_at, and transitions given no `now`."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def waiting_for_a_lock(url: str, count: int = 1) -> Callable[[], bool]:
    """Whether at least `count` sessions of the PostgreSQL database at `url` wait for a lock (a row's, say):
    how a test knows a call is blocked, without timing it."""

    def waiting() -> bool:
        import psycopg  # noqa: PLC0415  (an optional extra: the SQLite runs do without it)

        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).fetchone()
        return row is not None and row[0] >= count

    return waiting


def lose_a_race_once(monkeypatch: pytest.MonkeyPatch, service: Any) -> None:
    """The service's next claim update loses a race once (a deadlock, as a concurrent writer would cause)
    before it is applied, so the store runs the write again."""
    claims = core_of(service).store.claims
    update, lost = claims.update, []

    def losing_once(*args: Any, **kwargs: Any) -> Any:
        if not lost:
            lost.append(1)
            raise Race("deadlock detected")
        return update(*args, **kwargs)

    monkeypatch.setattr(claims, "update", losing_once)
