"""Many callers on one service: threads sharing one ClaimService against 8 separate services, an
AsyncClaimService's tasks on one event loop against 8 threads, the event loop's worst pause while firing,
and a read of one claim while another claim's row is locked, on SQLite and on PostgreSQL.

Run on demand (not part of the test suite), with a PostgreSQL server at $CLAIMSTATE_BENCH_POSTGRES
(default postgresql://postgres@127.0.0.1:5432/test; the run creates and drops its own database):

    .venv/bin/python tests/benchmarks/bench_concurrency.py            # the figures in docs/performance.md
    .venv/bin/python tests/benchmarks/bench_concurrency.py --quick    # a smaller, faster run

How to read it. Every writer fires bench_store.PATH (five transitions, one commit each) on claims of its
own, seeded afresh before each run, so nothing is refused and every run does the same work. "fires/s" is
transitions per second from the first fire to the last; "ratio" is the median, over rounds, of the run's
throughput over that of 8 separate services (a thread each) in the same round: the issue's goal is that one
service shared by 8 threads is within 10% of them (ratio >= 0.90), and that 32 tasks on one event loop are
at least as fast as 8 threads (ratio >= 1.0 against the 8-thread shared service). The loop's worst pause
is the longest a coroutine beside the async run, asking to wake every millisecond, woke late, against the
median round trip of one plain query on that backend (goal: no pause longer than one round trip). The
contended read is the median time of `get(B)` while another connection holds claim A's row (PostgreSQL)
or the file's write lock (SQLite) and a fire on A waits for it, over the median uncontended `get(B)`
(goal: within 2x).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from bench_postgres import database, fresh
from bench_store import PATH, T0, seed

from claimstate import AsyncClaimService, ClaimService

Seeder = Callable[[int], tuple[str, list[str]]]


def _slices(ids: list[str], parts: int) -> list[list[str]]:
    return [ids[n::parts] for n in range(parts)]


def _fire_all(service: ClaimService, ids: list[str]) -> None:
    for claim_id in ids:
        for trigger, actor, data in PATH:
            service.fire(claim_id, trigger, actor, data, now=T0)


def _threads(work: list[Callable[[], None]]) -> float:
    """Run each piece of work on a thread of its own from a common start; the seconds until all finished."""
    go = threading.Barrier(len(work) + 1)

    def run(piece: Callable[[], None]) -> None:
        go.wait()
        piece()

    threads = [threading.Thread(target=run, args=(piece,)) for piece in work]
    for thread in threads:
        thread.start()
    go.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start


def shared(target: str, ids: list[str], threads: int) -> float:
    with ClaimService(target, busy_timeout=60) as service:
        return _threads([lambda part=part: _fire_all(service, part) for part in _slices(ids, threads)])


def separate(target: str, ids: list[str], services: int) -> float:
    opened = [ClaimService(target, busy_timeout=60, pool_size=1) for _ in range(services)]
    try:
        pieces = zip(opened, _slices(ids, services), strict=True)
        return _threads([lambda s=s, part=part: _fire_all(s, part) for s, part in pieces])
    finally:
        for service in opened:
            service.close()


def tasks(target: str, ids: list[str], count: int, threads: int) -> tuple[float, float]:
    """`count` tasks on one event loop firing through one AsyncClaimService with `threads` workers: the
    seconds taken, and the longest pause a coroutine beside them waited to run."""

    async def main() -> tuple[float, float]:
        async with AsyncClaimService(target, threads=threads, busy_timeout=60) as service:
            pauses: list[float] = []
            running = True

            async def beside() -> None:  # wakes every millisecond: how late each wake-up comes is the pause
                while running:
                    asked = time.perf_counter()
                    await asyncio.sleep(0.001)
                    pauses.append(time.perf_counter() - asked - 0.001)

            async def fire_all(part: list[str]) -> None:
                for claim_id in part:
                    for trigger, actor, data in PATH:
                        await service.fire(claim_id, trigger, actor, data, now=T0)

            watcher = asyncio.create_task(beside())
            start = time.perf_counter()
            await asyncio.gather(*(fire_all(part) for part in _slices(ids, count)))
            took = time.perf_counter() - start
            running = False
            await watcher
            return took, max(pauses)

    return asyncio.run(main())


def round_trip(target: str, is_postgres: bool) -> float:
    """The median time of one plain query (a primary-key read of one claim) on a connection of its own."""
    times = []
    if is_postgres:
        with psycopg.connect(target, autocommit=True) as conn:
            for _ in range(200):
                start = time.perf_counter()
                conn.execute("SELECT state FROM claims WHERE id = 'c00000000'").fetchone()
                times.append(time.perf_counter() - start)
    else:
        conn = sqlite3.connect(target)
        for _ in range(200):
            start = time.perf_counter()
            conn.execute("SELECT state FROM claims WHERE id = 'c00000000'").fetchone()
            times.append(time.perf_counter() - start)
        conn.close()
    return statistics.median(times)


def contended_read(target: str, ids: list[str], is_postgres: bool) -> tuple[float, float]:
    """The median `get(B)` with nothing in the way, and while claim A is locked and a fire on A waits."""
    a, b = ids[0], ids[1]
    with ClaimService(target, busy_timeout=60) as service:
        plain = []
        for _ in range(200):
            start = time.perf_counter()
            service.get(b)
            plain.append(time.perf_counter() - start)
        if is_postgres:
            holder: object = psycopg.connect(target)
            holder.execute("SELECT 1 FROM claims WHERE id = %s FOR UPDATE", (a,))  # type: ignore[attr-defined]
        else:
            holder = sqlite3.connect(target, isolation_level=None)
            holder.execute("BEGIN IMMEDIATE")  # type: ignore[attr-defined]
        waiter = threading.Thread(target=lambda: _fire_all(service, [a]))
        waiter.start()
        time.sleep(0.2)  # the fire on A is waiting for the lock by now
        contended = []
        for _ in range(200):
            start = time.perf_counter()
            service.get(b)
            contended.append(time.perf_counter() - start)
        holder.rollback() if is_postgres else holder.execute("ROLLBACK")  # type: ignore[attr-defined]
        holder.close()  # type: ignore[attr-defined]
        waiter.join()
    return statistics.median(plain), statistics.median(contended)


def measure(name: str, target: str, seed_fresh: Callable[[int], list[str]], claims: int, rounds: int,
            is_postgres: bool) -> None:  # fmt: skip
    runs: dict[str, list[float]] = {}
    worst_pause: list[float] = []
    for _ in range(rounds):
        timings = {"8 separate services, a thread each": separate(target, seed_fresh(claims), 8)}
        for n in (1, 2, 4, 8):
            timings[f"1 shared service, {n} thread{'s' if n > 1 else ''}"] = shared(target, seed_fresh(claims), n)
        for workers in (4, 8):
            took, pause = tasks(target, seed_fresh(claims), 32, workers)
            timings[f"AsyncClaimService, 32 tasks ({workers} workers)"] = took
            worst_pause.append(pause)
        for label, seconds in timings.items():
            runs.setdefault(label, []).append(seconds)
    fires = claims * len(PATH)
    floor = runs["8 separate services, a thread each"]
    eight = runs["1 shared service, 8 threads"]
    print(f"\n### {name}: {claims} claims x {len(PATH)} transitions, {rounds} rounds\n")
    print("| run | fires/s (median) | / 8 separate services | / shared, 8 threads |")
    print("|---|---|---|---|")
    for label, seconds in runs.items():
        rate = fires / statistics.median(seconds)
        over_floor = statistics.median(f / s for f, s in zip(floor, seconds, strict=True))
        over_eight = statistics.median(e / s for e, s in zip(eight, seconds, strict=True))
        print(f"| {label} | {rate:,.0f} | {over_floor:.2f} | {over_eight:.2f} |")
    trip = round_trip(target, is_postgres)
    plain, contended = contended_read(target, seed_fresh(claims), is_postgres)
    print(
        f"\nevent loop's worst pause while firing: {max(worst_pause) * 1000:.2f} ms (median over rounds"
        f" {statistics.median(worst_pause) * 1000:.2f} ms); one round trip {trip * 1000:.3f} ms;"
        f" ratio {statistics.median(worst_pause) / trip:.1f}"
    )
    print(
        f"get(B) while A is locked: {contended * 1000:.3f} ms against {plain * 1000:.3f} ms uncontended;"
        f" ratio {contended / plain:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer claims and rounds")
    args = parser.parse_args()
    claims, rounds = (80, 2) if args.quick else (240, 3)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.db"

        def seed_sqlite(n: int) -> list[str]:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            return seed(path, n, filed=True)

        measure("SQLite", str(path), seed_sqlite, claims, rounds, is_postgres=False)
    with database() as url:
        measure("PostgreSQL", url, lambda n: fresh(url, n), claims, rounds, is_postgres=True)


if __name__ == "__main__":
    main()
