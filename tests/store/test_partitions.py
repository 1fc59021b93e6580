"""PostgreSQL partitioned by claim id (`partitions=N`, `claimstate init --partitions N`): made once, at init,
recorded and kept; each claim's rows in one partition; the one-open-claim-per-order rule across partitions;
verify clean, and still finding damage.

Each test makes an empty schema of its own (the `postgres_url` schemas are made partitioned already when
$CLAIMSTATE_TEST_PARTITIONS is set). The whole store contract suite runs on a partitioned schema with
`CLAIMSTATE_TEST_PARTITIONS=4 pytest tests/store tests/processes -k postgres` (.ci/run does).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from helpers import EVIDENCE, T0, filing, waiting_for_a_lock

from claimstate import ClaimService, InvalidInput, StorageError, TransitionRefused, copy_claims
from claimstate.cli import cli

LANES = 16


@pytest.fixture
def url(postgres_database: str) -> str:
    """A new, empty schema (whatever $CLAIMSTATE_TEST_PARTITIONS says), as a URL whose search path is it."""
    schema = f"p_{secrets.token_hex(6)}"
    with psycopg.connect(postgres_database, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    return f"{postgres_database}?options=-csearch_path%3D{schema}"


@pytest.fixture
def partitioned(url: str) -> Iterator[ClaimService]:
    with ClaimService(url, partitions=4) as service:
        yield service


def rows(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def execute(url: str, sql: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql)


def partition_of(url: str, claim_id: str, partitions: int = 4) -> int:
    """The number of the claims (and transitions) partition `claim_id` hashes to."""
    for remainder in range(partitions):
        sql = "SELECT satisfies_hash_partition('claims'::regclass, %s, %s, %s::text)"
        if rows(url, sql, (partitions, remainder, claim_id)) == [(True,)]:
            return remainder
    raise AssertionError(claim_id)


def ids_apart(url: str) -> tuple[str, str]:
    """Two claim ids that hash to different partitions."""
    first = "c-apart-0"
    second = next(
        f"c-apart-{n}" for n in range(1, 100) if partition_of(url, f"c-apart-{n}") != partition_of(url, first)
    )
    return first, second


# --- made at init, recorded, kept ---------------------------------------------------------------------------


def test_the_service_makes_the_partitioned_schema_and_records_it(partitioned: ClaimService, url: str) -> None:
    assert partitioned.partitions == 4
    assert rows(url, "SELECT value FROM meta WHERE name = 'partitions'") == [("4",)]
    keys = rows(url, "SELECT relname, pg_get_partkeydef(oid) FROM pg_class WHERE relkind = 'p'"
                     " AND relnamespace = current_schema()::regnamespace ORDER BY relname")  # fmt: skip
    assert keys == [("claims", "HASH (id)"), ("events", "LIST (lane)"), ("transitions", "HASH (claim_id)")]
    parts = rows(url, "SELECT p.relname, c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits h"
                      " JOIN pg_class c ON c.oid = h.inhrelid JOIN pg_class p ON p.oid = h.inhparent"
                      " WHERE c.relkind = 'r' AND p.relnamespace = current_schema()::regnamespace"
                      " ORDER BY 1, 2")  # fmt: skip
    assert parts == [
        *(("claims", f"claims_p{n}", f"FOR VALUES WITH (modulus 4, remainder {n})") for n in range(4)),
        *(("events", f"events_p{n}", f"FOR VALUES IN ({n}, {n + 4}, {n + 8}, {n + 12})") for n in range(4)),
        *(("transitions", f"transitions_p{n}", f"FOR VALUES WITH (modulus 4, remainder {n})") for n in range(4)),
    ]
    assert rows(url, "SELECT pg_get_serial_sequence('events', 'position') IS NOT NULL") == [(True,)]
    assert partitioned._store.schema_problems() == []
    assert partitioned.verify() == []
    with ClaimService(url) as again:  # partitions left out: whatever the database has
        assert again.partitions == 4


def test_more_partitions_than_lanes_give_the_events_one_lane_each(url: str) -> None:
    with ClaimService(url, partitions=20) as service:
        service.file_claim(filing(), now=T0)
        assert service.partitions == 20
        assert service._store.schema_problems() == []
    bounds = rows(url, "SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits h JOIN pg_class c"
                       " ON c.oid = h.inhrelid WHERE h.inhparent = 'events'::regclass ORDER BY c.relname")  # fmt: skip
    assert sorted(bound for (bound,) in bounds) == sorted(f"FOR VALUES IN ({lane})" for lane in range(LANES))


def test_zero_is_plain_tables(url: str) -> None:
    with ClaimService(url, partitions=0) as service:
        assert service.partitions == 0
        assert service._store.schema_problems() == []
    assert rows(url, "SELECT count(*) FROM meta WHERE name = 'partitions'") == [(0,)]
    assert rows(url, "SELECT count(*) FROM pg_class WHERE relkind = 'p'"
                     " AND relnamespace = current_schema()::regnamespace") == [(0,)]  # fmt: skip


@pytest.mark.parametrize(
    ("made", "asked", "says"),
    [
        (4, 8, "has 4 partitions by claim id, not the 8 asked for"),
        (4, 0, "has 4 partitions by claim id, not plain tables"),
        (0, 4, "has plain tables (no partitions), not the 4 asked for"),
    ],
)
def test_another_layout_than_the_database_has_is_refused(url: str, made: int, asked: int, says: str) -> None:
    with ClaimService(url, partitions=made) as service:
        claim_id = service.file_claim(filing(), now=T0).claim.id
    with pytest.raises(StorageError, match="cannot be changed in place") as refused:
        ClaimService(url, partitions=asked)
    assert says in str(refused.value)
    assert "migrate-store" in str(refused.value)
    with ClaimService(url, read_only=True) as service:
        assert service.partitions == made
        assert service.get(claim_id).version == 1


@pytest.mark.parametrize("bad", [True, False, 1, -1, 257, "4", 4.0])
def test_bad_partitions_are_refused_by_name(url: str, bad: object) -> None:
    with pytest.raises(InvalidInput) as refused:
        ClaimService(url, partitions=bad)  # type: ignore[arg-type]
    assert refused.value.field == "partitions"
    assert rows(url, "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()") == [(0,)]


def test_sqlite_is_refused_partitions(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="PostgreSQL's") as refused:
        ClaimService(tmp_path / "claims.db", partitions=4)
    assert refused.value.field == "partitions"
    assert not (tmp_path / "claims.db").exists()
    with ClaimService(tmp_path / "claims.db", partitions=0) as service:
        assert service.partitions == 0


def test_claimstate_init_partitions(url: str, tmp_path: Path) -> None:
    """`init --partitions N` makes the schema so and says it (text and JSON); on a database that exists, N
    must be what it has (exit 5, saying what it has); left out, it keeps what the database has."""
    made = CliRunner().invoke(cli, ["--json", "--db", url, "init", "--partitions", "4"])
    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout) == {"db": made_path(url), "schema_version": 6, "partitions": 4}
    assert rows(url, "SELECT value FROM meta WHERE name = 'partitions'") == [("4",)]
    again = CliRunner().invoke(cli, ["--db", url, "init"])
    assert (again.exit_code, again.stdout) == (0, f"{made_path(url)}: claimstate schema 6, 4 partitions by claim id\n")
    other = CliRunner().invoke(cli, ["--json", "--db", url, "init", "--partitions", "8"])
    assert other.exit_code == 5
    assert "has 4 partitions by claim id, not the 8 asked for" in other.stderr
    assert json.loads(other.stdout)["exit_code"] == 5
    for bad in ("1", "300", "-2"):
        refused = CliRunner().invoke(cli, ["--db", url, "init", "--partitions", bad])
        assert refused.exit_code == 2, refused.output
        assert refused.stderr.startswith("error: partitions: must be None or 0"), refused.stderr
    sqlite = CliRunner().invoke(cli, ["--db", str(tmp_path / "c.db"), "init", "--partitions", "4"])
    assert sqlite.exit_code == 2
    assert not (tmp_path / "c.db").exists()
    assert "--partitions N" in CliRunner().invoke(cli, ["init", "--help"]).stdout


def made_path(url: str) -> str:
    with ClaimService(url, read_only=True) as service:
        return service.path


# --- each claim in one partition ----------------------------------------------------------------------------


def test_a_claims_rows_land_in_one_partition(partitioned: ClaimService, url: str) -> None:
    """A claim's row and all its history are in partitions of one number, its events in its lane's."""
    ids = [partitioned.file_claim(filing(order_id=f"o-{n}"), now=T0).claim.id for n in range(24)]
    for claim_id in ids:
        partitioned.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0)
    where = {
        "claims": rows(url, "SELECT id, tableoid::regclass::text FROM claims"),
        "transitions": rows(url, "SELECT DISTINCT claim_id, tableoid::regclass::text FROM transitions"),
        "events": rows(url, "SELECT DISTINCT claim_id, tableoid::regclass::text FROM events"),
    }
    for table, found in where.items():
        assert sorted(claim_id for claim_id, _ in found) == sorted(ids), table  # one partition each
    numbers = {claim_id: int(name.rsplit("_p", 1)[1]) for claim_id, name in where["claims"]}
    assert dict(where["transitions"]) == {claim_id: f"transitions_p{n}" for claim_id, n in numbers.items()}
    assert numbers == {claim_id: partition_of(url, claim_id) for claim_id in ids}
    lanes = {claim_id: zlib.crc32(claim_id.encode()) % LANES for claim_id in ids}
    assert dict(where["events"]) == {claim_id: f"events_p{lane % 4}" for claim_id, lane in lanes.items()}
    assert len(set(numbers.values())) > 1  # 24 claims over 4 partitions
    assert partitioned.verify() == []


# --- one open claim per order, across partitions ------------------------------------------------------------


def test_one_open_claim_per_order_across_partitions(
    partitioned: ClaimService, url: str, postgres_database: str
) -> None:
    """Two claims of one order whose ids hash to different partitions: the second filing is refused just as on
    plain tables; once the first is closed, a new one for the order is filed."""
    first, second = ids_apart(url)
    partitioned.file_claim(filing(order_id="o-9"), claim_id=first, now=T0)
    with pytest.raises(TransitionRefused) as refused:
        partitioned.file_claim(filing(order_id="o-9"), claim_id=second, now=T0)
    plain_schema = f"q_{secrets.token_hex(6)}"
    execute(postgres_database, f"CREATE SCHEMA {plain_schema}")
    with ClaimService(f"{postgres_database}?options=-csearch_path%3D{plain_schema}", partitions=0) as plain:
        plain.file_claim(filing(order_id="o-9"), claim_id=first, now=T0)
        with pytest.raises(TransitionRefused) as on_plain:
            plain.file_claim(filing(order_id="o-9"), claim_id=second, now=T0)
    assert refused.value.reasons == on_plain.value.reasons
    assert str(refused.value) == str(on_plain.value)
    assert rows(url, "SELECT order_id, claim_id FROM open_orders") == [("o-9", first)]
    partitioned.fire(first, "withdraw", "buyer:alice", now=T0)
    assert rows(url, "SELECT count(*) FROM open_orders") == [(0,)]
    assert partitioned.file_claim(filing(order_id="o-9"), claim_id=second, now=T0).claim.id == second
    assert rows(url, "SELECT order_id, claim_id FROM open_orders") == [("o-9", second)]
    assert partitioned.verify() == []


def test_a_filing_racing_another_for_the_order_is_refused_once_the_other_commits(
    partitioned: ClaimService, url: str
) -> None:
    """While one filing of the order is not yet committed (a batch holds it), another, in another partition,
    waits on open_orders' key; when the first commits, it fails on that key, runs again, and is refused as
    a filing on an order with an open claim is."""
    first, second = ids_apart(url)
    outcome: dict[str, Any] = {}
    waiting = waiting_for_a_lock(url, 1)

    def second_filing() -> None:
        try:
            outcome["filed"] = partitioned.file_claim(filing(order_id="o-race"), claim_id=second, now=T0)
        except Exception as error:  # the test checks which
            outcome["error"] = error

    with partitioned.batch():
        partitioned.file_claim(filing(order_id="o-race"), claim_id=first, now=T0)
        racing = threading.Thread(target=second_filing)
        racing.start()
        deadline = time.monotonic() + 10
        while not waiting():
            assert time.monotonic() < deadline, "the second filing never waited for the first"
            time.sleep(0.01)
    racing.join(10)
    assert isinstance(outcome.get("error"), TransitionRefused), outcome
    assert [c.id for c in partitioned.list_claims()] == [first]
    assert partitioned.verify() == []


def test_a_filings_idempotency_key_is_one_across_partitions(partitioned: ClaimService, url: str) -> None:
    first = partitioned.file_claim(filing(order_id="o-k"), idempotency_key="file-k", now=T0)
    again = partitioned.file_claim(filing(order_id="o-k"), idempotency_key="file-k", now=T0)
    assert (again.replayed, again.claim.id) == (True, first.claim.id)
    with pytest.raises(InvalidInput, match="different request"):
        partitioned.file_claim(filing(order_id="o-other"), idempotency_key="file-k", now=T0)
    assert rows(url, "SELECT idempotency_key, claim_id FROM filing_keys") == [("file-k", first.claim.id)]


# --- verify -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "problems"),
    [
        ("ALTER TABLE transitions_p1 DISABLE TRIGGER transitions_no_change",
         ["the trigger transitions_no_change on transitions_p1 is not enabled as claimstate made it"
          " (pg_trigger.tgenabled 'D')"]),
        ("ALTER TABLE transitions DISABLE TRIGGER transitions_no_change",
         ["the trigger transitions_no_change on transitions is not enabled as claimstate made it"
          " (pg_trigger.tgenabled 'D')"]),
        ("DROP TRIGGER transitions_no_truncate ON transitions_p2",
         ["the trigger transitions_no_truncate is missing on transitions_p2"]),
        ("ALTER TABLE claims_p3 DISABLE TRIGGER claims_keep_open_orders",
         ["the trigger claims_keep_open_orders on claims_p3 is not enabled as claimstate made it"
          " (pg_trigger.tgenabled 'D')"]),
        ("DROP INDEX claims_by_state; CREATE INDEX claims_by_state ON ONLY claims USING btree (state)",
         ["the index claims_by_state is on 0 of the 4 partitions of claims",
          "the index claims_by_state is not valid (pg_index.indisvalid): a partition lacks it, or building it"
          " failed"]),
        ("ALTER TABLE transitions DETACH PARTITION transitions_p3",
         ["the partition transitions_p3 of transitions is missing"]),
        ("CREATE TABLE events_extra PARTITION OF events DEFAULT",
         ["the table events_extra is a partition of events that claimstate did not make (DEFAULT)"]),
        ("DELETE FROM open_orders",
         ["the table open_orders, which keeps one open claim per order, differs from claims in 1 row(s)"]),
        ("CREATE OR REPLACE FUNCTION claimstate_keeps_open_orders() RETURNS trigger LANGUAGE plpgsql AS"
         " $$ BEGIN RETURN NULL; END $$",
         ["the function claimstate_keeps_open_orders, which the trigger keeping open_orders runs, is not"
          " claimstate's"]),
    ],
)  # fmt: skip
def test_verify_finds_damage_to_the_partitioned_schema(
    partitioned: ClaimService, url: str, sql: str, problems: list[str]
) -> None:
    # a claim outside partition 3, which one case detaches (its history would go, and filing_keys disagree)
    claim_id = next(claim for claim in (f"c-{n}" for n in range(50)) if partition_of(url, claim) != 3)
    partitioned.file_claim(filing(), claim_id=claim_id, idempotency_key="k-1", now=T0)
    partitioned.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0)
    assert partitioned.verify() == []
    execute(url, sql)
    found = partitioned.verify()
    assert [m.problem for m in found if m.claim_id is None] == problems
    assert {m.kind for m in found if m.claim_id is None} == {"schema"}


def test_the_history_of_a_partition_cannot_be_changed_through_sql(partitioned: ClaimService, url: str) -> None:
    claim_id = partitioned.file_claim(filing(), now=T0).claim.id
    partition = f"transitions_p{partition_of(url, claim_id)}"
    for statement in (f"DELETE FROM {partition}", f"UPDATE {partition} SET hash = NULL", f"TRUNCATE {partition}",
                      "TRUNCATE transitions", "UPDATE transitions SET claim_id = 'moved'"):  # fmt: skip
        with pytest.raises(psycopg.Error, match="append-only"):
            execute(url, statement)
    assert partitioned.verify() == []


# --- copied in ----------------------------------------------------------------------------------------------


def test_a_sqlite_store_copies_into_a_partitioned_one(tmp_path: Path, partitioned: ClaimService, url: str) -> None:
    with ClaimService(tmp_path / "source.db") as source:
        ids = [source.file_claim(filing(order_id=f"o-{n}"), now=T0).claim.id for n in range(6)]
        source.fire(ids[0], "withdraw", "buyer:alice", now=T0)
        copied = copy_claims(source, partitioned)
    assert copied.mismatches == ()
    assert sorted(c.id for c in partitioned.list_claims()) == sorted(ids)
    assert rows(url, "SELECT count(*) FROM open_orders") == [(5,)]  # the withdrawn claim is closed
    assert partitioned.verify() == []
    later = partitioned.fire(ids[1], "withdraw", "buyer:alice", now=T0)
    assert later.record.seq == 2
