"""The rows both stores write: the claims row of a claim and the history row of a transition.

One encoding for every backend, so a claim moved from SQLite to PostgreSQL keeps its bytes and its hash
chain. Statements are written with `?` placeholders; a backend with another style translates them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from claimstate._chain import LINKED
from claimstate._claim import Claim, TransitionRecord
from claimstate._json import encode

# The claims table's columns, and the ones a transition changes (the rest are fixed at filing).
COLUMNS = (
    "id", "state", "version", "closed", "order_id", "buyer_id", "supplier_id", "amount", "currency", "resolution",
    "filed_at", "updated_at", "deadline_at", "deadline_trigger", "details",
)  # fmt: skip
CHANGING = ("state", "version", "closed", "updated_at", "deadline_at", "deadline_trigger", "details")
HISTORY = ("claim_id", "seq", "trigger", "from_state", "to_state", "actor", "at", "data", "deadline_at", "hash")

INSERT_CLAIM = f"INSERT INTO claims ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
UPDATE_CLAIM = f"UPDATE claims SET {', '.join(f'{c} = ?' for c in CHANGING)} WHERE id = ? AND version = ?"
INSERT_RECORD = (
    "INSERT INTO transitions (claim_id, seq, trigger, from_state, to_state, actor, at, data, deadline_at,"
    " idempotency_key, request_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
SELECT_HISTORY = f"SELECT {', '.join(HISTORY)} FROM transitions"


def claim_columns(claim: Claim, closed: bool) -> dict[str, Any]:
    """The claims row of `claim`: plain columns for people and queries, and every detail as JSON."""
    return columns_of(claim.to_dict(), closed)


def columns_of(d: Mapping[str, Any], closed: bool) -> dict[str, Any]:
    """The claims row of a claim given as its `to_dict()`."""
    row = {c: d[c] for c in COLUMNS if c in d}
    row["closed"] = int(closed)
    row["details"] = encode(d)
    return row


def linked(r: TransitionRecord, deadline_at: str | None) -> dict[str, Any]:
    """The record's values as its history row stores them, data still decoded: what the chain hashes."""
    d = r.to_dict()
    return {**{name: d.get(name) for name in LINKED}, "deadline_at": deadline_at}


def stored(values: Mapping[str, Any], key: str | None, digest: str | None) -> tuple[Any, ...]:
    """The history row's columns before its hash: the linked values (data as JSON), key and request hash."""
    return (*(encode(values[n]) if n == "data" else values[n] for n in LINKED), key, digest)
