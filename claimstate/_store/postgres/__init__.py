"""The PostgreSQL backend, an optional extra (psycopg): `store` is the store (its pool, its transactions in
pipeline mode, its errors said as claimstate's, `shown` for URLs); `schema` is the schema it makes (every
statement of its migrations, the layout partitioned by claim id) and what verify compares of it. The store
imports the schema, never the reverse. Importing this package imports psycopg, so without the extra it
raises ImportError (`open_store` says to install it).
"""

from __future__ import annotations

from claimstate._store.postgres.schema import SCHEMA_VERSION
from claimstate._store.postgres.store import PostgresStore, shown

__all__ = ["SCHEMA_VERSION", "PostgresStore", "shown"]
