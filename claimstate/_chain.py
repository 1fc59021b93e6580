"""The history's hash chain: each row's hash covers its content and the hash of the claim's row before it.

Store-independent, so every store chains and checks rows alike. Without a key the hash is SHA-256: it
shows a row changed, inserted or removed by someone who did not recompute the chain after it. With a key
(held by the deploying service, never stored) it is HMAC-SHA256, so someone who can only write the file
cannot make a forged row verify. The database records which kind it holds, and for a key a fingerprint
of it, so a missing or wrong key is named as such rather than as every row forged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from claimstate._errors import InvalidInput

SHA256 = "sha256"
HMAC_SHA256 = "hmac-sha256"
MIN_KEY_BYTES = 16
_ENCODING = "claimstate-history-1"  # the first item hashed: a later encoding cannot collide with this one
_KEY_CHECK = b"claimstate key check"
# Sorted keys, no spaces, ASCII only: the bytes hashed, fixed for good (a file's chain is checked against them).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), allow_nan=False)
# What a row's hash covers, in this order, after the previous row's hash; then, where the row records one
# (schema 4 on), the fingerprint of the definition it was decided under, so rows hashed before still check.
LINKED = ("claim_id", "seq", "trigger", "from_state", "to_state", "actor", "at", "data", "deadline_at")


class Chain:
    """How this service hashes history rows: plain SHA-256, or HMAC-SHA256 under `key`."""

    def __init__(self, key: bytes | None = None) -> None:
        if key is not None and (not isinstance(key, bytes) or len(key) < MIN_KEY_BYTES):
            raise InvalidInput(f"must be bytes, at least {MIN_KEY_BYTES} of them", field="history_key")
        self._key = key
        self._fingerprint = None if key is None else hmac.new(key, _KEY_CHECK, hashlib.sha256).hexdigest()

    @property
    def kind(self) -> str:
        return SHA256 if self._key is None else HMAC_SHA256

    def record(self) -> dict[str, str]:
        """What the database keeps about its chain: the kind, and for a key its fingerprint."""
        if self._fingerprint is None:
            return {"chain": self.kind}
        return {"chain": self.kind, "key_fingerprint": self._fingerprint}

    def link(self, previous: str | None, row: Mapping[str, Any]) -> str:
        """The hash of `row` (its LINKED values, data decoded, and its definition) after the claim's previous
        hash (None at seq 1).

        Raises TypeError or ValueError for a value JSON cannot carry (only a damaged row holds one).
        """
        values = [_ENCODING, previous or "", *(row[name] for name in LINKED)]
        if row.get("definition") is not None:
            values.append(row["definition"])
        text = _CANONICAL.encode(values).encode("ascii")
        if self._key is None:
            return hashlib.sha256(text).hexdigest()
        return hmac.new(self._key, text, hashlib.sha256).hexdigest()

    def cannot_check(self, recorded: Mapping[str, str]) -> str | None:
        """Why this chain cannot check or extend the one the database records; None when it can.

        A service holding a key accepts nothing but an HMAC chain under that very key: whoever can write
        the file could otherwise rewrite the record to plain SHA-256 and re-chain forged rows.
        """
        kind, stored = recorded.get("chain"), recorded.get("key_fingerprint")
        if self._fingerprint is not None:
            if kind != HMAC_SHA256:
                return (
                    f"the history is chained with {kind or 'no recorded kind'}, but this service holds a key and"
                    " accepts only an HMAC-SHA256 chain under it (the record of the kind may have been rewritten)"
                )
            if stored != self._fingerprint:
                return (
                    f"the history is chained under another key (fingerprint {str(stored)[:16]}...) than this"
                    f" service's ({self._fingerprint[:16]}...)"
                )
            return None
        if kind == HMAC_SHA256:
            return (
                f"the history is chained with HMAC-SHA256 under a key (fingerprint {str(stored)[:16]}...):"
                " give that key (history_key) to check or extend it"
            )
        if kind != SHA256:
            return f"the database records no chain kind this version knows ({kind!r})"
        return None
