"""Claim ids and worker names: ULIDs, which sort in the order they were made."""

from __future__ import annotations

import os
import socket
import threading
import time

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


def worker_name() -> str:
    """A service's name in the feed's lease rows: the host and process, to find a stuck worker by."""
    return f"{socket.gethostname()}:{os.getpid()}:{new_claim_id()}"
