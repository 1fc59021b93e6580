"""The definitions a database has seen, which one it files claims under, and its other meta rows.

`DefinitionRows` runs on a `database.Database` (the store) and calls nothing else of it.
"""

from __future__ import annotations

import attrs

from claimstate._errors import StorageError
from claimstate._store.database import Database

BASELINE = "baseline_definition"  # meta: the definition of the history rows written before rows recorded one
CURRENT = "definition"  # meta: the definition the last writable service to open decides by; only it files claims


@attrs.frozen
class StoredDefinition:
    """The definition a store writes under: its fingerprint, its name and its export as JSON text."""

    fingerprint: str
    name: str
    body: str


class DefinitionRows:
    """The definitions and meta rows of `database`, which is written under `definition`."""

    def __init__(self, database: Database, *, definition: StoredDefinition) -> None:
        self._db = database
        self._definition = definition

    def definitions(self) -> dict[str, tuple[str, str, str]]:
        """Every definition the database has seen: (name, export as JSON text, first seen) by fingerprint."""
        rows = self._db.all(
            "SELECT fingerprint, name, body, first_seen FROM definitions ORDER BY first_seen, fingerprint"
        )
        return {row[0]: (row[1], row[2], row[3]) for row in rows}

    def knows(self) -> bool:
        """Whether the database keeps `definition` among its definitions."""
        sql = "SELECT 1 FROM definitions WHERE fingerprint = ?"
        return self._db.one(sql, (self._definition.fingerprint,)) is not None

    def baseline(self) -> str | None:
        """The definition the history rows that record none were decided under (see the store's upgrade)."""
        return self._meta(BASELINE)

    def outdated(self) -> list[tuple[str | None, str, int]]:
        """(definition, state, how many) of the open claims decided under another definition than `definition`.

        Three seeks of the index of open claims by definition answer "none" (what every open finds) without
        reading the claims; only when there are some are they counted."""
        probe = " UNION ALL ".join(
            f"SELECT 1 FROM (SELECT 1 FROM claims WHERE closed = 0 AND {where} LIMIT 1) AS probe"
            for where in ("definition < ?", "definition > ?", "definition IS NULL")
        )
        if not self._db.all(probe, (self._definition.fingerprint, self._definition.fingerprint)):
            return []
        rows = self._db.all(
            "SELECT definition, state, count(*) FROM claims WHERE closed = 0"
            " AND (definition IS NULL OR definition <> ?) GROUP BY definition, state ORDER BY definition, state",
            (self._definition.fingerprint,),
        )
        return [(row[0], row[1], int(row[2])) for row in rows]

    def outdated_ids(self) -> list[str]:
        """The ids of the open claims decided under another definition than `definition`, in id order."""
        rows = self._db.all(
            "SELECT id FROM claims WHERE closed = 0 AND (definition IS NULL OR definition <> ?) ORDER BY id",
            (self._definition.fingerprint,),
        )
        return [row[0] for row in rows]

    def open_states(self, fingerprint: str) -> dict[str, int]:
        """How many open claims decided under `fingerprint` sit in each state."""
        rows = self._db.all(
            "SELECT state, count(*) FROM claims WHERE closed = 0 AND definition = ? GROUP BY state", (fingerprint,)
        )
        return {row[0]: int(row[1]) for row in rows}

    def register(self, first_seen: str) -> None:
        """In a write transaction: keep `definition` among the definitions, unless the database has it."""
        self._db.send(
            "INSERT INTO definitions (fingerprint, name, body, first_seen) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (fingerprint) DO NOTHING",
            (self._definition.fingerprint, self._definition.name, self._definition.body, first_seen),
        )

    def set_baseline(self, fingerprint: str) -> None:
        """In a write transaction: record the definition of the history rows that record none."""
        self._set_meta(BASELINE, fingerprint)

    def current(self) -> str | None:
        """The definition the last writable service to open decides by (None before any recorded one)."""
        return self._meta(CURRENT)

    def make_current(self) -> None:
        """In a write transaction: record `definition` as the definition claims are now filed under."""
        self._set_meta(CURRENT, self._definition.fingerprint)

    def chain_record(self) -> dict[str, str]:
        """What the database records about its hash chain (see Chain.record); empty if the record is gone."""
        try:
            return {
                row[0]: row[1]
                for row in self._db.all("SELECT name, value FROM meta WHERE name IN ('chain', 'key_fingerprint')")
            }
        except StorageError:
            return {}

    def _meta(self, name: str) -> str | None:
        row = self._db.one("SELECT value FROM meta WHERE name = ?", (name,))
        return None if row is None else str(row[0])

    def _set_meta(self, name: str, value: str) -> None:
        self._db.send(
            "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value),
        )
