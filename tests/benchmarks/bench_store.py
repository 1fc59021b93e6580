"""How fast the store is, as ratios to raw sqlite3 measured in the same run, on the same file settings.

Run on demand (not part of the test suite):

    .venv/bin/python tests/benchmarks/bench_store.py            # the figures quoted in the README
    .venv/bin/python tests/benchmarks/bench_store.py --quick    # a smaller, faster run

Absolute times on a shared machine mean little; read the ratios against the floor.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs

from claimstate import Claim, ClaimService, Engine
from claimstate._chain import Chain
from claimstate._store import _COLUMNS, _INSERT_CLAIM, _INSERT_RECORD, _linked, _stored, claim_columns

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
EVIDENCE = {"evidence": [{"kind": "photo", "description": "cracked"}]}
FILING = {
    "order_id": "o-0",
    "buyer_id": "alice",
    "supplier_id": "acme",
    "currency": "USD",
    "amount": "25.00",
    "reason": "broken",
    "resolution": "full_refund",
}


def seed(path: Path, claims: int, *, due: int = 0) -> list[str]:
    """A claimstate file with `claims` claims in mediation, or awaiting evidence with `due` of them due at T0.

    Rows are written straight with sqlite3 (as the store writes them) so that a million claims seed in
    seconds; each has its whole history, chained, so the file is what the service would have written.
    """
    ClaimService(path).close()
    engine = Engine()
    filed = engine.file_claim("seed", "buyer:alice", FILING, T0 - timedelta(days=7))
    steps = [filed]
    if not due:
        steps.append(engine.fire(filed.claim, "submit_evidence", "buyer:alice", EVIDENCE, T0 - timedelta(days=7)))
    template = steps[-1].claim
    late = T0 + timedelta(days=365)
    chain = Chain()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    ids = []
    for i in range(claims):
        claim_id = f"c{i:08d}"
        claim = attrs.evolve(template, id=claim_id, order_id=f"o-{i}")
        if due and i >= due and claim.deadline is not None:
            claim = attrs.evolve(claim, deadline=attrs.evolve(claim.deadline, due=late))
        row = claim_columns(claim, False)
        conn.execute(_INSERT_CLAIM, [row[c] for c in _COLUMNS])
        previous = None
        for step in steps:  # every record of the claim's history, chained as the store chains them
            record = attrs.evolve(step.record, claim_id=claim_id)
            if record.seq == 1:
                record = attrs.evolve(record, data={**record.data, "order_id": claim.order_id})
            deadline_at = (row if step is steps[-1] else step.claim.to_dict())["deadline_at"]
            linked = _linked(record, deadline_at)
            previous = chain.link(previous, linked)
            conn.execute(_INSERT_RECORD, (*_stored(linked, None, None), previous))
        ids.append(claim_id)
    conn.execute("COMMIT")
    conn.close()
    return ids


def raw_fires(path: Path, ids: list[str], *, batched: bool) -> float:
    """The floor: the same UPDATE plus INSERT per transition (a 64-character hash included) with sqlite3,
    WAL and synchronous=NORMAL."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    stored = Claim.from_dict(json.loads(conn.execute("SELECT details FROM claims LIMIT 1").fetchone()[0]))
    after = Engine().fire(stored, "submit_evidence", "buyer:alice", EVIDENCE, T0).claim
    details = json.dumps(after.to_dict())  # the very row the service writes, so both write the same bytes
    data = json.dumps(EVIDENCE)
    start = time.perf_counter()
    if batched:
        conn.execute("BEGIN IMMEDIATE")
    for claim_id in ids:
        if not batched:
            conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "UPDATE claims SET state = ?, version = ?, closed = 0, updated_at = ?, deadline_at = NULL,"
            " deadline_trigger = NULL, details = ? WHERE id = ? AND version = ?",
            ("in_mediation", 3, "2026-01-05T09:00:00.000000+00:00", details, claim_id, 2),
        )
        conn.execute(
            "INSERT INTO transitions (claim_id, seq, trigger, from_state, to_state, actor, at, data,"
            " idempotency_key, request_hash, hash) VALUES (?, 3, 'submit_evidence', 'in_mediation', 'in_mediation',"
            " 'buyer:alice', '2026-01-05T09:00:00.000000+00:00', ?, NULL, NULL, ?)",
            (claim_id, data, "0" * 64),
        )
        if not batched:
            conn.execute("COMMIT")
    if batched:
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def service_fires(path: Path, ids: list[str], *, batched: bool) -> float:
    """ClaimService.fire of submit_evidence on each claim: one commit each, or all in one batch()."""
    with ClaimService(path) as service:
        start = time.perf_counter()
        if batched:
            with service.batch():
                for claim_id in ids:
                    service.fire(claim_id, "submit_evidence", "buyer:alice", EVIDENCE, now=T0)
        else:
            for claim_id in ids:
                service.fire(claim_id, "submit_evidence", "buyer:alice", EVIDENCE, now=T0)
        return time.perf_counter() - start


def tick_cost(folder: Path, claims: int, due: int, rounds: int) -> float:
    """Median time of tick() firing `due` deadlines among `claims` claims (a fresh copy each round)."""
    path = folder / f"tick-{claims}.db"
    seed(path, claims, due=due)
    master = path.read_bytes()
    times = []
    for _ in range(rounds):
        path.write_bytes(master)
        for suffix in ("-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        os.sync()  # else the first write waits for the OS to flush the fresh copy: the disk, not the store
        with ClaimService(path) as service:
            start = time.perf_counter()
            fired = service.tick(T0)
            times.append(time.perf_counter() - start)
            assert len(fired) == due, len(fired)
    path.unlink()
    return statistics.median(times)


def peak_memory(folder: Path, claims: int) -> float:
    """Peak traced memory (MiB) while firing one transition on each of `claims` claims."""
    path = folder / f"memory-{claims}.db"
    ids = seed(path, claims)
    with ClaimService(path) as service:
        tracemalloc.start()
        for claim_id in ids:
            service.fire(claim_id, "submit_evidence", "buyer:alice", EVIDENCE, now=T0)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    path.unlink()
    return peak / 2**20


def paired(folder: Path, n: int, rounds: int, batched: bool) -> tuple[float, float]:
    """Median seconds per transition of the floor and of the service, alternating on fresh seeded files."""
    floor, ours = [], []
    for r in range(rounds):
        for name, run, into in (("raw", raw_fires, floor), ("service", service_fires, ours)):
            path = folder / f"{name}-{r}.db"
            ids = seed(path, n)
            into.append(run(path, ids, batched=batched) / n)
            path.unlink()
    return statistics.median(floor), statistics.median(ours)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a first look")
    args = parser.parse_args()
    quick = args.quick
    rows: list[tuple[str, str, str, str]] = []

    def row(name: str, value: str, ratio: str, goal: str) -> None:
        rows.append((name, value, ratio, goal))
        print(f"  {name:<48} {value:>14} {ratio:>9}  {goal}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(f"claimstate store benchmark ({'quick' if quick else 'full'}), medians:")
        raw, ours = paired(folder, 500 if quick else 2_000, 3 if quick else 5, batched=False)
        row("raw sqlite3 UPDATE+INSERT, one commit each", f"{raw * 1e6:.1f} us", "1.00", "floor")
        row("ClaimService.fire, one commit each", f"{ours * 1e6:.1f} us", f"{ours / raw:.2f}", "goal <= 1.5")
        n = 2_000 if quick else 10_000
        raw_b, ours_b = paired(folder, n, 3, batched=True)
        row(f"raw sqlite3, {n:,} in one transaction", f"{raw_b * 1e6:.1f} us", "1.00", "floor")
        row(f"ClaimService.batch() of {n:,}", f"{ours_b * 1e6:.1f} us", f"{ours_b / raw_b:.2f}", "goal <= 3")
        small, large = 10_000, 100_000 if quick else 1_000_000
        tick_small = tick_cost(folder, small, 100, 5)
        tick_large = tick_cost(folder, large, 100, 5)
        row(f"tick: 100 due among {small:,}", f"{tick_small * 1e3:.1f} ms", "1.00", "")
        ratio = f"{tick_large / tick_small:.2f}"
        row(f"tick: 100 due among {large:,}", f"{tick_large * 1e3:.1f} ms", ratio, "goal <= 2")
        few, many = (2_000, 20_000) if quick else (10_000, 100_000)
        mem_few, mem_many = peak_memory(folder, few), peak_memory(folder, many)
        row(f"peak memory firing on {few:,} claims", f"{mem_few:.2f} MiB", "1.00", "")
        row(f"peak memory firing on {many:,} claims", f"{mem_many:.2f} MiB", f"{mem_many / mem_few:.2f}", "flat: ~1")


if __name__ == "__main__":
    main()
