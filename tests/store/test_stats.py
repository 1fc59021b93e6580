"""`ClaimService.stats` on both stores, at a fixed `now`: claims per state with their ages, stuck claims,
overdue deadlines, consumer lag from when events entered the feed; `entered_at` on new events; and the
schema upgrade that brought them, keeping what the database held."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import EVIDENCE, T0, Clock, before_operations, filing

from claimstate import ClaimService, InvalidInput, Stats
from claimstate._feed import lane_of
from claimstate.cli import cli

H = timedelta(hours=1)
NOW = T0 + 10 * H


def file_at(service: ClaimService, claim_id: str, at: datetime) -> str:
    service.file_claim(filing(order_id=f"o-{claim_id}"), claim_id=claim_id, now=at)
    return claim_id


def mediate(service: ClaimService, claim_id: str, at: datetime) -> None:
    service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=at)


def put_claims(service: ClaimService) -> None:
    """awaiting_evidence: c2, c3, c4, c5 last changed at T0+1h, +2h, +4h, +6h; in_mediation (no deadline):
    c1 at T0+5h and c6 at T0+8h."""
    for claim_id, hours in (("c1", 0), ("c2", 1), ("c3", 2), ("c4", 4), ("c5", 6), ("c6", 7)):
        file_at(service, claim_id, T0 + hours * H)
    mediate(service, "c1", T0 + 5 * H)
    mediate(service, "c6", T0 + 8 * H)


def test_claims_per_state_with_the_oldest_and_median_age(service: ClaimService) -> None:
    """Ages are `now` - the claim's last change: the oldest, and the median (of an even count, the mean of
    the two middle ones)."""
    put_claims(service)
    stats = service.stats(NOW)
    assert stats.now == NOW and stats.claims == 6
    by_state = {s.state: s for s in stats.states}
    assert set(by_state) == {"awaiting_evidence", "in_mediation"}
    waiting = by_state["awaiting_evidence"]
    assert (waiting.count, waiting.final, waiting.oldest_age, waiting.median_age) == (4, False, 9 * H, 7 * H)
    mediating = by_state["in_mediation"]
    assert (mediating.count, mediating.oldest_age, mediating.median_age) == (2, 5 * H, 3.5 * H)
    service.fire("c6", "withdraw", "buyer:alice", now=T0 + 9 * H)
    by_state = {s.state: s for s in service.stats(NOW).states}
    assert (by_state["in_mediation"].count, by_state["in_mediation"].median_age) == (1, 5 * H)  # an odd count
    assert (by_state["withdrawn"].final, by_state["withdrawn"].oldest_age) == (True, None)  # counted, not aged


def test_stuck_claims_are_open_claims_in_states_without_a_deadline_unchanged_too_long(service: ClaimService) -> None:
    """Only states with no deadline count (a deadline moves the others); the oldest ids come oldest first."""
    put_claims(service)
    stats = service.stats(NOW, stuck_after=4 * H)
    assert [(s.state, s.count, s.oldest_age, s.oldest_ids) for s in stats.stuck] == [
        ("in_mediation", 1, 5 * H, ("c1",))
    ]
    stats = service.stats(NOW, stuck_after=H)
    assert [(s.state, s.count, s.oldest_ids) for s in stats.stuck] == [("in_mediation", 2, ("c1", "c6"))]
    assert service.stats(NOW).stuck == ()  # the default: a day
    assert service.stats(NOW, stuck_after=timedelta(0)).stuck_after == timedelta(0)
    with pytest.raises(InvalidInput, match="stuck_after"):
        service.stats(NOW, stuck_after=-H)


def test_overdue_deadlines_are_due_and_not_fired(service: ClaimService) -> None:
    """Due at `now` and not fired: how many, the earliest due time, and how late it is; a tick clears them."""
    put_claims(service)
    late = T0 + timedelta(days=7) + 3 * H  # c2 (due +1h) and c3 (due +2h) are due, c4 (+4h) not yet
    overdue = service.stats(late).overdue
    assert (overdue.count, overdue.oldest_due, overdue.oldest_late) == (2, T0 + timedelta(days=7) + H, 2 * H)
    assert overdue.count == service.due(late)
    assert len(service.tick(late)) == 2
    assert service.stats(late).overdue.to_dict() == {"count": 0, "oldest_due": None, "oldest_late_seconds": None}


def test_new_events_record_when_they_entered_the_feed(service: ClaimService, clock: Clock) -> None:
    """`entered_at` is the service's clock as the transaction commits, not the business time `at`, which a
    back-dated filing sets in the past."""
    clock.now = T0 + 2 * H
    file_at(service, "c1", T0 - timedelta(days=3))  # back-dated
    [event] = service.feed()
    assert (event.at, event.entered_at) == (T0 - timedelta(days=3), T0 + 2 * H)
    assert event.to_dict()["entered_at"] == "2026-03-02T11:00:00.000000+00:00"
    assert service.verify() == []  # entered_at is no part of the history the events are checked against


def test_consumer_lag_per_consumer_and_lane_from_when_events_entered(service: ClaimService, clock: Clock) -> None:
    """Events not acknowledged, per lane, aged from their entered_at (a back-dated `at` does not count)."""
    entered = {}
    for n in range(8):
        clock.now = T0 + n * H
        entered[file_at(service, f"c{n}", T0 - timedelta(days=30))] = clock.now
    clock.now = NOW
    taken = service.events("payments")  # one lane's events
    service.ack("payments", taken[-1])
    acked = {e.claim_id for e in taken}
    service.events("audit", limit=1)  # a consumer that has taken one event and acknowledged none
    stats = service.stats(NOW)
    lag = {c.consumer: c for c in stats.consumers}
    assert set(lag) == {"payments", "audit"}
    waiting = {claim_id: at for claim_id, at in entered.items() if claim_id not in acked}
    lanes: dict[int, list[datetime]] = {}
    for claim_id, at in waiting.items():
        lanes.setdefault(lane_of(claim_id), []).append(at)
    payments = lag["payments"]
    assert payments.pending == len(waiting)
    assert [(lane.lane, lane.pending, lane.oldest_entered_at, lane.oldest_age) for lane in payments.lanes] == [
        (lane, len(times), min(times), NOW - min(times)) for lane, times in sorted(lanes.items())
    ]
    assert payments.oldest_age == NOW - min(waiting.values())
    assert (lag["audit"].pending, lag["audit"].oldest_age) == (8, 10 * H)
    service.forget_consumer("audit")
    assert [c.consumer for c in service.stats(NOW).consumers] == ["payments"]


def test_stats_to_dict_is_plain_json(service: ClaimService) -> None:
    put_claims(service)
    stats = service.stats(NOW, stuck_after=4 * H)
    assert isinstance(stats, Stats)
    data = json.loads(json.dumps(stats.to_dict()))
    assert set(data) == {"now", "claims", "states", "stuck_after_seconds", "stuck", "overdue", "overdue_states",
                         "consumers", "workers"}  # fmt: skip
    assert data["states"][0] == {"state": "awaiting_evidence", "count": 4, "final": False,
                                 "oldest_age_seconds": 32400.0, "median_age_seconds": 25200.0}  # fmt: skip
    assert data["stuck"] == [{"state": "in_mediation", "count": 1, "oldest_age_seconds": 18000.0, "oldest_ids": ["c1"]}]


def test_a_read_only_service_reads_stats_and_the_command_prints_them(store_target: str) -> None:
    with ClaimService(store_target) as service:
        put_claims(service)
    with ClaimService(store_target, read_only=True) as reader:
        assert reader.stats(NOW).claims == 6
    base = ["--db", store_target, "--now", NOW.isoformat()]
    shown = CliRunner().invoke(cli, [*base, "stats", "--stuck-after", "4h"])
    assert shown.exit_code == 0, shown.output
    assert "awaiting_evidence" in shown.stdout and "c1" in shown.stdout and "9h 0m" in shown.stdout
    as_json = CliRunner().invoke(cli, [*base, "--json", "stats", "--stuck-after", "4h"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout)["stuck"][0]["oldest_ids"] == ["c1"]
    refused = CliRunner().invoke(cli, [*base, "stats", "--stuck-after", "soon"])
    assert refused.exit_code == 2 and "give a number of seconds" in refused.stderr


# --- the upgrade that added entered_at, the workers table and the index of claims by state and age ------


def to_previous_schema(target: str) -> None:
    """Take a database back to the schema before this one (SQLite 4, PostgreSQL 3)."""
    if target.startswith("postgresql://"):
        import psycopg  # noqa: PLC0415

        with psycopg.connect(target, autocommit=True) as conn:
            conn.execute("DROP TABLE workers")
            conn.execute("DROP INDEX claims_open_by_state")
            conn.execute("DROP INDEX transitions_by_time")
            conn.execute("ALTER TABLE events DROP COLUMN entered_at")
            conn.execute("UPDATE meta SET value = '3' WHERE name = 'schema_version'")
        return
    before_operations(target, version=4)


def test_the_upgrade_keeps_the_data_and_adds_the_column_the_table_and_the_index(store_target: str) -> None:
    with ClaimService(store_target) as service:
        put_claims(service)
        current = service.schema_version
        before = [(e.claim_id, e.seq, e.at) for e in service.feed()]
    to_previous_schema(store_target)
    with ClaimService(store_target) as service:
        assert service.schema_version == current
        assert [(e.claim_id, e.seq, e.at, e.entered_at) for e in service.feed()] == [(*e, None) for e in before]
        assert service.stats(NOW).claims == 6
        assert service.verify() == []  # the schema is the one this code makes: every object in place
        file_at(service, "c9", NOW)
        assert service.feed(after=len(before))[0].entered_at is not None
        taken = service.events("payments", limit=100)
        service.ack("payments", taken[-1])
        lag = service.stats(NOW).consumers[0]  # old events (no entered_at) count as lag, without an age
        assert lag.pending == 9 - len(taken)
        for lane in lag.lanes:  # only c9's lane has an event that recorded when it entered
            assert (lane.oldest_entered_at is None) == (lane.lane != lane_of("c9"))


def test_verify_names_a_missing_entered_at_or_workers_table(tmp_path: Path) -> None:
    db_path = tmp_path / "claims.db"
    ClaimService(db_path).close()
    before_operations(db_path)
    with ClaimService(db_path, read_only=True) as service:
        problems = {m.problem for m in service.verify()}
    assert "the table workers is missing" in problems
    assert "the index claims_open_by_state is missing" in problems
    assert "the table events lacks its entered_at column" in problems


def test_verify_names_the_entered_at_column_when_it_is_gone(store_target: str) -> None:
    with ClaimService(store_target) as service:
        service.file_claim(filing())
    if store_target.startswith("postgresql"):
        import psycopg  # noqa: PLC0415  (the postgres extra)

        with psycopg.connect(store_target, autocommit=True) as conn:
            conn.execute("ALTER TABLE events DROP COLUMN entered_at")
    else:
        with closing(sqlite3.connect(store_target)) as conn:
            conn.execute("ALTER TABLE events DROP COLUMN entered_at")
    with ClaimService(store_target, read_only=True) as service:
        assert any("lacks its entered_at column" in str(mismatch) for mismatch in service.verify())
