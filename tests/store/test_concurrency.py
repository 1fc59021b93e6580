"""One service shared by many threads: no call waits for another claim's lock, and a storm of fires loses or
doubles nothing (versions contiguous, the feed equal to the history, verify clean), on both stores.

Ordering is asserted with events and the database's own view of who waits for a lock, never with timings.
"""

from __future__ import annotations

import itertools
import random
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from helpers import ACTORS, EVIDENCE, GOOD_DATA, T0, filing, waiting_for_a_lock

from claimstate import ClaimService, Event, Fired, StorageError, TransitionRefused, run_ticker

THREADS = 8
CLAIMS = 24
FIRES_PER_THREAD = 25


def _wait_until(condition: Callable[[], bool], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {seconds} s")
        time.sleep(0.01)


class _Background:
    """A fire on claim A run in a thread of its own, to wait for the lock another connection holds."""

    def __init__(self, service: ClaimService, claim_id: str) -> None:
        self.done = threading.Event()
        self.result: list[Fired | Exception] = []
        self.started = threading.Event()

        def run() -> None:
            self.started.set()
            try:
                self.result.append(service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}))
            except Exception as error:  # shown by the assertions
                self.result.append(error)
            finally:
                self.done.set()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def finished(self) -> Fired | Exception:
        self.thread.join(30)
        assert self.done.is_set(), "the fire on A never returned"
        return self.result[0]


def _calls_on_b(service: ClaimService, b: str, *, write: bool) -> None:
    """Every kind of call, on claim B: each must return while A's fire still waits."""
    assert service.get(b).id == b
    assert len(service.history(b)) == 1
    assert any(a.allowed for a in service.available(b, "buyer:alice"))
    assert [claim.id for claim in service.list_claims(order="o-b")] == [b]
    if write:
        assert service.fire(b, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}).claim.version == 2


def test_a_fire_waiting_for_one_claims_row_lock_delays_no_call_on_another_postgres(postgres_url: str) -> None:
    """PostgreSQL: another connection holds claim A's row; a fire on A waits for it in one thread, while get,
    history, available, list and a fire on claim B, on the same service, all return in the main thread."""
    import psycopg  # noqa: PLC0415

    with ClaimService(postgres_url, busy_timeout=60) as service:
        a = service.file_claim(filing(order_id="o-a")).claim.id
        b = service.file_claim(filing(order_id="o-b")).claim.id
        with psycopg.connect(postgres_url) as holder:  # a transaction, held open
            holder.execute("SELECT 1 FROM claims WHERE id = %s FOR UPDATE", (a,))
            background = _Background(service, a)
            _wait_until(waiting_for_a_lock(postgres_url), "the fire on A waiting for the row lock")
            _calls_on_b(service, b, write=True)
            assert not background.done.is_set()  # A still waited while every call on B was answered
            holder.rollback()
        fired = background.finished()
        assert isinstance(fired, Fired) and fired.claim.version == 2
        assert service.verify() == []


def test_a_fire_waiting_for_the_files_write_lock_delays_no_read_sqlite(tmp_path: Path) -> None:
    """SQLite: another connection holds the file's write lock (SQLite has one writer, no row locks); a fire
    on A waits for it in one thread, while reads of claim B on the same service return (WAL readers never
    wait for the writer). A write of B waits for the same file lock, as SQLite allows one writer."""
    db_path = str(tmp_path / "claims.db")
    with ClaimService(db_path, busy_timeout=60) as service:
        a = service.file_claim(filing(order_id="o-a")).claim.id
        b = service.file_claim(filing(order_id="o-b")).claim.id
        holder = sqlite3.connect(db_path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        background = _Background(service, a)
        background.started.wait(30)
        _calls_on_b(service, b, write=False)
        # Nothing B's reads did released the writer: A's fire is still held back by the file lock.
        assert not background.done.is_set()
        holder.execute("ROLLBACK")
        holder.close()
        fired = background.finished()
        assert isinstance(fired, Fired) and fired.claim.version == 2


def test_a_thread_inside_a_batch_holds_no_other_thread_back_from_reading(store_target: str) -> None:
    """A batch is its thread's transaction: another thread's reads on the same service run meanwhile, and
    see nothing of the batch until it commits."""
    with ClaimService(store_target) as service:
        a = service.file_claim(filing(order_id="o-a")).claim.id
        inside, leave = threading.Event(), threading.Event()

        def batch() -> None:
            with service.batch():
                service.fire(a, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE})
                inside.set()
                assert leave.wait(30)

        thread = threading.Thread(target=batch, daemon=True)
        thread.start()
        assert inside.wait(30)
        assert service.get(a).version == 1  # the batch has not committed
        assert len(service.history(a)) == 1
        leave.set()
        thread.join(30)
        assert service.get(a).version == 2


@pytest.mark.parametrize("beside", ["alone", "with tick runners and a consumer group"])
def test_threads_sharing_one_service_lose_and_double_nothing(store_target: str, beside: str) -> None:
    """8 threads fire random allowed triggers on shared claims through one service (and, in the second
    run, two tick runners fire deadlines while a consumer group of two workers reads the feed, an hour
    passing at each read of the clock, so deadlines fall due during the storm): each claim's versions run
    1..n with no gap, every accepted fire or fired deadline is in the history once, the feed holds exactly the
    history's transitions, the consumer group saw every one of them, and verify finds nothing wrong."""
    runners = beside != "alone"
    hours, latest = itertools.count(), [T0]

    def clock() -> datetime:  # with runners, each read an hour after the one before: time runs with the work
        if runners:
            latest[0] = T0 + timedelta(hours=next(hours))
        return latest[0]

    with ClaimService(store_target, busy_timeout=60, clock=clock) as service:
        ids = [service.file_claim(filing(order_id=f"o-{n}")).claim.id for n in range(CLAIMS)]
        accepted: Counter[str] = Counter()
        errors: list[BaseException] = []
        counted = threading.Lock()
        seen: set[tuple[str, int]] = set()
        stop, stop_ticking = threading.Event(), threading.Event()

        def storm(seed: int) -> None:
            chance = random.Random(seed)
            try:
                for _ in range(FIRES_PER_THREAD):
                    claim_id = chance.choice(ids)
                    actor = ACTORS[chance.choice(["buyer", "supplier", "agent"])]
                    allowed = [a.trigger for a in service.available(claim_id, actor) if a.allowed]
                    allowed = [trigger for trigger in allowed if trigger != "withdraw"] or allowed
                    if not allowed:
                        continue
                    trigger = chance.choice(allowed)
                    try:
                        service.fire(claim_id, trigger, actor, GOOD_DATA.get(trigger))
                    except TransitionRefused:
                        continue  # another thread (or a deadline) moved the claim on since `available` looked
                    with counted:
                        accepted[claim_id] += 1
            except BaseException as error:  # re-raised below, in the test's thread
                errors.append(error)

        def note(event: Event) -> None:
            with counted:
                seen.add((event.claim_id, event.seq))

        tickers = [
            threading.Thread(target=run_ticker, args=(service, 0.005, stop_ticking), kwargs={"now": lambda: latest[0]})
            for _ in range(2)
        ]
        consumers = [
            threading.Thread(target=service.consume, args=("audit", note), kwargs={"stop": stop, "poll": 0.01})
            for _ in range(2)
        ]
        others = [*tickers, *consumers] if runners else []
        threads = [threading.Thread(target=storm, args=(seed,)) for seed in range(THREADS)]
        for thread in [*others, *threads]:
            thread.start()
        for thread in threads:
            thread.join(120)
        history_by_claim: dict[str, list[tuple[int, str]]] = {}
        deadlines_fired = 0
        try:
            assert errors == []
            assert sum(accepted.values()) > (CLAIMS // 2 if runners else CLAIMS)  # the storm did fire
            if runners:  # the storm's deadlines may all have been outrun by the parties: one more falls due now
                late = service.file_claim(filing(order_id="o-late")).claim.id
                ids.append(late)
                hours = itertools.count(next(hours) + 24 * 30)
                _wait_until(
                    lambda: any(record.actor.role == "system" for record in service.history(late)),
                    "a tick runner firing the late claim's deadline",
                )
            stop_ticking.set()
            for thread in tickers if runners else []:
                thread.join(30)  # the claims are read once no deadline fires any more
            for claim_id in ids:
                claim, history = service.get(claim_id), service.history(claim_id)
                assert [record.seq for record in history] == list(range(1, claim.version + 1))
                fired_deadlines = sum(1 for record in history if record.actor.role == "system")
                assert claim.version == 1 + accepted[claim_id] + fired_deadlines
                deadlines_fired += fired_deadlines
                history_by_claim[claim_id] = [(record.seq, record.trigger) for record in history]
            if runners:
                everything = {(claim_id, seq) for claim_id, steps in history_by_claim.items() for seq, _ in steps}
                _wait_until(lambda: everything <= seen, "the consumer group handling every event")
                assert deadlines_fired > 0  # the runners had work to do
        finally:
            stop.set()
            stop_ticking.set()
            for thread in others:
                thread.join(30)
        fed: dict[str, list[tuple[int, str]]] = {claim_id: [] for claim_id in ids}
        after = 0
        while page := service.feed(after=after, limit=500):
            for event in page:
                fed[event.claim_id].append((event.seq, event.trigger))
            after = page[-1].position
        assert {claim_id: sorted(events) for claim_id, events in fed.items()} == history_by_claim
        assert service.verify() == []


def test_closing_while_other_threads_call_refuses_their_next_calls_and_crashes_nothing(store_target: str) -> None:
    """Closing under threads still reading: a call under way finishes or fails as a StorageError, the next
    ones are refused by name; no connection is closed under a thread using it (that would crash SQLite)."""
    service = ClaimService(store_target)
    claim_id = service.file_claim(filing()).claim.id
    outcomes: Counter[str] = Counter()
    go = threading.Barrier(5)

    def read() -> None:
        go.wait()
        for _ in range(300):
            try:
                service.get(claim_id)
                outcomes["read"] += 1
            except StorageError as error:
                outcomes["closed" if "closed" in str(error) else str(error)] += 1

    threads = [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    go.wait()
    service.close()
    for thread in threads:
        thread.join(30)
    assert set(outcomes) <= {"read", "closed"}, outcomes
    with pytest.raises(StorageError, match="closed"):
        service.get(claim_id)


def test_an_in_memory_service_made_in_a_thread_outlives_the_thread() -> None:
    made: list[ClaimService] = []
    thread = threading.Thread(target=lambda: made.append(ClaimService(":memory:")))
    thread.start()
    thread.join(30)
    (service,) = made
    assert service.file_claim(filing()).claim.version == 1
    assert len(service.list_claims()) == 1
    service.close()


def test_a_tick_passes_over_a_damaged_claim_and_fires_the_others(tmp_path: Path) -> None:
    """One claim's row damaged by hand: the tick (and a tick runner) fires every other due deadline, and
    the damaged claim stays due, for verify to report."""
    path = str(tmp_path / "claims.db")
    with ClaimService(path) as service:
        damaged = service.file_claim(filing(order_id="o-1"), now=T0).claim.id
        healthy = service.file_claim(filing(order_id="o-2"), now=T0 + timedelta(minutes=1)).claim.id
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE claims SET details = '{' WHERE id = ?", (damaged,))
        later = T0 + timedelta(days=60)
        assert [record.claim_id for record in service.tick(later)] == [healthy]
        assert service.due(later) == 1
        assert any(mismatch.claim_id == damaged for mismatch in service.verify())
