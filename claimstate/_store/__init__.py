"""Where claims are kept: one contract (`base.Store`), one implementation per database.

`open_store` picks the backend from what it is given: a path or ":memory:" is a SQLite file, the
embedded default; a ``postgresql://`` URL, a libpq key=value string or a psycopg_pool ConnectionPool is
PostgreSQL, for services that run as many instances. The service and the engine never know which one runs.
Whatever names the database is shown only masked (see `targets`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from claimstate._chain import Chain
from claimstate._errors import InvalidInput, StorageError
from claimstate._store.base import Store, StoredClaim, StoredDefinition
from claimstate._store.sqlite import SQLiteStore, Synchronous
from claimstate._store.targets import POSTGRES_SCHEMES, is_conninfo, masked

__all__ = [
    "POSTGRES_SCHEMES",
    "Store",
    "StoredClaim",
    "StoredDefinition",
    "Synchronous",
    "is_postgres",
    "masked",
    "open_store",
]


def open_store(
    target: str | Path | Any,
    *,
    chain: Chain,
    definition: StoredDefinition,
    synchronous: Synchronous = "NORMAL",
    busy_timeout: float = 5.0,
    pool_size: int = 10,
    partitions: int | None = None,
    create: bool = True,
    read_only: bool = False,
) -> Store:
    """The store `target` names (see the module's doc); `synchronous` is SQLite's alone, `pool_size` and
    `partitions` PostgreSQL's (the most connections of the pool it makes for a URL; how many partitions by
    claim id a schema it creates gets, None or 0 for plain tables, and what one it opens must have)."""
    if isinstance(target, str | Path) and not str(target):
        raise StorageError("no database given: name a SQLite file, or a postgresql:// URL", path="")
    if isinstance(target, str) and "://" in target and not target.startswith(POSTGRES_SCHEMES):
        shown = masked(target)
        raise StorageError(
            f"{shown}: {shown.split('://', 1)[0]}:// is not a database claimstate knows; give a postgresql:// URL,"
            " or a file path",
            path=shown,
        )
    if is_postgres(target):
        try:
            from claimstate._store.postgres import PostgresStore  # noqa: PLC0415  (psycopg is an optional extra)
        except ImportError as error:
            shown = masked(str(target))
            raise StorageError(
                f"PostgreSQL ({shown}) needs the postgres extra: pip install 'claimstate[postgres]' ({error})",
                path=shown,
            ) from None
        return PostgresStore(
            str(target) if isinstance(target, Path) else target,
            busy_timeout=busy_timeout,
            pool_size=pool_size,
            partitions=partitions,
            create=create,
            read_only=read_only,
            chain=chain,
            definition=definition,
        )
    if partitions:
        raise InvalidInput(
            "partitioning by claim id is PostgreSQL's: a SQLite file has plain tables", field="partitions"
        )
    return SQLiteStore(
        target,
        synchronous=synchronous,
        busy_timeout=busy_timeout,
        create=create,
        read_only=read_only,
        chain=chain,
        definition=definition,
    )


def is_postgres(target: object) -> bool:
    """A ``postgresql://`` or ``postgres://`` URL, a libpq key=value string, or a psycopg_pool pool."""
    if isinstance(target, str):
        return target.startswith(POSTGRES_SCHEMES) or is_conninfo(target)
    return type(target).__module__.split(".")[0] == "psycopg_pool"
