"""The store for reads that may lag: a PostgreSQL standby (`read_url`) serving the calls that read many claims.

A standby replays the primary's WAL moments behind it (with `synchronous_commit = on` it has each
acknowledged transaction on disk, not yet applied; `remote_apply` makes it applied, at a cost to every
commit). So only reads that tolerate that lag go there: lists, stats, flows, a look at the feed and verify.
A claim read to act on (`get`, `view`, `available`, `history`) and everything that writes stay on the
primary, so a caller always sees its own last write.
"""

from __future__ import annotations

from functools import partial

from claimstate._errors import InvalidInput, StorageError
from claimstate._store import Store, StoredDefinition, is_postgres, masked, open_store

# Which database a PostgreSQL connection reads: a standby has its primary's system identifier (set by initdb
# and copied by the base backup it was made from); the database and the schema (search path) must match too.
_WHICH = "SELECT system_identifier::text, current_database(), current_schema() FROM pg_control_system()"


def checked_read_url(read_url: object, primary: object) -> None:
    """Refuse, by name and before any file or connection is made, a `read_url` that is not a PostgreSQL URL,
    or one given with a primary that is not PostgreSQL (a SQLite file, or a store given open of it)."""
    if read_url is None:
        return
    if not isinstance(read_url, str) or not is_postgres(read_url):
        if not isinstance(read_url, str):
            shown = type(read_url).__name__
        else:
            shown = repr(masked(read_url)) if read_url.strip() else "an empty string"
        raise InvalidInput(
            f"must be a postgresql:// URL (or libpq key=value string) of a standby, not {shown}", field="read_url"
        )
    if not (primary.many_writers if isinstance(primary, Store) else is_postgres(primary)):
        raise InvalidInput(
            "is for a PostgreSQL primary's standbys; a SQLite file has none (its reads never wait for its writes)",
            field="read_url",
        )


def open_replica(
    read_url: str, primary: Store, *, busy_timeout: float, pool_size: int, definition: StoredDefinition
) -> Store:
    """A read-only store on `read_url`, checked to be a copy of the primary's database: the same cluster
    (system identifier), database and schema, at the same schema version (a server of another cluster, or a
    standby not yet at the primary's schema, is refused by name)."""
    try:
        replica = open_store(
            read_url,
            busy_timeout=busy_timeout,
            pool_size=pool_size,
            create=False,
            read_only=True,
            chain=primary.chain,
            definition=definition,
        )
    except StorageError as error:  # said as the standby's: never advice to create a database there
        raise StorageError(
            f"read_url: {error.path or masked(read_url)} cannot serve as a standby of the database at"
            f" {primary.path}: {_why(error).rstrip('.?')}; name a running standby of it (a URL listing the primary"
            " last, with target_session_attrs=prefer-standby, falls back to the primary while no standby answers)",
            path=error.path,
        ) from None
    try:
        theirs, ours = (store.read(partial(store.one, _WHICH)) for store in (replica, primary))
        if theirs != ours or replica.schema_version != primary.schema_version:
            raise StorageError(
                f"{replica.path} (read_url) is not a standby of the database at {primary.path}: it holds another"
                " cluster's data, another database or schema, or an older schema version; give a standby of that"
                " database, with the same database name and search path",
                path=replica.path,
            )
    except BaseException:
        replica.close()
        raise
    return replica


def _why(error: StorageError) -> str:
    """What went wrong opening the standby, without the advice meant for a primary (to create the schema)."""
    said = str(error).split("; create it with", 1)[0]
    return said.removeprefix(f"{error.path}: ") if error.path else said
