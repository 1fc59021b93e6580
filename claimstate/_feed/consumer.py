"""The simple subscriber: hand each event to a handler, acknowledge it once the handler returned.

The loop holds no state a crash could lose: what was acknowledged is in the database, and what was not
is delivered again (to this worker, or after the lease to another). A handler that raises is retried
with a growing pause, and the events after it in its lane wait, so a claim's events stay in order.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from claimstate._errors import ConcurrentModification, StorageError
from claimstate._feed.event import Event

_log = logging.getLogger("claimstate.events")
_FIRST_PAUSE = 0.05  # seconds after the first failure; doubled after each further one


def consume(
    deliver: Callable[[], Sequence[Event]],
    ack: Callable[[Event], None],
    release: Callable[[], None],
    handler: Callable[[Event], object],
    *,
    stop: threading.Event,
    poll: float,
    max_pause: float,
) -> int:
    """Deliver, handle and acknowledge until `stop` is set; how many events the handler completed.

    `deliver` takes this worker's next events, `ack` records one as handled (with those before it),
    `release` gives back what this worker still holds when it stops. A failure to reach the database
    is paused over and tried again, like a handler's.
    """
    handled, pause = 0, 0.0
    try:
        while not stop.is_set():
            events: Sequence[Event] = ()
            done, failed = None, False
            try:
                events = deliver()
                for event in events:
                    if stop.is_set():
                        break
                    try:
                        handler(event)
                    except Exception:
                        if not stop.is_set():  # a handler that sets `stop` and raises ends the loop quietly
                            _log.warning(
                                "handler failed on %s seq %s; will retry", event.claim_id, event.seq, exc_info=True
                            )
                        failed = True
                        break
                    done, handled = event, handled + 1
                if done is not None:
                    ack(done)
            except (StorageError, ConcurrentModification) as error:
                _log.warning("could not read or acknowledge events (%s); will retry", error)
                failed = True
            if failed:
                pause = min(max(2 * pause, _FIRST_PAUSE), max_pause)
                stop.wait(pause)
            else:
                pause = 0.0
                if not events:
                    stop.wait(poll)
    finally:
        try:
            release()
        except (StorageError, ConcurrentModification) as error:
            _log.warning("could not release this worker's lease (%s); it lapses on its own", error)
    return handled
