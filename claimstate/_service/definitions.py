"""The definitions a database has stored, as the service reads them: each checked against its fingerprint,
and the engine that replays a step decided under one."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from claimstate._engine import Engine
from claimstate._errors import StorageError
from claimstate._fingerprints import fingerprint_of, short
from claimstate._json import decode
from claimstate._service.core import Core
from claimstate._verify import EngineOf, Mismatch


def body(core: Core, fingerprint: str, text: str) -> dict[str, Any]:
    """A stored definition's export; StorageError when its JSON is damaged."""
    try:
        found = decode(text)
    except (TypeError, ValueError, RecursionError):
        found = None
    if not isinstance(found, dict):
        raise StorageError(f"the stored definition {short(fingerprint)} in {core.path} is damaged", path=core.path)
    return found


def sound_bodies(core: Core, found: list[Mismatch] | None = None) -> dict[str, dict[str, Any]]:
    """The stored definitions by fingerprint, each checked to be the one its fingerprint names: one
    changed since it was stored is left out (and reported in `found`), so nothing reads its rules."""
    bodies = {}
    for fingerprint, (_name, text, _seen) in core.store.definitions.definitions().items():
        try:
            export = body(core, fingerprint, text)
            sound = fingerprint_of(export) == fingerprint
        except (StorageError, KeyError, TypeError, ValueError):
            sound = False
        if sound:
            bodies[fingerprint] = export
        elif found is not None:
            problem = f"the stored definition {short(fingerprint)} is not the one its fingerprint names: changed"
            found.append(Mismatch(None, problem, kind="definition"))
    return bodies


def engine_of(core: Core, bodies: Mapping[str, Mapping[str, Any]] | None = None) -> EngineOf:
    """The engine replaying a step decided under a definition (by fingerprint; None: the database's
    baseline, for steps written before they recorded one). `bodies` are the sound stored definitions if
    the caller read them already; else they, and the baseline, are read only when a step needs them
    (a retry whose steps are all this service's reads neither)."""
    baseline = functools.cache(core.store.definitions.baseline)
    stored = functools.cache((lambda: sound_bodies(core)) if bodies is None else lambda: bodies)

    def engine(fingerprint: str | None) -> Engine:
        fingerprint = fingerprint or baseline()
        export = None if core.replayers.knows(fingerprint) else stored().get(fingerprint or "")
        return core.replayers.find(fingerprint, export)

    return engine
