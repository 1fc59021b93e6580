"""PostgreSQL's hash partitioning by claim id against the plain schema, among a million claims: what it costs
a fire, a filing, a tick and a list, and what it buys (throughput by workers, and the size of what one
claim's write touches).

Run on demand (not part of the test suite), with a PostgreSQL server at $CLAIMSTATE_BENCH_POSTGRES
(default postgresql://postgres@127.0.0.1:5432/test; the run makes and drops two databases of its own):

    .venv/bin/python tests/benchmarks/bench_partitions.py --claims 1000000 --history 5000000 --partitions 16
    .venv/bin/python tests/benchmarks/bench_partitions.py --quick      # 20,000 claims, 100,000 history rows

Both databases are seeded alike by bench_console's `seed` (claims and history written as a running service
lays them down). Then, in rounds that alternate between the two, so the machine's noise falls on both
alike: `fire` (evidence on claims filed for the round), `file_claim`, `tick` (deadlines of claims filed
8 days before, now due, among the million), `get`, and two lists (a state's first page, a buyer's
claims); then fires per second of 1, 2 and 4 worker processes each walking claims of its own
(bench_postgres.throughput). Medians of the rounds. Absolute times on a shared machine mean little; read
the partitioned schema against the plain one, measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import ExitStack
from datetime import timedelta
from typing import Any

import psycopg
from bench_console import FILING, NOW, median_time, seed
from bench_postgres import SERVER, database, throughput
from bench_store import FILING as WALKER_FILING
from bench_store import T0 as WALKED_AT

from claimstate import ClaimService

EVIDENCE = {"evidence": [{"kind": "photo", "description": "the lid arrived cracked"}]}
FILED_DUE = NOW - timedelta(days=8)  # a claim filed then is past its evidence deadline (7 days) at NOW


def filing(number: int) -> dict[str, Any]:
    return {**FILING, "order_id": f"bench-{number}", "buyer_id": "bench-buyer", "supplier_id": "bench-supplier"}


class Layout:
    """One database of the run: its URL, a service on it, and each figure's times by round."""

    def __init__(self, name: str, url: str, service: ClaimService) -> None:
        self.name, self.url, self.service = name, url, service
        self.times: dict[str, list[float]] = {}
        self.filed = 0

    def file(self, count: int, at: Any, data: dict[str, Any] | None = None) -> list[str]:
        """`count` new claims filed at `at`, each on an order of its own (with `data`: as the walkers' own)."""
        ids = []
        for _ in range(count):
            self.filed += 1
            given = filing(self.filed) if data is None else {**data, "order_id": f"bench-{self.filed}"}
            ids.append(self.service.file_claim(given, now=at).claim.id)
        return ids

    def record(self, figure: str, seconds: float) -> None:
        self.times.setdefault(figure, []).append(seconds)

    def one_round(self, count: int, buyer: str) -> None:
        service = self.service
        start = time.perf_counter()
        ids = self.file(count, NOW)
        self.record("file_claim", (time.perf_counter() - start) / count)
        start = time.perf_counter()
        for claim_id in ids:
            service.fire(claim_id, "submit_evidence", "buyer:bench-buyer", EVIDENCE, now=NOW)
        self.record("fire", (time.perf_counter() - start) / count)
        self.file(count, FILED_DUE)  # due at NOW, among every other claim's deadline
        start = time.perf_counter()
        fired = service.tick(NOW, limit=10 * count)
        self.record("tick, per deadline fired", (time.perf_counter() - start) / max(1, len(fired)))
        self.record("get", median_time(lambda: service.get(ids[0]), 20))
        self.record("list: a state's first page", median_time(lambda: service.list_claims(state="in_mediation"), 5))
        self.record("list: one buyer's claims", median_time(lambda: service.list_claims(buyer=buyer), 5))


def _size(url: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()
    return str(row[0]) if row else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--claims", type=int, default=1_000_000)
    parser.add_argument("--history", type=int, default=5_000_000)
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="20,000 claims, 100,000 history rows, 3 rounds")
    args = parser.parse_args()
    if args.quick:
        args.claims, args.history, args.rounds = 20_000, 100_000, 3
    started = time.perf_counter()
    with ExitStack() as stack:
        layouts = []
        for name, partitions in (("plain", None), (f"{args.partitions} partitions", args.partitions)):
            url = stack.enter_context(database(SERVER, suffix=f"_{name.split()[0]}"))
            ClaimService(url, partitions=partitions).close()
            begun = time.perf_counter()
            seeded = seed(url, args.claims, args.history)
            print(f"{name}: seeded {seeded.claims:,} claims, {seeded.history:,} history rows in"
                  f" {time.perf_counter() - begun:.0f} s; {_size(url)}")  # fmt: skip
            service = stack.enter_context(ClaimService(url, clock=lambda: NOW))
            layouts.append(Layout(name, url, service))
        buyer = next(iter(layouts[0].service.list_claims(limit=1))).buyer_id
        for layout in layouts:  # untimed: warms the caches, and fires the seeded deadlines already due
            layout.service.tick(NOW, limit=1_000_000)
            layout.one_round(50, buyer)
            layout.times.clear()
        for _round in range(args.rounds):
            for layout in layouts:
                layout.one_round(200, buyer)
        throughputs: dict[str, dict[int, float]] = {}
        for workers in (1, 2, 4):
            for layout in layouts:  # alternating, as the rounds
                with layout.service.batch():  # for bench_store.PATH: alice's claims against acme, at its time
                    ids = layout.file(1600, WALKED_AT, WALKER_FILING)
                throughputs.setdefault(layout.name, {})[workers] = throughput(layout.url, ids, workers)
        plain, parted = layouts
        print(f"\n{args.claims:,} claims, {args.history:,} history rows; medians of {args.rounds} rounds")
        print(f"{'figure':<30} {'plain':>12} {parted.name:>16} {'ratio':>7}")
        for figure, found in plain.times.items():
            a, b = statistics.median(found), statistics.median(parted.times[figure])
            print(f"{figure:<30} {a * 1000:>9.3f} ms {b * 1000:>13.3f} ms {b / a:>7.2f}")
        for workers in (1, 2, 4):
            a, b = throughputs[plain.name][workers], throughputs[parted.name][workers]
            print(f"{f'fires/s, {workers} worker(s)':<30} {a:>12,.0f} {b:>16,.0f} {b / a:>7.2f}")
        for layout in layouts:
            print(f"{layout.name}: {_size(layout.url)} after the run")
    print(f"\nthe whole run took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
