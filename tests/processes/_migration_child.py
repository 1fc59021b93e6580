"""Child process for tests/processes/test_migration_kill.py: moves a store's open claims onto the changed lifecycle.

Run as ``python _migration_child.py ARGS_JSON``. ARGS_JSON names the store (`target`: a SQLite file or a
PostgreSQL URL), the migration's time (`now`, ISO 8601) and where to stop (`stop`):

- null: migrate to the end, then print ``{"moved": [[claim id, from state, to state], ...]}``;
- a number n: count the calls of `ClaimRows.update` (one per claim moved, all inside the migration's one
  transaction), and at call n + 1, before making it, print ``{"halfway": true, "updated": n}`` and hang,
  the transaction open, until killed;
- "commit": let every update and the events be written, and hang just before the COMMIT (printing
  ``{"halfway": true, "updated": count}``) until killed.

This script puts tests/ (its folder's parent) first on sys.path, so the changed lifecycle comes from
changed_lifecycle.py. A child that waits to be killed gives up on its own once its parent is gone, or
after MAX_SECONDS.
"""

from __future__ import annotations

import faulthandler
import json
import os
import signal
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from claimstate import ClaimService
from claimstate._store.claims import ClaimRows
from claimstate._store.events import EventRows

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared test data
from changed_lifecycle import INSPECTION

MAX_SECONDS = 120.0  # a child never outlives a hung or killed parent by long
MOVES = {"cancellation_pending": "in_mediation"}  # every other state stays as it is
PLAN: dict[str, Any] = {"states": MOVES, "deadlines": "recompute"}


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def wait_to_be_killed() -> None:
    """Hang (holding the open transaction) until the parent kills it; exit if the parent goes away."""
    parent, started = os.getppid(), time.monotonic()
    while time.monotonic() - started < MAX_SECONDS and os.getppid() == parent:
        time.sleep(0.02)
    os._exit(3)


def stop_inside(stop: int | str) -> None:
    """Make the migration hang where `stop` says (see the module's docstring), its transaction open."""
    update, flush = ClaimRows.update, EventRows.flush
    calls = 0

    def counted(self: ClaimRows, *args: Any, **kwargs: Any) -> bool:
        nonlocal calls
        if calls == stop:
            emit({"halfway": True, "updated": calls})
            wait_to_be_killed()
        calls += 1
        return update(self, *args, **kwargs)

    def flushed(self: EventRows) -> None:
        flush(self)
        if calls:  # the migration's transaction, every update made: only the COMMIT is left
            emit({"halfway": True, "updated": calls})
            wait_to_be_killed()

    ClaimRows.update = counted  # type: ignore[method-assign]
    if stop == "commit":
        EventRows.flush = flushed  # type: ignore[method-assign]


def main(args: dict[str, Any]) -> None:
    # Patched before opening, since the store registers EventRows.flush as its before-commit hook when it is
    # made. Opening writes (registering INSPECTION) in a transaction of its own, but calls no update, so
    # neither patch stops there: they count from zero and stop only inside the migration.
    if args["stop"] is not None:
        stop_inside(args["stop"])
    with ClaimService(args["target"], definition=INSPECTION, migrating=True) as service:
        emit({"migrating": sum(o.claims for o in service.outdated())})
        migration = service.migrate(PLAN, now=datetime.fromisoformat(args["now"]))
    emit({"moved": [[m.claim_id, m.source, m.dest] for m in migration.moves]})


if __name__ == "__main__":
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 PID` prints where a hung child is, on its stderr
    main(json.loads(sys.argv[1]))
