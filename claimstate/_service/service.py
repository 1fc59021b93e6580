"""ClaimService: the API services embed. The engine decides, the store keeps, one transaction per call.

Every write reads the claim, lets the engine decide and writes the new row and its history row inside
one transaction, so a fire is applied whole or not at all, once, whatever other processes or instances
share the database. The facade keeps filing, firing, ticking and reading; the feed, verify and lifecycle
changes are jobs of their own (`feed`, `verifying`, `changes`), each given the service's `Core`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import attrs

from claimstate._actor import SYSTEM, Actor
from claimstate._chain import Chain
from claimstate._claim import Claim, TransitionRecord
from claimstate._definition import Definition, Policy
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
from claimstate._feed import Event
from claimstate._fingerprints import short
from claimstate._flows import Flows, flows_of
from claimstate._inputs import identifier, plain_data, valid_text, whole_number
from claimstate._json import encode
from claimstate._lifecycle import CLAIM_LIFECYCLE
from claimstate._migration import Migration, Outdated
from claimstate._replayers import Replayers
from claimstate._service import verifying
from claimstate._service.changes import LifecycleChanges
from claimstate._service.core import Core, lagging, reading
from claimstate._service.feed import Feed
from claimstate._service.history import damaged, record
from claimstate._service.idempotency import digest, retried
from claimstate._service.ids import new_claim_id
from claimstate._service.options import checked_options
from claimstate._service.replica import checked_read_url, open_replica
from claimstate._stats import STUCK_AFTER, STUCK_SHOWN, Stats, built
from claimstate._store import Store, StoredDefinition, Synchronous, open_store
from claimstate._store.backups import Backup, backup
from claimstate._store.claims import Listed
from claimstate._telemetry import service_log, traced_deadline, traced_file, traced_fire, traced_tick
from claimstate._time import aware, to_iso
from claimstate._verify import Mismatch
from claimstate._view import ClaimView


class ClaimService:
    """Claims kept in a SQLite file (default ``claims.db``; ``":memory:"`` for tests) or a PostgreSQL
    database (a ``postgresql://`` URL, a libpq key=value string, or a psycopg_pool pool).

    `clock` gives the time when a call passes no `now`; it defaults to the wall clock in UTC. With
    `create=False` a database that does not exist is a StorageError rather than a new, empty one.
    `read_only=True` opens an existing database for the reads alone (get, history, list_claims,
    iter_claims, available, due, verify), creating no file, so another OS user's reads never lock its
    owner out; every write is a StorageError. `history_key` (at least 16 bytes, kept by the deploying
    service, never stored) chains the history with HMAC-SHA256 instead of plain SHA-256, so that only
    its holder can append rows that verify; a service with a key writes to and accepts no other chain.

    `read_url` (PostgreSQL only) names a standby of the database (a URL, which may name several hosts with
    ``target_session_attrs=prefer-standby``): the reads that tolerate a lag of moments go there, each saying
    so (`list_claims`, `iter_claims`, `stats`, `flows`, `feed`, `verify`); every write, and every read of a
    claim to act on (`get`, `view`, `available`, `history`), stays on the primary, so a caller always sees
    its own last write (docs: When a server dies: replicas and failover).

    `partitions` (PostgreSQL only) is how a schema this open creates is laid out: None or 0 plain tables,
    2 to 256 that many hash partitions by claim id (docs: PostgreSQL, Partitioning by claim id). It is
    chosen once: opening an existing database with another number is a StorageError saying what it has;
    None takes whatever it has (`partitions` then says).

    Every claim and history row records the fingerprint of the definition (under the policy's windows)
    it was decided under. A writable open refuses (LifecycleChanged, listing them) while open claims were
    decided under another definition; `migrating=True` opens anyway, to `migrate` them, and meanwhile
    refuses every fire on such a claim.

    `path` may also be a store already open (claimstate's own, from `claimstate._store.open_store`, as the
    tests build one): the service then uses it as it is, with its chain and its read_only setting, and
    closes it on `close`. It must have been opened for this service's definition; `history_key`,
    `synchronous`, `busy_timeout`, `partitions` and `create` are the store's to set when it is opened, and
    refused here.
    """

    def __init__(
        self,
        path: str | Path | Store = "claims.db",
        *,
        definition: Definition = CLAIM_LIFECYCLE,
        policy: Policy | None = None,
        synchronous: Synchronous = "NORMAL",
        busy_timeout: float = 5.0,
        pool_size: int = 10,
        partitions: int | None = None,
        read_url: str | None = None,
        clock: Callable[[], datetime] | None = None,
        create: bool = True,
        read_only: bool = False,
        history_key: bytes | None = None,
        migrating: bool = False,
    ) -> None:
        checked_options(path, synchronous=synchronous, busy_timeout=busy_timeout, pool_size=pool_size,
                        partitions=partitions, clock=clock,
                        flags={"create": create, "read_only": read_only, "migrating": migrating})  # fmt: skip
        checked_read_url(read_url, path)
        self.engine = Engine(definition, policy)
        export = definition.to_dict(self.engine.policy)
        decides_by = StoredDefinition(self.engine.fingerprint, definition.name, encode(export))
        if isinstance(path, Store):
            store = given_store(path, decides_by, history_key=history_key, read_only=read_only,
                                opening={"synchronous": synchronous != "NORMAL", "busy_timeout": busy_timeout != 5.0,
                                         "pool_size": pool_size != 10, "create": create is not True,
                                         "partitions": partitions is not None})  # fmt: skip
            read_only = store.read_only
        else:
            store = open_store(
                path,
                synchronous=synchronous,
                busy_timeout=busy_timeout,
                pool_size=pool_size,
                partitions=partitions,
                create=create,
                read_only=read_only,
                chain=Chain(history_key),
                definition=decides_by,
            )
        replayers = Replayers(definition, self.engine.policy)
        self._core = Core(store, self.engine, replayers, store.chain, clock or (lambda: datetime.now(UTC)))
        self._lagging = self._core  # the parts the reads that may lag run on: a standby's store, given one
        self._store = store  # shorthand for the facade's own methods
        try:
            if read_url is not None:
                replica = open_replica(read_url, store, busy_timeout=busy_timeout, pool_size=pool_size,
                                       definition=decides_by)  # fmt: skip
                self._lagging = attrs.evolve(self._core, store=replica)
            store.events.clock = partial(self._core.now, None)  # when an event enters the feed: this clock's time
            self.path = store.path
            self._feed = Feed(self._core, self._lagging)
            self._changes = LifecycleChanges(self._core)
            if not read_only:
                self._changes.adopt(migrating)
        except BaseException:
            self._close_stores()
            raise

    @property
    def definition(self) -> Definition:
        return self._core.definition

    @property
    def schema_version(self) -> int:
        """The version of the database's schema (each backend numbers its own), which opening migrated it to."""
        return self._store.schema_version

    @property
    def read_path(self) -> str | None:
        """Where the reads that may lag are read (`read_url`, shown without its password); None without one."""
        return None if self._lagging is self._core else self._lagging.store.path

    @property
    def partitions(self) -> int:
        """How many partitions by claim id the database's tables have (PostgreSQL's `partitions`, chosen when
        the schema was created); 0 for plain tables, as every SQLite file has."""
        return self._store.partitions

    @property
    def fingerprint(self) -> str:
        """The fingerprint of the definition (under the policy's windows) this service decides by."""
        return self._core.fingerprint

    def close(self) -> None:
        """Give back the feed's lanes this service's workers still hold, then close the database."""
        try:
            self._feed.release_all()
        finally:
            self._close_stores()

    def _close_stores(self) -> None:
        """Close the database, and the standby's store when one was given, even if the first close fails."""
        try:
            self._store.close()
        finally:
            if self._lagging is not self._core:
                self._lagging.store.close()

    def __enter__(self) -> ClaimService:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextmanager
    def batch(self) -> Iterator[ClaimService]:
        """Apply every call inside the block in one transaction: all of them, or none if the block raises."""
        with self._store.transaction():
            yield self

    # --- lifecycle changes -----------------------------------------------------------------------------

    def outdated(self) -> tuple[Outdated, ...]:
        """Per earlier definition, the open claims decided under it: how many in each state, and which of
        those states and of the transitions out of them this service's definition lacks (empty: none)."""
        return self._changes.outdated()

    def open_claims(self, definition: str | None = None) -> dict[str, int]:
        """How many open claims decided under `definition` (a fingerprint; default this service's) sit in each state."""
        return self._changes.open_claims(definition)

    def definitions(self) -> dict[str, dict[str, Any]]:
        """Every definition the database has seen, by fingerprint: its export (`Definition.to_dict`), as
        kept when first seen, with `first_seen` added."""
        return self._changes.definitions()

    def migrate(self, plan: Mapping[str, Any], *, dry_run: bool = False, now: datetime | None = None) -> Migration:
        """Move every open claim decided under another definition onto this one, as `plan` says (see the
        docs, Changing the lifecycle): checked whole against every such claim first (PlanRefused lists
        each problem, and nothing is written), then one transaction writing, per claim, a history row
        (trigger ``migrate``, actor system) and its event. Run again, it finds nothing left to move.
        `dry_run` only reports what would move, writing nothing (a read-only service can do it)."""
        return self._changes.migrate(plan, dry_run=dry_run, now=now)

    # --- writes ----------------------------------------------------------------------------------------

    @traced_file
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
        actor = _filer(actor, data)
        trigger = self.definition.creation.trigger
        request = None if idempotency_key is None else digest(trigger, actor, {"claim_id": claim_id, **data})

        def file() -> Fired:
            earlier = retried(self._core, None, idempotency_key, request)
            if earlier is not None:
                return earlier
            current = self._store.definitions.current()
            if current is not None and current != self.fingerprint:
                raise LifecycleChanged(
                    f"{self.path} files claims under definition {short(current)} now (a service running it opened"
                    f" the database since this one did); this service runs {short(self.fingerprint)} and files"
                    " none: restart it with that definition",
                    definition=self.fingerprint,
                    outdated=(),
                )
            new_id = claim_id or new_claim_id()
            if self._store.claims.claim(new_id) is not None:
                raise InvalidInput(f"a claim with id {new_id!r} exists already", field="claim_id")
            open_order = self._store.claims.order_is_open(str(data.get("order_id")))
            if open_order and idempotency_key is not None:
                # Where writers run at once (PostgreSQL), the claim seen open may be this very request's,
                # committed after the key was first looked up: look again, now that it shows.
                earlier = retried(self._core, None, idempotency_key, request)
                if earlier is not None:
                    return earlier
            fired = self.engine.file_claim(new_id, actor, data, self._core.now(now), order_has_open_claim=open_order)
            closed = self._closed(fired.claim)
            self._store.claims.insert(fired.claim, fired.record, closed=closed, key=idempotency_key, digest=request)
            return fired

        return self._store.write(file)

    @traced_fire
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
        request = None if idempotency_key is None else digest(trigger, actor, data)

        def fire() -> Fired:
            loaded = self._store.claims.loaded(claim_id)  # locks the claim's row where the store locks rows
            earlier = retried(self._core, claim_id, idempotency_key, request)
            if earlier is not None:
                return earlier
            if loaded is None:
                raise self._missing(claim_id)
            if loaded.definition != self.fingerprint:
                raise self._decided_elsewhere(claim_id, loaded.definition)
            claim = loaded.claim
            if expected_version is not None and expected_version != claim.version:
                raise ConcurrentModification(claim_id, expected_version, claim.version)
            fired = self.engine.fire(claim, trigger, actor, data, self._core.now(now))  # the clock read under the lock
            closed = self._closed(fired.claim)
            if not self._store.claims.update(loaded, fired.claim, fired.record, closed=closed, key=idempotency_key,
                                      digest=request):  # fmt: skip
                current = self._load(claim_id)
                raise ConcurrentModification(claim_id, claim.version, current.version)
            return fired

        return self._store.write(fire, claim_id=claim_id)

    @reading
    def due(self, now: datetime | None = None) -> int:
        """How many deadlines are due at `now`: what the next `tick` will try to fire."""
        return self._store.claims.due_count(to_iso(self._core.now(now)))

    @traced_tick
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
        return self._ticking(self._core.now(now), limit, progress)

    def _ticking(self, at: datetime, limit: int, progress: Callable[[int], None] | None) -> Iterator[TransitionRecord]:
        after: tuple[str, str] | None = None
        while True:
            due = self._store.read(partial(self._store.claims.due, to_iso(at), limit, after))
            for due_at, claim_id, trigger in due:
                try:
                    fired = traced_deadline(self._fire_deadline, claim_id, trigger, at, due_at)
                except StorageError as error:
                    if error.retryable or self._store.read_only:
                        raise  # the database, not this claim: the whole tick stops, and is run again
                    service_log.warning("tick passed over claim %s: %s (run verify)", claim_id, error)
                    fired = None  # a damaged claim stays due, for verify to report; the others still fire
                if progress is not None:
                    progress(1)
                if fired is not None:
                    yield fired
            if len(due) < limit:
                return
            after = due[-1][0], due[-1][1]

    def _fire_deadline(self, claim_id: str, trigger: str, at: datetime) -> TransitionRecord | None:
        def fire_deadline() -> TransitionRecord | None:
            loaded = self._store.claims.loaded(claim_id, skip_locked=True)  # a row another tick holds is its to fire
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
            self._store.claims.update(loaded, result.claim, result.record, closed=closed, key=None, digest=None)
            return result.record

        return self._store.write(fire_deadline, claim_id=claim_id)

    # --- the event feed --------------------------------------------------------------------------------

    def events(self, consumer: str, limit: int = 100, *, lease: float = 30.0, worker: str | None = None) -> list[Event]:
        """The next events `consumer` has not acknowledged (at most `limit`), to handle and then `ack`.

        They come from one lane (one set of claims), in the order they were committed, so a claim's events
        arrive in seq order. The lane is leased to this service for `lease` seconds: the other workers of
        `consumer` (other services calling `events` with the same name) get other lanes meanwhile, and the
        lane's unacknowledged events go to one of them if this one does not acknowledge them in time.
        Asked again before acknowledging, it delivers the same events again, then the rest. Every name is a
        consumer of its own, reading the whole feed from its oldest retained event. `worker` names who holds
        the lease (default: this service); a service that relays the feed to clients of its own names each
        one, as the HTTP API does.
        """
        return self._feed.events(consumer, limit, lease, worker)

    def ack(self, consumer: str, up_to: Event | str, *, worker: str | None = None) -> None:
        """Record that `consumer` has handled `up_to` (an Event, or its `cursor`) and every event delivered
        before it in its lane; once all it was delivered is acknowledged, the lane is free again for another
        worker (`worker`: see `events`).

        Durable once it returns. Acknowledging an event twice, or an older one, changes nothing; an event
        not yet delivered to `consumer` is refused (InvalidInput), because that would skip events.
        """
        self._feed.checked_ack(consumer, up_to, worker)

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
        return self._feed.consume(
            consumer, handler, stop=stop, limit=limit, lease=lease, poll=poll, max_pause=max_pause
        )

    def forget_consumer(self, consumer: str) -> bool:
        """Drop `consumer`'s progress, so that it no longer holds back `prune_events` (a name given by
        mistake, a service retired); True if it had any. Used again, the name starts from the oldest
        retained event."""
        return self._feed.forget(consumer)

    def feed(self, consumer: str | None = None, *, after: int = 0, limit: int = 100) -> list[Event]:
        """Events in position order after position `after`: every retained one, or (with `consumer`) those it
        has not acknowledged. A look only: nothing is leased or acknowledged. Not a way to follow the feed:
        on PostgreSQL an event can commit after one with a higher position was read (`events` never
        misses one). With `read_url`, read on the standby, which may lag the primary by moments."""
        return self._feed.listed(consumer, after, limit)

    def prune_events(self, older_than: datetime) -> int:
        """Delete the events before `older_than` that every consumer has acknowledged; how many. The history
        keeps every transition; while no consumer exists, nothing is deleted."""
        return self._feed.prune(older_than)

    # --- reads -----------------------------------------------------------------------------------------

    @reading
    def get(self, claim_id: str) -> Claim:
        return self._load(identifier(claim_id, "claim_id"))

    @reading
    def history(self, claim_id: str) -> list[TransitionRecord]:
        """The claim's transitions in order; a history whose claim row is gone, or that is damaged, is a
        StorageError (run verify), never printed as if sound."""
        claim_id = identifier(claim_id, "claim_id")
        rows = self._store.claims.history(claim_id)
        self._load(claim_id)
        with damaged(self._core, claim_id):
            return [record(row) for row in rows]

    @reading
    def view(self, claim_id: str, actor: Actor | str | None = None, now: datetime | None = None) -> ClaimView:
        """The claim and its whole history (and, given an `actor`, every trigger it may or may not fire now,
        with the reasons) read on one snapshot: the history ends at the claim's version, whatever other
        writers do meanwhile. What an API's `GET /claims/{id}` answers."""
        claim_id = identifier(claim_id, "claim_id")
        actor = None if actor is None else Actor.parse(actor)
        decided = self._store.claims.loaded_for_reading(claim_id)
        if decided is None:
            raise self._missing(claim_id)
        with damaged(self._core, claim_id):
            history = tuple(record(row) for row in self._store.claims.history(claim_id))
        if actor is None:
            return ClaimView(decided.claim, history)
        if decided.definition != self.fingerprint:
            raise self._decided_elsewhere(claim_id, decided.definition)
        return ClaimView(decided.claim, history, self.engine.available(decided.claim, actor, self._core.now(now)))

    @reading
    def available(self, claim_id: str, actor: Actor | str, now: datetime | None = None) -> tuple[Availability, ...]:
        """Every trigger, allowed or refused for `actor` now, with the reasons."""
        claim_id = identifier(claim_id, "claim_id")
        decided = self._store.claims.loaded_for_reading(claim_id)  # the claim and its definition, in one read
        if decided is None:
            raise self._missing(claim_id)
        if decided.definition != self.fingerprint:
            raise self._decided_elsewhere(claim_id, decided.definition)
        return self.engine.available(decided.claim, actor, self._core.now(now))

    @lagging
    def list_claims(
        self,
        *,
        state: str | None = None,
        buyer: str | None = None,
        supplier: str | None = None,
        order: str | None = None,
        limit: int = 100,
        after: str | None = None,
        changed_before: datetime | None = None,
        due_by: datetime | None = None,
    ) -> list[Claim]:
        """Claims matching every filter given, in id order (the order they were filed); page with `after`.

        `changed_before` keeps the claims last changed before that time (with `state`, a state's claims
        that have sat in it since before then: its stuck ones); `due_by` keeps the claims whose deadline
        falls due at or before that time (given `now`: those overdue, which no tick has fired yet).

        A stored claim that cannot be read (damaged) does not hide the others: the page is read whole, then
        UnreadableClaims names the damaged ones and carries the rest as `claims`.
        With `read_url`, read on the standby, which may lag the primary by moments."""
        limit = whole_number(limit, "limit")
        select = self._selection(state=state, buyer=buyer, supplier=supplier, order=order,
                                 changed_before=changed_before, due_by=due_by)  # fmt: skip
        after = None if after is None else identifier(after, "after")
        listed = select(after=after, limit=limit)
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
        changed_before: datetime | None = None,
        due_by: datetime | None = None,
    ) -> Iterator[Claim]:
        """Claims matching every filter (those of `list_claims`), in id order after `after`, at most `limit`
        (None: all of them).

        Reads `page` claims per query (keyset paging on the id), so memory stays flat however many there
        are. Each page is one snapshot; claims filed meanwhile with a greater id are included. Stored claims
        that cannot be read (damaged) are passed over, every other one yielded, and then UnreadableClaims
        names them. With `read_url`, read on the standby, which may lag the primary by moments.
        """
        page = whole_number(page, "page")
        limit = None if limit is None else whole_number(limit, "limit")
        select = self._selection(state=state, buyer=buyer, supplier=supplier, order=order,
                                 changed_before=changed_before, due_by=due_by)  # fmt: skip
        after = None if after is None else identifier(after, "after")
        return self._pages(select, after, limit, page)

    def _pages(self, select: Callable[..., Listed], after: str | None, limit: int | None, page: int) -> Iterator[Claim]:
        left, unreadable = limit, dict[str, str]()
        while left is None or left > 0:
            size = page if left is None else min(page, left)
            listed = self._lagging.store.read(partial(select, after=after, limit=size))
            yield from listed.claims
            unreadable.update(listed.unreadable)
            read = len(listed.claims) + len(listed.unreadable)
            after = listed.last or after
            if read < size:
                break
            left = None if left is None else left - read
        if unreadable:
            raise UnreadableClaims(unreadable, last=after, path=self.path)

    def _selection(
        self,
        *,
        state: str | None,
        buyer: str | None,
        supplier: str | None,
        order: str | None,
        changed_before: datetime | None,
        due_by: datetime | None,
    ) -> Callable[..., Listed]:
        """The store's listing (given `after` and `limit`) of the claims the filters keep, each filter checked:
        columns equal to a value, and the times as bounds on theirs (updated_at before, deadline_at at or
        before)."""
        where = self._filters(state=state, buyer=buyer, supplier=supplier, order=order)
        below = {} if changed_before is None else {"updated_at": to_iso(aware(changed_before, field="changed_before"))}
        up_to = {} if due_by is None else {"deadline_at": to_iso(aware(due_by, field="due_by"))}
        return partial(self._lagging.store.claims.claims, where, below=below, up_to=up_to)

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

    @lagging
    def verify(self) -> list[Mismatch]:
        """Check the whole database and report everything wrong, changing nothing.

        Problems of the database as a whole come first (`claim_id` None: SQLite's integrity check, the
        schema, the chain's kind or key), then each claim's in id order: every history replayed through the
        lifecycle from its filing and compared row by row, its hash chain recomputed, its claims row
        compared, and history rows without a claim; each retained event of the feed compared with its
        history row and with the claim the replay rebuilds at that step. A damaged file is reported
        (`integrity`), not raised. `Mismatch.kind` names the check.
        With `read_url`, read on the standby, which may lag the primary by moments.
        """
        return verifying.verify(self._lagging)

    def backup(self, dest: str | Path, *, overwrite: bool = False) -> Backup:
        """Copy the whole database into `dest` while other calls and processes go on writing, check the copy,
        and keep it only if it is clean; what was copied and found is the `Backup` returned.

        SQLite: `dest` is a new file (`overwrite=True` replaces one there). SQLite's online backup API copies
        one consistent snapshot of the file (every transition committed before the copy began, none half
        applied) into a temporary file beside `dest`, which is opened read-only and verified with this
        service's definition and history key; only a clean copy is renamed onto `dest` (`Backup.problems`
        lists what verify found otherwise, and nothing is written at `dest`). Refused, changing nothing: an
        in-memory database, `dest` the database itself, `dest` existing, or its folder missing.

        PostgreSQL: `dest` is a new folder, made by `pg_basebackup` (the whole cluster, with the WAL it
        needs) and checked by `pg_verifybackup`, whose findings are the `problems`; the counts are the live
        database's as the backup began. Restoring it, to a point in time with archived WAL, is in the docs
        (Operations: Backups and restores).
        """
        core = self._core

        def check(copy: Store) -> list[Mismatch]:  # verify, as this service runs it, of the copy
            return verifying.verify(Core(copy, core.engine, core.replayers, copy.chain, core.clock))

        return backup(self._store, dest, overwrite=overwrite, check=check)

    def now(self) -> datetime:
        """The time by this service's clock (the wall clock in UTC unless it was given one)."""
        return self._core.now(None)

    @lagging
    def stats(self, now: datetime | None = None, *, stuck_after: timedelta | None = None) -> Stats:
        """What an operator watches, read on one snapshot, ages measured at `now`: claims per state with the
        oldest and the median age (time since the claim last changed, so time in its state); open claims in
        states without a deadline unchanged for longer than `stuck_after` (default a day), by state with the
        oldest ids; deadlines due but not fired, in all and per state; each consumer's events not yet
        acknowledged, per lane, aged from when each entered the feed; and each tick worker's last heartbeat.
        Each figure is one indexed query (see the docs, Operations).
        With `read_url`, read on the standby, which may lag the primary by moments."""
        at = self._core.now(now)
        stuck_after = STUCK_AFTER if stuck_after is None else stuck_after
        if not isinstance(stuck_after, timedelta) or stuck_after < timedelta():
            raise InvalidInput(f"must be a timedelta of zero or more, not {stuck_after!r}", field="stuck_after")
        states = self.definition.states
        waiting = [s.name for s in states if not s.final and s.deadline is None]
        rows = self._lagging.store.operations
        opened = rows.states()
        read = {
            "states": opened,
            "closed": rows.closed({state: count for state, count, *_ in opened}),
            "stuck": rows.stuck(waiting, to_iso(at - stuck_after), STUCK_SHOWN),
            "overdue_states": rows.overdue_states(to_iso(at)),
            "lag": rows.lag(),
            "workers": rows.workers(),
        }
        return built(at, stuck_after, frozenset(s.name for s in states if s.final), read)

    @lagging
    def flows(self, since: datetime, until: datetime | None = None) -> Flows:
        """What the history rows with `since` <= at < `until` (default: now) say, read on one snapshot: how
        often each arrow (source state, trigger, dest state; a filing's source is None) was taken, and per
        state how long the stays that ended in the window lasted: count, median and 90th percentile by
        nearest rank (the stay at rank ceil(p * count), in ascending order). A stay is a visit: it ends at
        each row that leaves its state for another (a self loop, which stays in it, ends none) and lasts from
        the row that entered the state, the claim's latest earlier row that changed state, so self loops in
        between do not restart the clock. Each figure is one query on the index of history rows by time (see
        the docs, Operations). With `read_url`, read on the standby, which may lag the primary by moments."""
        start = aware(since, field="since")
        end = self._core.now(None) if until is None else aware(until, field="until")
        if end <= start:
            raise InvalidInput(
                f"the window must end after it starts: {to_iso(end)} is not after since {to_iso(start)}",
                field="until" if until is not None else "since",
            )
        rows = self._lagging.store.operations
        window = to_iso(start), to_iso(end)
        return flows_of(start, end, rows.arrows(*window), rows.stays(*window))

    # --- helpers ---------------------------------------------------------------------------------------

    def _load(self, claim_id: str) -> Claim:
        claim = self._store.claims.claim(claim_id)
        if claim is None:
            raise self._missing(claim_id)
        return claim

    def _decided_elsewhere(self, claim_id: str, definition: str | None) -> LifecycleChanged:
        return LifecycleChanged(
            f"claim {claim_id!r} was decided under definition {short(definition)}, not this service's"
            f" {short(self.fingerprint)}: migrate it first (see the docs, Changing the lifecycle)",
            definition=self.fingerprint,
            outdated=(),
            claim_id=claim_id,
        )

    def _missing(self, claim_id: str) -> ClaimStateError:
        """Why there is no claim `claim_id`: none was filed, or its row is gone (damage)."""
        if self._store.claims.has_history(claim_id):
            return StorageError(
                f"claim {claim_id!r} in {self.path} is damaged: its history is there but its claims row is gone;"
                " run verify",
                path=self.path,
            )
        return ClaimNotFound(claim_id)

    def _closed(self, claim: Claim) -> bool:
        return self.definition.state(claim.state).final


def _filer(actor: Actor | str | None, data: Mapping[str, Any]) -> Actor:
    """Who files: the given actor, else the buyer the data names."""
    if actor is not None:
        return Actor.parse(actor)
    try:
        return Actor("buyer", data.get("buyer_id"))
    except InvalidInput as error:
        raise InvalidInput(error.reason, field="buyer_id") from None


def given_store(
    store: Store, decides_by: StoredDefinition, *, history_key: bytes | None, read_only: bool,
    opening: Mapping[str, bool],
) -> Store:  # fmt: skip
    """`store`, checked for a service deciding by `decides_by`: opened for that definition, and given none of
    the options that only opening a database takes (`opening`: whether each was set)."""
    if store.definition != decides_by:
        raise InvalidInput(
            f"the store was opened for definition {short(store.definition.fingerprint)} ({store.definition.name}),"
            f" this service decides by {short(decides_by.fingerprint)} ({decides_by.name})",
            field="path",
        )
    if history_key is not None:
        raise InvalidInput(
            "a store given open hashes with its own chain: give the key to open_store", field="history_key"
        )
    if read_only and not store.read_only:
        raise InvalidInput("the store given is writable: open it read_only to read through it alone", field="read_only")
    for name, is_set in opening.items():
        if is_set:
            raise InvalidInput("is set when a store is opened, not with a store given open", field=name)
    return store


def core_of(service: ClaimService) -> Core:
    """The parts `service` shares among its jobs (store, engine, chain, clock): for claimstate's own modules
    that work on two services at once, the copy, so none reaches into the other's attributes."""
    return service._core
