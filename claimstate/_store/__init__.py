"""Where claims are kept: one contract (`base.Store`), one implementation per database.

`open_store` picks the backend from what it is given: a path or ":memory:" is a SQLite file, the
embedded default; a ``postgresql://`` URL or a psycopg_pool ConnectionPool is PostgreSQL, for services
that run as many instances. The service and the engine never know which one runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from claimstate._chain import Chain
from claimstate._store.base import Loaded, Store
from claimstate._store.sqlite import SQLiteStore, Synchronous

__all__ = ["Loaded", "Store", "Synchronous", "open_store"]


def open_store(
    target: str | Path | Any,
    *,
    chain: Chain,
    synchronous: Synchronous = "NORMAL",
    busy_timeout: float = 5.0,
    create: bool = True,
    read_only: bool = False,
) -> Store:
    """The store `target` names (see the module's doc); `synchronous` is SQLite's alone."""
    return SQLiteStore(
        target, synchronous=synchronous, busy_timeout=busy_timeout, create=create, read_only=read_only, chain=chain
    )
