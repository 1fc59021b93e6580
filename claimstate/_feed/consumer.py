"""The simple subscriber: hand each event to a handler, acknowledge it once the handler returned.

The loop holds no state a crash could lose: what was acknowledged is in the database, and what was not
is delivered again (to this worker, or after the lease to another). A handler that raises sets its
lane aside for a growing pause; the events after it in that lane wait, so a claim's events stay in
order, while the consumer's other lanes go on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

import attrs

from claimstate._errors import ConcurrentModification, StorageError
from claimstate._feed.event import Event

_log = logging.getLogger("claimstate.events")
_FIRST_PAUSE = 0.05  # seconds after the first failure; doubled after each further one
_LEASE_USED = 0.8  # of a lease, spent handling at most: the rest is left for the acknowledgement


@attrs.frozen
class Consumer:
    """What one worker of a consumer does to the store: take its next events, acknowledge one (with those
    before it), set a lane aside for some seconds after a failure, give back what it holds."""

    deliver: Callable[[], Sequence[Event]]
    ack: Callable[[Event], None]
    set_aside: Callable[[int, float], None]
    release: Callable[[], None]


def consume(
    worker: Consumer,
    handler: Callable[[Event], object],
    *,
    stop: threading.Event,
    lease: float,
    poll: float,
    max_pause: float,
) -> int:
    """Deliver, handle and acknowledge until `stop` is set; how many events the handler completed.

    A failure to reach the database is paused over and tried again, like a handler's.
    """
    handled, pause, pauses = 0, 0.0, dict[int, float]()  # the worker's pause; each failing lane's
    try:
        while not stop.is_set():
            try:
                events = worker.deliver()
                ends = time.monotonic() + lease * _LEASE_USED
                done, failed = _handle(events, handler, stop, ends)
                if done is not None:
                    handled += sum(1 for e in events if e.lane_seq <= done.lane_seq)
                    worker.ack(done)
                    pauses.pop(done.lane, None)
                if failed is not None:
                    pauses[failed.lane] = min(max(2 * pauses.get(failed.lane, 0.0), _FIRST_PAUSE), max_pause)
                    worker.set_aside(failed.lane, pauses[failed.lane])
            except (StorageError, ConcurrentModification) as error:
                _log.warning("could not read or acknowledge events (%s); will retry", error)
                pause = min(max(2 * pause, _FIRST_PAUSE), max_pause)
                stop.wait(pause)
                continue
            pause = 0.0
            if not events:
                stop.wait(poll)
    finally:
        try:
            worker.release()
        except (StorageError, ConcurrentModification) as error:
            _log.warning("could not give back this worker's lanes (%s); their leases lapse on their own", error)
    return handled


def _handle(
    events: Sequence[Event], handler: Callable[[Event], object], stop: threading.Event, ends: float
) -> tuple[Event | None, Event | None]:
    """Hand the events over in order until one fails, `stop` is set or the lease is mostly spent: the
    last one handled, and the one that failed."""
    done = None
    for event in events:
        if stop.is_set() or (done is not None and time.monotonic() > ends):  # the first always: progress
            break
        try:
            handler(event)
        except Exception:
            if not stop.is_set():  # a handler that sets `stop` and raises ends the loop quietly
                _log.warning("handler failed on %s seq %s; will retry", event.claim_id, event.seq, exc_info=True)
            return done, None if stop.is_set() else event
        done = event
    return done, None
