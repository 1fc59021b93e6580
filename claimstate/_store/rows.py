"""The rows both stores write: the claims row of a claim and the history row of a transition.

One encoding for every backend, so a claim moved from SQLite to PostgreSQL keeps its bytes and its hash
chain. Statements are written with `?` placeholders; a backend with another style translates them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from claimstate._chain import LINKED
from claimstate._claim import Claim, TransitionRecord
from claimstate._json import encode
from claimstate._time import to_iso

# The claims table's columns, and the ones every transition sets (the rest are fixed at filing).
COLUMNS = (
    "id", "state", "version", "closed", "order_id", "buyer_id", "supplier_id", "amount", "currency", "resolution",
    "filed_at", "updated_at", "deadline_at", "deadline_trigger", "details",
)  # fmt: skip
CHANGING = ("state", "version", "updated_at", "deadline_at", "deadline_trigger", "details")
# The claim's facts that are plain columns: since schema 7 stored there alone, and `details` holds the rest
# (and the id, so a row read alone still says whose claim it is). A row written before holds every fact in
# `details` too, and its `details` win, so it reads exactly as it did.
IN_COLUMNS = tuple(c for c in COLUMNS if c not in ("id", "closed", "details"))
_IN_COLUMNS = frozenset(IN_COLUMNS)
SELECT_CLAIM = f"{', '.join(IN_COLUMNS)}, details"  # a claim's columns as `claim_dict` takes them
HISTORY = (
    "claim_id", "seq", "trigger", "from_state", "to_state", "actor", "at", "data", "deadline_at", "hash", "definition",
)  # fmt: skip

# Each row also records the fingerprint of the definition it was decided under (`definition`).
INSERT_CLAIM = f"INSERT INTO claims ({', '.join(COLUMNS)}, definition) VALUES ({', '.join('?' * (len(COLUMNS) + 1))})"
# A fire sets `closed` only when it closes the claim, and `definition` only when a migration moves it: an
# index is rewritten whenever the UPDATE names one of its columns, and the partial indexes on open claims
# (one per order, by definition) name both.
UPDATE_CLAIM = {
    (closing, moving): "UPDATE claims SET " + ", ".join(
        f"{c} = ?" for c in (*CHANGING, *(("closed",) if closing else ()), *(("definition",) if moving else ()))
    ) + " WHERE id = ? AND version = ?"
    for closing in (False, True)
    for moving in (False, True)
}  # fmt: skip
INSERT_RECORD = (
    "INSERT INTO transitions (claim_id, seq, trigger, from_state, to_state, actor, at, data, deadline_at,"
    " idempotency_key, request_hash, hash, definition) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
SELECT_HISTORY = f"SELECT {', '.join(HISTORY)} FROM transitions"


def claim_columns(claim: Claim, closed: bool) -> dict[str, Any]:
    """The claims row of `claim`: plain columns for people and queries, and the other details as JSON."""
    return columns_of(claim.to_dict(), closed)


def columns_of(d: Mapping[str, Any], closed: bool) -> dict[str, Any]:
    """The claims row of a claim given as its `to_dict()`."""
    row = {c: d[c] for c in COLUMNS if c in d}
    row["closed"] = int(closed)
    row["details"] = encode({k: v for k, v in d.items() if k not in _IN_COLUMNS})
    return row


def claim_dict(columns: Sequence[Any], details: Mapping[str, Any]) -> dict[str, Any]:
    """The claim's `to_dict()` from its row: `columns` as SELECT_CLAIM reads them (before `details`), and
    `details` decoded; what `details` holds wins (a row written before schema 7 holds every fact there)."""
    d = dict(zip(IN_COLUMNS, columns, strict=True))
    d.update(details)
    return d


def linked(r: TransitionRecord, deadline_at: str | None, definition: str) -> dict[str, Any]:
    """The record's values as its history row stores them, data still decoded: what the chain hashes."""
    return {
        "claim_id": r.claim_id,
        "seq": r.seq,
        "trigger": r.trigger,
        "from_state": r.source,
        "to_state": r.dest,
        "actor": str(r.actor),
        "at": to_iso(r.at),
        "data": r.data if isinstance(r.data, dict) else dict(r.data),
        "deadline_at": deadline_at,
        "definition": definition,
    }


def stored(values: Mapping[str, Any], key: str | None, digest: str | None) -> tuple[Any, ...]:
    """The history row's columns before its hash: the linked values (data as JSON), key and request hash."""
    return (*(encode(values[n]) if n == "data" else values[n] for n in LINKED), key, digest)
