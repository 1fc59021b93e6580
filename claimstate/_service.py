"""ClaimService: the API services embed. The engine decides, the store keeps, one transaction per call.

Every write reads the claim, lets the engine decide and writes the new row and its history row inside
one BEGIN IMMEDIATE transaction, so a fire is applied whole or not at all, once, whatever other
processes share the file.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial, update_wrapper
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from claimstate._actor import SYSTEM, Actor
from claimstate._chain import Chain
from claimstate._checks import identifier, plain_data, valid_text, whole_number
from claimstate._claim import Claim, TransitionRecord
from claimstate._definition import Definition, Policy, fingerprint_of
from claimstate._engine import Availability, Engine, Fired
from claimstate._errors import (
    ClaimNotFound,
    ClaimStateError,
    ConcurrentModification,
    InvalidInput,
    LifecycleChanged,
    StorageError,
    TransitionRefused,
    UnreadableClaims,
)
from claimstate._feed import Consumer, Event, consume
from claimstate._json import decode, encode
from claimstate._lifecycle import CLAIM_LIFECYCLE
from claimstate._migration import (
    Migration,
    Moving,
    Outdated,
    Target,
    changed_error,
    clock_started,
    moved,
    outdated,
    plan_of,
    planned,
    short,
)
from claimstate._replayers import Replayers, Unreplayable
from claimstate._store import Loaded, Rules, Synchronous, is_postgres, open_store
from claimstate._time import aware, from_iso, to_iso
from claimstate._verify import Difference, EngineOf, Mismatch, check_history, claim_differences, replay

__all__ = ["ClaimService", "Difference", "Mismatch"]  # verify's report is part of the service's API

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_REQUEST = json.JSONEncoder(sort_keys=True, separators=(",", ":"))  # a request's fingerprint; fixed: keys are stored


class _Ulids:
    """ULIDs (48 bits of milliseconds, 80 random bits) that also grow within one millisecond, so claim
    ids sort in the order they were made (by the wall clock, not a `now` given) and page stably."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
            self._last = value = max(value, self._last + 1)
        return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


new_claim_id = _Ulids()


def _digest(trigger: str, actor: Actor, data: Mapping[str, Any]) -> str:
    """A fingerprint of a request, to tell a retry from a different request under the same key.

    An item given as null counts as not given, as it does for the engine.
    """
    given = {k: v for k, v in data.items() if v is not None}
    try:
        text = _REQUEST.encode([trigger, str(actor), given])
    except (TypeError, ValueError, RecursionError):
        plain_data(given, "data", max_text=sys.maxsize)  # names what is wrong
        raise InvalidInput("the data must be plain JSON values", field="data") from None
    return hashlib.sha256(text.encode()).hexdigest()


S = TypeVar("S", bound="ClaimService")
P = ParamSpec("P")
R = TypeVar("R")


def _serialized(method: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
    """Run the method holding the service's lock: threads sharing one service take turns on its connection."""

    def run(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with self._lock:
            return method(self, *args, **kwargs)

    update_wrapper(run, method)
    return run


def _reading(method: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
    """Run the method holding the service's lock, all its reads on one snapshot of the database."""

    def run(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with self._lock:
            return self._store.read(lambda: method(self, *args, **kwargs))

    update_wrapper(run, method)
    return run


class ClaimService:
    """Claims kept in one SQLite file (default ``claims.db``; ``":memory:"`` for tests).

    `clock` gives the time when a call passes no `now`; it defaults to the wall clock in UTC. With
    `create=False` a file that does not exist is a StorageError rather than a new, empty database.
    `read_only=True` opens an existing database for the reads alone (get, history, list_claims,
    iter_claims, available, due, verify), creating no file, so another OS user's reads never lock its
    owner out; every write is a StorageError. `history_key` (at least 16 bytes, kept by the deploying
    service, never stored) chains the history with HMAC-SHA256 instead of plain SHA-256, so that only
    its holder can append rows that verify; a service with a key writes to and accepts no other chain.

    Every claim and history row records the fingerprint of the definition (under the policy's windows)
    it was decided under. A writable open refuses (LifecycleChanged, listing them) while open claims were
    decided under another definition; `migrating=True` opens anyway, to `migrate` them, and meanwhile
    refuses every fire on such a claim.
    """

    def __init__(
        self,
        path: str | Path = "claims.db",
        *,
        definition: Definition = CLAIM_LIFECYCLE,
        policy: Policy | None = None,
        synchronous: Synchronous = "NORMAL",
        busy_timeout: float = 5.0,
        clock: Callable[[], datetime] | None = None,
        create: bool = True,
        read_only: bool = False,
        history_key: bytes | None = None,
        migrating: bool = False,
    ) -> None:
        _checked_options(path, synchronous=synchronous, busy_timeout=busy_timeout, clock=clock,
                         flags={"create": create, "read_only": read_only, "migrating": migrating})  # fmt: skip
        self.engine = Engine(definition, policy)
        # Replays what was accepted when it happened: limits lowered since then do not make history invalid.
        self._replayers = Replayers(definition, self.engine.policy)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._chain = Chain(history_key)
        export = definition.to_dict(self.engine.policy)
        self._store = open_store(
            path,
            synchronous=synchronous,
            busy_timeout=busy_timeout,
            create=create,
            read_only=read_only,
            chain=self._chain,
            rules=Rules(self.engine.fingerprint, definition.name, encode(export)),
        )
        self.path = self._store.path
        self._lock = threading.RLock()  # one connection: threads take turns, a batch keeps its turn
        self._worker = _worker_name()  # who holds the feed's lanes this service takes (see events)
        self._workers: set[str] = set()  # the workers of this service that took lanes: close gives them back
        if not read_only:
            try:
                self._adopt(migrating)
            except BaseException:
                self._store.close()
                raise

    @property
    def definition(self) -> Definition:
        return self.engine.definition

    @property
    def schema_version(self) -> int:
        """The version of the database's schema (each backend numbers its own), which opening migrated it to."""
        return self._store.schema_version

    @property
    def fingerprint(self) -> str:
        """The fingerprint of the definition (under the policy's windows) this service decides by."""
        return self.engine.fingerprint

    def _adopt(self, migrating: bool) -> None:
        """Refuse to open while open claims were decided under another definition (unless `migrating`);
        keep this service's definition among the database's, so its claims' rules can always be shown, and
        make it the one claims are filed under: a service still running another files no more."""
        if not migrating:
            found = self.outdated()
            if found:
                raise changed_error(self.path, self.fingerprint, found)
        if self._store.read(lambda: self._store.knows() and self._store.current() == self.fingerprint):
            return

        def adopt() -> None:
            self._store.register(to_iso(self._now(None)))
            self._store.make_current()

        with self._lock:
            self._store.write(adopt)

    @_reading
    def outdated(self) -> tuple[Outdated, ...]:
        """Per earlier definition, the open claims decided under it: how many in each state, and which of
        those states and of the transitions out of them this service's definition lacks (empty: none)."""
        rows = self._store.outdated()
        return outdated(rows, self._sound_bodies(), self.definition) if rows else ()

    @_reading
    def open_claims(self, definition: str | None = None) -> dict[str, int]:
        """How many open claims decided under `definition` (a fingerprint; default this service's) sit in each state."""
        return self._store.open_states(self.fingerprint if definition is None else identifier(definition, "definition"))

    @_reading
    def definitions(self) -> dict[str, dict[str, Any]]:
        """Every definition the database has seen, by fingerprint: its export (`Definition.to_dict`), as
        kept when first seen, with `first_seen` added."""
        return {
            fp: {**self._body(fp, body), "first_seen": seen}
            for fp, (_, body, seen) in self._store.definitions().items()
        }

    def _body(self, fingerprint: str, body: str) -> dict[str, Any]:
        try:
            found = decode(body)
        except (TypeError, ValueError, RecursionError):
            found = None
        if not isinstance(found, dict):
            raise StorageError(f"the stored definition {short(fingerprint)} in {self.path} is damaged", path=self.path)
        return found

    @_serialized
    def migrate(self, plan: Mapping[str, Any], *, dry_run: bool = False, now: datetime | None = None) -> Migration:
        """Move every open claim decided under another definition onto this one, as `plan` says (see the
        README, Changing the lifecycle): checked whole against every such claim first (PlanRefused lists
        each problem, and nothing is written), then one transaction writing, per claim, a history row
        (trigger ``migrate``, actor system) and its event. Run again, it finds nothing left to move.
        `dry_run` only reports what would move, writing nothing (a read-only service can do it)."""
        rules, at = plan_of(plan), self._now(now)
        if not isinstance(dry_run, bool):
            raise InvalidInput(f"must be True or False, not {dry_run!r}", field="dry_run")

        def moves(claims: list[Loaded]) -> Migration:
            target, bodies = Target(self.definition, self.engine.policy, self.fingerprint, at), self._sound_bodies()
            moving = [Moving(c.claim, c.definition, self._clock_started(c.claim)) for c in claims]
            found = planned(rules, moving, bodies, target, self._unreplayable(claims, bodies))
            return Migration(self.fingerprint, found, dry_run)

        if dry_run:
            return self._store.read(lambda: moves(self._outdated_claims(lock=False)))

        def apply() -> Migration:
            claims = self._outdated_claims(lock=True)
            migration = moves(claims)
            before = {c.claim.id: c for c in claims}
            for move in migration.moves:
                loaded = before[move.claim_id]
                after, record = moved(loaded.claim, move, self.definition, self.fingerprint, at)
                if not self._store.update(loaded, after, record, closed=False, key=None, digest=None):
                    raise ConcurrentModification(move.claim_id, loaded.claim.version, None)
            return migration

        return self._store.write(apply)

    def _unreplayable(self, claims: list[Loaded], bodies: Mapping[str, Mapping[str, Any]]) -> list[str]:
        """The old definitions of `claims` this service could not replay: once moved, verify could not check
        their earlier steps, so the plan is refused until the definition lists them in `earlier`."""
        problems = []
        for old in sorted({c.definition for c in claims if c.definition is not None}):
            try:
                self._replayers.find(old, bodies.get(old))
            except Unreplayable:
                name = bodies.get(old, {}).get("name", "not stored")
                problems.append(
                    f"the claims decided under definition {short(old)} ({name}) could not be verified once moved:"
                    " list that definition in this one's `earlier`, so their past steps can be replayed"
                )
        return problems

    def _clock_started(self, claim: Claim) -> datetime | None:
        return None if claim.deadline is None else clock_started(self._store.history(claim.id))

    def _outdated_claims(self, *, lock: bool) -> list[Loaded]:
        """The open claims decided under another definition; `lock`: each read for a write (locked where the
        store locks rows, and read again once locked: one closed or moved meanwhile is left out)."""
        read = self._store.loaded if lock else self._store.loaded_for_reading
        found = (read(claim_id) for claim_id in self._store.outdated_ids())
        return [c for c in found if c is not None and not c.closed and c.definition != self.fingerprint]

    def close(self) -> None:
        """Give back the feed's lanes this service's workers still hold, then close the database."""
        try:
            for worker in sorted(self._workers):
                self._release(worker)
        except ClaimStateError:
            pass  # the leases lapse on their own
        finally:
            self._store.close()

    def __enter__(self) -> ClaimService:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _now(self, now: datetime | None) -> datetime:
        return aware(self._clock() if now is None else now)

    @contextmanager
    def batch(self) -> Iterator[ClaimService]:
        """Apply every call inside the block in one transaction: all of them, or none if the block raises."""
        with self._lock, self._store.transaction():
            yield self

    # --- writes ----------------------------------------------------------------------------------------

    @_serialized
    def file_claim(
        self,
        data: Mapping[str, Any],
        *,
        actor: Actor | str | None = None,
        claim_id: str | None = None,
        idempotency_key: str | None = None,
        now: datetime | None = None,
    ) -> Fired:
        """File a claim (actor defaults to the data's buyer); refused if another claim on the order is open."""
        if not isinstance(data, Mapping):
            raise InvalidInput(f"the filing data must be an object, not {type(data).__name__}", field="data")
        claim_id = None if claim_id is None else identifier(claim_id, "claim_id")
        idempotency_key = None if idempotency_key is None else identifier(idempotency_key, "idempotency_key")
        plain_data(dict(data), "data", max_text=self.engine.policy.limits.text)  # before the store reads it
        actor = self._filer(actor, data)
        trigger = self.definition.creation.trigger
        digest = None if idempotency_key is None else _digest(trigger, actor, {"claim_id": claim_id, **data})

        def file() -> Fired:
            retried = self._retried(None, idempotency_key, digest)
            if retried is not None:
                return retried
            current = self._store.current()
            if current is not None and current != self.fingerprint:
                raise LifecycleChanged(
                    f"{self.path} files claims under definition {short(current)} now (a service running it opened"
                    f" the database since this one did); this service runs {short(self.fingerprint)} and files"
                    " none: restart it with that definition",
                    definition=self.fingerprint,
                    outdated=(),
                )
            new_id = claim_id or new_claim_id()
            if self._store.claim(new_id) is not None:
                raise InvalidInput(f"a claim with id {new_id!r} exists already", field="claim_id")
            open_order = self._store.order_is_open(str(data.get("order_id")))
            if open_order and idempotency_key is not None:
                # Where writers run at once (PostgreSQL), the claim seen open may be this very request's,
                # committed after the key was first looked up: look again, now that it shows.
                retried = self._retried(None, idempotency_key, digest)
                if retried is not None:
                    return retried
            fired = self.engine.file_claim(new_id, actor, data, self._now(now), order_has_open_claim=open_order)
            closed = self._closed(fired.claim)
            self._store.insert(fired.claim, fired.record, closed=closed, key=idempotency_key, digest=digest)
            return fired

        return self._store.write(file)

    @_serialized
    def fire(
        self,
        claim_id: str,
        trigger: str,
        actor: Actor | str,
        data: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        expected_version: int | None = None,
        now: datetime | None = None,
    ) -> Fired:
        """Apply one trigger atomically; a retry with the same idempotency key returns the first result."""
        claim_id = identifier(claim_id, "claim_id")
        idempotency_key = None if idempotency_key is None else identifier(idempotency_key, "idempotency_key")
        expected_version = None if expected_version is None else whole_number(expected_version, "expected_version")
        actor = Actor.parse(actor)
        data = {} if data is None else data
        if not isinstance(data, Mapping):
            raise InvalidInput(f"the data must be an object, not {type(data).__name__}", field="data")
        digest = None if idempotency_key is None else _digest(trigger, actor, data)

        def fire() -> Fired:
            loaded = self._store.loaded(claim_id)  # locks the claim's row where the store locks rows
            retried = self._retried(claim_id, idempotency_key, digest)
            if retried is not None:
                return retried
            if loaded is None:
                raise self._missing(claim_id)
            if loaded.definition != self.fingerprint:
                raise self._decided_elsewhere(claim_id, loaded.definition)
            claim = loaded.claim
            if expected_version is not None and expected_version != claim.version:
                raise ConcurrentModification(claim_id, expected_version, claim.version)
            fired = self.engine.fire(claim, trigger, actor, data, self._now(now))  # the clock read under the lock
            closed = self._closed(fired.claim)
            if not self._store.update(
                loaded, fired.claim, fired.record, closed=closed, key=idempotency_key, digest=digest
            ):
                current = self._load(claim_id)
                raise ConcurrentModification(claim_id, claim.version, current.version)
            return fired

        return self._store.write(fire, claim_id=claim_id)

    @_reading
    def due(self, now: datetime | None = None) -> int:
        """How many deadlines are due at `now`: what the next `tick` will try to fire."""
        return self._store.due_count(to_iso(self._now(now)))

    @_serialized
    def tick(
        self, now: datetime | None = None, *, limit: int = 500, progress: Callable[[int], None] | None = None
    ) -> list[TransitionRecord]:
        """Fire every deadline due at `now`, once each, as the system; returns what was fired.

        Each deadline fires in its own transaction after re-reading the claim, so two ticks at once never
        fire one deadline twice. A deadline whose transition is refused (only a hand-edited claim has one)
        is skipped and stays due: `due()` counts it and `verify()` reports the claim.
        `progress` is called with 1 for each deadline handled; `limit` is how many are read at a time.
        The list returned holds every record: with very many due, `iter_tick` keeps memory flat.
        """
        return list(self.iter_tick(now, limit=limit, progress=progress))

    def iter_tick(
        self, now: datetime | None = None, *, limit: int = 500, progress: Callable[[int], None] | None = None
    ) -> Iterator[TransitionRecord]:
        """`tick`, yielding each record as its deadline fires: the deadlines are read `limit` at a time
        (keyset paging on due time and claim id), so memory stays flat however many are due. It fires only
        as far as it is iterated. A deadline set behind the page being read while it runs (by a fire with an
        earlier `now`) is the next tick's."""
        limit = whole_number(limit, "limit")
        if progress is not None and not callable(progress):
            raise InvalidInput(f"must be callable, not {type(progress).__name__}", field="progress")
        return self._ticking(self._now(now), limit, progress)

    def _ticking(self, at: datetime, limit: int, progress: Callable[[int], None] | None) -> Iterator[TransitionRecord]:
        after: tuple[str, str] | None = None
        while True:
            with self._lock:
                due = self._store.due(to_iso(at), limit, after)
            for _, claim_id, trigger in due:
                record = self._fire_deadline(claim_id, trigger, at)
                if progress is not None:
                    progress(1)
                if record is not None:
                    yield record
            if len(due) < limit:
                return
            after = due[-1][0], due[-1][1]

    @_serialized
    def _fire_deadline(self, claim_id: str, trigger: str, at: datetime) -> TransitionRecord | None:
        def fire_deadline() -> TransitionRecord | None:
            loaded = self._store.loaded(claim_id, skip_locked=True)  # a row another tick holds is its to fire
            deadline = None if loaded is None else loaded.claim.deadline
            if loaded is None or deadline is None or deadline.trigger != trigger or deadline.due > at:
                return None  # another tick fired it first
            if loaded.definition != self.fingerprint:
                return None  # decided under another definition: fired once migrated
            if loaded.claim.updated_at > at:
                return None  # changed since this tick began: the next tick judges it
            try:
                result = self.engine.fire(loaded.claim, trigger, SYSTEM, None, at)
            except (TransitionRefused, InvalidInput):  # refused, or its next deadline would fall past 8999
                return None
            closed = self._closed(result.claim)
            self._store.update(loaded, result.claim, result.record, closed=closed, key=None, digest=None)
            return result.record

        return self._store.write(fire_deadline, claim_id=claim_id)

    # --- the event feed --------------------------------------------------------------------------------

    def events(self, consumer: str, limit: int = 100, *, lease: float = 30.0) -> list[Event]:
        """The next events `consumer` has not acknowledged (at most `limit`), to handle and then `ack`.

        They come from one lane (one set of claims), in the order they were committed, so a claim's events
        arrive in seq order. The lane is leased to this service for `lease` seconds: the other workers of
        `consumer` (other services calling `events` with the same name) get other lanes meanwhile, and the
        lane's unacknowledged events go to one of them if this one does not acknowledge them in time.
        Asked again before acknowledging, it delivers the same events again, then the rest. Every name is a
        consumer of its own, reading the whole feed from its oldest retained event.
        """
        consumer, limit, seconds = identifier(consumer, "consumer"), whole_number(limit, "limit"), _seconds(lease)
        return self._deliver(consumer, limit, seconds, self._worker)

    def _deliver(self, consumer: str, limit: int, lease: float, worker: str) -> list[Event]:
        with self._lock:
            now = self._now(None)
            self._workers.add(worker)
            return self._store.write(
                partial(
                    self._store.events.deliver,
                    consumer,
                    worker=worker,
                    now=to_iso(now),
                    until=to_iso(now + timedelta(seconds=lease)),
                    limit=limit,
                )
            )

    def ack(self, consumer: str, up_to: Event) -> None:
        """Record that `consumer` has handled `up_to` and every event delivered before it in its lane.

        Durable once it returns. Acknowledging an event twice, or an older one, changes nothing; an event
        not yet delivered to `consumer` is refused (InvalidInput), because that would skip events.
        """
        consumer = identifier(consumer, "consumer")
        if not isinstance(up_to, Event):
            raise InvalidInput(f"up_to must be an Event this feed delivered, not {type(up_to).__name__}", field="up_to")
        self._ack(consumer, up_to, self._worker)

    def _ack(self, consumer: str, up_to: Event, worker: str) -> None:
        with self._lock:
            self._store.write(partial(self._store.events.ack, consumer, up_to, worker=worker))

    def consume(
        self,
        consumer: str,
        handler: Callable[[Event], object],
        *,
        stop: threading.Event | None = None,
        limit: int = 100,
        lease: float = 30.0,
        poll: float = 1.0,
        max_pause: float = 30.0,
    ) -> int:
        """Call `handler(event)` for each event of `consumer`, acknowledging each once the handler returns,
        until `stop` is set (or the thread is interrupted); how many events were handled.

        When the handler raises, that event's lane (its claims) is set aside for a pause that doubles up to
        `max_pause` seconds, then the event is offered again; the claim's later events wait behind it,
        and the consumer's other lanes go on meanwhile. With nothing to do, it looks again every `poll`
        seconds. A batch (at most `limit` events) is handled within most of its `lease`: what is left is
        taken again under a new lease, so no other worker gets it meanwhile. Each call is a worker of its
        own, so several threads or processes may consume one name together; on stopping, the lane it
        holds is given back at once.
        """
        consumer, limit = identifier(consumer, "consumer"), whole_number(limit, "limit")
        lease, poll, max_pause = _seconds(lease), _seconds(poll, "poll"), _seconds(max_pause, "max_pause")
        if not callable(handler):
            raise InvalidInput(f"the handler must be callable, not {type(handler).__name__}", field="handler")
        if stop is not None and not isinstance(stop, threading.Event):
            raise InvalidInput(f"stop must be a threading.Event, not {type(stop).__name__}", field="stop")
        worker = f"{self._worker}/{new_claim_id()}"

        def set_aside(lane: int, pause: float) -> None:
            until = to_iso(self._now(None) + timedelta(seconds=pause))
            with self._lock:
                self._store.write(partial(self._store.events.set_aside, consumer, lane, worker=worker, until=until))

        return consume(
            Consumer(
                deliver=partial(self._deliver, consumer, limit, lease, worker),
                ack=partial(self._ack, consumer, worker=worker),
                set_aside=set_aside,
                release=partial(self._release, worker, consumer),
            ),
            handler,
            stop=threading.Event() if stop is None else stop,
            lease=lease,
            poll=poll,
            max_pause=max_pause,
        )

    def _release(self, worker: str, consumer: str | None = None) -> None:
        with self._lock:
            self._store.write(partial(self._store.events.release, worker, consumer=consumer))

    def forget_consumer(self, consumer: str) -> bool:
        """Drop `consumer`'s progress, so that it no longer holds back `prune_events` (a name given by
        mistake, a service retired); True if it had any. Used again, the name starts from the oldest
        retained event."""
        consumer = identifier(consumer, "consumer")
        with self._lock:
            return self._store.write(partial(self._store.events.forget, consumer)) > 0

    @_reading
    def feed(self, consumer: str | None = None, *, after: int = 0, limit: int = 100) -> list[Event]:
        """Events in position order after position `after`: every retained one, or (with `consumer`) those it
        has not acknowledged. A look only: nothing is leased or acknowledged. Not a way to follow the feed:
        on PostgreSQL an event can commit after one with a higher position was read (`events` never
        misses one)."""
        consumer = None if consumer is None else identifier(consumer, "consumer")
        after, limit = whole_number(after, "after", least=0), whole_number(limit, "limit")
        return self._store.events.listed(consumer, after=after, limit=limit)

    @_serialized
    def prune_events(self, older_than: datetime) -> int:
        """Delete the events before `older_than` that every consumer has acknowledged; how many. The history
        keeps every transition; while no consumer exists, nothing is deleted."""
        return self._store.write(partial(self._store.events.prune, to_iso(aware(older_than, field="older_than"))))

    # --- reads -----------------------------------------------------------------------------------------

    @_reading
    def get(self, claim_id: str) -> Claim:
        return self._load(identifier(claim_id, "claim_id"))

    @_reading
    def history(self, claim_id: str) -> list[TransitionRecord]:
        """The claim's transitions in order; a history whose claim row is gone, or that is damaged, is a
        StorageError (run verify), never printed as if sound."""
        claim_id = identifier(claim_id, "claim_id")
        rows = self._store.history(claim_id)
        self._load(claim_id)
        with self._damaged(claim_id):
            return [_record(row) for row in rows]

    @_reading
    def available(self, claim_id: str, actor: Actor | str, now: datetime | None = None) -> tuple[Availability, ...]:
        """Every trigger, allowed or refused for `actor` now, with the reasons."""
        claim_id = identifier(claim_id, "claim_id")
        decided = self._store.loaded_for_reading(claim_id)  # the claim and its definition, in one read
        if decided is None:
            raise self._missing(claim_id)
        if decided.definition != self.fingerprint:
            raise self._decided_elsewhere(claim_id, decided.definition)
        return self.engine.available(decided.claim, actor, self._now(now))

    @_reading
    def list_claims(
        self,
        *,
        state: str | None = None,
        buyer: str | None = None,
        supplier: str | None = None,
        order: str | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> list[Claim]:
        """Claims matching every filter given, in id order (the order they were filed); page with `after`.

        A stored claim that cannot be read (damaged) does not hide the others: the page is read whole, then
        UnreadableClaims names the damaged ones and carries the rest as `claims`."""
        limit = whole_number(limit, "limit")
        where = self._filters(state=state, buyer=buyer, supplier=supplier, order=order)
        after = None if after is None else identifier(after, "after")
        listed = self._store.claims(where, after=after, limit=limit)
        if listed.unreadable:
            raise UnreadableClaims(dict(listed.unreadable), claims=listed.claims, last=listed.last, path=self.path)
        return listed.claims

    def iter_claims(
        self,
        *,
        state: str | None = None,
        buyer: str | None = None,
        supplier: str | None = None,
        order: str | None = None,
        after: str | None = None,
        limit: int | None = None,
        page: int = 500,
    ) -> Iterator[Claim]:
        """Claims matching every filter, in id order after `after`, at most `limit` (None: all of them).

        Reads `page` claims per query (keyset paging on the id), so memory stays flat however many there
        are. Each page is one snapshot; claims filed meanwhile with a greater id are included. Stored claims
        that cannot be read (damaged) are passed over, every other one yielded, and then UnreadableClaims
        names them.
        """
        page = whole_number(page, "page")
        limit = None if limit is None else whole_number(limit, "limit")
        where = self._filters(state=state, buyer=buyer, supplier=supplier, order=order)
        after = None if after is None else identifier(after, "after")
        return self._pages(where, after, limit, page)

    def _pages(self, where: dict[str, str], after: str | None, limit: int | None, page: int) -> Iterator[Claim]:
        left, unreadable = limit, dict[str, str]()
        while left is None or left > 0:
            size = page if left is None else min(page, left)
            with self._lock:
                listed = self._store.read(partial(self._store.claims, where, after=after, limit=size))
            yield from listed.claims
            unreadable.update(listed.unreadable)
            read = len(listed.claims) + len(listed.unreadable)
            after = listed.last or after
            if read < size:
                break
            left = None if left is None else left - read
        if unreadable:
            raise UnreadableClaims(unreadable, last=after, path=self.path)

    def _filters(
        self, *, state: str | None, buyer: str | None, supplier: str | None, order: str | None
    ) -> dict[str, str]:
        """The listing filters as claims columns, each checked."""
        if state is not None:
            self.definition.state(identifier(state, "state"))
        given = {"state": state, "buyer": buyer, "supplier": supplier, "order": order}
        for name, value in given.items():
            if value is not None:
                valid_text(value, name, limit=self.engine.policy.limits.text)
        columns = {"state": state, "buyer_id": buyer, "supplier_id": supplier, "order_id": order}
        return {k: v for k, v in columns.items() if v is not None}

    @_reading
    def verify(self) -> list[Mismatch]:
        """Check the whole database and report everything wrong, changing nothing.

        Problems of the database as a whole come first (`claim_id` None: SQLite's integrity check, the
        schema, the chain's kind or key), then each claim's in id order: every history replayed through the
        lifecycle from its filing and compared row by row, its hash chain recomputed, its claims row
        compared, and history rows without a claim; each retained event of the feed compared with its
        history row and with the claim the replay rebuilds at that step. A damaged file is reported
        (`integrity`), not raised. `Mismatch.kind` names the check.
        """
        found = [Mismatch(None, problem, kind="integrity") for problem in self._store.integrity()]
        try:
            found += [Mismatch(None, problem, kind="schema") for problem in self._store.schema_problems()]
            unchecked = self._chain.cannot_check(self._store.chain_record())
            if unchecked is not None:
                found.append(Mismatch(None, f"the hash chain is not checked: {unchecked}", kind="chain_key"))
            engine_of, baseline = self._engine_of(self._sound_bodies(found)), self._store.baseline()
            for claim_id, rows in self._store.histories():
                chain = None if unchecked else self._chain
                found += self._verify_claim(claim_id, rows, chain, engine_of, baseline)
            unkeyed = self._store.unkeyed_history_rows()
            if unkeyed:
                found.append(Mismatch(None, f"{unkeyed} history row(s) have no claim id or seq", kind="claim_missing"))
            for claim_id in self._store.claims_without_history():
                found.append(Mismatch(claim_id, "the claim has no history", kind="no_history"))
            for order, ids in self._store.orders_open_twice():
                problem = f"order {order!r} has {len(ids)} open claims: {', '.join(ids)}"
                found.append(Mismatch(ids[-1], problem, kind="open_twice"))
            for claim_id, seq in self._store.events.not_in_history():
                problem = f"the event of seq {seq} is not its history row's: invented, or changed since"
                found.append(Mismatch(claim_id, problem, kind="event", seq=seq))
        except StorageError as error:  # a damaged file can stop the walk: say so rather than stop
            found.append(Mismatch(None, f"not every row could be read: {error}", kind="integrity"))
        return sorted(found, key=lambda m: (m.claim_id is not None, m.claim_id or ""))

    def _sound_bodies(self, found: list[Mismatch] | None = None) -> dict[str, dict[str, Any]]:
        """The stored definitions by fingerprint, each checked to be the one its fingerprint names: one
        changed since it was stored is left out (and reported in `found`), so nothing reads its rules."""
        bodies = {}
        for fingerprint, (_name, text, _seen) in self._store.definitions().items():
            try:
                body = self._body(fingerprint, text)
                sound = fingerprint_of(body) == fingerprint
            except (StorageError, KeyError, TypeError, ValueError):
                sound = False
            if sound:
                bodies[fingerprint] = body
            elif found is not None:
                problem = f"the stored definition {short(fingerprint)} is not the one its fingerprint names: changed"
                found.append(Mismatch(None, problem, kind="definition"))
        return bodies

    def _engine_of(self, bodies: Mapping[str, Mapping[str, Any]] | None = None) -> EngineOf:
        """The engine replaying a step decided under a definition (by fingerprint; None: the database's
        baseline, for steps written before they recorded one). `bodies` are the sound stored definitions if
        the caller read them already; else they, and the baseline, are read only when a step needs them
        (a retry whose steps are all this service's reads neither)."""
        baseline = functools.cache(self._store.baseline)
        stored = functools.cache(self._sound_bodies if bodies is None else lambda: bodies)

        def engine_of(fingerprint: str | None) -> Engine:
            fingerprint = fingerprint or baseline()
            body = None if self._replayers.knows(fingerprint) else stored().get(fingerprint or "")
            return self._replayers.find(fingerprint, body)

        return engine_of

    def _verify_claim(
        self, claim_id: str, rows: list[dict[str, Any]], chain: Chain | None, engine_of: EngineOf, baseline: str | None
    ) -> list[Mismatch]:
        found, replayed = check_history(claim_id, rows, engine_of=engine_of, chain=chain)
        try:
            decided = self._store.loaded_for_reading(claim_id)  # the claim and its definition, in one read
        except StorageError as error:
            return [*found, Mismatch(claim_id, f"the stored claim cannot be read: {error}", kind="details")]
        if decided is None:
            return [
                Mismatch(
                    claim_id,
                    f"no claims row, but {len(rows)} history row(s): the claim was deleted, or the rows belong to"
                    " no claim",
                    kind="claim_missing",
                ),
                *found,
            ]
        stored, last = decided.claim, rows[-1].get("definition") or baseline
        if decided.definition != last:
            problem = (
                f"the claims row records definition {short(decided.definition)}, but its last step was decided"
                f" under {short(last)}"
            )
            found.append(Mismatch(claim_id, problem, kind="definition"))
        if replayed is None:
            return found
        differs = claim_differences(claim_id, stored, replayed)
        if differs is not None:
            return [*found, differs]
        closed = engine_of(last).definition.state(stored.state).final  # its rules know a state retired since
        wrong = self._store.row_differences(stored, closed)
        if wrong:
            found.append(
                Mismatch(
                    claim_id,
                    f"the claims row's columns differ from the claim: {', '.join(wrong)}",
                    tuple(Difference(column, *values) for column, values in wrong.items()),
                    kind="columns",
                )
            )
        return found

    # --- helpers ---------------------------------------------------------------------------------------

    def _load(self, claim_id: str) -> Claim:
        claim = self._store.claim(claim_id)
        if claim is None:
            raise self._missing(claim_id)
        return claim

    def _decided_elsewhere(self, claim_id: str, definition: str | None) -> LifecycleChanged:
        return LifecycleChanged(
            f"claim {claim_id!r} was decided under definition {short(definition)}, not this service's"
            f" {short(self.fingerprint)}: migrate it first (see the README, Changing the lifecycle)",
            definition=self.fingerprint,
            outdated=(),
            claim_id=claim_id,
        )

    def _missing(self, claim_id: str) -> ClaimStateError:
        """Why there is no claim `claim_id`: none was filed, or its row is gone (damage)."""
        if self._store.has_history(claim_id):
            return StorageError(
                f"claim {claim_id!r} in {self.path} is damaged: its history is there but its claims row is gone;"
                " run verify",
                path=self.path,
            )
        return ClaimNotFound(claim_id)

    @contextmanager
    def _damaged(self, claim_id: str) -> Iterator[None]:
        """A stored history that does not read or replay is damage (StorageError), not the caller's bad input."""
        try:
            yield
        except (InvalidInput, TransitionRefused) as error:
            raise StorageError(
                f"claim {claim_id!r} in {self.path} has a damaged history: {error}; run verify", path=self.path
            ) from None

    @staticmethod
    def _filer(actor: Actor | str | None, data: Mapping[str, Any]) -> Actor:
        """Who files: the given actor, else the buyer the data names."""
        if actor is not None:
            return Actor.parse(actor)
        try:
            return Actor("buyer", data.get("buyer_id"))
        except InvalidInput as error:
            raise InvalidInput(error.reason, field="buyer_id") from None

    def _closed(self, claim: Claim) -> bool:
        return self.definition.state(claim.state).final

    def _retried(self, claim_id: str | None, key: str | None, digest: str | None) -> Fired | None:
        """The first result of a request repeated under its idempotency key; None when the key is new.

        The same key for a different request is refused. `claim_id` None: the key of a filing.
        """
        earlier = None if key is None else self._store.keyed(claim_id, key)
        if earlier is None:
            return None
        first_id, seq, first_digest = earlier
        if first_digest != digest:
            raise InvalidInput(
                f"idempotency key {key!r} was already used for a different request", field="idempotency_key"
            )
        rows = self._store.history(first_id)[:seq]
        with self._damaged(first_id):
            *_, last = replay(self._engine_of(), first_id, rows)
            return Fired(last.claim, _record(rows[-1]))


def _worker_name() -> str:
    """This service's name in the feed's lease rows: the host and process, to find a stuck worker by."""
    return f"{socket.gethostname()}:{os.getpid()}:{new_claim_id()}"


_MOST_SECONDS = 366 * 86_400  # a lease, a poll or a pause longer than a year is a mistake
_MOST_WAIT = 86_400  # a busy timeout: a day (PostgreSQL's lock_timeout holds under 25 days of milliseconds)
_SYNCHRONOUS = ("NORMAL", "FULL")


def _seconds(value: object, field: str = "lease", *, most: int = _MOST_SECONDS) -> float:
    """A positive number of seconds, at most `most` (by default a year): NaN and infinities are refused."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= most:
        raise InvalidInput(f"must be a number of seconds above 0 and at most {most}, not {value!r}", field=field)
    return float(value)


def _checked_options(
    path: object, *, synchronous: object, busy_timeout: object, clock: object, flags: Mapping[str, object]
) -> None:
    """Refuse, by name and before any file or connection is made, what no store could be opened with: a path
    that is not text or os.PathLike (bytes, None, a number would name a strange file), or is empty or holds
    a NUL; a wait that is not a sane number of seconds; an unknown synchronous mode (checked for every
    store, so a setting is never silently dropped); a clock that cannot be called; flags that are not bool."""
    if isinstance(path, str | os.PathLike) or not is_postgres(path):  # a pool is checked by psycopg_pool
        name = os.fspath(path) if isinstance(path, os.PathLike) else path
        if not isinstance(name, str):
            raise InvalidInput(
                f"must be a file path (text or os.PathLike), a postgresql:// URL or a psycopg_pool pool, not"
                f" {type(path).__name__}",
                field="path",
            )
        if not name:
            raise InvalidInput("no database given: name a SQLite file, or a postgresql:// URL", field="path")
        if "\x00" in name:
            raise InvalidInput("holds a NUL character, which no file name or URL can hold", field="path")
    if synchronous not in _SYNCHRONOUS:
        raise InvalidInput(f"must be one of {', '.join(_SYNCHRONOUS)}, not {synchronous!r}", field="synchronous")
    _seconds(busy_timeout, "busy_timeout", most=_MOST_WAIT)
    if clock is not None and not callable(clock):
        raise InvalidInput(f"must be callable, giving the time, not {type(clock).__name__}", field="clock")
    for name, flag in flags.items():
        if not isinstance(flag, bool):
            raise InvalidInput(f"must be True or False, not {flag!r}", field=name)


def _record(row: Mapping[str, Any]) -> TransitionRecord:
    return TransitionRecord(
        row["claim_id"],
        row["seq"],
        row["trigger"],
        row["from_state"],
        row["to_state"],
        Actor.parse(row["actor"]),
        row["data"],
        from_iso(row["at"]),
    )
