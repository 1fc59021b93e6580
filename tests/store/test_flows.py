"""`ClaimService.flows` (arrows taken and time spent per state over a window of history, a stay being a
visit from entering a state to leaving it for another), the overdue deadlines per state in `stats`, and the
listing filters a console's counts link to (`changed_before`, `due_by`), on both stores, with exact figures
from claims seeded at known times; and the schema upgrade that added the indexes `flows` reads (history rows
by time, and the rows that changed state by claim)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import ACTORS, EVIDENCE, GOOD_DATA, T0, Clock, filing, offer, query
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from claimstate import (
    ArrowCount,
    AsyncClaimService,
    ClaimService,
    Engine,
    Flows,
    InvalidInput,
    StorageError,
    TimeInState,
    TransitionRefused,
)
from claimstate._flows import MEDIAN, P90, nearest_rank
from claimstate._store.operations import STAY_RANKS

H = timedelta(hours=1)
M = timedelta(minutes=1)
D = timedelta(days=1)
NAIVE = datetime(2026, 3, 2, 9, 0)
TABLES = ("claims", "transitions", "events", "consumers", "definitions", "meta", "workers")


def file_at(service: ClaimService, claim_id: str, at: datetime) -> str:
    service.file_claim(filing(order_id=f"o-{claim_id}"), claim_id=claim_id, now=at)
    return claim_id


def evidence(service: ClaimService, claim_id: str, at: datetime) -> None:
    service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=at)


def put_stays(service: ClaimService) -> None:
    """c01..c10 filed at T0, each given evidence i hours later (stays of 1..10 h awaiting evidence); then in
    mediation c01, c02, c03 each get an offer 1, 2, 3 h after (a self loop: no stay ends, they are still in
    mediation) and c04 is withdrawn after 30 minutes (a stay of 0.5 h)."""
    for i in range(1, 11):
        file_at(service, f"c{i:02d}", T0)
        evidence(service, f"c{i:02d}", T0 + i * H)
    for i in (1, 2, 3):
        service.fire(f"c{i:02d}", "make_offer", "supplier:acme", offer("partial_refund"), now=T0 + i * H + i * H)
    service.fire("c04", "withdraw", "buyer:alice", now=T0 + 4 * H + 30 * M)


# --- flows: exact figures ---------------------------------------------------------------------------------


def test_arrow_counts_and_time_in_state_by_nearest_rank(service: ClaimService) -> None:
    """Stays of 1..10 h: median 5 h (rank 5) and p90 9 h (rank 9), never a mean. In mediation one stay
    ended, by a withdrawal (0.5 h); the offers are arrows taken (self loops) but end no stay."""
    put_stays(service)
    flows = service.flows(T0, T0 + D)
    assert isinstance(flows, Flows) and (flows.since, flows.until) == (T0, T0 + D)
    assert flows.arrows == (
        ArrowCount(None, "file_claim", "awaiting_evidence", 10),
        ArrowCount("awaiting_evidence", "submit_evidence", "in_mediation", 10),
        ArrowCount("in_mediation", "make_offer", "in_mediation", 3),
        ArrowCount("in_mediation", "withdraw", "withdrawn", 1),
    )
    assert flows.taken == 24
    assert flows.states == (
        TimeInState("awaiting_evidence", 10, 5 * H, 9 * H),
        TimeInState("in_mediation", 1, 30 * M, 30 * M),
    )


def test_a_row_at_since_counts_and_one_at_until_does_not(service: ClaimService) -> None:
    """The window is [since, until): the evidence given at T0+3h and T0+4h counts, that at T0+5h does not,
    nor the filings at T0; a stay counts when it ends in the window, wherever it began."""
    put_stays(service)
    flows = service.flows(T0 + 3 * H, T0 + 5 * H)
    assert flows.arrows == (
        ArrowCount("awaiting_evidence", "submit_evidence", "in_mediation", 2),  # c03 at +3h, c04 at +4h
        ArrowCount("in_mediation", "make_offer", "in_mediation", 1),  # c02's offer at +4h
        ArrowCount("in_mediation", "withdraw", "withdrawn", 1),  # c04 at +4h30
    )
    assert flows.states == (
        TimeInState("awaiting_evidence", 2, 3 * H, 4 * H),
        TimeInState("in_mediation", 1, 30 * M, 30 * M),  # c04's withdrawal; c02's offer ends no stay
    )
    just_after = service.flows(T0 + 3 * H + timedelta(microseconds=1), T0 + 5 * H + timedelta(microseconds=1))
    assert just_after.arrows[0] == ArrowCount("awaiting_evidence", "submit_evidence", "in_mediation", 2)  # c04, c05
    assert service.flows(T0, T0 + timedelta(microseconds=1)).arrows == (
        ArrowCount(None, "file_claim", "awaiting_evidence", 10),
    )
    empty = service.flows(T0 + 30 * D, T0 + 31 * D)
    assert (empty.arrows, empty.states, empty.taken) == ((), (), 0)


def test_until_defaults_to_the_service_clock(service: ClaimService, clock: Clock) -> None:
    put_stays(service)
    clock.now = T0 + 2 * H
    flows = service.flows(T0)
    assert flows.until == T0 + 2 * H
    assert [(a.trigger, a.count) for a in flows.arrows] == [("file_claim", 10), ("submit_evidence", 1)]  # c01 at +1h


def test_percentiles_are_ranks_not_interpolations(service: ClaimService) -> None:
    """23 stays of 1..23 minutes: the median is the 12th, the 90th percentile the 21st (ceil(20.7)), where an
    interpolating percentile (percentile_cont) would give 20.8 minutes."""
    for i in range(1, 24):
        file_at(service, f"c{i:02d}", T0)
        evidence(service, f"c{i:02d}", T0 + i * M)
    (stays,) = service.flows(T0, T0 + D).states
    assert (stays.count, stays.median, stays.p90) == (23, 12 * M, 21 * M)
    assert [nearest_rank(P90, n) for n in (1, 9, 10, 11, 70)] == [1, 9, 9, 10, 63]
    assert [nearest_rank(MEDIAN, n) for n in (1, 2, 3, 4)] == [1, 1, 2, 2]


def test_one_stay_is_its_own_median_and_p90_and_microseconds_are_exact(service: ClaimService) -> None:
    file_at(service, "c1", T0)
    evidence(service, "c1", T0 + 3 * D + 7 * H + timedelta(seconds=5, microseconds=123_457))
    (stays,) = service.flows(T0, T0 + 4 * D).states
    exact = 3 * D + 7 * H + timedelta(seconds=5, microseconds=123_457)
    assert (stays.count, stays.median, stays.p90) == (1, exact, exact)


def fire(service: ClaimService, claim_id: str, trigger: str, role: str, at: datetime) -> None:
    service.fire(claim_id, trigger, ACTORS[role], GOOD_DATA.get(trigger), now=at)


def put_agreement(service: ClaimService) -> None:
    """c1 filed at T0 and given evidence at +1 h (in mediation from then on); the supplier's offer at +3 h
    and the buyer's acceptance at +4 h stay in mediation (self loops); the buyer cancels at +8 h, leaving
    it for cancellation_pending: one visit to mediation of 7 h, from +1 h to +8 h."""
    file_at(service, "c1", T0)
    evidence(service, "c1", T0 + H)
    fire(service, "c1", "make_offer", "supplier", T0 + 3 * H)
    fire(service, "c1", "accept_offer", "buyer", T0 + 4 * H)
    fire(service, "c1", "cancel_claim", "buyer", T0 + 8 * H)


def test_a_visit_with_self_loops_inside_is_one_stay_from_entry_to_exit(service: ClaimService) -> None:
    """Entered mediation at +1 h, an offer at +3 h and its acceptance at +4 h, left at +8 h: one stay of
    7 h, not stays of 2, 1 and 4 h. Every row is an arrow taken, the loops too."""
    put_agreement(service)
    flows = service.flows(T0, T0 + D)
    assert flows.arrows == (
        ArrowCount(None, "file_claim", "awaiting_evidence", 1),
        ArrowCount("awaiting_evidence", "submit_evidence", "in_mediation", 1),
        ArrowCount("in_mediation", "accept_offer", "in_mediation", 1),
        ArrowCount("in_mediation", "cancel_claim", "cancellation_pending", 1),
        ArrowCount("in_mediation", "make_offer", "in_mediation", 1),
    )
    assert flows.states == (TimeInState("awaiting_evidence", 1, H, H), TimeInState("in_mediation", 1, 7 * H, 7 * H))


def test_a_window_holding_only_self_loops_ends_no_stay(service: ClaimService) -> None:
    put_agreement(service)
    flows = service.flows(T0 + 2 * H, T0 + 5 * H)
    assert [(a.trigger, a.count) for a in flows.arrows] == [("accept_offer", 1), ("make_offer", 1)]
    assert flows.states == ()


def test_a_stay_begun_before_since_counts_whole_when_it_ends_in_the_window(service: ClaimService) -> None:
    """The window opens after the entry (+1 h) and after both loops: the stay ended at +8 h still counts
    with its full 7 h, measured from the entry, not from the window's start nor from the last loop."""
    put_agreement(service)
    flows = service.flows(T0 + 5 * H, T0 + 9 * H)
    assert flows.arrows == (ArrowCount("in_mediation", "cancel_claim", "cancellation_pending", 1),)
    assert flows.states == (TimeInState("in_mediation", 1, 7 * H, 7 * H),)


def test_a_claim_that_comes_back_to_a_state_counts_each_visit(service: ClaimService) -> None:
    """c1 enters mediation at +1 h, is sent to the buyer at +3 h (a 2 h stay), comes back at +4 h by the
    buyer's answer, gets an offer at +5 h (a loop) and is withdrawn at +9 h: a second stay, of 5 h from its
    return, not of 4 h from the offer nor of 8 h from the first entry. Median rank 1 of 2, p90 rank 2."""
    file_at(service, "c1", T0)
    evidence(service, "c1", T0 + H)
    fire(service, "c1", "request_buyer_response", "agent", T0 + 3 * H)
    fire(service, "c1", "respond", "buyer", T0 + 4 * H)
    fire(service, "c1", "make_offer", "supplier", T0 + 5 * H)
    fire(service, "c1", "withdraw", "buyer", T0 + 9 * H)
    assert service.flows(T0, T0 + D).states == (
        TimeInState("awaiting_buyer_response", 1, H, H),
        TimeInState("awaiting_evidence", 1, H, H),
        TimeInState("in_mediation", 2, 2 * H, 5 * H),
    )
    assert service.flows(T0 + 6 * H, T0 + D).states == (TimeInState("in_mediation", 1, 5 * H, 5 * H),)


def test_a_leaving_row_with_no_entry_before_it_is_no_stay(service: ClaimService, store_target: str) -> None:
    """A damaged history (verify names it) whose filing row is gone: the row that left awaiting_evidence
    has no row that entered the state, so it is an arrow taken but no stay, on both stores alike."""
    put_stays(service)
    if store_target.startswith("postgresql://"):
        import psycopg  # noqa: PLC0415

        with psycopg.connect(store_target, autocommit=True) as conn:
            conn.execute("ALTER TABLE transitions DISABLE TRIGGER transitions_no_change")
            conn.execute("DELETE FROM transitions WHERE claim_id = 'c01' AND seq = 1")
            conn.execute("ALTER TABLE transitions ENABLE TRIGGER transitions_no_change")
    else:
        with closing(sqlite3.connect(store_target)) as conn:
            conn.execute("DROP TRIGGER transitions_no_delete")
            conn.execute("DELETE FROM transitions WHERE claim_id = 'c01' AND seq = 1")
            conn.commit()
    flows = service.flows(T0, T0 + D)
    assert flows.arrows[:2] == (
        ArrowCount(None, "file_claim", "awaiting_evidence", 9),
        ArrowCount("awaiting_evidence", "submit_evidence", "in_mediation", 10),
    )
    assert flows.states[0] == TimeInState("awaiting_evidence", 9, 6 * H, 10 * H)  # 2..10 h: ranks 5 and 9


def test_flows_to_dict_is_plain_json(service: ClaimService) -> None:
    put_stays(service)
    data = json.loads(json.dumps(service.flows(T0, T0 + D).to_dict()))
    assert set(data) == {"since", "until", "arrows", "states"}
    assert (data["since"], data["until"]) == ("2026-03-02T09:00:00.000000+00:00", "2026-03-03T09:00:00.000000+00:00")
    assert data["arrows"][0] == {"source": None, "trigger": "file_claim", "dest": "awaiting_evidence", "count": 10}
    assert data["states"] == [
        {"state": "awaiting_evidence", "count": 10, "median_seconds": 18000.0, "p90_seconds": 32400.0},
        {"state": "in_mediation", "count": 1, "median_seconds": 1800.0, "p90_seconds": 1800.0},
    ]


def test_the_async_twin_and_a_read_only_service_give_the_same_flows(store_target: str) -> None:
    with ClaimService(store_target) as service:
        put_stays(service)
        expected = service.flows(T0, T0 + D)

    async def read() -> tuple[Flows, list[str]]:
        async with AsyncClaimService(store_target) as service:
            flows = await service.flows(T0, until=T0 + D)
            listed = await service.list_claims(state="in_mediation", changed_before=T0 + 6 * H)
            return flows, [c.id for c in listed]

    assert asyncio.run(read()) == (expected, ["c01", "c02", "c05"])
    with ClaimService(store_target, read_only=True) as reader:
        assert reader.flows(T0, T0 + D) == expected


# --- bad input ------------------------------------------------------------------------------------------

Call = Callable[[ClaimService], object]
_REFUSED: list[tuple[str, Call, str]] = [
    ("since text", lambda s: s.flows("2026-03-02T09:00:00+00:00"), "since"),  # type: ignore[arg-type]
    ("since None", lambda s: s.flows(None), "since"),  # type: ignore[arg-type]
    ("since naive", lambda s: s.flows(NAIVE), "since"),
    ("until naive", lambda s: s.flows(T0, NAIVE), "until"),
    ("until number", lambda s: s.flows(T0, 5), "until"),  # type: ignore[arg-type]
    ("until == since", lambda s: s.flows(T0, T0), "until"),
    ("until before since", lambda s: s.flows(T0, T0 - H), "until"),
    ("since after now", lambda s: s.flows(T0 + 400 * D), "since"),
    ("since out of range", lambda s: s.flows(datetime(1969, 1, 1, tzinfo=UTC)), "since"),
    ("changed_before text", lambda s: s.list_claims(changed_before="x"), "changed_before"),  # type: ignore[arg-type]
    ("changed_before naive", lambda s: s.list_claims(changed_before=NAIVE), "changed_before"),
    ("due_by naive", lambda s: s.list_claims(due_by=NAIVE), "due_by"),
    ("iter due_by date", lambda s: s.iter_claims(due_by=T0.date()), "due_by"),  # type: ignore[arg-type]
    ("iter changed_before", lambda s: s.iter_claims(changed_before=NAIVE), "changed_before"),
]


@pytest.mark.parametrize(("name", "call", "field"), _REFUSED, ids=[c[0] for c in _REFUSED])
def test_bad_windows_and_filters_are_refused_by_name_writing_nothing(
    service: ClaimService, store_target: str, name: str, call: Call, field: str
) -> None:
    put_stays(service)
    before = {table: sorted(map(repr, query(store_target, f"SELECT * FROM {table}"))) for table in TABLES}
    with pytest.raises(InvalidInput) as refused:
        call(service)
    assert (refused.value.field, name) == (field, name)
    assert {table: sorted(map(repr, query(store_target, f"SELECT * FROM {table}"))) for table in TABLES} == before


# --- stats: overdue deadlines per state -----------------------------------------------------------------


def put_deadlines(service: ClaimService) -> datetime:
    """c1, c2 awaiting evidence (due T0+7d, T0+7d+1h), c3 awaiting the buyer's response (due T0+5d+2h), c4
    awaiting evidence but due after `now`, c5 in mediation (no deadline). Returns `now`: T0+7d+2h."""
    file_at(service, "c1", T0)
    file_at(service, "c2", T0 + H)
    file_at(service, "c3", T0)
    evidence(service, "c3", T0)
    service.fire("c3", "request_buyer_response", "agent:kim", GOOD_DATA["request_buyer_response"], now=T0 + 2 * H)
    file_at(service, "c4", T0 + 3 * H)
    file_at(service, "c5", T0)
    evidence(service, "c5", T0 + H)
    return T0 + 7 * D + 2 * H


def test_overdue_deadlines_per_state(service: ClaimService) -> None:
    now = put_deadlines(service)
    stats = service.stats(now)
    assert [(o.state, o.count, o.oldest_due, o.oldest_late) for o in stats.overdue_states] == [
        ("awaiting_buyer_response", 1, T0 + 5 * D + 2 * H, 2 * D),
        ("awaiting_evidence", 2, T0 + 7 * D, 2 * H),
    ]
    overdue = stats.overdue  # as before: the total and the earliest, now summed from the states
    assert (overdue.count, overdue.oldest_due, overdue.oldest_late) == (3, T0 + 5 * D + 2 * H, 2 * D)
    assert overdue.count == service.due(now)
    assert stats.to_dict()["overdue_states"] == [
        {"state": "awaiting_buyer_response", "count": 1, "oldest_due": "2026-03-07T11:00:00.000000+00:00",
         "oldest_late_seconds": 172800.0},
        {"state": "awaiting_evidence", "count": 2, "oldest_due": "2026-03-09T09:00:00.000000+00:00",
         "oldest_late_seconds": 7200.0},
    ]  # fmt: skip
    service.tick(now)
    after = service.stats(now)
    assert (after.overdue_states, after.overdue.count) == ((), 0)


# --- listing: what a count links to ---------------------------------------------------------------------


def test_due_by_lists_the_overdue_claims_in_id_order_and_pages(service: ClaimService) -> None:
    now = put_deadlines(service)
    assert [c.id for c in service.list_claims(due_by=now)] == ["c1", "c2", "c3"]
    assert [c.id for c in service.list_claims(due_by=T0 + 7 * D)] == ["c1", "c3"]  # due at it: included
    assert [c.id for c in service.list_claims(due_by=now, state="awaiting_evidence")] == ["c1", "c2"]
    assert [c.id for c in service.list_claims(due_by=now + D)] == ["c1", "c2", "c3", "c4"]  # c5 has no deadline
    assert [c.id for c in service.list_claims(due_by=now, limit=2)] == ["c1", "c2"]
    assert [c.id for c in service.list_claims(due_by=now, limit=2, after="c2")] == ["c3"]
    assert [c.id for c in service.iter_claims(due_by=now, page=1)] == ["c1", "c2", "c3"]
    assert [c.id for c in service.iter_claims(due_by=now, page=2, limit=2)] == ["c1", "c2"]


def test_changed_before_lists_a_states_stuck_claims(service: ClaimService) -> None:
    """With `state`, the claims that have sat in it since before a time. Last changes: c01, c02, c03 at +2h,
    +4h, +6h (their offers), c04 withdrawn at +4h30, c05..c10 at +5h..+10h (their evidence)."""
    put_stays(service)
    stuck = service.list_claims(state="in_mediation", changed_before=T0 + 5 * H)
    assert [(c.id, c.updated_at) for c in stuck] == [("c01", T0 + 2 * H), ("c02", T0 + 4 * H)]
    assert [c.id for c in service.list_claims(changed_before=T0 + 5 * H)] == ["c01", "c02", "c04"]
    assert [c.id for c in service.list_claims(changed_before=T0 + 2 * H)] == []  # before it, not at it
    everything = service.list_claims(state="in_mediation", changed_before=T0 + 30 * D)
    assert [c.id for c in everything] == [f"c{i:02d}" for i in (1, 2, 3, 5, 6, 7, 8, 9, 10)]
    paged = service.iter_claims(state="in_mediation", changed_before=T0 + 30 * D, page=4, after="c03")
    assert [c.id for c in paged] == [f"c{i:02d}" for i in (5, 6, 7, 8, 9, 10)]
    assert [c.id for c in service.list_claims(changed_before=T0 + 30 * D, due_by=T0 + 30 * D)] == []  # none waits


# --- one plain computation over every claim's history agrees --------------------------------------------

ROLES = ["buyer", "supplier", "agent"]


def expected_flows(history: list[Any], since: datetime, until: datetime) -> tuple[Counter[Any], dict[str, Any], int]:
    """The arrows and the stays (count, median, p90 by nearest rank) computed in Python from the history,
    walking each claim's rows in order: a row that changes state (a filing, or a step to another state)
    ends the stay in its source, if it lies in the window, and starts one in its dest; a self loop does
    neither. Also how many of the stays counted had self loops inside."""
    arrows: Counter[tuple[str | None, str, str]] = Counter()
    stays: dict[str, list[timedelta]] = {}
    looped = 0
    for records in history:
        entered, loops = None, 0
        for record in records:
            inside = since <= record.at < until
            if inside:
                arrows[record.source, record.trigger, record.dest] += 1
            if record.source == record.dest:
                loops += 1
                continue
            if record.source is not None and inside:
                stays.setdefault(record.source, []).append(record.at - entered.at)
                looped += loops > 0
            entered, loops = record, 0
    figures = {
        state: (len(found), sorted(found)[nearest_rank(MEDIAN, len(found)) - 1],
                sorted(found)[nearest_rank(P90, len(found)) - 1])
        for state, found in stays.items()
    }  # fmt: skip
    return arrows, figures, looped


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(
    walks=st.lists(
        st.lists(
            st.tuples(st.sampled_from(ROLES), st.integers(0, 1000), st.integers(0, 5 * 24 * 60)), min_size=2, max_size=8
        ),
        min_size=1,
        max_size=4,
    ),
    window=st.tuples(st.integers(0, 40), st.integers(0, 40)),
)
def test_flows_agree_with_the_history_of_every_claim(
    fresh_targets: Callable[[], ContextManager[str]], walks: list[list[tuple[str, int, int]]], window: tuple[int, int]
) -> None:
    """Random walks of a few claims at random times (some at the same minute, self loops among their steps);
    flows over a window whose bounds fall on rows' times (so rows at `since` and at `until` are among those
    judged) equal what the histories say, walked in Python."""
    engine = Engine()
    with fresh_targets() as target, ClaimService(target) as service:
        ids, times = [], [T0]
        for n, steps in enumerate(walks):
            now = T0 + n * M
            claim = service.file_claim(filing(order_id=f"o-{n}"), claim_id=f"c{n}", now=now).claim
            ids.append(claim.id)
            for role, pick, minutes in steps:
                now += timedelta(minutes=minutes)
                allowed = [a.trigger for a in engine.available(claim, ACTORS[role], now) if a.allowed]
                if len(allowed) > 1 and pick % 8 != 7:  # withdrawing ends most walks early: rarely
                    allowed = [t for t in allowed if t != "withdraw"]
                if not allowed:
                    continue
                try:
                    claim = service.fire(claim.id, allowed[pick % len(allowed)], ACTORS[role],
                                         GOOD_DATA.get(allowed[pick % len(allowed)]), now=now).claim  # fmt: skip
                except TransitionRefused:
                    continue
                times.append(now)
        times = sorted({*times, times[-1] + M})  # the last: a window that takes in every row
        first, last = sorted((window[0] % len(times), window[1] % len(times)))
        since, until = times[first], times[last] if last > first else times[first] + M
        flows = service.flows(since, until)
        arrows, stays, looped = expected_flows([service.history(claim_id) for claim_id in ids], since, until)
    assert {(a.source, a.trigger, a.dest): a.count for a in flows.arrows} == dict(arrows)
    assert {s.state: (s.count, s.median, s.p90) for s in flows.states} == stays
    event(f"stays in {min(len(stays), 3)}+ states" if len(stays) >= 3 else f"stays in {len(stays)} states")
    event("a stay with self loops inside" if looped else "no stay with self loops inside")


# --- the index of history rows by time ------------------------------------------------------------------


@pytest.mark.sqlite_only
def test_the_window_is_read_from_the_index_of_history_rows_by_time(service: ClaimService, db_path: Path) -> None:
    """SQLite's plan for each of flows' queries, and for the overdue deadlines per state, names the index:
    the window's rows by time, and for each row that left a state one search back on the rows that changed
    state (SQLite 3.40 says USING INDEX; later ones, which see the index covers the subquery, USING COVERING
    INDEX)."""
    from claimstate._store import operations  # noqa: PLC0415

    put_stays(service)
    with closing(sqlite3.connect(db_path)) as conn:
        for sql, params, index in [
            (operations._ARROWS, ("a", "b"), "USING INDEX transitions_by_time (at>? AND at<?)"),
            (STAY_RANKS, ("a", "b"), "SEARCH r USING INDEX transitions_by_time (at>? AND at<?)"),
            (STAY_RANKS, ("a", "b"), "INDEX transitions_state_changes (claim_id=? AND seq<?)"),
            (operations._OVERDUE_STATES, ("a",), "USING INDEX claims_open_deadlines"),
        ]:
            plan = " | ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
            assert index in plan, plan
        plan = " | ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {STAY_RANKS}", ("a", "b")))
        assert plan.count("CORRELATED SCALAR SUBQUERY") == 1, plan  # the search back runs once per row


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "claims.db"


FLOW_INDEXES = ("transitions_by_time", "transitions_state_changes")


def to_schema_before_flows(target: str) -> None:
    """Take a database back to the schema before the indexes `flows` reads (SQLite 5, PostgreSQL 4)."""
    if target.startswith("postgresql://"):
        import psycopg  # noqa: PLC0415

        with psycopg.connect(target, autocommit=True) as conn:
            for name in FLOW_INDEXES:
                conn.execute(f"DROP INDEX {name}")
            conn.execute("UPDATE meta SET value = '4' WHERE name = 'schema_version'")
        return
    with closing(sqlite3.connect(target)) as conn:
        for name in FLOW_INDEXES:
            conn.execute(f"DROP INDEX {name}")
        conn.execute("PRAGMA user_version = 5")
        conn.commit()


def test_the_upgrade_adds_the_indexes_and_keeps_the_history(store_target: str) -> None:
    with ClaimService(store_target) as service:
        put_stays(service)
        current, expected = service.schema_version, service.flows(T0, T0 + D)
    assert current == (6 if store_target.startswith("postgresql://") else 7)
    to_schema_before_flows(store_target)
    with pytest.raises(StorageError, match=f"migrating it to {current} needs a writable"):
        ClaimService(store_target, read_only=True)
    with ClaimService(store_target) as service:
        assert service.schema_version == current
        assert service.flows(T0, T0 + D) == expected
        assert service.verify() == []


def test_the_upgrade_keeps_an_index_made_before(store_target: str) -> None:
    """A database whose schema number is older but which has one of the indexes already (a pre-release build
    made it) is upgraded all the same, the index kept."""
    with ClaimService(store_target) as service:
        put_stays(service)
        expected = service.flows(T0, T0 + D)
    to_schema_before_flows(store_target)
    made = "CREATE INDEX transitions_state_changes ON transitions (claim_id, seq, at) WHERE from_state IS NULL OR"
    run_sql(store_target, f"{made} from_state <> to_state")
    with ClaimService(store_target) as service:
        assert service.flows(T0, T0 + D) == expected
        assert service.verify() == []


def run_sql(target: str, sql: str) -> None:
    if target.startswith("postgresql://"):
        import psycopg  # noqa: PLC0415

        with psycopg.connect(target, autocommit=True) as conn:
            conn.execute(sql)
        return
    with closing(sqlite3.connect(target)) as conn:
        conn.execute(sql)
        conn.commit()


@pytest.mark.parametrize(
    ("name", "changed"),
    [
        ("transitions_by_time", "CREATE INDEX transitions_by_time ON transitions (at, claim_id)"),
        ("transitions_state_changes", "CREATE INDEX transitions_state_changes ON transitions (claim_id, seq, at)"),
    ],
    ids=FLOW_INDEXES,
)
def test_verify_names_a_missing_or_changed_index_flows_reads(store_target: str, name: str, changed: str) -> None:
    ClaimService(store_target).close()
    run_sql(store_target, f"DROP INDEX {name}")
    with ClaimService(store_target, read_only=True) as service:
        assert f"the index {name} is missing" in {m.problem for m in service.verify()}
    run_sql(store_target, changed)  # the state-changing rows' index made whole, not partial: not claimstate's
    with ClaimService(store_target, read_only=True) as service:
        problems = [m.problem for m in service.verify()]
    assert any(p.startswith(f"the index {name} is not the one claimstate made") for p in problems)
