"""What every job of the service shares: the store, the engine, the chain, the lock and the clock.

The facade (`ClaimService`) makes one `Core` and hands it to each job (the feed, verifying, lifecycle
changes); a job reads and writes only through it, so the service's state lives in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import update_wrapper
from typing import Any, Concatenate, ParamSpec, TypeVar

import attrs

from claimstate._chain import Chain
from claimstate._definition import Definition
from claimstate._engine import Engine
from claimstate._replayers import Replayers
from claimstate._store import Store
from claimstate._time import aware


@attrs.define(eq=False)
class Core:
    """The service's parts, shared by every thread that calls the service: nothing here changes per call
    (each thread's transaction lives in the store's session for that thread)."""

    store: Store
    engine: Engine
    replayers: Replayers  # replays what was accepted when it happened: limits lowered since do not void history
    chain: Chain
    clock: Callable[[], datetime]

    @property
    def path(self) -> str:
        return self.store.path

    @property
    def definition(self) -> Definition:
        return self.engine.definition

    @property
    def fingerprint(self) -> str:
        return self.engine.fingerprint

    def now(self, now: datetime | None) -> datetime:
        """`now` if given (checked), else the clock's time."""
        return aware(self.clock() if now is None else now)


S = TypeVar("S")
P = ParamSpec("P")
R = TypeVar("R")


def _on_one_snapshot(
    parts: Callable[[Any], Core],
) -> Callable[[Callable[Concatenate[S, P], R]], Callable[Concatenate[S, P], R]]:
    """A decorator running the method with all its reads on one snapshot of the store `parts(self)` holds."""

    def decorate(method: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
        def run(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
            return parts(self).store.read(lambda: method(self, *args, **kwargs))

        update_wrapper(run, method)
        return run

    return decorate


# On the database itself; and on the store of the reads that may lag behind the primary by moments (the
# service's `read_url`, a standby; the database itself when none is given).
reading = _on_one_snapshot(lambda holder: holder._core)
lagging = _on_one_snapshot(lambda holder: holder._lagging)
