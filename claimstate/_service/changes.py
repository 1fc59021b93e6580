"""Lifecycle changes as the service meets them: refusing to open while open claims were decided under
another definition, reporting them, and migrating them onto this one as a plan says."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from claimstate._claim import Claim
from claimstate._errors import ConcurrentModification, InvalidInput
from claimstate._fingerprints import short
from claimstate._inputs import identifier
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
)
from claimstate._replayers import Unreplayable
from claimstate._service.core import Core, reading
from claimstate._service.definitions import body, sound_bodies
from claimstate._store import StoredClaim
from claimstate._time import to_iso


class LifecycleChanges:
    def __init__(self, core: Core) -> None:
        self._core = core

    def adopt(self, migrating: bool) -> None:
        """Refuse to open while open claims were decided under another definition (unless `migrating`);
        keep this service's definition among the database's, so its claims' rules can always be shown, and
        make it the one claims are filed under: a service still running another files no more."""
        core = self._core
        if not migrating:
            found = self.outdated()
            if found:
                raise changed_error(core.path, core.fingerprint, found)
        if core.store.read(
            lambda: core.store.definitions.knows() and core.store.definitions.current() == core.fingerprint
        ):
            return

        def adopt() -> None:
            core.store.definitions.register(to_iso(core.now(None)))
            core.store.definitions.make_current()

        core.store.write(adopt)

    @reading
    def outdated(self) -> tuple[Outdated, ...]:
        rows = self._core.store.definitions.outdated()
        return outdated(rows, sound_bodies(self._core), self._core.definition) if rows else ()

    @reading
    def open_claims(self, definition: str | None) -> dict[str, int]:
        core = self._core
        return core.store.definitions.open_states(
            core.fingerprint if definition is None else identifier(definition, "definition")
        )

    @reading
    def definitions(self) -> dict[str, dict[str, Any]]:
        return {
            fp: {**body(self._core, fp, text), "first_seen": seen}
            for fp, (_, text, seen) in self._core.store.definitions.definitions().items()
        }

    def migrate(self, plan: Mapping[str, Any], *, dry_run: bool, now: datetime | None) -> Migration:
        core = self._core
        rules, at = plan_of(plan), core.now(now)
        if not isinstance(dry_run, bool):
            raise InvalidInput(f"must be True or False, not {dry_run!r}", field="dry_run")

        def moves(claims: list[StoredClaim]) -> Migration:
            target, bodies = Target(core.definition, core.engine.policy, core.fingerprint, at), sound_bodies(core)
            moving = [Moving(c.claim, c.definition, self._clock_started(c.claim)) for c in claims]
            found = planned(rules, moving, bodies, target, self._unreplayable(claims, bodies))
            return Migration(core.fingerprint, found, dry_run)

        if dry_run:
            return core.store.read(lambda: moves(self._outdated_claims(lock=False)))

        def apply() -> Migration:
            claims = self._outdated_claims(lock=True)
            migration = moves(claims)
            before = {c.claim.id: c for c in claims}
            for move in migration.moves:
                loaded = before[move.claim_id]
                after, record = moved(loaded.claim, move, core.definition, core.fingerprint, at)
                if not core.store.claims.update(loaded, after, record, closed=False, key=None, digest=None):
                    raise ConcurrentModification(move.claim_id, loaded.claim.version, None)
            return migration

        return core.store.write(apply)

    def _unreplayable(self, claims: list[StoredClaim], bodies: Mapping[str, Mapping[str, Any]]) -> list[str]:
        """The old definitions of `claims` this service could not replay: once moved, verify could not check
        their earlier steps, so the plan is refused until the definition lists them in `earlier`."""
        problems = []
        for old in sorted({c.definition for c in claims if c.definition is not None}):
            try:
                self._core.replayers.find(old, bodies.get(old))
            except Unreplayable:
                name = bodies.get(old, {}).get("name", "not stored")
                problems.append(
                    f"the claims decided under definition {short(old)} ({name}) could not be verified once moved:"
                    " list that definition in this one's `earlier`, so their past steps can be replayed"
                )
        return problems

    def _clock_started(self, claim: Claim) -> datetime | None:
        return None if claim.deadline is None else clock_started(self._core.store.claims.history(claim.id))

    def _outdated_claims(self, *, lock: bool) -> list[StoredClaim]:
        """The open claims decided under another definition; `lock`: each read for a write (locked where the
        store locks rows, and read again once locked: one closed or moved meanwhile is left out)."""
        store = self._core.store
        read = store.claims.loaded if lock else store.claims.loaded_for_reading
        found = (read(claim_id) for claim_id in store.definitions.outdated_ids())
        return [c for c in found if c is not None and not c.closed and c.definition != self._core.fingerprint]
