"""Child processes for tests/clusters/test_failover.py: each works on the cluster through its multi-host URL
and prints JSON lines until the parent's stop file appears.

Run as ``python _failover_child.py MODE ARGS_JSON``. A writer prints every acknowledged transition (and
flushes) right after the call that applied it returned, with its idempotency key and how many times the
call was retried after a retryable error; a retryable error is retried with the same key until it is
acknowledged, so nothing a writer began is left unknown. A tick runner runs `run_ticker`; a consumer prints
every event its handler got.
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from claimstate import ClaimService, Fired, StorageError, run_ticker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared test data
from helpers import EVIDENCE, filing

MAX_SECONDS = 180.0  # a child never outlives a hung or killed parent by long


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def stop_event(path: str) -> threading.Event:
    """Set once the parent's stop file exists (or the parent is gone, or MAX_SECONDS passed)."""
    stop, parent, started = threading.Event(), os.getppid(), time.monotonic()

    def watch() -> None:
        while not os.path.exists(path) and os.getppid() == parent and time.monotonic() - started < MAX_SECONDS:
            time.sleep(0.02)
        stop.set()

    threading.Thread(target=watch, daemon=True).start()
    return stop


def until_acknowledged(call: Callable[[], Fired], errors: dict[str, int]) -> tuple[Fired, int]:
    """Run `call` (which carries its idempotency key) until it returns; each retryable error counted by
    kind and waited over. Anything else ends the child with a traceback, which the parent reports."""
    retries = 0
    while True:
        try:
            return call(), retries
        except StorageError as error:
            if not error.retryable:
                raise
            kind = type(error).__name__
            errors[kind] = errors.get(kind, 0) + 1
            retries += 1
            time.sleep(0.05)


def writer(args: dict[str, Any]) -> None:
    """File claims and fire evidence on them, every call with an idempotency key of its own."""
    rng = random.Random(args["worker"])
    at = datetime.fromisoformat(args["at"])
    stop = stop_event(args["stop"])
    errors: dict[str, int] = {}
    claims: dict[str, str] = {}  # each claim's state
    with ClaimService(args["url"], busy_timeout=args["busy_timeout"]) as service:
        emit({"ready": args["worker"]})
        number = 0
        while not stop.is_set():
            number += 1
            key = f"w{args['worker']}-{number}"
            if not claims or number % 4 == 0:
                call = partial(service.file_claim, filing(order_id=f"o-{args['worker']}-{number}"))
            else:
                claim_id = rng.choice(list(claims))
                # the buyer's evidence comes first; then either party's
                in_mediation = claims[claim_id] == "in_mediation"
                actor = rng.choice(["buyer:alice", "supplier:acme"]) if in_mediation else "buyer:alice"
                call = partial(service.fire, claim_id, "submit_evidence", actor, {"evidence": EVIDENCE})
            fired, retries = until_acknowledged(partial(call, idempotency_key=key, now=at), errors)
            record, claims[fired.claim.id] = fired.record, fired.claim.state
            emit({"ack": [record.claim_id, record.seq, record.trigger], "key": key, "retries": retries})
        emit({"done": args["worker"], "errors": errors})


def ticker(args: dict[str, Any]) -> None:
    """Fire due deadlines at `due`, a few per round, until stopped: how many it fired."""
    due = datetime.fromisoformat(args["due"])
    stop = stop_event(args["stop"])
    with ClaimService(args["url"], busy_timeout=args["busy_timeout"]) as service:
        emit({"ready": args["worker"]})
        fired = run_ticker(service, args["every"], stop, name=f"ticker-{args['worker']}", now=lambda: due,
                           limit=args["limit"])  # fmt: skip
        emit({"done": args["worker"], "fired": fired})


def consumer(args: dict[str, Any]) -> None:
    """Consume the feed as a member of group `name`, printing each event handled and when (wall clock)."""
    stop = stop_event(args["stop"])
    with ClaimService(args["url"], busy_timeout=args["busy_timeout"]) as service:
        emit({"ready": args["worker"]})
        handled = service.consume(
            args["name"],
            lambda event: emit({"event": [event.claim_id, event.seq], "at": time.time()}),
            stop=stop,
            poll=0.05,
            lease=2.0,
            max_pause=0.5,  # back within half a second of the new primary taking writes
        )
        emit({"done": args["worker"], "handled": handled})


if __name__ == "__main__":
    MODES = {"writer": writer, "ticker": ticker, "consumer": consumer}
    MODES[sys.argv[1]](json.loads(sys.argv[2]))
