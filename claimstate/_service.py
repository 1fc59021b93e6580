"""ClaimService: the API services embed. The engine decides, the store keeps, one transaction per call.

Every write reads the claim, lets the engine decide and writes the new row and its history row inside
one BEGIN IMMEDIATE transaction, so a fire is applied whole or not at all, once, whatever other
processes share the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import update_wrapper
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import attrs

from claimstate._actor import SYSTEM, Actor
from claimstate._checks import identifier, plain_data, valid_text, whole_number
from claimstate._claim import Claim, TransitionRecord
from claimstate._definition import UNBOUNDED, Definition, Policy
from claimstate._engine import Availability, Engine, Fired
from claimstate._errors import ClaimNotFound, ConcurrentModification, InvalidInput, StorageError, TransitionRefused
from claimstate._lifecycle import CLAIM_LIFECYCLE
from claimstate._store import Store, Synchronous
from claimstate._time import aware, from_iso, to_iso

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


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


@attrs.frozen
class Difference:
    """One stored value that is not what the claim's history gives, both as JSON values.

    `field` is a column of the claims row, or ``details.<key>`` for a detail kept in the details JSON.
    """

    field: str
    stored: Any
    expected: Any

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "stored": self.stored, "expected": self.expected}


@attrs.frozen
class Mismatch:
    """A claim whose stored row is not what replaying its history gives: damaged or edited by hand.

    `differences` names each differing value when the history replays; a history that does not replay
    has only the `problem`.
    """

    claim_id: str
    problem: str
    differences: tuple[Difference, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "claim_id": self.claim_id,
            "problem": self.problem,
            "differences": [d.to_dict() for d in self.differences],
        }


def _digest(trigger: str, actor: Actor, data: Mapping[str, Any]) -> str:
    """A fingerprint of a request, to tell a retry from a different request under the same key.

    An item given as null counts as not given, as it does for the engine.
    """
    given = {k: v for k, v in data.items() if v is not None}
    try:
        text = json.dumps([trigger, str(actor), given], sort_keys=True, separators=(",", ":"))
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


class ClaimService:
    """Claims kept in one SQLite file (default ``claims.db``; ``":memory:"`` for tests).

    `clock` gives the time when a call passes no `now`; it defaults to the wall clock in UTC. With
    `create=False` a file that does not exist is a StorageError rather than a new, empty database.
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
    ) -> None:
        self.engine = Engine(definition, policy)
        # Replays what was accepted when it happened: limits lowered since then do not make history invalid.
        self._replayer = Engine(definition, attrs.evolve(self.engine.policy, limits=UNBOUNDED))
        self._clock = clock or (lambda: datetime.now(UTC))
        self._store = Store(path, synchronous=synchronous, busy_timeout=busy_timeout, create=create)
        self.path = self._store.path
        self._lock = threading.RLock()  # one connection: threads take turns, a batch keeps its turn

    @property
    def definition(self) -> Definition:
        return self.engine.definition

    def close(self) -> None:
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
        actor = self._filer(actor, data)
        trigger = self.definition.creation.trigger
        digest = None if idempotency_key is None else _digest(trigger, actor, {"claim_id": claim_id, **data})
        with self._store.transaction():
            retried = self._retried(None, idempotency_key, digest)
            if retried is not None:
                return retried
            claim_id = claim_id or new_claim_id()
            if self._store.claim(claim_id) is not None:
                raise InvalidInput(f"a claim with id {claim_id!r} exists already", field="claim_id")
            open_order = self._store.order_is_open(str(data.get("order_id")))
            fired = self.engine.file_claim(claim_id, actor, data, self._now(now), order_has_open_claim=open_order)
            self._store.insert(fired.claim, self._closed(fired.claim), fired.record, idempotency_key, digest)
        return fired

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
        with self._store.transaction():
            retried = self._retried(claim_id, idempotency_key, digest)
            if retried is not None:
                return retried
            claim = self._load(claim_id)
            if expected_version is not None and expected_version != claim.version:
                raise ConcurrentModification(claim_id, expected_version, claim.version)
            fired = self.engine.fire(claim, trigger, actor, data, self._now(now))  # the clock read under the lock
            if not self._store.update(fired.claim, self._closed(fired.claim), fired.record, idempotency_key, digest):
                current = self._load(claim_id)
                raise ConcurrentModification(claim_id, claim.version, current.version)
        return fired

    @_serialized
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
        """
        limit = whole_number(limit, "limit")
        at = self._now(now)
        fired: list[TransitionRecord] = []
        refused: set[str] = set()
        while True:
            due = [(i, t) for i, t in self._store.due(to_iso(at), limit + len(refused)) if i not in refused]
            for claim_id, trigger in due:
                record = self._fire_deadline(claim_id, trigger, at)
                if progress is not None:
                    progress(1)
                if record is None:
                    refused.add(claim_id)
                else:
                    fired.append(record)
            if len(due) < limit:
                return fired

    @_serialized
    def _fire_deadline(self, claim_id: str, trigger: str, at: datetime) -> TransitionRecord | None:
        with self._store.transaction():
            claim = self._store.claim(claim_id)
            deadline = None if claim is None else claim.deadline
            if claim is None or deadline is None or deadline.trigger != trigger or deadline.due > at:
                return None  # another tick fired it first
            if claim.updated_at > at:
                return None  # changed since this tick began: the next tick judges it
            try:
                result = self.engine.fire(claim, trigger, SYSTEM, None, at)
            except TransitionRefused:
                return None
            self._store.update(result.claim, self._closed(result.claim), result.record, None, None)
        return result.record

    # --- reads -----------------------------------------------------------------------------------------

    @_serialized
    def get(self, claim_id: str) -> Claim:
        return self._load(identifier(claim_id, "claim_id"))

    @_serialized
    def history(self, claim_id: str) -> list[TransitionRecord]:
        claim_id = identifier(claim_id, "claim_id")
        rows = self._store.history(claim_id)
        if not rows:
            self._load(claim_id)
        return [_record(row) for row in rows]

    @_serialized
    def available(self, claim_id: str, actor: Actor | str, now: datetime | None = None) -> tuple[Availability, ...]:
        """Every trigger, allowed or refused for `actor` now, with the reasons."""
        return self.engine.available(self._load(identifier(claim_id, "claim_id")), actor, self._now(now))

    @_serialized
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
        """Claims matching every filter given, in id order (the order they were filed); page with `after`."""
        if state is not None:
            self.definition.state(identifier(state, "state"))
        limit = whole_number(limit, "limit")
        after = None if after is None else identifier(after, "after")
        filters = {"state": state, "buyer_id": buyer, "supplier_id": supplier, "order_id": order}
        for name, value in filters.items():
            if value is not None:
                valid_text(value, name, limit=self.engine.policy.limits.text)
        return self._store.claims({k: v for k, v in filters.items() if v is not None}, after=after, limit=limit)

    @_serialized
    def verify(self) -> list[Mismatch]:
        """Replay every claim's history from its filing and report each stored row that differs. Writes nothing."""
        mismatches = (self._verify_one(claim_id) for claim_id in self._store.claim_ids())
        return [m for m in mismatches if m is not None]

    def _verify_one(self, claim_id: str) -> Mismatch | None:
        try:
            rows = self._store.history(claim_id)
            if not rows:
                return Mismatch(claim_id, "the claim has no history")
            seqs = [r["seq"] for r in rows]
            if seqs != list(range(1, len(rows) + 1)):
                return Mismatch(claim_id, f"history sequence numbers are {seqs}, not 1..{len(rows)}")
            replayed = self._replay(claim_id, rows)
            stored = self._load(claim_id)
        except (TransitionRefused, InvalidInput, StorageError) as error:
            return Mismatch(claim_id, f"the history does not replay onto the stored claim: {error}")
        if replayed != stored:
            kept, expected = stored.to_dict(), replayed.to_dict()
            keys = sorted(k for k, v in expected.items() if kept.get(k) != v)
            return Mismatch(
                claim_id,
                f"the stored claim differs from its history in: {', '.join(keys)}",
                tuple(Difference(f"details.{k}", kept.get(k), expected[k]) for k in keys),
            )
        wrong = self._store.row_differences(stored, self._closed(stored))
        if wrong:
            return Mismatch(
                claim_id,
                f"the claims row's columns differ from the claim: {', '.join(wrong)}",
                tuple(Difference(column, *values) for column, values in wrong.items()),
            )
        return None

    # --- helpers ---------------------------------------------------------------------------------------

    def _load(self, claim_id: str) -> Claim:
        claim = self._store.claim(claim_id)
        if claim is None:
            raise ClaimNotFound(claim_id)
        return claim

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

    def _replay(self, claim_id: str, rows: list[dict[str, Any]]) -> Claim:
        """The claim its history rows rebuild, fired through the engine from the filing on.

        Each deadline is the one recorded when it was set, so a later change of policy does not rewrite
        the past: retries return what was stored, and verify judges by the windows then in force.
        """
        claim = None
        for row in rows:
            at = from_iso(row["at"])
            if claim is None:
                claim = self._replayer.file_claim(claim_id, row["actor"], row["data"], at).claim
            else:
                claim = self._replayer.fire(claim, row["trigger"], row["actor"], row["data"], at).claim
            if claim.deadline is not None and row["deadline_at"] is not None:
                claim = attrs.evolve(claim, deadline=attrs.evolve(claim.deadline, due=from_iso(row["deadline_at"])))
        if claim is None:
            raise InvalidInput(f"claim {claim_id!r} has no history", field="claim")
        return claim

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
        return Fired(self._replay(first_id, rows), _record(rows[-1]))


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
