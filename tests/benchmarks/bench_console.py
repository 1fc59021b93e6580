"""What a console's live figures cost on a large database: `stats()`, `flows()` over 30 days, both as the
console's live figures, and one claim's page as the console serves it (`get` + `history` + `available` for
three parties, and the page written), as times and as ratios to a plain scan of as many rows in the same run.

Run on demand (not part of the test suite):

    .venv/bin/python tests/benchmarks/bench_console.py --claims 1000000 --history 5000000
    .venv/bin/python tests/benchmarks/bench_console.py --claims 1000000 --history 5000000 \\
        --postgres postgresql://postgres@127.0.0.1:5432/test     # the run makes and drops a database of its own
    .venv/bin/python tests/benchmarks/bench_console.py --quick   # 20,000 claims, 100,000 history rows

`seed(target, claims, history)` fills a SQLite file or a PostgreSQL URL directly with SQL (a console
benchmark may reuse it): each claim walks one of the lifecycle's paths, run once through the engine per
path and gap pattern, then stamped out with its own ids and times (spread over the year before `NOW`),
so every claims row, its details and its history rows (seq 1..n, from/to and deadlines as the lifecycle
sets them) are what the service would have written; only the chain hashes are left out (no read here
checks them). About a tenth of the claims are open, their last change recent, a few of their deadlines
overdue. Absolute times on a shared machine mean little; read the ratios against the floor.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import re
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs

from claimstate import CLAIM_LIFECYCLE, ClaimService, Engine
from claimstate._console.live import figures_of
from claimstate._console.pages import page_of_claim
from claimstate._stats import STUCK_AFTER
from claimstate._store.rows import COLUMNS, INSERT_CLAIM, INSERT_RECORD, columns_of, linked, stored
from claimstate._time import to_iso

NOW = datetime(2026, 6, 1, tzinfo=UTC)  # the clock of the seeded database: its year of history ends here
YEAR = timedelta(days=365)
FINGERPRINT = CLAIM_LIFECYCLE.fingerprint()
EVIDENCE = {"evidence": [{"kind": "photo", "description": "the lid arrived cracked"}]}
DATA: dict[str, dict[str, Any]] = {
    "submit_evidence": EVIDENCE,
    "make_offer": {"kind": "partial_refund", "amount": "10.00"},
    "reject_offer": {"note": "too low"},
    "request_buyer_response": {"question": "can you send a photo?"},
    "request_supplier_response": {"question": "what is the tracking number?"},
    "respond": {"message": "here it is"},
    "escalate": {"note": "no answer"},
    "decide_full_refund": {"rationale": "damaged in transit"},
    "decide_partial_refund": {"amount": "10.00", "rationale": "cosmetic damage"},
    "decide_for_supplier": {"rationale": "as described"},
    "confirm_return_address": {"address": "1 Dock Rd, Shenzhen"},
    "ship_return": {"carrier": "DHL", "tracking_number": "JD0001", "shipping_cost": "7.50"},
    "withdraw": {"reason": "sorted it out"},
}
ROLES = {"buyer": "buyer:bTEMPLATE", "supplier": "supplier:sTEMPLATE", "agent": "agent:kim", "system": "system"}
FILING = {"order_id": "oTEMPLATE", "buyer_id": "bTEMPLATE", "supplier_id": "sTEMPLATE", "currency": "USD",
          "amount": "25.00", "reason": "arrived broken", "resolution": "full_refund"}  # fmt: skip
_E, _BR = ("submit_evidence", "buyer"), ("request_buyer_response", "agent")
_SR = ("request_supplier_response", "agent")
_OFFER, _ACCEPT, _CANCEL = ("make_offer", "supplier"), ("accept_offer", "buyer"), ("cancel_claim", "buyer")
_FULL, _ADDRESS = ("decide_full_refund", "agent"), ("confirm_return_address", "supplier")
_SHIP = ("ship_return", "buyer")
# The paths a claim walks after its filing (trigger, role; "system" fires a deadline when it falls due).
OPEN_PATHS: tuple[tuple[tuple[str, str], ...], ...] = (
    (),  # awaiting_evidence
    (_E,),  # in_mediation
    (_E, _OFFER),  # in_mediation, by a self loop
    (_E, _BR),  # awaiting_buyer_response
    (_E, _SR),  # awaiting_supplier_response
    (_E, _SR, ("respond", "supplier")),  # in_mediation
    (_E, ("escalate", "buyer")),  # under_review
    (_E, _OFFER, _ACCEPT, _CANCEL),  # cancellation_pending
    (_E, _FULL),  # awaiting_return
    (_E, _FULL, _ADDRESS, _SHIP),  # return_in_transit
)
CLOSED_PATHS: tuple[tuple[tuple[str, str], ...], ...] = (
    (("withdraw", "buyer"),),
    (("evidence_deadline", "system"),),
    (_E, ("withdraw", "buyer")),
    (_E, ("decide_for_supplier", "agent")),
    (_E, ("decide_partial_refund", "agent")),
    (_E, _BR, ("response_deadline", "system")),
    (_E, _FULL, ("return_deadline", "system")),
    (_E, _OFFER, _ACCEPT, _CANCEL, ("approve_cancellation", "agent")),
    (_E, _FULL, _ADDRESS, _SHIP, ("confirm_return_received", "supplier")),
    (_E, _BR, ("respond", "buyer"), ("escalate", "buyer"), ("decide_for_supplier", "agent")),
    (_E, _OFFER, ("reject_offer", "buyer"), _OFFER, ("reject_offer", "buyer"), ("escalate", "buyer"), _FULL,
     _ADDRESS, _SHIP, ("confirm_return_received", "supplier")),
)  # fmt: skip
OPEN_SHARE = 0.1  # the open claims among all: the rest closed over the year
OVERDUE_SHARE = 0.01  # of the open claims in a state with a deadline, those whose deadline passed unfired
VARIANTS = 40  # gap patterns run through the engine per path
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00")
_PLACES = re.compile(r"cTEMPLATE|oTEMPLATE|bTEMPLATE|sTEMPLATE|" + _TIME.pattern)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(microseconds=1)


class _Text:
    """A text of a template claim with its places (ids, times) cut out, to stamp a claim's own into."""

    __slots__ = ("parts", "places")

    def __init__(self, text: str, base: int) -> None:
        self.parts: list[str] = []
        self.places: list[str | int] = []  # a sentinel to replace, or a time as microseconds after `base`
        last = 0
        for found in _PLACES.finditer(text):
            self.parts.append(text[last : found.start()])
            word = found.group()
            self.places.append(word if "TEMPLATE" in word else _micros(datetime.fromisoformat(word)) - base)
            last = found.end()
        self.parts.append(text[last:])

    def stamp(self, words: dict[str, str], start: int) -> str:
        if not self.places:
            return self.parts[0]
        out = [self.parts[0]]
        for place, part in zip(self.places, self.parts[1:], strict=True):
            out.append(words[place] if isinstance(place, str) else _iso(start + place))
            out.append(part)
        return "".join(out)


def _iso(micros: int) -> str:
    return to_iso(_EPOCH + timedelta(microseconds=micros))


def _template(value: Any, base: int) -> Any:
    """A row's value: as it is, or (a text with places) as a _Text."""
    if isinstance(value, str) and _PLACES.search(value):
        return _Text(value, base)
    return value


@attrs.frozen
class Walk:
    """One path with one gap pattern, as the store writes it: the claims row and the history rows as
    templates, the span from filing to last change, and the final state's deadline window (None: none)."""

    claim: tuple[Any, ...]
    history: tuple[tuple[Any, ...], ...]
    times: tuple[int, ...]  # each history row's `at`, in microseconds after the filing
    window: int | None
    open: bool

    @property
    def span(self) -> int:
        """Microseconds from the filing to the last change."""
        return self.times[-1]


def walks(rng: random.Random) -> tuple[list[Walk], list[Walk]]:
    """Every path run through the engine with VARIANTS gap patterns: (open walks, closed walks)."""
    engine = Engine()
    made: tuple[list[Walk], list[Walk]] = ([], [])
    for is_open, paths in ((True, OPEN_PATHS), (False, CLOSED_PATHS)):
        for path in paths:
            for _ in range(VARIANTS):
                made[not is_open].append(_walk(engine, path, rng))
    return made


def _walk(engine: Engine, path: Sequence[tuple[str, str]], rng: random.Random) -> Walk:
    at = NOW - YEAR
    fired = engine.file_claim("cTEMPLATE", ROLES["buyer"], FILING, at)
    steps = [fired]
    for trigger, role in path:
        claim = steps[-1].claim
        if role == "system":
            assert claim.deadline is not None
            at = claim.deadline.due
        else:  # minutes to days, shorter than the shortest deadline (5 days), so no deadline passes first
            at += timedelta(minutes=min(4 * 24 * 60, max(1, round(rng.lognormvariate(5.5, 1.6)))))
        steps.append(engine.fire(claim, trigger, ROLES[role], DATA.get(trigger), at))
    last = steps[-1].claim
    final = engine.definition.state(last.state)
    base = _micros(NOW - YEAR)
    row = columns_of(last.to_dict(), final.final)
    history, times = [], []
    for step in steps:
        times.append(_micros(step.record.at) - _micros(NOW - YEAR))
        deadline_at = step.claim.to_dict()["deadline_at"]
        values = linked(step.record, deadline_at, FINGERPRINT)
        history.append(tuple(_template(v, base) for v in (*stored(values, None, None), None, FINGERPRINT)))
    window = None if final.deadline is None else final.deadline.window // timedelta(microseconds=1)
    return Walk(
        tuple(_template(v, base) for v in (*(row[c] for c in COLUMNS), FINGERPRINT)),
        tuple(history),
        tuple(times),
        window,
        not final.final,
    )


def _stamped(values: tuple[Any, ...], words: dict[str, str], start: int) -> tuple[Any, ...]:
    return tuple(v.stamp(words, start) if isinstance(v, _Text) else v for v in values)


def _tilt(closed: list[Walk], target: float, open_mean: float) -> list[float]:
    """Weights on the closed walks (by their history length L, as x**L) that bring the mean history length to
    `target` (as near as the paths allow)."""
    lengths = [len(w.history) for w in closed]
    wanted = (target - OPEN_SHARE * open_mean) / (1 - OPEN_SHARE)

    def mean(x: float) -> float:
        weights = [x**n for n in lengths]
        return sum(n * w for n, w in zip(lengths, weights, strict=True)) / sum(weights)

    low, high = 1e-3, 1e3
    for _ in range(100):
        middle = math.sqrt(low * high)
        low, high = (middle, high) if mean(middle) < wanted else (low, middle)
    return [low**n for n in lengths]


@attrs.frozen
class Plan:
    """Every claim to write, in filing order (its id's order, as claimstate's ULIDs sort): its walk and when it
    was filed (microseconds since the epoch)."""

    walks: tuple[Walk, ...]
    claims: tuple[tuple[int, int], ...]  # (filed at, index in walks)

    def words(self, rank: int) -> dict[str, str]:
        """The ids of the claim filed `rank`-th: claim, order, buyer (50,000 of them) and supplier (2,000)."""
        return {"cTEMPLATE": f"c{rank:09d}", "oTEMPLATE": f"o{rank:09d}", "bTEMPLATE": f"b{rank % 50_000:05d}",
                "sTEMPLATE": f"s{rank % 2_000:04d}"}  # fmt: skip

    def claim_rows(self) -> Iterator[tuple[Any, ...]]:
        """INSERT_CLAIM's columns of every claim, in id order (the order a service would have written them)."""
        for rank, (start, walk) in enumerate(self.claims):
            yield _stamped(self.walks[walk].claim, self.words(rank), start)

    def history_rows(self) -> Iterator[tuple[Any, ...]]:
        """INSERT_RECORD's columns (the hash NULL) of every history row, in time order: the order fires append
        them, so that the table lies on disk as a running service's does (a window of time is a stretch of
        it). One sort of whole numbers (time, claim, seq) packed into one, then each row made as it goes."""
        rank_bits = max(1, len(self.claims).bit_length())
        keys = [
            (start + at) << (rank_bits + 4) | rank << 4 | seq
            for rank, (start, walk) in enumerate(self.claims)
            for seq, at in enumerate(self.walks[walk].times)
        ]
        keys.sort()
        low = (1 << rank_bits) - 1
        for key in keys:
            rank, seq = key >> 4 & low, key & 15
            start, walk = self.claims[rank]
            yield _stamped(self.walks[walk].history[seq], self.words(rank), start)


def plan(claims: int, history: int, *, seed: int = 0) -> Plan:
    """`claims` claims whose histories hold about `history` rows in all: about OPEN_SHARE open, their last
    change recent (OVERDUE_SHARE of those in a state with a deadline past it, unfired), the others filed
    and closed over the year before NOW."""
    rng = random.Random(seed)
    opened, closed = walks(rng)
    assert all(len(w.history) <= 15 for w in (*opened, *closed))  # a seq fits the 4 bits history_rows packs it in
    open_mean = statistics.mean(len(w.history) for w in opened)
    weights = _tilt(closed, history / claims, open_mean)
    now, year = _micros(NOW), YEAR // timedelta(microseconds=1)
    day = timedelta(days=1) // timedelta(microseconds=1)
    every = (*opened, *closed)
    chosen: list[tuple[int, int]] = []
    for _ in range(claims):
        if rng.random() < OPEN_SHARE:
            walk = rng.randrange(len(opened))
            found = opened[walk]
            if found.window is None:  # no deadline: changed in the last 60 days (many stuck for over a day)
                last = now - rng.randrange(1, 60 * day)
            elif rng.random() < OVERDUE_SHARE:  # overdue: its deadline passed, and no tick fired it
                last = now - found.window - rng.randrange(1, 3 * day)
            else:
                last = now - rng.randrange(1, found.window)
            chosen.append((last - found.span, walk))
        else:
            walk = rng.choices(range(len(closed)), weights)[0]
            chosen.append((now - year + rng.randrange(0, year - closed[walk].span), len(opened) + walk))
    chosen.sort()
    return Plan(every, tuple(chosen))


@attrs.frozen
class Seeded:
    """What `seed` wrote: how many claims and history rows, how many open, and some open claims' ids."""

    claims: int
    history: int
    open: int
    sample: tuple[str, ...]


def seed(target: str | Path, claims: int, history: int, *, seed: int = 0) -> Seeded:
    """Make a claimstate database at `target` (a SQLite path or a PostgreSQL URL; it must hold no claims) and
    fill it with `claims` claims and about `history` history rows (see the module's doc and `plan`), fast:
    straight SQL, claims in id order and history rows in time order, as a running service lays them down,
    claimstate's secondary indexes dropped for the load and made again after from their own SQL."""
    ClaimService(target).close()
    made = plan(claims, history, seed=seed)
    if str(target).startswith("postgresql://"):
        _load_postgres(str(target), made)
    else:
        _load_sqlite(Path(target), made)
    open_ranks = [rank for rank, (_start, walk) in enumerate(made.claims) if made.walks[walk].open]
    picked = random.Random(seed).sample(open_ranks, min(1000, len(open_ranks)))
    return Seeded(
        len(made.claims),
        sum(len(made.walks[walk].history) for _start, walk in made.claims),
        len(open_ranks),
        tuple(made.words(rank)["cTEMPLATE"] for rank in picked),
    )


def _load_sqlite(path: Path, made: Plan) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = OFF")  # not through the WAL (set back below): the load is made once
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -1000000")
    conn.execute("BEGIN")
    indexes = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        " AND tbl_name IN ('claims', 'transitions')"
    ).fetchall()
    for name, _sql in indexes:
        conn.execute(f"DROP INDEX {name}")
    conn.executemany(INSERT_CLAIM, made.claim_rows())
    conn.executemany(INSERT_RECORD, made.history_rows())
    for _name, sql in indexes:
        conn.execute(sql)
    conn.execute("COMMIT")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.close()


def _load_postgres(url: str, made: Plan) -> None:
    import psycopg  # noqa: PLC0415  (an optional extra: the SQLite runs do without it)

    claim_columns = ", ".join((*COLUMNS, "definition"))
    record_columns = INSERT_RECORD.split("(", 1)[1].split(")", 1)[0]
    with psycopg.connect(url, autocommit=True) as conn:
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
            " AND tablename IN ('claims', 'transitions') AND indexname NOT LIKE '%\\_pkey'"
        ).fetchall()
        for name, _sql in indexes:
            conn.execute(f"DROP INDEX {name}")
        with conn.transaction():
            conn.execute("SET LOCAL session_replication_role = replica")  # no foreign key check per history row
            with conn.cursor().copy(f"COPY claims ({claim_columns}) FROM STDIN") as copy:
                for row in made.claim_rows():
                    copy.write_row(row)
            with conn.cursor().copy(f"COPY transitions ({record_columns}) FROM STDIN") as copy:
                for row in made.history_rows():
                    copy.write_row(row)
        conn.execute("SET maintenance_work_mem = '1GB'")
        for _name, sql in indexes:  # a partitioned table's own index reads ON ONLY: made again on every partition
            conn.execute(sql.replace(" ON ONLY ", " ON ", 1))
        if conn.execute("SELECT to_regclass('open_orders')").fetchone() != (None,):  # partitioned by claim id:
            conn.execute(  # the rules its triggers keep, which the load (as a replica) did not run
                "INSERT INTO open_orders (order_id, claim_id) SELECT order_id, id FROM claims WHERE closed = 0"
            )
            conn.execute(
                "INSERT INTO filing_keys (idempotency_key, claim_id) SELECT idempotency_key, claim_id"
                " FROM transitions WHERE seq = 1 AND idempotency_key IS NOT NULL"
            )
        conn.execute("VACUUM ANALYZE claims")
        conn.execute("VACUUM ANALYZE transitions")


# --- measuring ----------------------------------------------------------------------------------------

Figures = list[tuple[str, float, float | None, float | None]]  # (what, seconds, ratio to its floor, goal)


def median_time(call: Callable[[], object], rounds: int) -> float:
    """The median of `rounds` timed calls, after one untimed call (the first read warms the caches)."""
    call()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class Floor:
    """Plain reads of as many rows as each figure reads, on a connection of the benchmark's own."""

    def __init__(self, target: str) -> None:
        self.postgres = target.startswith("postgresql://")
        if self.postgres:
            import psycopg  # noqa: PLC0415

            self.conn: Any = psycopg.connect(target, autocommit=True)
        else:  # read directly, as the read-only store reads a file no writer has open (no -wal made)
            self.conn = sqlite3.connect(f"file:{target}?mode=ro&immutable=1", uri=True)

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(self.conn.execute(sql.replace("?", "%s") if self.postgres else sql, params).fetchall())

    def close(self) -> None:
        self.conn.close()


def measure(target: str, seeded: Seeded, rounds: int) -> Figures:
    """(what, seconds, ratio to its floor or None for a floor, goal in seconds or None) per figure."""
    since = NOW - timedelta(days=30)
    window = (to_iso(since), to_iso(NOW))
    floor = Floor(target)
    found: Figures = []
    pages = iter(seeded.sample * rounds * 2)
    try:
        with ClaimService(target, read_only=True, clock=lambda: NOW) as service:
            base = median_time(lambda: floor.all("SELECT state, count(*) FROM claims GROUP BY state"), rounds)
            found.append(("floor: claims counted per state (GROUP BY, every claim)", base, None, None))
            took = median_time(service.stats, rounds)
            found.append(("stats()", took, took / base, 1.0))
            base = median_time(
                lambda: floor.all("SELECT count(trigger) FROM transitions WHERE at >= ? AND at < ?", window), rounds
            )
            found.append(("floor: the 30 days' history rows read (count(trigger), index on at)", base, None, None))
            took = median_time(lambda: service.flows(since), rounds)
            found.append(("flows(since=now - 30 days)", took, took / base, 3.0))

            def raw_page() -> None:
                claim_id = next(pages)
                floor.all("SELECT details FROM claims WHERE id = ?", (claim_id,))
                floor.all("SELECT * FROM transitions WHERE claim_id = ? ORDER BY seq", (claim_id,))

            base = median_time(raw_page, rounds * 10)
            found.append(("floor: a claim's row and history rows, raw SQL", base, None, None))
            took = median_time(lambda: page_of_claim(service, next(pages)), rounds * 10)
            found.append(("the console's claim page (read and written, as served)", took, took / base, 0.1))
            took = median_time(lambda: figures_of(service, days=30, stuck_after=STUCK_AFTER, claims="c"), rounds)
            found.append(("the console's live figures (stats + 30 days of flows)", took, None, 4.0))
            took = median_time(lambda: service.list_claims(due_by=NOW), rounds)
            found.append(("list_claims(due_by=now): the overdue, first 100", took, None, None))
            week = NOW - timedelta(days=7)
            took = median_time(lambda: service.list_claims(state="in_mediation", changed_before=week), rounds)
            found.append(("list_claims(state=in_mediation, changed_before=now - 7 days)", took, None, None))
    finally:
        floor.close()
    return found


def report(name: str, seeded: Seeded, seconds: float, found: Figures) -> None:
    print(f"\n{name}: {seeded.claims:,} claims ({seeded.open:,} open), {seeded.history:,} history rows,"
          f" seeded in {seconds:.0f} s")  # fmt: skip
    print("| figure | median | ratio to floor | goal |")
    print("|---|---|---|---|")
    for what, took, ratio, goal in found:
        shown = f"{took * 1e3:.1f} ms" if took < 1 else f"{took:.2f} s"
        verdict = "" if goal is None else f"<= {goal * 1e3:.0f} ms: {'met' if took <= goal else 'NOT met'}"
        against = f"{ratio:.2f}" if ratio is not None else "1.00" if what.startswith("floor") else "-"
        print(f"| {what} | {shown} | {against} | {verdict} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", type=int, default=1_000_000)
    parser.add_argument("--history", type=int, default=5_000_000, help="history rows in all (about)")
    parser.add_argument("--postgres", metavar="URL", help="also on this PostgreSQL server (a database of its own)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per figure (default 5)")
    parser.add_argument("--quick", action="store_true", help="20,000 claims and 100,000 history rows")
    args = parser.parse_args()
    claims, history = (20_000, 100_000) if args.quick else (args.claims, args.history)
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "claims.db")
        start = time.perf_counter()
        seeded = seed(path, claims, history)
        seconds = time.perf_counter() - start
        report(f"SQLite ({os.path.basename(path)})", seeded, seconds, measure(path, seeded, args.rounds))
    if args.postgres:
        from bench_postgres import database  # noqa: PLC0415 (psycopg: only with --postgres)

        with database(args.postgres) as url:
            start = time.perf_counter()
            seeded = seed(url, claims, history)
            seconds = time.perf_counter() - start
            report("PostgreSQL", seeded, seconds, measure(url, seeded, args.rounds))


if __name__ == "__main__":
    main()
