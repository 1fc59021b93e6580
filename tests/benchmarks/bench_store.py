"""How fast the store is, as ratios to raw sqlite3 measured in the same run, on the same file settings.

Run on demand (not part of the test suite):

    .venv/bin/python tests/benchmarks/bench_store.py            # the figures quoted in the README
    .venv/bin/python tests/benchmarks/bench_store.py --quick    # a smaller, faster run

Absolute times on a shared machine mean little; read the ratios against the floor.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sqlite3
import statistics
import tempfile
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
from transitions import Machine

from claimstate import CLAIM_LIFECYCLE, ClaimService, Engine
from claimstate._chain import Chain
from claimstate._feed import LANES, summary
from claimstate._feed.event import SUMMARY
from claimstate._json import decode, encode
from claimstate._store.rows import (
    COLUMNS,
    IN_COLUMNS,
    INSERT_CLAIM,
    INSERT_RECORD,
    SELECT_CLAIM,
    claim_columns,
    linked,
    stored,
)
from claimstate._time import to_iso

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


def seed(path: Path, claims: int, *, due: int = 0, filed: bool = False) -> list[str]:
    """A claimstate file with `claims` claims in mediation, or awaiting evidence (`filed`, or `due` of them
    due at T0).

    Rows are written straight with sqlite3 (as the store writes them) so that a million claims seed in
    seconds; each has its whole history, chained, so the file is what the service would have written.
    """
    ClaimService(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    ids = []
    for claim_id, row, history in seed_rows(claims, due=due, filed=filed):
        conn.execute(INSERT_CLAIM, row)
        conn.executemany(INSERT_RECORD, history)
        ids.append(claim_id)
    conn.execute("COMMIT")
    conn.close()
    return ids


def seed_rows(
    claims: int, *, due: int = 0, filed: bool = False, first: int = 0
) -> Iterator[tuple[str, list[Any], list[tuple[Any, ...]]]]:
    """(claim id, claims row, history rows) of the claims `seed` writes, numbered from `first`: any store
    can write them (INSERT_CLAIM and INSERT_RECORD's columns)."""
    engine = Engine()
    filed_at = T0 - timedelta(days=7 if due else 1)
    start = engine.file_claim("seed", "buyer:alice", FILING, filed_at)
    steps = [start]
    if not due and not filed:
        steps.append(engine.fire(start.claim, "submit_evidence", "buyer:alice", EVIDENCE, filed_at))
    template = steps[-1].claim
    late = T0 + timedelta(days=365)
    chain = Chain()
    for i in range(first, first + claims):
        claim_id = f"c{i:08d}"
        claim = attrs.evolve(template, id=claim_id, order_id=f"o-{i}")
        if due and i >= due and claim.deadline is not None:
            claim = attrs.evolve(claim, deadline=attrs.evolve(claim.deadline, due=late))
        row = claim_columns(claim, False)
        previous, history = None, []
        for step in steps:  # every record of the claim's history, chained as the store chains them
            record = attrs.evolve(step.record, claim_id=claim_id)
            if record.seq == 1:
                record = attrs.evolve(record, data={**record.data, "order_id": claim.order_id})
            deadline_at = (row if step is steps[-1] else step.claim.to_dict())["deadline_at"]
            values = linked(record, deadline_at, FINGERPRINT)
            previous = chain.link(previous, values)
            history.append((*stored(values, None, None), previous, FINGERPRINT))
        yield claim_id, [*(row[c] for c in COLUMNS), FINGERPRINT], history


# The path each claim walks from awaiting_evidence, five transitions to a closed claim.
PATH: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("submit_evidence", "buyer:alice", EVIDENCE),
    ("make_offer", "supplier:acme", {"kind": "partial_refund", "amount": "10.00"}),
    ("accept_offer", "buyer:alice", {}),
    ("cancel_claim", "buyer:alice", {}),
    ("approve_cancellation", "agent:kim", {}),
)


@attrs.frozen
class Step:
    """One transition of PATH as the store writes it: the claims columns it changes, its history row and
    its event row (the claim's summary)."""

    trigger: str
    source: str
    dest: str
    actor: str
    data: str
    version: int
    closed: int
    deadline_at: str | None
    deadline_trigger: str | None
    details: str  # the claims row's details after the step (of the template claim; the floor writes these bytes)
    summary: str  # the event's claim summary after the step (the same)
    changed: dict[str, Any]  # the claim's items the step changed (the contender's own effect)


def planned_steps() -> list[Step]:
    """PATH applied by the engine to one filed claim, once, for the floor and the contender to write."""
    engine = Engine()
    claim = engine.file_claim("c00000000", "buyer:alice", {**FILING, "order_id": "o-0"}, T0 - timedelta(days=1)).claim
    steps = []
    for trigger, actor, data in PATH:
        fired = engine.fire(claim, trigger, actor, data, T0)
        closed = engine.definition.state(fired.claim.state).final
        row = claim_columns(fired.claim, closed)
        before, after = claim.to_dict(), fired.claim.to_dict()
        steps.append(
            Step(
                trigger, claim.state, fired.claim.state, actor, encode(fired.record.data), fired.claim.version,
                row["closed"], row["deadline_at"], row["deadline_trigger"], row["details"],
                encode(summary(after, closed)), {k: v for k, v in after.items() if v != before[k]},
            )
        )  # fmt: skip
        claim = fired.claim
    return steps


_FLOOR_UPDATE = {  # `closed` set only by the step that closes the claim, as the store sets it
    closing: "UPDATE claims SET state = ?, version = ?, updated_at = ?, deadline_at = ?, deadline_trigger = ?,"
    " details = ?" + (", closed = 1" if closing else "") + " WHERE id = ? AND version = ?"
    for closing in (False, True)
}
_FLOOR_INSERT = (
    "INSERT INTO transitions (claim_id, seq, trigger, from_state, to_state, actor, at, data, deadline_at,"
    " idempotency_key, request_hash, hash, definition) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?)"
)
# The event, numbered after the last of its lane (one writer at a time, as SQLite has).
_FLOOR_EVENT = (
    "INSERT INTO events (lane, lane_seq, claim_id, seq, trigger, from_state, to_state, actor, at, data, claim,"
    " entered_at) VALUES (?, (SELECT coalesce(max(lane_seq), 0) + 1 FROM events WHERE lane = ?), ?, ?, ?, ?, ?, ?,"
    " ?, ?, ?, ?)"
)
_AT = to_iso(T0)
FINGERPRINT = CLAIM_LIFECYCLE.fingerprint()  # what every claims row and history row records
_NO_HASH = "0" * 64


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")  # each history row's claim checked, as in the store
    return conn


def _walk(conn: sqlite3.Connection, ids: list[str], batched: bool, step: Callable[[str, int], None]) -> float:
    """Seconds to apply PATH to every claim (claim by claim), one transaction per transition or one for all."""
    start = time.perf_counter()
    if batched:
        conn.execute("BEGIN IMMEDIATE")
    for claim_id in ids:
        for i in range(len(PATH)):
            if not batched:
                conn.execute("BEGIN IMMEDIATE")
            step(claim_id, i)
            if not batched:
                conn.execute("COMMIT")
    if batched:
        conn.execute("COMMIT")
    return time.perf_counter() - start


def _write(
    conn: sqlite3.Connection, claim_id: str, s: Step, state: str, version: int, details: str, brief: str
) -> None:
    """The claims row's UPDATE (to `state` and `version`, with `details`), the history row and the event
    (the claim's summary `brief`)."""
    conn.execute(
        _FLOOR_UPDATE[bool(s.closed)],
        (state, version, _AT, s.deadline_at, s.deadline_trigger, details, claim_id, version - 1),
    )
    row = (claim_id, s.version, s.trigger, s.source, s.dest, s.actor, _AT, s.data)
    conn.execute(_FLOOR_INSERT, (*row, s.deadline_at, _NO_HASH, FINGERPRINT))
    lane = zlib.crc32(claim_id.encode()) % LANES
    conn.execute(_FLOOR_EVENT, (lane, lane, *row, brief, _AT))


def raw_walk(path: Path, ids: list[str], *, batched: bool, keyed: bool = False) -> float:
    """The floor: each transition's UPDATE and two INSERTs (a 64-character hash included), the bytes made
    beforehand, with sqlite3 on WAL, synchronous=NORMAL and foreign keys checked, as the store opens its file."""
    steps = planned_steps()
    conn = _connect(path)

    def step(claim_id: str, i: int) -> None:
        s = steps[i]
        _write(conn, claim_id, s, s.dest, s.version, s.details, s.summary)

    try:
        return _walk(conn, ids, batched, step)
    finally:
        conn.close()


class _Model:
    """What the contender's shared machine moves: a state name and nothing else."""

    state = "awaiting_evidence"


def contender_walk(path: Path, ids: list[str], *, batched: bool, keyed: bool = False) -> float:
    """A careful hand-written service: one shared `transitions` machine that checks the state alone; the
    claim read from its columns and JSON details, changed, and written back as claimstate's rows (the
    details JSON, the event's summary) with raw SQL."""
    steps = planned_steps()
    machine = Machine(
        model=None,
        states=[s.name for s in CLAIM_LIFECYCLE.states],
        initial="awaiting_evidence",
        auto_transitions=False,
    )
    for s in steps:
        machine.add_transition(s.trigger, s.source, s.dest)
    conn = _connect(path)
    model = _Model()
    read = f"SELECT {SELECT_CLAIM} FROM claims WHERE id = ?"

    def step(claim_id: str, i: int) -> None:
        s = steps[i]
        *columns, details = conn.execute(read, (claim_id,)).fetchone()
        claim = {**dict(zip(IN_COLUMNS, columns, strict=True)), **decode(details)}
        model.state = claim["state"]
        if not machine.events[s.trigger].trigger(model):
            raise RuntimeError(f"{s.trigger} refused")
        claim.update(s.changed)
        kept = encode({k: v for k, v in claim.items() if k not in IN_COLUMNS})
        brief = encode({**{k: claim[k] for k in SUMMARY}, "closed": bool(s.closed)})
        _write(conn, claim_id, s, model.state, claim["version"], kept, brief)

    try:
        return _walk(conn, ids, batched, step)
    finally:
        conn.close()


def service_walk(path: Path | str, ids: list[str], *, batched: bool, keyed: bool = False) -> float:
    """ClaimService.fire of each transition of PATH (with an idempotency key each when `keyed`): one
    commit each, or all in one batch()."""
    with ClaimService(path) as service:
        start = time.perf_counter()
        with service.batch() if batched else contextlib.nullcontext():
            for claim_id in ids:
                for i, (trigger, actor, data) in enumerate(PATH):
                    key = f"k{i}" if keyed else None
                    service.fire(claim_id, trigger, actor, data, idempotency_key=key, now=T0)
        return time.perf_counter() - start


def tick_cost(folder: Path, claims: int, due: int, rounds: int) -> tuple[float, float]:
    """Median time of tick() firing `due` deadlines among `claims` claims (a fresh copy each round), and of
    opening a writable service on them (which checks for claims of other definitions)."""
    path = folder / f"tick-{claims}.db"
    seed(path, claims, due=due)
    opens = []
    for _ in range(rounds):
        start = time.perf_counter()
        ClaimService(path).close()
        opens.append(time.perf_counter() - start)
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
    return statistics.median(times), statistics.median(opens)


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


Walk = Callable[..., float]


def paired(folder: Path, n: int, rounds: int, runs: dict[str, tuple[Walk, bool]], *, batched: bool) -> dict[str, list]:
    """Seconds per transition of each run (a walk and whether it is keyed), every round on fresh seeded
    files in turn, so that each round's ratios compare runs made under the same machine load."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(rounds):
        for name, (walk, keyed) in runs.items():
            path = folder / f"{name}-{r}.db"
            ids = seed(path, n, filed=True)
            os.sync()
            times[name].append(walk(path, ids, batched=batched, keyed=keyed) / (n * len(PATH)))
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
    return times


def ratio(times: dict[str, list[float]], name: str, floor: str) -> float:
    """The median over rounds of `name`'s time over `floor`'s in the same round."""
    return statistics.median(a / b for a, b in zip(times[name], times[floor], strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a first look")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the fire benchmarks (default 3)")
    args = parser.parse_args()
    quick = args.quick

    def row(name: str, value: str, ratio: str, goal: str) -> None:
        print(f"  {name:<58} {value:>11} {ratio:>7}  {goal}", flush=True)

    def goal(value: float, limit: float) -> str:
        return f"goal <= {limit}: {'met' if value <= limit else 'not met'}"

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(f"claimstate store benchmark ({'quick' if quick else 'full'}), medians of {args.rounds} rounds,")
        print(f"{len(PATH)} transitions per claim ({' > '.join(t for t, _a, _d in PATH)}):")
        runs = {
            "raw": (raw_walk, False),
            "contender": (contender_walk, False),
            "service": (service_walk, False),
            "keyed": (service_walk, True),
        }
        n = 200 if quick else 1_000
        single = paired(folder, n, args.rounds, runs, batched=False)
        us = {name: statistics.median(t) * 1e6 for name, t in single.items()}
        fire, versus, keyed = ratio(single, "service", "raw"), ratio(single, "service", "contender"), 0.0
        keyed = ratio(single, "keyed", "service")
        row("floor: raw sqlite3 UPDATE + 2 INSERTs, one commit each", f"{us['raw']:.1f} us", "1.00", "")
        row("contender: one shared transitions machine + raw SQL", f"{us['contender']:.1f} us",
            f"{ratio(single, 'contender', 'raw'):.2f}", "")  # fmt: skip
        row("ClaimService.fire, one commit each", f"{us['service']:.1f} us", f"{fire:.2f}", goal(fire, 1.5))
        row("  the same, against the contender", "", f"{versus:.2f}", goal(versus, 1.2))
        row("  with an idempotency key, against without", f"{us['keyed']:.1f} us", f"{keyed:.2f}", goal(keyed, 1.1))
        n = 1_000 if quick else 4_000
        batch = paired(folder, n, args.rounds, {k: runs[k] for k in ("raw", "contender", "service")}, batched=True)
        us = {name: statistics.median(t) * 1e6 for name, t in batch.items()}
        fire = ratio(batch, "service", "raw")
        label = f"{n * len(PATH):,} transitions in one transaction"
        row(f"floor: raw sqlite3, {label}", f"{us['raw']:.1f} us", "1.00", "")
        row("contender, the same in one transaction", f"{us['contender']:.1f} us",
            f"{ratio(batch, 'contender', 'raw'):.2f}", "")  # fmt: skip
        row(f"ClaimService.batch() of {label}", f"{us['service']:.1f} us", f"{fire:.2f}", goal(fire, 5.0))
        small, large = 10_000, 100_000 if quick else 1_000_000
        tick_small, open_small = tick_cost(folder, small, 100, 5)
        tick_large, open_large = tick_cost(folder, large, 100, 5)
        row(f"tick: 100 due among {small:,}", f"{tick_small * 1e3:.1f} ms", "1.00", "")
        grown = tick_large / tick_small
        row(f"tick: 100 due among {large:,}", f"{tick_large * 1e3:.1f} ms", f"{grown:.2f}", goal(grown, 2.0))
        row(f"opening a service on {small:,} claims", f"{open_small * 1e3:.1f} ms", "1.00", "")
        grown = open_large / open_small
        row(f"opening a service on {large:,} claims", f"{open_large * 1e3:.1f} ms", f"{grown:.2f}", goal(grown, 2.0))
        few, many = (2_000, 20_000) if quick else (10_000, 100_000)
        mem_few, mem_many = peak_memory(folder, few), peak_memory(folder, many)
        row(f"peak memory firing on {few:,} claims", f"{mem_few:.2f} MiB", "1.00", "")
        row(f"peak memory firing on {many:,} claims", f"{mem_many:.2f} MiB", f"{mem_many / mem_few:.2f}", "flat: ~1")


if __name__ == "__main__":
    main()
