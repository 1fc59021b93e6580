"""The service's options, checked by name before any file or connection is made."""

from __future__ import annotations

import os
from collections.abc import Mapping

from claimstate._errors import InvalidInput
from claimstate._store import Store, is_postgres

_MOST_SECONDS = 366 * 86_400  # a lease, a poll or a pause longer than a year is a mistake
_MOST_WAIT = 86_400  # a busy timeout: a day (PostgreSQL's lock_timeout holds under 25 days of milliseconds)
_SYNCHRONOUS = ("NORMAL", "FULL")


def seconds(value: object, field: str = "lease", *, most: int = _MOST_SECONDS) -> float:
    """A positive number of seconds, at most `most` (by default a year): NaN and infinities are refused."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= most:
        raise InvalidInput(f"must be a number of seconds above 0 and at most {most}, not {value!r}", field=field)
    return float(value)


_MOST_CONNECTIONS = 1000
_MOST_PARTITIONS = 256  # hash partitions by claim id (PostgreSQL): more only adds planning and catalogue
_PARTITIONS = range(2, _MOST_PARTITIONS + 1)


def checked_options(
    path: object,
    *,
    synchronous: object,
    busy_timeout: object,
    pool_size: object,
    partitions: object,
    clock: object,
    flags: Mapping[str, object],
) -> None:
    """Refuse, by name and before any file or connection is made, what no store could be opened with: a path
    that is not text or os.PathLike (bytes, None, a number would name a strange file), or is empty or holds
    a NUL (a store given open, or a pool, is not a path); a wait that is not a sane number of seconds; an
    unknown synchronous mode (checked for every store, so a setting is never silently dropped); partitions
    that are not None, 0 or a whole number from 2 to 256, or that are asked of a SQLite file; a clock that
    cannot be called; flags that are not bool."""
    given = isinstance(path, Store)  # a store given open: the service checks it against its definition
    if not given and (isinstance(path, str | os.PathLike) or not is_postgres(path)):  # psycopg_pool checks a pool
        name = os.fspath(path) if isinstance(path, os.PathLike) else path
        if not isinstance(name, str):
            raise InvalidInput(
                f"must be a file path (text or os.PathLike), a postgresql:// URL or a psycopg_pool pool, not"
                f" {type(path).__name__}",
                field="path",
            )
        if not name:
            raise InvalidInput("no database given: name a SQLite file, or a postgresql:// URL", field="path")
        if "\x00" in name:
            raise InvalidInput("holds a NUL character, which no file name or URL can hold", field="path")
    if synchronous not in _SYNCHRONOUS:
        raise InvalidInput(f"must be one of {', '.join(_SYNCHRONOUS)}, not {synchronous!r}", field="synchronous")
    seconds(busy_timeout, "busy_timeout", most=_MOST_WAIT)
    if isinstance(pool_size, bool) or not isinstance(pool_size, int) or not 1 <= pool_size <= _MOST_CONNECTIONS:
        raise InvalidInput(
            f"must be a whole number from 1 to {_MOST_CONNECTIONS}, not {pool_size!r}", field="pool_size"
        )
    if partitions is not None:
        if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions not in (0, *_PARTITIONS):
            raise InvalidInput(
                f"must be None or 0 (plain tables), or a whole number of partitions from 2 to {_MOST_PARTITIONS},"
                f" not {partitions!r}",
                field="partitions",
            )
        if partitions and not given and not is_postgres(path):
            raise InvalidInput(
                "partitioning by claim id is PostgreSQL's: a SQLite file has plain tables (give a postgresql://"
                " URL, or leave partitions out)",
                field="partitions",
            )
    if clock is not None and not callable(clock):
        raise InvalidInput(f"must be callable, giving the time, not {type(clock).__name__}", field="clock")
    for name, flag in flags.items():
        if not isinstance(flag, bool):
            raise InvalidInput(f"must be True or False, not {flag!r}", field=name)
