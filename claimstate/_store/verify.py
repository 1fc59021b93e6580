"""What verifying a database reads: every history row with its event, the rows a hand edit left without a
key or a history, orders open twice, and a claims row's columns against its claim.

`VerifyRows` runs on a `database.Database` (the store) and calls nothing else of it; the database's own
checks (`integrity`, `schema_problems`) are the store's, since each backend asks its own catalogue.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from claimstate._claim import Claim
from claimstate._json import decode
from claimstate._store.database import Database
from claimstate._store.rows import COLUMNS, HISTORY, IN_COLUMNS, SELECT_HISTORY, claim_columns

_KEYED = "claim_id IS NOT NULL AND seq IS NOT NULL"
# Each history row with its event, in one sorted pass (the feed keeps no index by claim, which would cost
# every fire a page); an event stored twice is reported apart (events.not_in_history).
_HISTORY_WITH_EVENTS = (
    f"SELECT {', '.join(f't.{c}' for c in HISTORY)}, e.claim, e.lane FROM transitions t LEFT JOIN"
    " (SELECT claim_id, seq, min(claim) AS claim, min(lane) AS lane FROM events GROUP BY claim_id, seq) e"
    " ON e.claim_id = t.claim_id AND e.seq = t.seq WHERE t.claim_id IS NOT NULL AND t.seq IS NOT NULL"
    " ORDER BY t.claim_id, t.seq"
)
_SELECT_COLUMNS = f"SELECT {', '.join(COLUMNS)} FROM claims WHERE id = ?"


class VerifyRows:
    """The reads of a verify, on `database`."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def histories(self) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        """Every claim id that has history rows, whether or not its claims row exists, with its rows in seq
        order as stored (data still its JSON text), each with its retained `event`'s (claim summary as JSON
        text, lane), or None: read as one stream, inside the database's `read`."""
        claim_id, rows = None, list[dict[str, Any]]()
        for values in self._db.stream(_HISTORY_WITH_EVENTS):
            event = None if values[-2] is None else values[-2:]
            row = {**dict(zip(HISTORY, values[: len(HISTORY)], strict=True)), "event": event}
            if row["claim_id"] != claim_id and rows:
                yield str(claim_id), rows
                rows = []
            claim_id = row["claim_id"]
            rows.append(row)
        if rows:
            yield str(claim_id), rows

    def history_rows(self, page: int = 1000) -> Iterator[dict[str, Any]]:
        """Every history row with a claim id and seq, in (claim id, seq) order, by keyset paging on the key."""
        after: tuple[str, int] | None = None
        while True:
            if after is None:
                rows = self._db.all(f"{SELECT_HISTORY} WHERE {_KEYED} ORDER BY claim_id, seq LIMIT ?", (page,))
            else:
                sql = f"{SELECT_HISTORY} WHERE (claim_id, seq) > (?, ?) AND {_KEYED} ORDER BY claim_id, seq LIMIT ?"
                rows = self._db.all(sql, (*after, page))
            yield from (dict(zip(HISTORY, row, strict=True)) for row in rows)
            if len(rows) < page:
                return
            after = (rows[-1][0], rows[-1][1])

    def unkeyed_history_rows(self) -> int:
        """How many history rows lack a claim id or a seq (SQLite lets a hand edit store NULL in the key)."""
        row = self._db.one("SELECT count(*) FROM transitions WHERE claim_id IS NULL OR seq IS NULL")
        return 0 if row is None else int(row[0])

    def claims_without_history(self) -> list[str]:
        rows = self._db.all(
            "SELECT id FROM claims WHERE NOT EXISTS (SELECT 1 FROM transitions WHERE claim_id = claims.id) ORDER BY id"
        )
        return [row[0] for row in rows]

    def orders_open_twice(self) -> list[tuple[str, list[str]]]:
        """Orders with more than one open claim (only if the unique index was dropped), with those claims."""
        rows = self._db.all(
            "SELECT order_id, id FROM claims WHERE closed = 0 AND order_id IN (SELECT order_id FROM claims"
            " WHERE closed = 0 GROUP BY order_id HAVING count(*) > 1) ORDER BY order_id, id"
        )
        found: dict[str, list[str]] = {}
        for order_id, claim_id in rows:
            found.setdefault(order_id, []).append(claim_id)
        return list(found.items())

    def row_differences(self, claim: Claim, closed: bool) -> dict[str, tuple[Any, Any]]:
        """The claims row's columns that differ from `claim` (a hand edit, or damage): (stored, expected) by name.

        A blob stored by hand is shown as its SQL literal, so every value stays plain JSON.
        """
        stored_row = self.columns(claim.id)
        expected = claim_columns(claim, closed)
        return {
            k: (f"x'{bytes(stored_row[k]).hex()}'" if isinstance(stored_row[k], bytes | memoryview) else stored_row[k],
                expected[k])
            for k in sorted(COLUMNS)
            if k != "details" and stored_row[k] != expected[k]
        }  # fmt: skip

    def slim(self, claim_id: str) -> bool:
        """Whether the claims row keeps the facts that are columns there alone (as rows are written since
        SQLite schema 7, PostgreSQL 6), rather than in `details` too."""
        try:
            details = decode(self.columns(claim_id).get("details") or "")
        except (TypeError, ValueError, RecursionError):
            return False
        return isinstance(details, dict) and not details.keys() & set(IN_COLUMNS)

    def columns(self, claim_id: str) -> dict[str, Any]:
        """The claims row's plain columns (what people reading the database see)."""
        row = self._db.one(_SELECT_COLUMNS, (claim_id,))
        return {} if row is None else dict(zip(COLUMNS, row, strict=True))
