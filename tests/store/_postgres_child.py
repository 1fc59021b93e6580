"""Child processes for tests/store/test_postgres.py: each mode works on one PostgreSQL schema and prints JSON lines.

Run as ``python _postgres_child.py MODE ARGS_JSON``. This script puts tests/ (its folder's parent) first on
sys.path, so the shared test data comes from helpers.py, as in the tests themselves. A child that has to
start together with others prints ``{"ready": ...}`` once it is set up, then waits for a line
``go START`` on stdin and works from the wall-clock time START (seconds since the epoch), so all of them
begin at the same moment. Results are printed (and flushed) as JSON lines.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import claimstate._store.postgres  # noqa: F401  (psycopg and its pool, imported before "ready", not after "go")
from claimstate import ClaimService, ConcurrentModification, StorageError, TransitionRefused

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared test data
from helpers import ACTORS, EVIDENCE, GOOD_DATA, filing

MAX_SECONDS = 120.0  # a child never outlives a hung or killed parent by long
# Triggers that close a claim (or nearly): the stress picks them rarely, so claims stay open for longer.
CLOSING = {
    "decide_partial_refund",
    "decide_for_supplier",
    "withdraw",
    "confirm_return_received",
    "approve_cancellation",
}


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def row(record: Any) -> list[Any]:
    return [record.claim_id, record.seq, record.trigger]


def wait_for_go() -> float:
    """The start time the parent sends (``go START``); exits if the parent sends anything else or goes away."""
    line = sys.stdin.readline().split()
    if len(line) != 2 or line[0] != "go":
        raise SystemExit(f"no go: {line}")
    return float(line[1])


def wait_until(moment: float) -> None:
    """Sleep, then spin, until the wall clock reaches `moment`: processes released together start within ~0.1 ms."""
    while (left := moment - time.time()) > 0.002:
        time.sleep(left - 0.002)
    while time.time() < moment:
        pass


def first_open(args: dict[str, Any]) -> None:
    """For each round, open (create) that round's new empty schema at the agreed moment and file one claim."""
    emit({"ready": args["worker"]})
    start = wait_for_go()
    for number, url in enumerate(args["urls"]):
        wait_until(start + number * args["gap"])
        try:
            with ClaimService(url, busy_timeout=30) as service:
                claim = service.file_claim(filing(order_id=f"o-{args['worker']}")).claim
        except StorageError as error:
            emit({"round": number, "error": str(error)})
        else:
            emit({"round": number, "error": None, "claim": claim.id, "version": service.schema_version})


def hold(args: dict[str, Any]) -> None:
    """Lock a claim's row in an open transaction and keep it until killed: "loaded" only reads it FOR UPDATE,
    "fire" also writes a withdraw (row and history row), uncommitted. Reports the backend's pid."""
    parent = os.getppid()
    service = ClaimService(args["url"])
    at = datetime.fromisoformat(args["at"])
    with service.batch():
        if args["how"] == "loaded":
            loaded = service._store.claims.loaded(args["claim"])
            assert loaded is not None
        else:
            service.fire(args["claim"], "withdraw", "buyer:alice", {"reason": "never mind"}, now=at)
        conn = service._store._session.conn  # type: ignore[attr-defined]
        emit({"holding": args["claim"], "backend": conn.info.backend_pid})
        started = time.monotonic()
        while time.monotonic() - started < MAX_SECONDS and os.getppid() == parent:
            time.sleep(0.05)
    raise SystemExit("the parent never killed this child")


def same_key(args: dict[str, Any]) -> None:
    """At each agreed moment fire one claim's evidence (mode "fire") or file one claim (mode "file") under an
    idempotency key the other child uses at the same moment; print every result in full, or the refusal."""
    at = datetime.fromisoformat(args["at"])
    with ClaimService(args["url"], busy_timeout=30) as service:
        emit({"ready": args["worker"]})
        start = wait_for_go()
        for number in range(args["rounds"]):
            wait_until(start + number * args["gap"])
            try:
                if args["mode"] == "fire":
                    fired = service.fire(
                        args["claims"][number],
                        "submit_evidence",
                        "buyer:alice",
                        {"evidence": EVIDENCE},
                        idempotency_key=f"ev-{number}",
                        now=at,
                    )
                else:
                    fired = service.file_claim(filing(order_id=f"k-{number}"), idempotency_key=f"file-{number}", now=at)
            except TransitionRefused as refused:
                emit({"round": number, "refused": str(refused)})
            else:
                emit({"round": number, "claim": fired.claim.to_dict(), "record": fired.record.to_dict()})


def stress(args: dict[str, Any]) -> None:
    """For `seconds`, and `asks` questions at least: pick a claim, ask what a random party may fire and fire
    one of those, with valid data.

    A claim that no one but the system can move any more is replaced by a new filing of this worker's own.
    Prints every applied transition (filings too) at the end, with how many fires were refused or lost a race.
    """
    rng = random.Random(args["seed"])
    at = datetime.fromisoformat(args["at"])
    claims = list(args["claims"])
    acks: list[list[Any]] = []
    refused = conflicts = stuck = asked = 0
    with ClaimService(args["url"], busy_timeout=30) as service:
        emit({"ready": args["worker"]})
        wait_until(wait_for_go())
        started = time.monotonic()
        # at least `seconds` of contention, and at least `asks` questions asked: a slow machine does the
        # whole workload, however long it takes
        while time.monotonic() - started < args["seconds"] or asked < args["asks"]:
            index = rng.randrange(len(claims))
            roles = ["buyer", "supplier", "agent"]
            rng.shuffle(roles)
            for role in roles:
                asked += 1
                allowed = [a.trigger for a in service.available(claims[index], ACTORS[role], now=at) if a.allowed]
                if allowed:
                    break
            else:
                stuck += 1
                order = f"w{args['worker']}-{stuck}"
                filed = service.file_claim(filing(order_id=order), now=at)
                acks.append(row(filed.record))
                claims[index] = filed.claim.id
                continue
            weights = [0.1 if trigger in CLOSING else 1.0 for trigger in allowed]
            trigger = rng.choices(allowed, weights)[0]
            try:
                fired = service.fire(claims[index], trigger, ACTORS[role], GOOD_DATA.get(trigger), now=at)
            except TransitionRefused:
                refused += 1
            except ConcurrentModification:
                conflicts += 1
            else:
                acks.append(row(fired.record))
    emit({"acks": acks, "refused": refused, "conflicts": conflicts, "replaced": stuck, "asked": asked})


def tick(args: dict[str, Any]) -> None:
    """File `count` claims at `filed` (one batch), then tick at `at` until a tick fires nothing; print every
    record the ticks returned. Then, on "check", print the history of each claim it filed."""
    filed, at = datetime.fromisoformat(args["filed"]), datetime.fromisoformat(args["at"])
    ticked: list[list[Any]] = []
    with ClaimService(args["url"], busy_timeout=30) as service:
        with service.batch():
            claims = [
                service.file_claim(filing(order_id=f"{args['prefix']}{n}"), now=filed).claim.id
                for n in range(args["count"])
            ]
        emit({"ready": args["worker"], "claims": claims})
        wait_until(wait_for_go())
        while records := service.tick(at, limit=args["limit"]):
            ticked += [row(r) for r in records]
        emit({"ticked": ticked})
        if sys.stdin.readline().strip() != "check":
            raise SystemExit("no check")
        emit({"histories": {claim_id: [[r.seq, r.trigger] for r in service.history(claim_id)] for claim_id in claims}})


if __name__ == "__main__":
    MODES = {"first_open": first_open, "hold": hold, "same_key": same_key, "stress": stress, "tick": tick}
    MODES[sys.argv[1]](json.loads(sys.argv[2]))
