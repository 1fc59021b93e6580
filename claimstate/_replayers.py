"""Which engine replays a step of history: the one of the definition the step was decided under.

A step records its definition's fingerprint. The service can replay the steps of its own definition and
of the definitions it lists as `earlier` (kept in code: guards and effects are code, which no stored JSON
brings back). An earlier definition is recognised by its fingerprint under the windows the stored export
of that fingerprint records, so one deployed with its own policy is still found.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from claimstate._definition import UNBOUNDED, Definition, Policy
from claimstate._engine import Engine
from claimstate._errors import InvalidInput, StorageError
from claimstate._fingerprints import short, windows_of


class Unreplayable(StorageError):
    """Steps were decided under a definition this service cannot replay."""


class Replayers:
    """The replaying engines (limits unbounded: what was accepted then stays valid) of one service's
    definition under its policy, and of the definitions it replaced."""

    def __init__(self, definition: Definition, policy: Policy) -> None:
        current = Engine(definition, attrs.evolve(policy, limits=UNBOUNDED))
        self.fingerprint = current.fingerprint
        self._engines = {current.fingerprint: current}
        self._candidates = tuple(dict.fromkeys(_lineage(definition)))

    def knows(self, fingerprint: str | None) -> bool:
        """Whether the engine of `fingerprint` is at hand, with no stored definition to read for it."""
        return fingerprint in self._engines

    def find(self, fingerprint: str | None, body: Mapping[str, Any] | None) -> Engine:
        """The engine of `fingerprint`, whose stored export is `body` (None: not stored); Unreplayable if none."""
        if fingerprint in self._engines:
            return self._engines[fingerprint]
        if fingerprint is None:
            raise Unreplayable("the step records no definition, and the database names none for such steps")
        if body is None:
            raise Unreplayable(f"the step was decided under definition {short(fingerprint)}, which is not stored")
        for definition in self._candidates:
            try:
                policy = definition.policy(limits=UNBOUNDED, **windows_of(body))
            except (InvalidInput, KeyError, TypeError, ValueError):
                continue
            if definition.fingerprint(policy) == fingerprint:
                engine = self._engines[fingerprint] = Engine(definition, policy)
                return engine
        raise Unreplayable(
            f"the step was decided under definition {short(fingerprint)} ({body.get('name', '?')}), which this"
            " service cannot replay: give that definition in the current one's `earlier` (or verify with a newer"
            " definition, one that lists this service's)"
        )


def _lineage(definition: Definition) -> Iterator[Definition]:
    """The definition and every one it replaced, however far back."""
    yield definition
    for earlier in definition.earlier:
        yield from _lineage(earlier)
