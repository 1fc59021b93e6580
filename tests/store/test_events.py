"""The transition feed on both backends: one event per applied transition, delivered to named consumers.

What the processes do to it (kills, a consumer group of several processes) is in test_events_processes.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager as ContextManager
from contextlib import contextmanager, suppress
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
from click.testing import CliRunner
from helpers import ACTORS, EVIDENCE, GOOD_DATA, T0, Clock, filing, forget_definitions
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claimstate import (
    ClaimService,
    ClaimStateError,
    Engine,
    Event,
    InvalidInput,
    StorageError,
    TransitionRefused,
    copy_claims,
)
from claimstate._feed import LANES, lane_of
from claimstate.cli import cli

EVENT_KEYS = {"position", "cursor", "claim_id", "seq", "trigger", "from_state", "to_state", "actor", "at", "data",
              "claim", "entered_at"}  # fmt: skip


def file_one(service: ClaimService, order: str = "o-1") -> str:
    return service.file_claim(filing(order_id=order), now=T0).claim.id


def history_rows(service: ClaimService) -> list[tuple[Any, ...]]:
    """Every claim's history as (claim, seq, trigger, from, to, actor, at, data), in claim and seq order."""
    return sorted(
        (r.claim_id, r.seq, r.trigger, r.source, r.dest, str(r.actor), r.at, dict(r.data))
        for claim in service.iter_claims()
        for r in service.history(claim.id)
    )


def event_rows(service: ClaimService) -> list[tuple[Any, ...]]:
    """Every retained event as the same tuple as `history_rows`."""
    return sorted(
        (e.claim_id, e.seq, e.trigger, e.from_state, e.to_state, e.actor, e.at, dict(e.data))
        for e in service.feed(limit=100_000)
    )


def drain(service: ClaimService, consumer: str, limit: int = 100) -> list[Event]:
    """Take and acknowledge every event `consumer` has not acknowledged, batch by batch."""
    got: list[Event] = []
    while batch := service.events(consumer, limit):
        got += batch
        service.ack(consumer, batch[-1])
    return got


def claims_in_distinct_lanes(count: int) -> list[str]:
    """Claim ids that fall in `count` different lanes."""
    ids: dict[int, str] = {}
    n = 0
    while len(ids) < count:
        ids.setdefault(lane_of(f"c-{n}"), f"c-{n}")
        n += 1
    return list(ids.values())


def claims_in_one_lane(count: int) -> list[str]:
    """Claim ids that all fall in one lane."""
    lane = lane_of("c-0")
    return [f"c-{n}" for n in range(10_000) if lane_of(f"c-{n}") == lane][:count]


# --- one event per applied transition ----------------------------------------------------------------


def test_each_applied_transition_writes_one_event_with_the_claim_after_it(service: ClaimService) -> None:
    """Filing, a fire and a deadline fire each leave one event: the history row's facts and the claim's
    summary after it (parties, amount, refund, deadline, whether it is over)."""
    claim_id = file_one(service)
    filed = service.get(claim_id)
    assert filed.deadline is not None
    service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0)
    lapsing = file_one(service, "o-2")
    service.tick(filed.deadline.due)  # the second buyer never sends evidence: the deadline fires
    assert event_rows(service) == history_rows(service)
    events = service.feed()
    assert [(e.claim_id, e.seq, e.trigger, e.to_state, e.actor) for e in events] == [
        (claim_id, 1, "file_claim", "awaiting_evidence", "buyer:alice"),
        (claim_id, 2, "submit_evidence", "in_mediation", "buyer:alice"),
        (lapsing, 1, "file_claim", "awaiting_evidence", "buyer:alice"),
        (lapsing, 2, filed.deadline.trigger, service.get(lapsing).state, "system"),
    ]
    assert set(events[0].to_dict()) == EVENT_KEYS
    first = events[0].claim
    assert (first["order_id"], first["buyer_id"], first["supplier_id"]) == ("o-1", "alice", "acme")
    assert (first["amount"], first["currency"], first["version"], first["closed"]) == ("25.00", "USD", 1, False)
    assert (first["deadline_trigger"], first["deadline_at"]) == (
        filed.deadline.trigger,
        filed.deadline.due.isoformat(timespec="microseconds"),
    )
    assert events[3].claim["closed"] is True
    assert events[3].claim["deadline_at"] is None
    assert [e.position for e in events] == sorted(e.position for e in events)


def test_a_refused_invalid_or_repeated_call_writes_no_event(service: ClaimService) -> None:
    """A refusal, bad input and an idempotent retry leave the feed as it was."""
    claim_id = file_one(service)
    service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, idempotency_key="k1", now=T0)
    before = service.feed()
    for call in (
        lambda: service.fire(claim_id, "ship_return", "buyer:alice", GOOD_DATA["ship_return"], now=T0),  # refused
        lambda: service.fire(claim_id, "make_offer", "supplier:mallory", GOOD_DATA["make_offer"], now=T0),  # not theirs
        lambda: service.fire(claim_id, "make_offer", "supplier:acme", {"kind": "bogus"}, now=T0),  # invalid data
        lambda: service.file_claim(filing(), now=T0),  # the order has an open claim
    ):
        with pytest.raises(ClaimStateError):
            call()
    service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, idempotency_key="k1", now=T0)
    assert service.feed() == before
    assert len(before) == 2


def test_a_batch_that_fails_keeps_no_event(service: ClaimService) -> None:
    """Events are written in the transition's transaction: a batch rolled back takes its events with it."""
    claim_id = file_one(service)

    def evidence_then_a_refusal() -> None:
        with service.batch():
            service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0)
            service.fire(claim_id, "ship_return", "buyer:alice", GOOD_DATA["ship_return"], now=T0)

    with pytest.raises(TransitionRefused):
        evidence_then_a_refusal()
    assert [e.seq for e in service.feed()] == [1]


STEPS = st.lists(
    st.tuples(
        st.sampled_from(["buyer", "supplier", "agent", "stranger", "system", "retry", "bad"]),
        st.integers(0, 1_000),
        st.sampled_from([1, 60, 24 * 60, 6 * 24 * 60, 11 * 24 * 60]),
    ),
    max_size=25,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(steps=STEPS)
def test_events_equal_the_history_one_to_one(
    fresh_targets: Callable[[], ContextManager[str]], steps: list[tuple[str, int, int]]
) -> None:
    """Whatever happens to two claims (fires by each role, fires by a stranger, refused and invalid calls,
    retries under a used idempotency key, ticks of the clock), the events are the history rows, one each:
    same claim, seq, trigger, states, actor, time and data; and each carries the claim as it then was."""
    engine = Engine()
    with fresh_targets() as target, ClaimService(target) as service:
        ids = [service.file_claim(filing(order_id=f"o-{n}"), now=T0).claim.id for n in range(2)]
        now, keys = T0, list[tuple[str, str, str, dict[str, Any]]]()
        for role, pick, minutes in steps:
            now += timedelta(minutes=minutes)
            claim = service.get(ids[pick % 2])
            if role == "system":
                service.tick(now)
            elif role == "retry" and keys:
                claim_id, trigger, actor, data = keys[pick % len(keys)]
                with suppress(ClaimStateError):  # a retry of a call that was refused is refused again
                    service.fire(claim_id, trigger, actor, data, idempotency_key=f"k-{pick % len(keys)}", now=now)
            elif role in ("stranger", "bad"):
                actor = "buyer:mallory" if role == "stranger" else "buyer:alice"
                allowed = [a.trigger for a in engine.available(claim, "buyer:alice", now) if a.allowed] or ["withdraw"]
                with pytest.raises(ClaimStateError):
                    service.fire(claim.id, allowed[pick % len(allowed)], actor, {"no such field": 1}, now=now)
            elif role in ACTORS:
                allowed = [a.trigger for a in engine.available(claim, ACTORS[role], now) if a.allowed]
                if allowed:
                    trigger = allowed[pick % len(allowed)]
                    data = GOOD_DATA.get(trigger, {})
                    try:
                        service.fire(claim.id, trigger, ACTORS[role], data, idempotency_key=f"k-{len(keys)}", now=now)
                        keys.append((claim.id, trigger, ACTORS[role], data))
                    except TransitionRefused:
                        pass  # a guard on the data (the offer amount, say)
        assert event_rows(service) == history_rows(service)
        for event in service.feed(limit=1_000):
            assert (event.claim["id"], event.claim["version"], event.claim["state"]) == (
                event.claim_id,
                event.seq,
                event.to_state,
            )


# --- consumers ------------------------------------------------------------------------------------------


def test_a_consumer_gets_every_event_once_acknowledged_and_each_claim_in_seq_order(service: ClaimService) -> None:
    """Draining a consumer yields every event exactly once, one claim's events in seq order; after that it
    has nothing, until a new transition comes."""
    ids = [file_one(service, f"o-{n}") for n in range(12)]
    for claim_id in ids:
        service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0)
    got = drain(service, "payments", limit=5)
    assert sorted((e.claim_id, e.seq) for e in got) == sorted((e.claim_id, e.seq) for e in service.feed(limit=100))
    for claim_id in ids:
        assert [e.seq for e in got if e.claim_id == claim_id] == [1, 2]
    assert service.events("payments") == []
    service.fire(ids[0], "withdraw", "buyer:alice", {"reason": "sorted"}, now=T0)
    assert [(e.claim_id, e.seq) for e in drain(service, "payments")] == [(ids[0], 3)]


def test_named_consumers_read_the_feed_independently(service: ClaimService) -> None:
    """What one consumer acknowledged, another still gets; a look at the feed changes neither."""
    file_one(service)
    assert len(drain(service, "payments")) == 1
    assert service.feed("payments") == []
    assert len(service.feed("notifications")) == 1
    assert len(drain(service, "notifications")) == 1


def test_events_not_acknowledged_are_delivered_again(service: ClaimService) -> None:
    """Asked again before acknowledging, a consumer gets the same events; after acknowledging part of them,
    the rest."""
    claim_id = file_one(service)
    service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0)
    first = service.events("payments")
    assert [e.seq for e in first] == [1, 2]
    assert service.events("payments") == first
    service.ack("payments", first[0])
    assert service.events("payments") == first[1:]
    service.ack("payments", first[0])  # an older ack again changes nothing
    assert service.events("payments") == first[1:]


def test_a_client_acknowledges_by_cursor_under_a_worker_name_of_its_own(service: ClaimService) -> None:
    """A relay (the HTTP API) names each client as a worker and acknowledges by the event's cursor: the
    client's lane is its own until it acknowledges, and then free for others."""
    a, b = claims_in_distinct_lanes(2)
    for n, claim_id in enumerate((a, b)):
        service.file_claim(filing(order_id=f"o-{n}"), claim_id=claim_id, now=T0)
    first = service.events("warehouse", worker="client-1")
    assert first[-1].cursor == f"{first[-1].lane}.{first[-1].lane_seq}"
    assert service.events("warehouse", worker="client-1") == first  # its own lane, again
    second = service.events("warehouse", worker="client-2")
    assert {e.lane for e in first}.isdisjoint({e.lane for e in second})
    service.ack("warehouse", first[-1].cursor, worker="client-1")
    service.ack("warehouse", second[-1].cursor, worker="client-2")
    assert service.events("warehouse", worker="client-1") == service.events("warehouse", worker="client-2") == []
    assert service.feed("warehouse") == []


def test_a_group_shares_lanes_and_a_lapsed_lease_passes_to_another_worker(store_target: str, clock: Clock) -> None:
    """Two workers of one consumer never get the same lane at once; when one stops acknowledging, its lane's
    events go to the other once its lease has run out, and not before."""
    with ClaimService(store_target, clock=clock) as one, ClaimService(store_target, clock=clock) as two:
        a, b = claims_in_distinct_lanes(2)
        for n, claim_id in enumerate((a, b)):
            one.file_claim(filing(order_id=f"o-{n}"), claim_id=claim_id, now=T0)
        first = one.events("warehouse", lease=30)
        second = two.events("warehouse", lease=30)
        assert {e.claim_id for e in first} | {e.claim_id for e in second} == {a, b}
        assert {e.lane for e in first}.isdisjoint({e.lane for e in second})
        assert two.events("warehouse", lease=30) == second  # its own lane, again
        two.ack("warehouse", second[-1])
        assert two.events("warehouse") == []  # the other lane is still leased
        clock.now += timedelta(seconds=31)
        assert two.events("warehouse") == first  # the lease lapsed: delivered again, to the other worker
        one.ack("warehouse", first[-1])  # the first worker's late ack still counts
        assert two.events("warehouse") == []


def test_a_lane_keeps_one_claims_events_from_two_workers_at_once(store_target: str, clock: Clock) -> None:
    """Claims of one lane go to one worker at a time: the second gets nothing of it while the first holds it."""
    with ClaimService(store_target, clock=clock) as one, ClaimService(store_target, clock=clock) as two:
        for n, claim_id in enumerate(claims_in_one_lane(3)):
            one.file_claim(filing(order_id=f"o-{n}"), claim_id=claim_id, now=T0)
        assert len(one.events("warehouse", limit=2)) == 2
        assert two.events("warehouse") == []
        one.ack("warehouse", one.events("warehouse", limit=2)[-1])
        assert len(two.events("warehouse")) == 1  # the first worker left the lane once it had acknowledged all


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda s, e: s.events("", 10), "consumer"),
        (lambda s, e: s.events("payments", 0), "limit"),
        (lambda s, e: s.events("payments", 10, lease=-1), "lease"),
        (lambda s, e: s.events("payments", 10, lease=float("nan")), "lease"),
        (lambda s, e: s.ack("payments", {"claim_id": "x"}), "up_to"),
        (lambda s, e: s.ack("nobody", e), "consumer"),
        (lambda s, e: s.ack("payments", e), "up_to"),  # never delivered to payments
        (lambda s, e: s.ack("payments", e.cursor), "up_to"),  # the same, by its cursor
        (lambda s, e: s.ack("payments", "3"), "up_to"),  # not a cursor
        (lambda s, e: s.ack("payments", "16.1"), "up_to"),  # no such lane
        (lambda s, e: s.events("payments", 10, worker=" "), "worker"),
        (lambda s, e: s.feed(after=-1), "after"),
        (lambda s, e: s.prune_events("yesterday"), "older_than"),
        (lambda s, e: s.consume("payments", print, limit=0), "limit"),
        (lambda s, e: s.consume("payments", print, poll=0), "poll"),
    ],
)
def test_bad_feed_calls_are_refused_by_name_and_change_nothing(
    service: ClaimService, call: Callable[[ClaimService, Event], object], field: str
) -> None:
    file_one(service)
    event = service.feed()[0]
    service.events("payments", 1, lease=5)
    other = file_one(service, "o-2")
    undelivered = next(e for e in service.feed() if e.claim_id == other)
    before = (service.feed(), service.feed("payments"))
    with pytest.raises(InvalidInput) as error:
        call(service, undelivered if field == "up_to" else event)
    assert error.value.field == field
    assert (service.feed(), service.feed("payments")) == before


def test_consume_retries_a_failing_handler_before_any_later_event_of_its_lane(store_target: str) -> None:
    """The handler fails twice on one event: it is offered again (after a short pause, on the wall clock)
    until it succeeds, and the claim's later events come only after it; then the loop stops when told to."""
    service = ClaimService(store_target)
    claim_id = file_one(service)
    service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0)
    stop, seen, failures = threading.Event(), list[tuple[str, int]](), [2]

    def handler(event: Event) -> None:
        seen.append((event.claim_id, event.seq))
        if event.seq == 1 and failures[0]:
            failures[0] -= 1
            raise RuntimeError("the payments API is down")
        if event.seq == 2:
            stop.set()

    with service:
        assert service.consume("payments", handler, stop=stop, poll=0.01) == 2
        assert seen == [(claim_id, 1)] * 3 + [(claim_id, 2)]
        assert service.feed("payments") == []


def test_consume_gives_back_its_lane_when_it_stops(store_target: str) -> None:
    """A loop stopped mid-batch keeps no lease: another worker gets the unacknowledged events at once."""
    with ClaimService(store_target) as one, ClaimService(store_target) as two:
        for n, claim_id in enumerate(claims_in_one_lane(2)):
            one.file_claim(filing(order_id=f"o-{n}"), claim_id=claim_id, now=T0)
        stop = threading.Event()
        assert one.consume("payments", lambda event: stop.set(), stop=stop) == 1
        assert [e.seq for e in two.events("payments")] == [1]


# --- retention -----------------------------------------------------------------------------------------


def test_prune_deletes_only_old_events_every_consumer_acknowledged(service: ClaimService) -> None:
    """Nothing goes while no consumer exists or one still needs it, nor a lane's newest event (the lane's
    next number counts on from it); the history keeps every row."""
    ids = claims_in_distinct_lanes(3)
    for n, claim_id in enumerate(ids):
        service.file_claim(filing(order_id=f"o-{n}"), claim_id=claim_id, now=T0 + timedelta(minutes=n))
        service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0 + timedelta(hours=1))
    later = T0 + timedelta(days=1)
    assert service.prune_events(later) == 0  # no consumer yet: nothing is acknowledged
    drain(service, "payments")
    first = service.events("notifications")
    assert [(e.claim_id, e.seq) for e in first] == [(ids[0], 1), (ids[0], 2)]
    service.ack("notifications", first[-1])
    assert [e.claim_id for e in service.events("notifications")] == [ids[1]] * 2  # taken, not acknowledged
    assert service.prune_events(T0) == 0  # none is older than T0
    assert service.prune_events(later) == 1  # ids[0]'s filing; its submission is its lane's newest
    drain(service, "notifications")
    assert service.prune_events(later) == 2
    assert sorted((e.claim_id, e.seq) for e in service.feed()) == sorted((claim_id, 2) for claim_id in ids)
    assert [len(service.history(claim_id)) for claim_id in ids] == [2, 2, 2]
    assert service.verify() == []
    service.fire(ids[0], "withdraw", "buyer:alice", {"reason": "sorted"}, now=later)
    assert [(e.claim_id, e.seq, e.lane_seq) for e in drain(service, "payments")] == [(ids[0], 3, 3)]
    assert max(e.position for e in service.feed()) == 7


# --- PostgreSQL: transactions that commit out of order -------------------------------------------------

_GATE = 4242  # an advisory lock the test holds to keep a writer's COMMIT waiting


@contextmanager
def commit_gate(url: str, claim_id: str) -> Iterator[Callable[[], None]]:
    """Make every transaction that writes an event of `claim_id` wait, at its COMMIT (after its event took
    its position and its lane), until the returned function is called: a deferred trigger in the test's
    schema waits for an advisory lock this holds."""
    import psycopg  # noqa: PLC0415

    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(
            "CREATE FUNCTION wait_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            f" IF NEW.claim_id = '{claim_id}' THEN PERFORM pg_advisory_xact_lock_shared({_GATE}); END IF;"
            " RETURN NULL; END $$"
        )
        admin.execute(
            "CREATE CONSTRAINT TRIGGER wait_at_commit AFTER INSERT ON events DEFERRABLE INITIALLY DEFERRED"
            " FOR EACH ROW EXECUTE FUNCTION wait_at_commit()"
        )
        admin.execute(f"SELECT pg_advisory_lock({_GATE})")
        released = threading.Event()

        def release() -> None:
            if not released.is_set():
                released.set()
                admin.execute(f"SELECT pg_advisory_unlock({_GATE})")

        try:
            yield release
        finally:
            release()


@pytest.mark.parametrize("lanes", ["two lanes", "one lane"])
def test_postgres_a_transaction_that_commits_last_is_not_skipped(postgres_url: str, lanes: str) -> None:
    """Transaction A takes its event's position first but commits last (held at its COMMIT). The consumer
    reads and acknowledges B's later-positioned event meanwhile, and still gets A's once A commits. In one
    lane, B cannot even take its lane number until A has committed, so the lane's order is commit order."""
    first, second = claims_in_distinct_lanes(2) if lanes == "two lanes" else claims_in_one_lane(2)
    with ClaimService(postgres_url) as a, ClaimService(postgres_url) as b, ClaimService(postgres_url) as reader:
        a.file_claim(filing(order_id="o-1"), claim_id=first, now=T0)
        b.file_claim(filing(order_id="o-2"), claim_id=second, now=T0)
        drain(reader, "payments")
        with commit_gate(postgres_url, first) as release:
            a_done, b_done = threading.Event(), threading.Event()

            def fire(service: ClaimService, claim_id: str, done: threading.Event) -> None:
                service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0)
                done.set()

            thread_a = threading.Thread(target=fire, args=(a, first, a_done))
            thread_a.start()
            _wait_until_position_taken(postgres_url, 3)
            thread_b = threading.Thread(target=fire, args=(b, second, b_done))
            thread_b.start()
            if lanes == "two lanes":
                assert b_done.wait(10)
                assert [(e.claim_id, e.seq) for e in drain(reader, "payments")] == [(second, 2)]
            else:
                assert not b_done.wait(0.5)  # waits for A's lane
                assert drain(reader, "payments") == []
            assert not a_done.is_set()
            release()
            thread_a.join(10)
            thread_b.join(10)
        rest = [(e.claim_id, e.seq) for e in drain(reader, "payments")]
        assert rest == ([(first, 2)] if lanes == "two lanes" else [(first, 2), (second, 2)])
        positions = {(e.claim_id, e.seq): e.position for e in reader.feed()}
        assert positions[(first, 2)] < positions[(second, 2)]  # A took its position first


def _wait_until_position_taken(url: str, position: int) -> None:
    """Wait until an uncommitted event has taken `position` (the sequence has moved past it)."""
    import psycopg  # noqa: PLC0415

    deadline = time.monotonic() + 10
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT last_value, is_called FROM events_position_seq").fetchone()
            if row is not None and row[1] and row[0] >= position:
                return
            time.sleep(0.01)
    pytest.fail(f"no event took position {position}")


# --- the store: upgrade and copy -----------------------------------------------------------------------


def test_a_schema_2_file_gains_the_feed_from_the_upgrade_on(tmp_path: Path) -> None:
    """A file written before the feed opens migrated: its history is not replayed into the feed (consumers
    would act on old outcomes again); the transitions after the upgrade are."""
    db = tmp_path / "claims.db"
    with ClaimService(db) as service:
        claim_id = file_one(service)
    forget_definitions(db)
    conn = sqlite3.connect(db)
    for table in ("events", "consumers"):
        conn.execute(f"DROP TABLE {table}")
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    with ClaimService(db) as service:
        assert service.schema_version == 7
        assert service.feed() == []
        service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0)
        assert [(e.claim_id, e.seq) for e in drain(service, "payments")] == [(claim_id, 2)]
        assert service.verify() == []


def test_moving_a_database_keeps_the_feed_and_each_consumers_progress(tmp_path: Path, postgres_url: str) -> None:
    """migrate-store copies the events and the consumers: on PostgreSQL the consumer goes
    on where it was on SQLite, and new events come after the copied ones."""
    with ClaimService(tmp_path / "claims.db") as source:
        ids = [file_one(source, f"o-{n}") for n in range(4)]
        drain(source, "payments")
        source.fire(ids[0], "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0)
        with ClaimService(postgres_url) as target:
            moved = copy_claims(source, target)
            assert (moved.claims, moved.transitions, moved.events, moved.mismatches) == (4, 5, 5, ())
            assert target.feed() == source.feed()
            target.fire(ids[1], "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0)
            got = drain(target, "payments")
            assert sorted((e.claim_id, e.seq) for e in got) == [(ids[0], 2), (ids[1], 2)]
            assert max(e.position for e in target.feed()) > max(e.position for e in source.feed())


# --- the command line ----------------------------------------------------------------------------------


def test_cli_events_prints_json_lines_and_acknowledges_only_with_ack(tmp_path: Path) -> None:
    """`events` prints every retained event, one JSON object per line; --consumer shows what that consumer
    has not acknowledged; --ack takes and acknowledges them, so the next run prints nothing new."""
    db = str(tmp_path / "claims.db")
    with ClaimService(db) as service:
        for n in range(3):
            file_one(service, f"o-{n}")
    runner = CliRunner()

    def lines(*args: str) -> list[dict[str, Any]]:
        result = runner.invoke(cli, ["--db", db, "events", *args])
        assert result.exit_code == 0, result.output
        import json  # noqa: PLC0415

        return [json.loads(line) for line in result.stdout.splitlines()]

    everything = lines()
    assert [set(e) for e in everything] == [EVENT_KEYS] * 3
    assert lines("--consumer", "payments") == everything
    assert sorted(e["position"] for e in lines("--consumer", "payments", "--ack")) == [1, 2, 3]
    assert lines("--consumer", "payments") == []
    assert lines("--consumer", "payments", "--ack") == []
    assert lines() == everything


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ack"], "--ack needs --consumer"),
        (["--follow"], "--follow needs --consumer NAME and --ack"),
        (["--consumer", "p", "--follow"], "--follow needs --consumer NAME and --ack"),
        (["--consumer", " "], "consumer"),
        (["--now", "2026-01-01T00:00:00+00:00"], "takes no --now"),
    ],
)
def test_cli_events_refuses_what_it_cannot_do(tmp_path: Path, args: list[str], message: str) -> None:
    db = str(tmp_path / "claims.db")
    ClaimService(db).close()
    result = CliRunner().invoke(cli, ["--db", db, "events", *args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_every_lane_is_reachable() -> None:
    """The lane hash spreads claim ids over every lane, so a group of workers has lanes to share."""
    assert {lane_of(f"c-{n}") for n in range(1_000)} == set(range(LANES))


def test_verify_names_an_event_invented_or_changed(tmp_path: Path) -> None:
    """An event changed by hand, or one without a history row, is a Mismatch of kind "event" on its claim."""
    db = tmp_path / "claims.db"
    with ClaimService(db) as service:
        claim_id = file_one(service)
        assert service.verify() == []
    conn = sqlite3.connect(db)
    conn.execute("UPDATE events SET to_state = 'refunded_full' WHERE claim_id = ?", (claim_id,))
    conn.execute(
        "INSERT INTO events (lane, lane_seq, claim_id, seq, trigger, from_state, to_state, actor, at, data, claim)"
        " SELECT lane, lane_seq + 1, claim_id, 2, 'decide_full_refund', to_state, 'refunded_full', 'agent:x', at,"
        " data, claim FROM events"
    )
    conn.commit()
    conn.close()
    with ClaimService(db) as service:
        found = [(m.claim_id, m.kind, m.seq) for m in service.verify()]
    assert found == [(claim_id, "event", 1), (claim_id, "event", 2)]


def test_a_first_delivery_that_rolled_back_leaves_the_consumer_working(
    service: ClaimService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The consumer's rows are made in the delivery's transaction; if that transaction is lost, the next
    delivery makes them again, rather than the consumer finding nothing for ever."""
    file_one(service)
    store = service._store
    commit = store._commit

    def fail_once() -> None:
        monkeypatch.setattr(store, "_commit", commit)
        raise StorageError("the disk is full")

    monkeypatch.setattr(store, "_commit", fail_once)
    with pytest.raises(StorageError):
        service.events("billing")
    assert [e.seq for e in service.events("billing")] == [1]


# --- what a review found -------------------------------------------------------------------------------


def test_a_handler_failing_on_one_claim_holds_back_that_lane_alone(store_target: str) -> None:
    """One claim's event keeps failing: it is offered again and again, its lane's later events wait, and
    every other lane's events are handled meanwhile, by the same single worker."""
    with ClaimService(store_target) as service:
        stuck, *others = claims_in_distinct_lanes(6)
        for n, claim_id in enumerate([stuck, *others]):
            service.file_claim(filing(order_id=f"o-{n}"), claim_id=claim_id, now=T0)
        service.fire(stuck, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0)
        stop, seen = threading.Event(), list[tuple[str, int]]()

        def handler(event: Event) -> None:
            seen.append((event.claim_id, event.seq))
            if {c for c, _ in seen} >= set(others) and seen.count((stuck, 1)) >= 2:
                stop.set()
            if event.claim_id == stuck:
                raise RuntimeError("the payments API refuses this one")

        timer = threading.Timer(20, stop.set)  # a bound, should the loop never get there
        timer.start()
        try:
            handled = service.consume("payments", handler, stop=stop, poll=0.01, max_pause=0.05)
        finally:
            timer.cancel()
        assert handled == len(others)
        assert (stuck, 2) not in seen  # behind the failing event of its claim
        assert [e.claim_id for e in service.feed("payments")] == [stuck, stuck]


def test_bad_consume_arguments_are_refused_by_name(service: ClaimService) -> None:
    for call, field in [
        (lambda: service.consume("p", None), "handler"),  # type: ignore[arg-type]
        (lambda: service.consume("p", print, stop=True), "stop"),  # type: ignore[arg-type]
        (lambda: service.consume("p", print, poll=1e300), "poll"),
        (lambda: service.events("p", lease=1e12), "lease"),
    ]:
        with pytest.raises(InvalidInput) as error:
            call()
        assert error.value.field == field
    file_one(service)
    event = service.events("p")[0]
    with pytest.raises(InvalidInput) as error:
        service.ack("p", attrs.evolve(event, lane=99))
    assert error.value.field == "up_to"


def test_forgetting_a_consumer_lets_prune_go_on(service: ClaimService) -> None:
    """A consumer named by mistake holds back pruning until it is forgotten."""
    claim_id = file_one(service)
    service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0)
    drain(service, "payments")
    service.events("paymnets")  # a typo, never acknowledged
    later = T0 + timedelta(days=1)
    assert service.prune_events(later) == 0
    assert service.forget_consumer("paymnets") is True
    assert service.forget_consumer("paymnets") is False
    assert service.prune_events(later) == 1


def test_closing_a_service_gives_back_the_lanes_it_holds(store_target: str) -> None:
    """A worker that closes its service without acknowledging leaves no lease behind: the next worker
    gets the events at once, not after the lease."""
    with ClaimService(store_target) as first:
        file_one(first)
        assert len(first.events("payments", lease=300)) == 1
    with ClaimService(store_target) as second:
        assert [e.seq for e in second.events("payments")] == [1]


def test_consume_keeps_within_its_lease(service: ClaimService) -> None:
    """A slow handler: the loop stops handling a batch once most of its lease is spent, acknowledges what
    it handled, and takes the rest again under a new lease; every event is handled once, in order."""
    ids = claims_in_one_lane(4)
    for n, claim_id in enumerate(ids):
        service.file_claim(filing(order_id=f"o-{n}"), claim_id=claim_id, now=T0)
    stop, seen = threading.Event(), list[str]()
    acked: list[int] = []
    ack = service._feed.ack

    def counting_ack(consumer: str, up_to: Event, worker: str) -> None:
        acked.append(up_to.lane_seq)
        ack(consumer, up_to, worker)

    def slow(event: Event) -> None:
        seen.append(event.claim_id)
        time.sleep(0.15)
        if len(seen) == len(ids):
            stop.set()

    service._feed.ack = counting_ack  # type: ignore[method-assign]
    assert service.consume("payments", slow, stop=stop, lease=0.2, poll=0.01) == len(ids)
    assert seen == ids
    assert len(acked) > 1 and acked == sorted(acked)  # several batches, each within its lease


def test_cli_events_refuses_options_it_would_ignore(tmp_path: Path) -> None:
    db = str(tmp_path / "claims.db")
    ClaimService(db).close()
    for args, message in (
        (["--consumer", "p", "--lease", "5"], "--lease goes with --ack"),
        (["--consumer", "p", "--ack", "--poll", "5"], "--poll goes with --follow"),
    ):
        result = CliRunner().invoke(cli, ["--db", db, "events", *args])
        assert result.exit_code == 2
        assert message in result.stderr


def test_postgres_a_delivery_does_not_wait_for_another_workers_open_acknowledgement(postgres_url: str) -> None:
    """A worker acknowledges inside a batch that stays open (its handler's own writes, say): another
    worker of the same consumer still gets its events at once, from another lane."""
    first, second = claims_in_distinct_lanes(2)
    with (
        ClaimService(postgres_url) as one,
        ClaimService(postgres_url, busy_timeout=2) as two,
    ):
        for n, claim_id in enumerate((first, second)):
            one.file_claim(filing(order_id=f"o-{n}"), claim_id=claim_id, now=T0)
        taken = one.events("payments")
        with one.batch():
            one.ack("payments", taken[-1])
            other = two.events("payments")  # the consumer's rows one holds are not waited for
        assert {e.claim_id for e in other} == {first, second} - {e.claim_id for e in taken}


def test_postgres_an_older_schema_opened_read_only_says_it_needs_a_writable_open(postgres_url: str) -> None:
    """A database from before the feed, opened only to read, is named as older, not as missing."""
    import psycopg  # noqa: PLC0415

    ClaimService(postgres_url).close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("DROP TABLE events, lanes, consumers, definitions, workers")
        conn.execute("DROP INDEX claims_open_by_state")
        conn.execute("DROP INDEX claims_open_by_definition")
        conn.execute("DROP INDEX transitions_by_time")
        conn.execute("ALTER TABLE claims DROP COLUMN definition")
        conn.execute("ALTER TABLE transitions DROP COLUMN definition")
        conn.execute("UPDATE meta SET value = '1' WHERE name = 'schema_version'")
    with pytest.raises(StorageError, match="has schema version 1; migrating it to 6 needs a writable open"):
        ClaimService(postgres_url, read_only=True)
    with ClaimService(postgres_url) as service:
        assert service.schema_version == 6
