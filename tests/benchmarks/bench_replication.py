"""What replication costs a fire, and how long a failover keeps a service from firing.

Run on demand (not part of the test suite); it starts its own throw-away clusters with Debian's PostgreSQL
tools (tests/clusters/cluster.py), so no server needs to be running:

    .venv/bin/python tests/benchmarks/bench_replication.py            # the figures on the docs' performance page
    .venv/bin/python tests/benchmarks/bench_replication.py --quick    # a smaller, faster run

1. A fire's cost by how the primary commits, on one cluster, in one run, rounds interleaved so the
   machine's noise falls on each alike: `synchronous_commit = local` (the floor: nothing waits for the
   standby), an asynchronous standby (`synchronous_standby_names` empty), a synchronous standby (`on`: the
   commit waits until the standby has the WAL on disk) and `remote_apply` (until it has applied it, so
   reads there see it). One client fires evidence on claims of its own, one fire per transaction.
2. The ceiling: fires per second of 1, 2 and 4 worker processes, committing locally and with the
   synchronous standby.
3. Failover: a service fires in a loop through the multi-host URL; the primary is SIGKILLed and the
   standby promoted (`pg_ctl promote`, as an operator's tool would) at once, or after an outage of 5 s
   (a failover manager's detection time); timed from the kill: the promotion's end, and the first fire
   acknowledged by the new primary. A new cluster per round.
Absolute times on a shared machine mean little; read the ratios.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

from bench_postgres import throughput
from bench_store import FILING as WALKER_FILING
from bench_store import T0 as WALKED_AT

from claimstate import ClaimService, StorageError

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "clusters")]
from cluster import Cluster, cluster  # noqa: E402  (tests/clusters: the throw-away clusters)
from helpers import EVIDENCE, filing  # noqa: E402  (tests/: the shared test data)

MODES = {  # how the primary commits: the settings applied (ALTER SYSTEM, then a reload) before each round
    "local": {"synchronous_standby_names": "standby", "synchronous_commit": "local"},
    "async standby": {"synchronous_standby_names": "", "synchronous_commit": "on"},
    "sync standby (on)": {"synchronous_standby_names": "standby", "synchronous_commit": "on"},
    "sync standby (remote_apply)": {"synchronous_standby_names": "standby", "synchronous_commit": "remote_apply"},
}


def _set(made: Cluster, settings: dict[str, str]) -> None:
    for name, value in settings.items():
        made.primary.sql(f"ALTER SYSTEM SET {name} = '{value}'")
    made.primary.sql("SELECT pg_reload_conf()")
    deadline = time.monotonic() + 30
    while made.primary.sql("SHOW synchronous_commit") != settings["synchronous_commit"]:
        assert time.monotonic() < deadline
        time.sleep(0.01)


def fire_cost(fires: int, rounds: int) -> dict[str, float]:
    """The median seconds per fire of each mode, over `rounds` interleaved rounds of `fires` fires."""
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    with cluster(standby=True, synchronous=True) as made, ClaimService(made.primary.url()) as service:
        claims = [service.file_claim(filing(order_id=f"b-{n}")).claim.id for n in range(fires)]
        for claim_id in claims:  # the buyer's first evidence moves each claim to mediation
            service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE})
        for _round in range(rounds):
            for mode, settings in MODES.items():
                _set(made, settings)
                start = time.perf_counter()
                for claim_id in claims:
                    service.fire(claim_id, "submit_evidence", "supplier:acme", {"evidence": EVIDENCE})
                times[mode].append((time.perf_counter() - start) / fires)
    return {mode: statistics.median(found) for mode, found in times.items()}


def ceiling(claims: int) -> dict[str, dict[int, float]]:
    """Fires per second of 1, 2 and 4 worker processes (bench_postgres.throughput, each walking claims of its
    own through bench_store.PATH), committing locally and with the synchronous standby, alternating."""
    found: dict[str, dict[int, float]] = {}
    with cluster(standby=True, synchronous=True) as made, ClaimService(made.primary.url()) as service:
        for workers in (1, 2, 4):
            for mode in ("local", "sync standby (on)"):
                _set(made, MODES[mode])
                with service.batch():
                    ids = [
                        service.file_claim(
                            {**WALKER_FILING, "order_id": f"t-{mode}-{workers}-{n}"}, now=WALKED_AT
                        ).claim.id
                        for n in range(claims)
                    ]
                found.setdefault(mode, {})[workers] = throughput(made.primary.url(), ids, workers)
    return found


def failover(rounds: int, outage: float) -> list[tuple[float, float, int]]:
    """Per round, promoting `outage` seconds after the kill: seconds from the kill to the promotion's end and
    to the first fire acknowledged after it, and how many calls failed (retryable) in between."""
    return [_failover(outage) for _round in range(rounds)]


def _failover(outage: float) -> tuple[float, float, int]:
    with (
        cluster(standby=True, synchronous=True) as made,
        ClaimService(made.both_url(connect_timeout=1), busy_timeout=1.0) as service,
    ):
        claims = [service.file_claim(filing(order_id=f"f-{n}")).claim.id for n in range(50)]
        for claim in claims:  # in mediation, where either party's evidence is taken (100 a claim at most)
            service.fire(claim, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE})
        killed, acknowledged, failed = threading.Event(), list[float](), [0]

        def fire() -> None:
            number = 0
            while not acknowledged:
                number += 1
                try:
                    service.fire(claims[number % len(claims)], "submit_evidence", "supplier:acme",
                                 {"evidence": EVIDENCE}, idempotency_key=f"k-{number}")  # fmt: skip
                except StorageError as error:
                    if not error.retryable:
                        raise
                    failed[0] += 1
                    number -= 1  # the same call again, with the same key
                    time.sleep(0.01)
                    continue
                if killed.is_set():
                    acknowledged.append(time.perf_counter())

        firing = threading.Thread(target=fire)
        firing.start()
        time.sleep(0.5)  # firing at its pace
        start = time.perf_counter()
        made.primary.kill()
        killed.set()
        time.sleep(outage)
        made.standby.promote()  # type: ignore[union-attr]
        promoted = time.perf_counter()
        firing.join(timeout=120)
        return promoted - start, acknowledged[0] - start, failed[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer fires and rounds")
    parser.add_argument("--failover-only", action="store_true", help="only the failover rounds")
    parser.add_argument("--no-failover", action="store_true", help="no failover rounds")
    args = parser.parse_args()
    fires, rounds, failovers = (200, 3, 2) if args.quick else (1000, 5, 5)
    started = time.perf_counter()
    if not args.failover_only:
        cost = fire_cost(fires, rounds)
        floor = cost["local"]
        print(f"fire cost by commit mode: {fires} fires per round, median of {rounds} interleaved rounds")
        print(f"{'mode':<30} {'ms/fire':>8} {'/ local':>8}")
        for mode, seconds in cost.items():
            print(f"{mode:<30} {seconds * 1000:>8.3f} {seconds / floor:>8.2f}")
        most = ceiling(400 if args.quick else 1600)
        print("\nfires/s by worker processes (each walking claims of its own), same cluster:")
        print(f"{'mode':<30} {'1 worker':>9} {'2 workers':>10} {'4 workers':>10}")
        for mode, rates in most.items():
            print(f"{mode:<30} {rates[1]:>9,.0f} {rates[2]:>10,.0f} {rates[4]:>10,.0f}")
    for outage in () if args.no_failover else (0.0, 5.0):
        times = failover(failovers, outage)
        print(f"\nfailover, {failovers} rounds (kill the primary, promote the standby {outage:g} s later):")
        print(
            f"{'round':<6} {'promoted (s)':>13} {'first fire (s)':>15} {'after promotion (s)':>20} {'failed calls':>13}"
        )
        for number, (promoted, first, failed) in enumerate(times, 1):
            print(f"{number:<6} {promoted:>13.3f} {first:>15.3f} {first - promoted:>20.3f} {failed:>13}")
        print(
            f"median: promoted {statistics.median(t[0] for t in times):.3f} s, first fire"
            f" {statistics.median(t[1] for t in times):.3f} s after the kill,"
            f" {statistics.median(t[1] - t[0] for t in times):.3f} s after the promotion"
        )
    print(f"\nthe whole run took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
