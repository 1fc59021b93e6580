"""Losing the primary: a PostgreSQL primary with a synchronous standby, SIGKILLed under load, the standby
promoted, and the same services carrying on through their multi-host URL, nothing acknowledged lost.

The children (tests/clusters/_failover_child.py) are four writers firing with idempotency keys, two tick
runners and a consumer. They are never restarted: what carries them over is libpq trying each host of the
URL for one that takes writes (`target_session_attrs=read-write`) and the pool replacing broken
connections. No sleep decides an outcome: the parent waits for acknowledgements, and checks the new
primary against what the children printed.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cluster import Cluster, cluster
from helpers import T0, ChildProcess, child_processes, filing, pump

from claimstate import ClaimService, StorageError

pytestmark = pytest.mark.slow

CHILD = str(Path(__file__).with_name("_failover_child.py"))
DUE = T0 + timedelta(days=8)  # every evidence deadline of a claim filed at T0 has come
LATER = T0 + timedelta(days=30)  # the writers' claims: no deadline of theirs is due at DUE
WRITERS, TICKERS, DUE_CLAIMS = 4, 2, 1500
BEFORE, AFTER = 15, 15  # acknowledgements each writer gives before the kill, and after the promotion


@pytest.fixture(scope="module")
def replicated() -> Any:
    with cluster(standby=True, synchronous=True) as made:
        yield made


def _count(children: list[ChildProcess], key: str) -> list[int]:
    return [sum(1 for line in child.lines if key in line) for child in children]


def test_a_killed_primary_loses_no_acknowledged_transition_and_the_services_carry_on(
    replicated: Cluster, tmp_path: Path
) -> None:
    url = replicated.both_url(connect_timeout=2)
    with ClaimService(url) as service, service.batch():
        waiting = [service.file_claim(filing(order_id=f"d-{n}"), now=T0).claim.id for n in range(DUE_CLAIMS)]
    stop = tmp_path / "stop"
    common = {"url": url, "stop": str(stop), "busy_timeout": 3.0}
    specs = [
        *(("writer", {**common, "worker": w, "at": LATER.isoformat()}) for w in range(WRITERS)),
        *(
            ("ticker", {**common, "worker": w, "due": DUE.isoformat(), "every": 0.05, "limit": 5})
            for w in range(TICKERS)
        ),
        ("consumer", {**common, "worker": 0, "name": "audit"}),
    ]
    with child_processes() as children:
        for number, (mode, args) in enumerate(specs):
            children.append(ChildProcess([sys.executable, CHILD, mode, json.dumps(args)], tmp_path / f"{number}.err"))
        writers = children[:WRITERS]
        deadline = time.monotonic() + 150
        pump(children, deadline, lambda: all(any("ready" in line for line in c.lines) for c in children))
        pump(children, deadline, lambda: min(_count(writers, "ack")) >= BEFORE)

        ticked_before = int(
            replicated.primary.sql("SELECT count(*) FROM transitions WHERE trigger = 'evidence_deadline'")
        )
        killed = time.monotonic()
        replicated.primary.kill()
        acked_at_kill = sum(_count(writers, "ack"))
        time.sleep(0.5)  # the outage an operator's failover takes at least; what it changes is only how long
        replicated.standby.promote()  # type: ignore[union-attr]
        promoted, promoted_at = time.monotonic(), time.time()
        ticked_at_promotion = int(
            replicated.standby.sql("SELECT count(*) FROM transitions WHERE trigger = 'evidence_deadline'")  # type: ignore[union-attr]
        )
        at_promotion = _count(writers, "ack")
        pump(
            children,
            deadline,
            lambda: all(n >= m + AFTER for n, m in zip(_count(writers, "ack"), at_promotion, strict=True)),
        )
        stop.touch()
        for child in children:
            assert child.finish(deadline) == 0, child.errors()

    acks = [line for child in writers for line in child.lines if "ack" in line]
    acked = Counter(tuple(line["ack"]) for line in acks)
    retried = [line for line in acks if line["retries"]]
    errors: Counter[str] = Counter()
    for child in writers:
        errors.update(child.lines[-1]["errors"])
    ticked = sum(child.lines[-1]["fired"] for child in children[WRITERS : WRITERS + TICKERS])
    handled = [line for line in children[-1].lines if "event" in line]
    delivered = Counter(tuple(line["event"]) for line in handled)

    primary = replicated.standby
    assert primary is not None and primary.sql("SELECT pg_is_in_recovery()") == "f"
    with ClaimService(url) as service:
        assert service.path.endswith(f"127.0.0.1:{replicated.primary.port},127.0.0.1:{primary.port}/postgres")
        rows = [tuple(row) for row in _rows(primary)]
        stored = Counter((claim_id, seq, trigger) for claim_id, seq, trigger, _key in rows)
        keys = Counter(key for *_, key in rows if key is not None)

        # every acknowledged transition is on the new primary exactly once, under its key; the writers'
        # claims hold nothing else (every call a writer began was retried until acknowledged)
        assert acked and max(acked.values()) == 1
        assert all(stored[row] == 1 for row in acked)
        assert max(keys.values()) == 1 and set(keys) == {line["key"] for line in acks}
        writers_claims = {claim_id for claim_id, _seq, trigger in acked if trigger == "file_claim"}
        assert {row for row in stored if row[0] in writers_claims} == set(acked)
        assert retried, "no call was caught by the failover: the kill came between calls"
        assert sum(errors.values()) >= len(retried)

        # versions contiguous; each deadline fired once at most, and the rest fire now
        seqs: dict[str, list[int]] = {}
        for claim_id, seq, _trigger in sorted(stored):
            seqs.setdefault(claim_id, []).append(seq)
        assert all(found == list(range(1, len(found) + 1)) for found in seqs.values())
        deadlines = [row for row in stored if row[2] == "evidence_deadline"]
        assert {row[1] for row in deadlines} == {2} and len({row[0] for row in deadlines}) == len(deadlines)
        assert len(deadlines) >= ticked  # acknowledged ticks are there (and any whose answer the kill cut off)
        assert 0 < ticked_before <= ticked_at_promotion < len(deadlines)  # ticking before the kill, and after promotion
        late = service.tick(DUE, limit=DUE_CLAIMS)
        assert len(deadlines) + len(late) == DUE_CLAIMS
        assert [len(service.history(claim_id)) for claim_id in waiting] == [2] * DUE_CLAIMS

        # the feed equals the history, and the consumer group resumes with nothing missed
        feed = []
        while page := service.feed(after=feed[-1].position if feed else 0, limit=1000):
            feed += page
        history = {(claim_id, seq) for claim_id, seq, _trigger, _key in _rows(primary)}
        assert Counter((e.claim_id, e.seq) for e in feed) == Counter(history)
        rest: list[tuple[str, int]] = []
        while events := service.events("audit", limit=1000, worker="drain"):
            rest += [(e.claim_id, e.seq) for e in events]
            service.ack("audit", events[-1], worker="drain")
        assert set(delivered) | set(rest) == history
        assert any(line["at"] > promoted_at for line in handled), "the consumer handled nothing after the promotion"
        assert service.verify() == []

    print(  # the run in numbers, shown with -s
        f"\nfailover: {len(acked)} acknowledged by {WRITERS} writers ({acked_at_kill} before the kill),"
        f" {len(retried)} after retrying ({dict(errors)}); {ticked} deadlines fired by {TICKERS} tick runners"
        f" during the run ({ticked_before} before the kill, {len(deadlines) - ticked_at_promotion} after the"
        f" promotion), {len(late)} after;"
        f" {sum(delivered.values())} events handled by the consumer"
        f" ({sum(line['at'] > promoted_at for line in handled)} after the promotion),"
        f" {len(rest)} left for the drain; killed to promoted {promoted - killed:.2f} s"
    )


def _rows(server: Any) -> list[list[Any]]:
    """Every history row on `server`: (claim id, seq, trigger, idempotency key)."""
    out = server.sql("SELECT claim_id, seq, trigger, coalesce(idempotency_key, '') FROM transitions")
    return [[c, int(s), t, k or None] for c, s, t, k in (line.split("|") for line in out.splitlines())]


@pytest.mark.parametrize("pool_size", [1, 10])
def test_while_no_server_takes_writes_a_call_is_a_retryable_error_saying_so_and_then_it_works(pool_size: int) -> None:
    """Between the kill and the promotion no host of the URL takes writes: each call fails within its busy
    timeout with a retryable StorageError that says so (not "the pool is busy", even when the one connection
    the pool may have is the one it is trying to make again), changing nothing; once the
    standby is promoted, calls work again on the same service, with no restart."""
    with (
        cluster(standby=True, synchronous=True) as made,
        ClaimService(made.both_url(connect_timeout=1), busy_timeout=1.0, pool_size=pool_size) as service,
    ):
        claim = service.file_claim(filing(order_id="o-1")).claim.id
        made.primary.kill()
        for _ in range(2):
            with pytest.raises(StorageError) as caught:
                service.fire(claim, "withdraw", "buyer:alice", {"reason": "never mind"}, idempotency_key="w-1")
            assert caught.value.retryable
            assert "none could be made" in str(caught.value) or "lost the connection" in str(caught.value)
        assert "none could be made" in str(caught.value)
        made.standby.promote()  # type: ignore[union-attr]
        deadline = time.monotonic() + 30
        while True:
            try:
                fired = service.fire(claim, "withdraw", "buyer:alice", {"reason": "never mind"}, idempotency_key="w-1")
            except StorageError as error:
                if not error.retryable or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
            else:
                break
        assert fired.claim.state == "withdrawn" and fired.record.seq == 2
        assert [r.trigger for r in service.history(claim)] == ["file_claim", "withdraw"]
