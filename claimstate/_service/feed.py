"""The service's side of the event feed: delivering a consumer's events under a lease, acknowledging them,
the consume loop's parts, and looking at or pruning the feed (the rows are `_store.events`')."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial

from claimstate._errors import ClaimStateError, InvalidInput
from claimstate._feed import Consumer, Event, consume, parse_cursor
from claimstate._inputs import identifier, whole_number
from claimstate._service.core import Core, lagging
from claimstate._service.ids import new_claim_id, worker_name
from claimstate._service.options import seconds
from claimstate._telemetry import delivered, handling
from claimstate._time import aware, to_iso


class Feed:
    """The feed as one service reads it: `worker` names this service in the lease rows, and `workers` are
    those of its workers that took lanes, which `close` gives back."""

    def __init__(self, core: Core, lagging: Core) -> None:
        self._core = core
        self._lagging = lagging  # where a look at the feed reads: a standby, given one
        self.worker = worker_name()
        self.workers: set[str] = set()
        self._workers_lock = threading.Lock()  # threads start and stop workers at once

    def events(self, consumer: str, limit: int, lease: float, worker: str | None) -> list[Event]:
        consumer, limit, lease = identifier(consumer, "consumer"), whole_number(limit, "limit"), seconds(lease)
        return self.deliver(consumer, limit, lease, self._worker(worker))

    def _worker(self, worker: str | None) -> str:
        """This service's own name in the lease rows, or the one its caller gives for a client of its own."""
        return self.worker if worker is None else identifier(worker, "worker")

    def deliver(self, consumer: str, limit: int, lease: float, worker: str) -> list[Event]:
        core = self._core
        now = core.now(None)
        with self._workers_lock:
            self.workers.add(worker)
        events = core.store.write(
            partial(
                core.store.events.deliver,
                consumer,
                worker=worker,
                now=to_iso(now),
                until=to_iso(now + timedelta(seconds=lease)),
                limit=limit,
            )
        )
        delivered(consumer, events, now)
        return events

    def checked_ack(self, consumer: str, up_to: Event | str, worker: str | None) -> None:
        consumer, worker = identifier(consumer, "consumer"), self._worker(worker)
        if isinstance(up_to, Event):
            self.ack(consumer, up_to, worker)
            return
        if not isinstance(up_to, str):
            raise InvalidInput(f"up_to must be an Event this feed delivered or its cursor, not {type(up_to).__name__}",
                               field="up_to")  # fmt: skip
        lane, lane_seq = parse_cursor(up_to)
        self._core.store.write(partial(self._core.store.events.ack, consumer, lane, lane_seq, worker=worker))

    def ack(self, consumer: str, up_to: Event, worker: str) -> None:
        self._core.store.write(
            partial(self._core.store.events.ack, consumer, up_to.lane, up_to.lane_seq, worker=worker)
        )

    def consume(
        self,
        consumer: str,
        handler: Callable[[Event], object],
        *,
        stop: threading.Event | None,
        limit: int,
        lease: float,
        poll: float,
        max_pause: float,
    ) -> int:
        consumer, limit = identifier(consumer, "consumer"), whole_number(limit, "limit")
        lease, poll, max_pause = seconds(lease), seconds(poll, "poll"), seconds(max_pause, "max_pause")
        if not callable(handler):
            raise InvalidInput(f"the handler must be callable, not {type(handler).__name__}", field="handler")
        if stop is not None and not isinstance(stop, threading.Event):
            raise InvalidInput(f"stop must be a threading.Event, not {type(stop).__name__}", field="stop")
        worker = f"{self.worker}/{new_claim_id()}"
        core = self._core

        def set_aside(lane: int, pause: float) -> None:
            until = to_iso(core.now(None) + timedelta(seconds=pause))
            core.store.write(partial(core.store.events.set_aside, consumer, lane, worker=worker, until=until))

        try:
            return consume(
                Consumer(
                    deliver=partial(self.deliver, consumer, limit, lease, worker),
                    ack=partial(self.ack, consumer, worker=worker),
                    set_aside=set_aside,
                    release=partial(self.release, worker, consumer),
                ),
                handling(consumer, handler),
                stop=threading.Event() if stop is None else stop,
                lease=lease,
                poll=poll,
                max_pause=max_pause,
            )
        finally:
            with self._workers_lock:
                self.workers.discard(worker)  # its lane was given back as it stopped

    def release(self, worker: str, consumer: str | None = None) -> None:
        self._core.store.write(partial(self._core.store.events.release, worker, consumer=consumer))

    def release_all(self) -> None:
        """Give back the lanes this service's workers still hold (their leases lapse on their own otherwise)."""
        with self._workers_lock:
            workers = sorted(self.workers)
        try:
            for worker in workers:
                self.release(worker)
        except ClaimStateError:
            pass

    def forget(self, consumer: str) -> bool:
        consumer = identifier(consumer, "consumer")
        return self._core.store.write(partial(self._core.store.events.forget, consumer)) > 0

    @lagging
    def listed(self, consumer: str | None, after: int, limit: int) -> list[Event]:
        consumer = None if consumer is None else identifier(consumer, "consumer")
        after, limit = whole_number(after, "after", least=0), whole_number(limit, "limit")
        return self._lagging.store.events.listed(consumer, after=after, limit=limit)

    def prune(self, older_than: datetime) -> int:
        older = to_iso(aware(older_than, field="older_than"))
        return self._core.store.write(partial(self._core.store.events.prune, older))
