"""The PostgreSQL store against raw psycopg on the same server, and both stores' throughput by workers.

Run on demand (not part of the test suite), with a PostgreSQL server at $CLAIMSTATE_BENCH_POSTGRES
(default postgresql://postgres@127.0.0.1:5432/test; the run creates and drops its own database):

    .venv/bin/python tests/benchmarks/bench_postgres.py            # the figures quoted in the README
    .venv/bin/python tests/benchmarks/bench_postgres.py --quick    # a smaller, faster run

Each claim walks the five transitions of bench_store.PATH. Absolute times on a shared machine mean
little; read the ratios against the floor, and how throughput grows with workers.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from bench_store import FINGERPRINT, PATH, T0, planned_steps, seed, seed_rows, service_walk

from claimstate import ClaimService
from claimstate._feed import LANES
from claimstate._store.rows import INSERT_CLAIM, INSERT_RECORD
from claimstate._time import to_iso

SERVER = os.environ.get("CLAIMSTATE_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
_UPDATE = {  # `closed` set only by the step that closes the claim, as the store sets it
    closing: "UPDATE claims SET state = %s, version = %s, updated_at = %s, deadline_at = %s, deadline_trigger = %s,"
    " details = %s" + (", closed = 1" if closing else "") + " WHERE id = %s AND version = %s"
    for closing in (False, True)
}
_INSERT = (
    "INSERT INTO transitions (claim_id, seq, trigger, from_state, to_state, actor, at, data, deadline_at,"
    " idempotency_key, request_hash, hash, definition) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, NULL, NULL, %s,"
    " %s)"
)

_EVENT = (  # the lane's counter row, locked until commit, then the event: as the store writes it
    "WITH next AS (INSERT INTO lanes (lane, last) VALUES (%s, 1) ON CONFLICT (lane) DO UPDATE SET last = lanes.last"
    " + 1 RETURNING last) INSERT INTO events (lane, lane_seq, claim_id, seq, trigger, from_state, to_state, actor,"
    " at, data, claim, entered_at) SELECT %s, next.last, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s FROM next"
)


@contextmanager
def database(server: str = SERVER, suffix: str = "") -> Iterator[str]:
    """A database of this run's own on the server (`suffix` tells several apart), dropped at the end: its URL."""
    name = f"claimstate_bench_{os.getpid()}{suffix}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def fresh(url: str, claims: int, first: int = 0) -> list[str]:
    """Empty the claimstate tables (made by the service) and seed `claims` filed claims."""
    ClaimService(url).close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER TABLE transitions DISABLE TRIGGER transitions_no_truncate")
        conn.execute("TRUNCATE claims, transitions, events, lanes, consumers")
        conn.execute("ALTER TABLE transitions ENABLE TRIGGER transitions_no_truncate")
        ids = []
        with conn.transaction(), conn.cursor() as cursor:
            for claim_id, row, history in seed_rows(claims, filed=True, first=first):
                cursor.execute(INSERT_CLAIM.replace("?", "%s"), row)
                cursor.executemany(INSERT_RECORD.replace("?", "%s"), history)
                ids.append(claim_id)
        conn.execute("VACUUM ANALYZE claims")
        conn.execute("VACUUM ANALYZE transitions")
    return ids


def raw_walk(url: str, ids: list[str], *, batched: bool) -> float:
    """The floor: each transition's UPDATE, its history row and its event (numbered by its lane's counter
    row, as many writers need) with psycopg, the bytes made beforehand, one BEGIN ... COMMIT each or all
    in one. Each statement is sent and waited for, as a plain psycopg program does."""
    at = to_iso(T0)
    steps = planned_steps()
    with psycopg.connect(url, autocommit=True) as conn:
        start = time.perf_counter()
        if batched:
            conn.execute("BEGIN")
        for claim_id in ids:
            lane = zlib.crc32(claim_id.encode()) % LANES
            for s in steps:
                if not batched:
                    conn.execute("BEGIN")
                conn.execute(
                    _UPDATE[bool(s.closed)],
                    (s.dest, s.version, at, s.deadline_at, s.deadline_trigger, s.details, claim_id, s.version - 1),
                )
                row = (claim_id, s.version, s.trigger, s.source, s.dest, s.actor, at, s.data)
                conn.execute(_INSERT, (*row, s.deadline_at, "0" * 64, FINGERPRINT))
                conn.execute(_EVENT, (lane, lane, *row, s.summary, at))
                if not batched:
                    conn.execute("COMMIT")
        if batched:
            conn.execute("COMMIT")
        return time.perf_counter() - start


def _worker(target: str, ids: list[str], ready: Any, go: Any, done: Any) -> None:
    with ClaimService(target) as service:
        ready.wait()
        go.wait()
        for claim_id in ids:
            for trigger, actor, data in PATH:
                service.fire(claim_id, trigger, actor, data, now=T0)
    done.put(len(ids) * len(PATH))


def throughput(target: str, ids: list[str], workers: int) -> float:
    """Fires per second of `workers` processes, each walking its own share of `ids`, from a common start."""
    context = multiprocessing.get_context("spawn")
    ready, go, done = context.Barrier(workers + 1), context.Barrier(workers + 1), context.Queue()
    share = len(ids) // workers
    processes = [
        context.Process(target=_worker, args=(target, ids[n * share : (n + 1) * share], ready, go, done))
        for n in range(workers)
    ]
    for process in processes:
        process.start()
    ready.wait()
    start = time.perf_counter()
    go.wait()
    fires = sum(done.get() for _ in processes)
    elapsed = time.perf_counter() - start
    for process in processes:
        process.join()
    return fires / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a first look")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the fire benchmarks (default 3)")
    args = parser.parse_args()
    n, workers_claims = (100, 400) if args.quick else (400, 1_600)

    def row(name: str, value: str, ratio: str, goal: str = "") -> None:
        print(f"  {name:<60} {value:>12} {ratio:>7}  {goal}", flush=True)

    with database() as url, tempfile.TemporaryDirectory() as tmp:
        print(
            f"claimstate PostgreSQL benchmark ({'quick' if args.quick else 'full'}), medians of {args.rounds} rounds,"
        )
        print(f"{len(PATH)} transitions per claim, server {SERVER.rsplit('/', 1)[0]}:")
        for batched in (False, True):
            ratios, floor, ours = [], [], []
            for _ in range(args.rounds):
                raw = raw_walk(url, fresh(url, n), batched=batched) / (n * len(PATH))
                service = service_walk(url, fresh(url, n), batched=batched) / (n * len(PATH))
                floor.append(raw)
                ours.append(service)
                ratios.append(service / raw)
            how = f"{n * len(PATH):,} in one transaction" if batched else "one commit each"
            row(f"floor: raw psycopg UPDATE + 2 INSERTs, {how}", f"{statistics.median(floor) * 1e6:.1f} us", "1.00")
            fire = statistics.median(ratios)
            goal = "" if batched else f"goal <= 1.3: {'met' if fire <= 1.3 else 'not met'}"
            name = "ClaimService.batch(), the same" if batched else "ClaimService.fire, one commit each"
            row(name, f"{statistics.median(ours) * 1e6:.1f} us", f"{fire:.2f}", goal)
        print(f"throughput, fires per second, {workers_claims:,} claims shared out among the workers:")
        print(f"  {'workers':<10} {'PostgreSQL':>12} {'SQLite':>12}")
        sqlite_file = Path(tmp) / "workers.db"
        runs: dict[str, Callable[[], tuple[str, list[str]]]] = {
            "postgres": lambda: (url, fresh(url, workers_claims)),
            "sqlite": lambda: (str(sqlite_file), seed(sqlite_file, workers_claims, filed=True)),
        }
        for workers in (1, 2, 4, 8):
            rates = {}
            for name, make in runs.items():
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{sqlite_file}{suffix}").unlink(missing_ok=True)
                target, ids = make()
                rates[name] = throughput(target, ids, workers)
            print(f"  {workers:<10} {rates['postgres']:>12,.0f} {rates['sqlite']:>12,.0f}", flush=True)


if __name__ == "__main__":
    main()
