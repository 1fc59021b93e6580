"""The tick runner: fire due deadlines every few seconds, with a heartbeat per round, until told to stop.

Each round is `ClaimService.iter_tick`: every due deadline fires in its own short transaction, holding
nothing between them, so a runner shares its service (and its database) with a web process without
stalling it, and any number of runners, in threads, processes or on other machines, fire each deadline
once. `stop` is looked at between deadlines: a runner told to stop ends after the deadline it is firing,
never half-way through one. After each round it writes its heartbeat row (table `workers`), which
`ClaimService.stats` shows.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from functools import partial

from claimstate._errors import ConcurrentModification, InvalidInput, StorageError
from claimstate._inputs import identifier
from claimstate._service.ids import worker_name
from claimstate._service.options import seconds
from claimstate._service.service import ClaimService, core_of
from claimstate._time import aware, to_iso

_log = logging.getLogger("claimstate.ticker")
_FIRST_PAUSE = 0.05  # seconds after a round that could not reach the database; doubled up to `every`


def run_ticker(
    service: ClaimService,
    every: float,
    stop: threading.Event | None = None,
    *,
    name: str | None = None,
    now: Callable[[], datetime] | None = None,
    limit: int = 500,
) -> int:
    """Fire every due deadline of `service` each `every` seconds until `stop` is set; how many fired.

    A round ticks at the time `now()` gives (default the service's clock), then writes the runner's heartbeat
    (`name`, default host:pid:id, unique; kind ``tick``) with that time and how many it fired; the next round
    starts `every` seconds after this one started (at once if this one took longer). `stop` is looked at
    between deadlines, so setting it ends the runner after the deadline being fired, with nothing half-done;
    without one the runner goes on until the thread is interrupted. A round that cannot reach the database
    (StorageError, or a race lost five times) is logged and tried again after a pause, and the runner goes
    on; the first heartbeat (written before the first round) is not: a runner that cannot write its row at
    all (a read-only service, a closed one) raises at once.
    """
    every = seconds(every, "every")
    stop = _checked_stop(stop)
    name = f"{worker_name()}/tick" if name is None else identifier(name, "name")
    if now is not None and not callable(now):
        raise InvalidInput(f"must be callable, not {type(now).__name__}", field="now")
    core = core_of(service)
    clock = core.clock if now is None else now
    operations = core.store.operations
    core.store.write(partial(operations.start, name, "tick", to_iso(aware(clock()))))
    fired, pause = 0, 0.0
    while not stop.is_set():
        began = time.monotonic()
        at = aware(clock())
        round_fired = 0
        try:
            ticking = service.iter_tick(at, limit=limit)
            try:
                for _record in ticking:
                    round_fired += 1
                    if stop.is_set():
                        break
            finally:
                getattr(ticking, "close", lambda: None)()  # a generator: ends its read at once
            core.store.write(partial(operations.beat, name, to_iso(aware(clock())), to_iso(at), round_fired))
        except (StorageError, ConcurrentModification) as error:
            pause = min(max(2 * pause, _FIRST_PAUSE), every)
            _log.warning("tick runner %s: a round failed (%s); will retry", name, error)
            fired += round_fired
            stop.wait(pause)
            continue
        pause = 0.0
        fired += round_fired
        if round_fired:
            _log.debug("tick runner %s fired %d deadline(s) at %s", name, round_fired, to_iso(at))
        stop.wait(max(0.0, every - (time.monotonic() - began)))
    return fired


def _checked_stop(stop: threading.Event | None) -> threading.Event:
    if stop is None:
        return threading.Event()
    if not isinstance(stop, threading.Event):
        raise InvalidInput(f"stop must be a threading.Event, not {type(stop).__name__}", field="stop")
    return stop
