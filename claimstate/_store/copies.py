"""The whole-store copy's rows: every row of each table as stored, read in key order a page at a time, and
written into another store unchanged (hashes included).

`CopyRows` runs on a `database.Database` (the store) and calls nothing else of it; what a backend must set
right after rows came in with their keys (PostgreSQL's sequence and lane counters) it gives as `copied`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from claimstate._store import events
from claimstate._store.database import Database
from claimstate._store.rows import COLUMNS, HISTORY

# Every column of each table a copy moves (the lanes' counters are PostgreSQL's own, made again from the
# events), as it writes them, and the key each is read in order of.
TABLES = {
    "definitions": ("fingerprint", "name", "body", "first_seen"),
    "claims": (*COLUMNS, "definition"),
    "transitions": (*HISTORY, "idempotency_key", "request_hash"),
    "events": events.COLUMNS,
    "consumers": ("name", "lane", "acked", "leased_to", "holder", "lease_until"),
}
_KEYS = {
    "definitions": ("fingerprint",),
    "claims": ("id",),
    "transitions": ("claim_id", "seq"),
    "events": ("position",),
    "consumers": ("name", "lane"),
}
_MERGED = {"definitions"}  # tables a copy adds to, keeping the rows the target has (each store records its own)


class CopyRows:
    """The rows a copy reads from `database`, or writes into it; `copied(table)` runs after each table written."""

    def __init__(self, database: Database, *, copied: Callable[[str], None]) -> None:
        self._db = database
        self._copied = copied

    def is_empty(self) -> bool:
        """Whether the database holds no claim, history row, event or consumer (definitions do not count)."""
        return all(self._db.one(f"SELECT 1 FROM {table} LIMIT 1") is None for table in TABLES if table not in _MERGED)

    def table_rows(self, table: str, page: int = 1000) -> Iterator[tuple[Any, ...]]:
        """Every row of `table` (one of TABLES) as stored, all of TABLES[table]'s columns, in key order,
        fetched a page at a time in the read's snapshot: what a copy to another store writes."""
        columns, key = TABLES[table], _KEYS[table]
        return self._db.stream(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {', '.join(key)}", page)

    def insert_rows(self, table: str, rows: Iterable[Sequence[Any]]) -> int:
        """In a write transaction: rows read by another store's `table_rows`, unchanged (hashes included);
        how many."""
        columns = TABLES[table]
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        if table in _MERGED:
            sql += f" ON CONFLICT ({', '.join(_KEYS[table])}) DO NOTHING"
        count = 0
        with self._db.writing:
            for row in rows:
                self._db.send(sql, row)
                count += 1
            self._copied(table)
        return count
