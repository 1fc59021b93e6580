"""Child processes for tests/processes/test_events_processes.py: each mode works on one store and prints JSON lines.

Run as ``python _events_child.py MODE ARGS_JSON``; ARGS_JSON names the store (`target`: a SQLite file or a
PostgreSQL URL). This script puts tests/ (its folder's parent) first on sys.path, so the shared test data
comes from helpers.py. Everything a parent may kill this process after is printed (and flushed) as soon
as it is true: an event handled, an acknowledgement that returned, a transaction that committed. A child
that waits to be killed gives up on its own once its parent is gone, or after MAX_SECONDS.
"""

from __future__ import annotations

import faulthandler
import hashlib
import json
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from claimstate import ClaimService, Event, TransitionRecord

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared test data
from helpers import EVIDENCE, filing

MAX_SECONDS = 120.0  # a child never outlives a hung or killed parent by long
# A claim's way from filing to a cancellation the supplier must approve: four fires, all by its parties.
STEPS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("submit_evidence", "buyer:alice", {"evidence": EVIDENCE}),
    ("make_offer", "supplier:acme", {"kind": "partial_refund", "amount": "10.00"}),
    ("accept_offer", "buyer:alice", {}),
    ("cancel_claim", "buyer:alice", {}),
)


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def key(event: Event) -> list[Any]:
    """What the parent compares an event by: [claim id, seq, lane, lane seq]."""
    return [event.claim_id, event.seq, event.lane, event.lane_seq]


def committed(record: TransitionRecord) -> list[Any]:
    return [record.claim_id, record.seq]


def wait_to_be_killed() -> None:
    """Hang (holding whatever this process holds) until the parent kills it; exit if the parent goes away."""
    parent, started = os.getppid(), time.monotonic()
    while time.monotonic() - started < MAX_SECONDS and os.getppid() == parent:
        time.sleep(0.02)
    os._exit(3)


def take(args: dict[str, Any]) -> None:
    """Take one delivery of `consumer` (leased for `lease` s), print each event as handled, acknowledge the
    first `acked` of them, then hang without acknowledging the rest until killed. Prints the wall-clock time
    just before taking, so the parent can look at the lease as of a moment while it certainly held."""
    service = ClaimService(args["target"])
    emit({"taking_at": datetime.now(UTC).isoformat()})
    events = service.events(args["consumer"], limit=100, lease=args["lease"])
    for event in events:
        emit({"handled": key(event)})
    service.ack(args["consumer"], events[args["acked"] - 1])
    emit({"acked": key(events[args["acked"] - 1])})
    emit({"holding": len(events)})
    wait_to_be_killed()


def drain(args: dict[str, Any]) -> None:
    """Take, handle (print) and acknowledge `consumer`'s events until it has none left unacknowledged; a lane
    another worker holds is waited for until its lease runs out."""
    started = time.monotonic()
    with ClaimService(args["target"]) as service:
        while time.monotonic() - started < MAX_SECONDS:
            events = service.events(args["consumer"], limit=args["limit"], lease=args["lease"])
            if events:
                for event in events:
                    emit({"handled": key(event)})
                service.ack(args["consumer"], events[-1])
            elif not service.feed(args["consumer"], limit=1):
                emit({"drained": True})
                return
            else:
                time.sleep(0.02)  # what is left is leased to another worker: look again
    raise SystemExit("still not drained")


def stream(args: dict[str, Any]) -> None:
    """Write until killed, in units of one transaction each: a batch that files one to three claims and walks
    each some steps (step by step across them), or one fire. After each commit, print its transitions.

    With `hold` (a unit number), that unit is a batch of three claims walked all the way (15 writes) that
    stops after `hold_after` of them and hangs with its transaction open, printing what it wrote so far,
    until killed.
    """
    rng = random.Random(args["seed"])
    service = ClaimService(args["target"])
    walking: list[tuple[str, int]] = []  # (claim id, steps taken) of claims with steps left
    started, unit, filed = time.monotonic(), 0, 0
    emit({"ready": True})
    while time.monotonic() - started < MAX_SECONDS:
        unit += 1
        hold = unit == args.get("hold")
        if walking and not hold and rng.random() < 0.4:
            index = rng.randrange(len(walking))
            claim_id, done = walking[index]
            trigger, actor, data = STEPS[done]
            record = service.fire(claim_id, trigger, actor, data).record
            walking[index] = (claim_id, done + 1)
            if done + 1 == len(STEPS):
                walking.pop(index)
            emit({"committed": [committed(record)]})
            continue
        written: list[list[Any]] = []
        with service.batch():
            new = []
            for _ in range(3 if hold else rng.randint(1, 3)):
                filed += 1
                fired = service.file_claim(filing(order_id=f"{args['prefix']}-{filed}"))
                written.append(committed(fired.record))
                new.append((fired.claim.id, len(STEPS) if hold else rng.randint(1, len(STEPS))))
                if hold and len(written) >= args["hold_after"]:
                    emit({"holding": written})
                    wait_to_be_killed()
            for step in range(len(STEPS)):
                for claim_id, steps in new:
                    if step < steps:
                        trigger, actor, data = STEPS[step]
                        written.append(committed(service.fire(claim_id, trigger, actor, data).record))
                        if hold and len(written) >= args["hold_after"]:
                            emit({"holding": written})
                            wait_to_be_killed()
        walking += [(claim_id, steps) for claim_id, steps in new if steps < len(STEPS)]
        emit({"committed": written})
    raise SystemExit("the parent never killed this child")


def seed(args: dict[str, Any]) -> None:
    """File `claims` claims and walk each through every step, `per_batch` claims per transaction (all filings,
    then each step across them), printing how many events each batch committed."""
    with ClaimService(args["target"]) as service:
        emit({"ready": True})
        for first in range(0, args["claims"], args["per_batch"]):
            orders = range(first, min(first + args["per_batch"], args["claims"]))
            with service.batch():
                ids = [service.file_claim(filing(order_id=f"{args['prefix']}-{n}")).claim.id for n in orders]
                for trigger, actor, data in STEPS:
                    for claim_id in ids:
                        service.fire(claim_id, trigger, actor, data)
            emit({"committed": len(ids) * (1 + len(STEPS))})
    emit({"seeded": True})


def worker(args: dict[str, Any]) -> None:
    """One worker of `consumer`: `ClaimService.consume` with a handler that prints, for each event, when its
    handling began and ended (time.monotonic_ns, one clock for every process on the machine). A line on
    stdin (or its end) stops it; it then prints how many events it handled.

    With `stall_after` n, the handler hangs inside the n-th event, after printing it as handled, until
    killed: a worker that dies between handling events and acknowledging them.
    """
    stop = threading.Event()

    def stop_on_a_line() -> None:
        sys.stdin.readline()
        stop.set()

    stopper = threading.Thread(target=stop_on_a_line, daemon=True)
    timer = threading.Timer(MAX_SECONDS, stop.set)
    timer.daemon = True
    handled = 0

    def handle(event: Event) -> None:
        nonlocal handled
        start = time.monotonic_ns()
        body = json.dumps(event.to_dict(), sort_keys=True).encode()
        digest = hashlib.sha256(body * 8).hexdigest()  # the work: something that takes a moment
        end = time.monotonic_ns()
        handled += 1
        emit({"handled": key(event), "worker": args["worker"], "start": start, "end": end, "digest": digest[:8]})
        if handled == args.get("stall_after"):
            wait_to_be_killed()

    with ClaimService(args["target"]) as service:
        emit({"ready": args["worker"]})
        stopper.start()
        timer.start()
        count = service.consume(
            args["consumer"], handle, stop=stop, limit=args["limit"], lease=args["lease"], poll=args["poll"]
        )
    emit({"done": count, "worker": args["worker"]})


if __name__ == "__main__":
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 PID` prints where a hung child is, on its stderr
    MODES: dict[str, Callable[[dict[str, Any]], None]] = {
        "take": take,
        "drain": drain,
        "stream": stream,
        "seed": seed,
        "worker": worker,
    }
    MODES[sys.argv[1]](json.loads(sys.argv[2]))
