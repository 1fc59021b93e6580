"""The transition feed across processes: consumers and writers SIGKILLed, a consumer group, the CLI follower.

Every test runs on both backends (`store_target`). Child processes run tests/processes/_events_child.py, or the
`claimstate` command line itself. Every wait on a child is bounded by a deadline, and no sleep decides an
outcome: children print each event as they handle it and each transaction once it committed, the parent
kills them at a point they reported, then reads the database (through the service, and its tables directly).
"""

from __future__ import annotations

import fcntl
import itertools
import json
import select
import signal
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from contextlib import suppress
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from _events_child import STEPS
from helpers import EVIDENCE, ChildLines, ChildProcess, child_processes, filing, pump, query

from claimstate import ClaimService, Event
from claimstate._feed import LANES, lane_of

pytestmark = pytest.mark.slow

CHILD = str(Path(__file__).with_name("_events_child.py"))
LEASE = 0.5  # seconds: short, so a dead worker's lane comes back within the test
Key = tuple[str, int]  # (claim id, seq): one transition, and its event


# --- helpers -------------------------------------------------------------------------------------------


class _Child(ChildProcess):
    """A child process (of _events_child.py, or any command), told what to do on its stdin."""

    def say(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{line}\n".encode())
        self.proc.stdin.flush()

    def handled(self) -> list[list[Any]]:
        """[claim id, seq, lane, lane seq] of each event it printed as handled, in order."""
        return [line["handled"] for line in self.lines if "handled" in line]


def _start(started: list[_Child], tmp_path: Path, mode: str, **args: Any) -> _Child:
    child = _Child([sys.executable, CHILD, mode, json.dumps(args)], tmp_path / f"stderr-{mode}-{len(started)}")
    started.append(child)
    return child


def _cli(started: list[_Child], tmp_path: Path, target: str, *args: str) -> _Child:
    """`claimstate --db TARGET ARGS...` as a process of its own (`python -m claimstate`)."""
    argv = [sys.executable, "-m", "claimstate", "--db", target, *args]
    child = _Child(argv, tmp_path / f"stderr-cli-{len(started)}")
    started.append(child)
    return child


def _pump_checking(
    children: Sequence[ChildLines], deadline: float, until: Callable[[], bool], progress: Callable[[], str]
) -> None:
    """Like `pump`, but `until` is also checked every 50 ms while the children are quiet: what it waits for is
    in the database, and a worker's acknowledgement comes after the last line it prints. A failure says
    `progress()`."""
    while not until():
        if time.monotonic() > deadline:
            pytest.fail(f"not done in time ({progress()}): {[c.last_words() for c in children]}")
        ready, _, _ = select.select([c.fd for c in children if not c.eof], [], [], 0.05)
        for child in children:
            if child.fd in ready:
                child.read()


def _keys(events: Sequence[Event]) -> list[Key]:
    return [(e.claim_id, e.seq) for e in events]


def _everything(service: ClaimService) -> list[Event]:
    """Every retained event, in position order."""
    events = service.feed(limit=1_000_000)
    assert len(events) < 1_000_000
    return events


def _in_lane(lane: int, count: int, prefix: str) -> list[str]:
    """The first `count` claim ids PREFIX-n that hash to `lane`."""
    return list(itertools.islice((i for n in itertools.count() if lane_of(i := f"{prefix}-{n}") == lane), count))


def _seqs_in_time_order(records: Sequence[dict[str, Any]]) -> dict[str, list[int]]:
    """Each claim's seqs in the order their handling began."""
    by_claim: dict[str, list[int]] = defaultdict(list)
    for record in sorted(records, key=lambda r: r["start"]):
        by_claim[record["handled"][0]].append(record["handled"][1])
    return by_claim


def _lanes_are_exclusive(records: Sequence[dict[str, Any]]) -> None:
    """Within each lane, no handling began before every earlier-begun one had ended: whatever the workers,
    one lane (so one claim) was handled by one worker at a time."""
    by_lane: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_lane[record["handled"][2]].append(record)
    for lane, handled in by_lane.items():
        handled.sort(key=lambda r: r["start"])
        for before, after in itertools.pairwise(handled):
            assert after["start"] >= before["end"], (lane, before, after)


# --- 1. a consumer killed between handling and acknowledging ------------------------------------------------


def test_a_consumer_killed_before_acknowledging_gets_its_events_again_and_its_acks_hold(
    store_target: str, tmp_path: Path
) -> None:
    """A process takes one lane's nine events for "payments", handles all of them, acknowledges the first four,
    and is SIGKILLed before acknowledging the rest. The four stay acknowledged; while its lease runs, another
    worker is given other lanes, not that one; once it has run out, a new process gets exactly the five it
    left, in lane order, and every other event once. Nothing is lost, and no acknowledged event comes back."""
    lane = 5
    with ClaimService(store_target) as service, child_processes(_Child) as started:
        kill_lane = _in_lane(lane, 3, "pay")
        others = [_in_lane(other, 1, "other")[0] for other in (1, 9, 14)]
        for n, claim_id in enumerate(kill_lane):  # the oldest events are this lane's: a worker takes it first
            service.file_claim(filing(order_id=f"o-{n}"), claim_id=claim_id)
        for claim_id in kill_lane:
            service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE})
            service.fire(claim_id, "make_offer", "supplier:acme", {"kind": "partial_refund", "amount": "10.00"})
        for n, claim_id in enumerate(others):
            service.file_claim(filing(order_id=f"p-{n}"), claim_id=claim_id)
            service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE})
        everything = _everything(service)
        in_lane = [[e.claim_id, e.seq, e.lane, e.lane_seq] for e in everything if e.lane == lane]
        assert len(everything) == 15 and len(in_lane) == 9 and everything[0].lane == lane

        first = _start(started, tmp_path, "take", target=store_target, consumer="payments", lease=LEASE, acked=4)
        deadline = time.monotonic() + 60
        pump([first], deadline, lambda: any("holding" in line for line in first.lines))
        assert first.handled() == in_lane  # one delivery: the whole lane, in lane order
        assert [line["acked"] for line in first.lines if "acked" in line] == [in_lane[3]]
        first.kill()
        acked = {(c, s) for c, s, *_ in first.handled()[:4]}

        # the acknowledgement is durable, and nothing after it was recorded as handled
        assert set(_keys(service.feed("payments", limit=100))) == set(_keys(everything)) - acked
        # as of a moment its lease certainly held, another worker is given other lanes only
        taking_at = datetime.fromisoformat(first.lines[0]["taking_at"])
        with ClaimService(store_target, clock=lambda: taking_at) as meanwhile:
            given = meanwhile.events("payments", lease=LEASE)
        assert given and lane not in {e.lane for e in given}

        second = _start(started, tmp_path, "drain", target=store_target, consumer="payments", limit=100, lease=30.0)
        assert second.finish(deadline) == 0, second.errors()
        again = second.handled()
        assert len(again) == len({(c, s) for c, s, *_ in again})  # one worker left: each event once
        assert {(c, s) for c, s, *_ in again} == set(_keys(everything)) - acked  # nothing lost, no ack undone
        assert [h for h in again if h[2] == lane] == first.handled()[4:]  # what it left, as it was delivered
        for claim_seqs in _seqs_in_time_order([{"handled": h, "start": n} for n, h in enumerate(again)]).values():
            assert claim_seqs == sorted(claim_seqs)
        assert service.feed("payments") == []


# --- 2. a writer killed in the middle of a transaction ------------------------------------------------------


@pytest.mark.parametrize("how", ["holding_a_batch", "mid_stream"])
def test_a_writer_killed_mid_transaction_leaves_events_and_history_equal(
    store_target: str, backend: str, tmp_path: Path, how: str
) -> None:
    """A process writes batches (filings and fires across several claims and lanes) and single fires, and is
    SIGKILLed: inside its sixth batch with seven writes made and the transaction open ("holding_a_batch"), or
    wherever it is after 25 commits ("mid_stream"). Afterwards the events table holds exactly the transitions
    table's (claim id, seq) pairs, field for field; every committed write is there and nothing of the killed
    transaction; each lane's numbers still run 1..n with no gap, and go on from n; verify is clean; and a
    consumer reading the feed from the start gets each stored transition exactly once."""
    held = how == "holding_a_batch"
    with child_processes(_Child) as started:
        args: dict[str, Any] = {"target": store_target, "seed": 7, "prefix": "w"}
        writer = _start(started, tmp_path, "stream", **args, **({"hold": 6, "hold_after": 7} if held else {}))
        deadline = time.monotonic() + 60
        if held:
            pump([writer], deadline, lambda: any("holding" in line for line in writer.lines))
        else:
            pump([writer], deadline, lambda: sum("committed" in line for line in writer.lines) >= 25)
        assert writer.proc.poll() is None, writer.errors()
        writer.kill()
        pump([writer], deadline, lambda: False)  # lines printed before the kill are commits too
    committed = {(c, s) for line in writer.lines for c, s in line.get("committed", ())}
    holding = {(c, s) for line in writer.lines for c, s in line.get("holding", ())}
    assert len(committed) >= 5 and (len(holding) == 7 if held else not holding)

    columns = "claim_id, seq, trigger, from_state, to_state, actor, at"
    history = query(store_target, f"SELECT {columns} FROM transitions")
    events = query(store_target, f"SELECT {columns}, lane, lane_seq FROM events")
    assert Counter(row[:7] for row in events) == Counter(history)  # the same rows, each once
    stored = {(row[0], row[1]) for row in history}
    assert committed <= stored
    if held:
        assert not holding & stored  # the open batch left nothing behind
        assert stored == committed
    else:
        assert len(stored - committed) <= 15  # at most the one transaction in flight (a batch is 15 writes at most)

    counts = Counter(row[7] for row in events)
    for lane in range(LANES):
        assert sorted(row[8] for row in events if row[7] == lane) == list(range(1, counts[lane] + 1)), lane
    assert all(lane_of(row[0]) == row[7] for row in events)
    if backend == "postgres":  # where writers run at once, a counter row per lane gives the numbers out
        assert dict(query(store_target, "SELECT lane, last FROM lanes")) == dict(counts)

    with ClaimService(store_target) as service:
        assert service.verify() == []
        # every lane takes new events after the kill, numbered on from where it was, with no gap
        for lane in range(LANES):
            (claim_id,) = _in_lane(lane, 1, "after")
            service.file_claim(filing(order_id=f"after-{lane}"), claim_id=claim_id)
        new = [e for e in _everything(service) if e.claim_id.startswith("after-")]
        assert sorted((e.lane, e.lane_seq) for e in new) == [(lane, counts[lane] + 1) for lane in range(LANES)]
        read: list[Key] = []
        while batch := service.events("audit", limit=50):
            read += _keys(batch)
            service.ack("audit", batch[-1])
        assert len(read) == len(set(read))
        assert set(read) == stored | set(_keys(new))
        assert service.verify() == []


# --- 3. a consumer group of worker processes ------------------------------------------------------------------


def _group_size(backend: str) -> int:
    """Claims to seed: each makes five events. PostgreSQL takes the 10,000 events the feed is specified for;
    SQLite, with one writer at a time, a tenth of them."""
    return 2_000 if backend == "postgres" else 200


def test_a_consumer_group_of_three_processes_handles_every_event_once_one_lane_at_a_time(
    store_target: str, backend: str, tmp_path: Path
) -> None:
    """Three worker processes consume "warehouse" with `ClaimService.consume` while a fourth writes the events
    (10,000 on PostgreSQL: 2,000 claims, each filed and walked four steps, in batches of 50 claims). Each
    worker prints every event it handles with when the handling began and ended. Every event is handled
    exactly once; within a lane, no handling overlaps another (so no claim is ever in two workers' hands at
    once); each claim's events are handled in seq order; and on PostgreSQL every worker took part."""
    claims = _group_size(backend)
    total = claims * 5
    with ClaimService(store_target) as service, child_processes(_Child) as started:
        common = {"target": store_target, "consumer": "warehouse", "lease": 30.0, "limit": 100, "poll": 0.02}
        workers = [_start(started, tmp_path, "worker", **common, worker=w) for w in range(3)]
        deadline = time.monotonic() + 240
        pump(workers, deadline, lambda: all(w.lines for w in workers))
        writer = _start(started, tmp_path, "seed", target=store_target, claims=claims, per_batch=50, prefix="g")
        children = [*workers, writer]

        def handled() -> set[Key]:
            return {(c, s) for w in workers for c, s, *_ in w.handled()}

        def all_handled() -> bool:
            if not writer.lines or "seeded" not in writer.lines[-1] or sum(len(w.lines) for w in workers) < total:
                return False
            return len(handled()) == total and not service.feed("warehouse", limit=1)

        _pump_checking(children, deadline, all_handled, lambda: f"{len(handled())} of {total} events handled")
        for worker in workers:
            worker.say("stop")
        assert [child.finish(deadline) for child in children] == [0] * len(children), [
            child.errors() for child in children
        ]
        everything = _everything(service)

    records = [line for w in workers for line in w.lines if "handled" in line]
    keys = [(c, s) for c, s, *_ in (r["handled"] for r in records)]
    assert len(everything) == total
    assert len(keys) == len(set(keys)) == total  # each event once: no worker died, none was given one twice
    assert set(keys) == set(_keys(everything))
    done = [next(line["done"] for line in w.lines if "done" in line) for w in workers]
    assert sum(done) == total
    if backend == "postgres":  # on SQLite a worker that keeps finding events can take them all: one writer at a time
        assert all(done), done  # the group shared the work
    _lanes_are_exclusive(records)
    for claim_id, seqs in _seqs_in_time_order(records).items():
        assert seqs == [1, 2, 3, 4, 5], claim_id


def test_a_consumer_group_handles_every_event_at_least_once_when_a_worker_dies_mid_batch(
    store_target: str, tmp_path: Path
) -> None:
    """Three workers consume 500 events (lease 1 s, 20 events a delivery). The first to start hangs inside
    the seventh event of its first delivery, after handling it, and is SIGKILLed once the other two run.
    Nothing is lost: the live workers handle every event exactly once between them, the seven the dead one
    handled without acknowledging among them, each after the dead one was done with it (no lane is ever in
    two workers' hands at once), and each claim's events in seq order."""
    total = 100 * 5
    with ClaimService(store_target) as service, child_processes(_Child) as started:
        with service.batch():  # ids of our own: the lanes (so the first delivery's size) are always the same
            ids = [service.file_claim(filing(order_id=f"d-{n}"), claim_id=f"d-{n}").claim.id for n in range(100)]
            for trigger, actor, data in STEPS:
                for claim_id in ids:
                    service.fire(claim_id, trigger, actor, data)
        everything = set(_keys(_everything(service)))
        first_lane = _everything(service)[0].lane  # the first worker takes the lane of the oldest event
        assert sum(lane_of(claim_id) == first_lane for claim_id in ids) * 5 >= 20  # a full first delivery
        common = {"target": store_target, "consumer": "warehouse", "lease": 1.0, "limit": 20, "poll": 0.02}
        deadline = time.monotonic() + 60
        dying = _start(started, tmp_path, "worker", **common, worker=0, stall_after=7)
        pump([dying], deadline, lambda: len(dying.handled()) == 7)  # it hangs in there, its lane leased
        live = [_start(started, tmp_path, "worker", **common, worker=w) for w in (1, 2)]
        pump(live, deadline, lambda: all(w.lines for w in live))  # both ready: consuming next
        dying.kill()

        def handled() -> set[Key]:
            return {(c, s) for w in live for c, s, *_ in w.handled()}

        def all_handled() -> bool:
            if sum(len(w.lines) for w in live) < total:
                return False
            return len(handled()) == total and not service.feed("warehouse", limit=1)

        progress = lambda: f"{len(handled())} of {total} events handled by the live workers"  # noqa: E731
        _pump_checking(live, deadline, all_handled, progress)
        for worker in live:
            worker.say("stop")
        assert [w.finish(deadline) for w in live] == [0, 0], [w.errors() for w in live]
        assert set(_keys(_everything(service))) == everything

    dead = [line for line in dying.lines if "handled" in line]
    alive = [line for w in live for line in w.lines if "handled" in line]
    alive_keys = [(c, s) for c, s, *_ in (r["handled"] for r in alive)]
    assert [r["handled"][2:] for r in dead] == [[first_lane, n] for n in range(1, 8)]  # its first delivery
    assert len(everything) == total
    assert len(alive_keys) == len(set(alive_keys)) == total  # each event once, the dead worker's seven too
    assert set(alive_keys) == everything
    _lanes_are_exclusive([*dead, *alive])
    for claim_id, seqs in _seqs_in_time_order(alive).items():
        assert seqs == [1, 2, 3, 4, 5], claim_id


# --- 4. the command-line follower, stopped and killed ---------------------------------------------------------


def _seed_events(service: ClaimService, claims: int, prefix: str) -> None:
    """`claims` claims filed and given evidence and an offer: three events each, in one transaction."""
    with service.batch():
        for n in range(claims):
            claim_id = service.file_claim(filing(order_id=f"{prefix}-{n}")).claim.id
            service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE})
            service.fire(claim_id, "make_offer", "supplier:acme", {"kind": "partial_refund", "amount": "10.00"})


def _printed(child: _Child) -> list[Key]:
    return [(line["claim_id"], line["seq"]) for line in child.lines]


def _follow(started: list[_Child], tmp_path: Path, target: str) -> _Child:
    """`claimstate events --consumer shipping --follow --ack`, its stdout a pipe of one page (about nine
    events), so that when the parent stops reading, it soon waits in the middle of printing a batch."""
    follower = _cli(
        started, tmp_path, target, "events", "--consumer", "shipping", "--follow", "--ack", "--poll", "0.05"
    )
    fcntl.fcntl(follower.fd, fcntl.F_SETPIPE_SZ, 4096)
    return follower


def _wait_until_blocked_printing(child: _Child) -> None:
    """Without reading its output, wait until `child` sleeps writing to its full stdout: it is inside a batch,
    having printed some events of it and not yet acknowledged them. Where the kernel does not tell (no
    /proc/PID/wchan, or one that stays "0"), go on after 5 s: the checks still hold, they may only catch less."""
    wchan, deadline = Path(f"/proc/{child.proc.pid}/wchan"), time.monotonic() + 5
    with suppress(OSError):
        while "pipe_write" not in wchan.read_text() and time.monotonic() < deadline:
            time.sleep(0.001)


def _unacknowledged(started: list[_Child], tmp_path: Path, target: str, deadline: float) -> list[Key]:
    """What `claimstate events --consumer shipping` prints: the events "shipping" has not acknowledged."""
    later = _cli(started, tmp_path, target, "events", "--consumer", "shipping")
    assert later.finish(deadline) == 0, later.errors()
    return _printed(later)


def test_a_cli_follower_stopped_by_sigterm_exits_0_having_acknowledged_all_it_printed(
    store_target: str, tmp_path: Path
) -> None:
    """`claimstate events --consumer shipping --follow --ack` prints the 300 events there are, then follows the
    600 a writer adds meanwhile, and gets SIGTERM in the middle of a batch, while its output waits to be
    read. It finishes the event it is printing, exits 0, and printed no event twice; a later `claimstate
    events --consumer shipping` prints exactly the events it did not print."""
    with ClaimService(store_target) as service, child_processes(_Child) as started:
        _seed_events(service, 100, "before")
        before = set(_keys(_everything(service)))
        follower = _follow(started, tmp_path, store_target)
        deadline = time.monotonic() + 90
        pump([follower], deadline, lambda: len(follower.lines) >= 300)
        _seed_events(service, 200, "while")  # it is following now: these come as they commit
        pump([follower], deadline, lambda: len(follower.lines) >= 400)
        _wait_until_blocked_printing(follower)
        follower.proc.send_signal(signal.SIGTERM)
        assert follower.finish(deadline) == 0, follower.errors()
        assert follower.errors() == ""
        printed = _printed(follower)
        everything = set(_keys(_everything(service)))
        assert len(everything) == 900
        assert len(printed) == len(set(printed))
        assert before <= set(printed)
        assert len(printed) < len(everything)  # it stopped mid-stream
        rest = _unacknowledged(started, tmp_path, store_target, deadline)
        assert set(printed).isdisjoint(rest)  # printed and acknowledged: not printed again
        assert set(printed) | set(rest) == everything  # and the rest is all there


def test_a_cli_follower_killed_by_sigkill_loses_no_event(store_target: str, tmp_path: Path) -> None:
    """The same follower SIGKILLed in the middle of a batch of the 900 events there are, while its output waits
    to be read: every event is either printed by a later `claimstate events --consumer shipping` or was
    printed before it was acknowledged; at most the one batch (100) it was printing is printed both times."""
    with ClaimService(store_target) as service, child_processes(_Child) as started:
        _seed_events(service, 300, "o")
        follower = _follow(started, tmp_path, store_target)
        deadline = time.monotonic() + 90
        pump([follower], deadline, lambda: len(follower.lines) >= 150)
        _wait_until_blocked_printing(follower)
        follower.kill()
        pump([follower], deadline, lambda: False)
        printed = _printed(follower)
        everything = set(_keys(_everything(service)))
        assert len(everything) == 900
        assert len(printed) == len(set(printed))
        assert len(printed) < len(everything)  # it was killed mid-stream
        rest = set(_unacknowledged(started, tmp_path, store_target, deadline))
        assert rest | set(printed) == everything  # nothing lost
        assert everything - rest <= set(printed)  # acknowledged only once printed
        assert len(rest & set(printed)) <= 100  # printed, not yet acknowledged: the batch it was in
