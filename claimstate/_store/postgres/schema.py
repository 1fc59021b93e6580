"""The PostgreSQL schema as data, and the checks of it: every statement claimstate runs to make it (the
migrations, each schema version's), the layout partitioned by claim id, and the objects verify compares
with what PostgreSQL shows back (`SchemaCheck`). Text columns collate as "C" (bytes), so ids and ISO times
sort exactly as in SQLite.

Partitioned by claim id (`partitions=N`, chosen when the schema is created, recorded in meta as
`partitions`, never changed in place): `claims` is PARTITION BY HASH (id) and `transitions` PARTITION BY
HASH (claim_id), both into `N` partitions (`claims_p0`, `transitions_p0`, ...) of one modulus, so a claim's
row and its history share a partition number and a fire's lock, last-hash read, UPDATE and INSERT each touch
one partition (the planner prunes on `id = $1` and `claim_id = $1`, at run time too for a generic plan).
`events` is PARTITION BY LIST (lane) into min(N, 16) partitions, lane l in `events_p{l % P}`: a claim's
lane is a hash of its id (`_feed.lane_of`), so that is partitioning by claim id as well, one events
partition per fire, and the feed's reads of one lane and its unique (lane, lane_seq) index (which must hold
the partition key) stay as they are; its primary key becomes (position, lane), since every unique index of
a partitioned table holds its partition key (positions are unique anyway, from one sequence: a serial
column, which partitions inherit as their default, where an identity column would be the parent's alone
before PostgreSQL 17). The one-open-claim-per-order rule cannot be a partial unique index on claims any more
(it would have to hold id): a small unpartitioned table `open_orders (order_id PRIMARY KEY, claim_id)` holds
each open claim's order, kept by a trigger on claims (a row when a claim is filed open, gone when it closes,
moved when its order changes). A filing racing another for the same order waits for the other's row of
`open_orders` and then fails on its primary key, `open_orders_pkey`: a Race, run again, exactly as
`claims_one_open_per_order` is on the plain schema. A filing's idempotency key, unique across claims, is kept
the same way in `filing_keys` (see `_KEPT`). The history's append-only row trigger is cloned to each
partition by PostgreSQL; its TRUNCATE trigger, a statement trigger, is not, so each partition gets its own.
A later migration altering these tables works on the partitioned parents as on plain ones, unless it adds a
unique index without the partition key, which PostgreSQL refuses.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from claimstate._feed import LANES
from claimstate._store.database import Database

# 1: claims, their append-only hash-chained history, and meta; 2: the event feed; 3: definitions; 4: when
# each event entered the feed, the tick workers' heartbeats, claims by state and age; 5: history rows by time;
# 6: a claim's facts that are columns stored there alone (see _store.rows.IN_COLUMNS)
SCHEMA_VERSION = 6
_TEXT = 'TEXT COLLATE "C"'
# The schema objects claimstate makes, each written as PostgreSQL shows it back (pg_get_indexdef,
# pg_get_triggerdef, with the schema's name left out), so verify compares them exactly.
_INDEXES = {
    "claims_by_state": "CREATE INDEX claims_by_state ON claims USING btree (state)",
    "claims_by_buyer": "CREATE INDEX claims_by_buyer ON claims USING btree (buyer_id)",
    "claims_by_supplier": "CREATE INDEX claims_by_supplier ON claims USING btree (supplier_id)",
    "claims_by_order": "CREATE INDEX claims_by_order ON claims USING btree (order_id)",
    "claims_open_deadlines": "CREATE INDEX claims_open_deadlines ON claims USING btree (deadline_at)"
    " WHERE (deadline_at IS NOT NULL)",
    "claims_one_open_per_order": "CREATE UNIQUE INDEX claims_one_open_per_order ON claims USING btree (order_id)"
    " WHERE (closed = 0)",
    "transitions_idempotency": "CREATE UNIQUE INDEX transitions_idempotency ON transitions USING btree"
    " (claim_id, idempotency_key) WHERE (idempotency_key IS NOT NULL)",
    "transitions_filing_keys": "CREATE UNIQUE INDEX transitions_filing_keys ON transitions USING btree"
    " (idempotency_key) WHERE ((idempotency_key IS NOT NULL) AND (seq = 1))",
}
_FEED_INDEXES = {"events_by_lane": "CREATE UNIQUE INDEX events_by_lane ON events USING btree (lane, lane_seq)"}
_DEFINITION_INDEXES = {
    "claims_open_by_definition": "CREATE INDEX claims_open_by_definition ON claims USING btree (definition)"
    " WHERE (closed = 0)"
}
_OPERATIONS_INDEXES = {
    "claims_open_by_state": "CREATE INDEX claims_open_by_state ON claims USING btree (state, updated_at)"
    " WHERE (closed = 0)",
}
_FLOW_INDEXES = {  # the history rows by time: what `flows` reads of a window; and the rows that changed state
    # (a filing, or a step to another state) by claim and seq with their time: where `flows` finds, from the
    # index alone, when a claim entered the state a row of the window leaves
    "transitions_by_time": "CREATE INDEX transitions_by_time ON transitions USING btree (at)",
    "transitions_state_changes": "CREATE INDEX transitions_state_changes ON transitions USING btree"
    " (claim_id, seq, at) WHERE ((from_state IS NULL) OR (from_state <> to_state))",
}
_PRIMARY_KEYS = {  # made by the tables' PRIMARY KEY clauses
    "claims_pkey": "CREATE UNIQUE INDEX claims_pkey ON claims USING btree (id)",
    "transitions_pkey": "CREATE UNIQUE INDEX transitions_pkey ON transitions USING btree (claim_id, seq)",
    "meta_pkey": "CREATE UNIQUE INDEX meta_pkey ON meta USING btree (name)",
    "events_pkey": 'CREATE UNIQUE INDEX events_pkey ON events USING btree ("position")',
    "lanes_pkey": "CREATE UNIQUE INDEX lanes_pkey ON lanes USING btree (lane)",
    "consumers_pkey": "CREATE UNIQUE INDEX consumers_pkey ON consumers USING btree (name, lane)",
    "definitions_pkey": "CREATE UNIQUE INDEX definitions_pkey ON definitions USING btree (fingerprint)",
    "workers_pkey": "CREATE UNIQUE INDEX workers_pkey ON workers USING btree (name)",
}
_ADDED_COLUMNS = (  # what later schemas added to earlier tables, which verify and the feed rely on
    ("claims", "definition"), ("transitions", "definition"), ("events", "entered_at"),
)  # fmt: skip
_TABLES = ("claims", "transitions", "meta", "events", "lanes", "consumers", "definitions", "workers")
_APPEND_ONLY = "claimstate_history_is_append_only"  # the function the append-only triggers run, and its body
_APPEND_ONLY_BODY = " BEGIN RAISE EXCEPTION 'the transition history is append-only'; END "
_TRIGGERS = {
    "transitions_no_change": "CREATE TRIGGER transitions_no_change BEFORE DELETE OR UPDATE ON transitions"
    f" FOR EACH ROW EXECUTE FUNCTION {_APPEND_ONLY}()",
    "transitions_no_truncate": "CREATE TRIGGER transitions_no_truncate BEFORE TRUNCATE ON transitions"
    f" FOR EACH STATEMENT EXECUTE FUNCTION {_APPEND_ONLY}()",
}
_HERE = "' ON ' || quote_ident(current_schema()) || '.'"  # how PostgreSQL names a table of this schema
_HERE_ONLY = "' ON ONLY ' || quote_ident(current_schema()) || '.'"  # and a partitioned table's own index's
_CLAIMS = (
    f"CREATE TABLE claims (id {_TEXT} PRIMARY KEY, state {_TEXT} NOT NULL, version BIGINT NOT NULL,"
    f" closed INTEGER NOT NULL, order_id {_TEXT} NOT NULL, buyer_id {_TEXT} NOT NULL, supplier_id {_TEXT} NOT NULL,"
    f" amount {_TEXT} NOT NULL, currency {_TEXT} NOT NULL, resolution {_TEXT}, filed_at {_TEXT},"
    f" updated_at {_TEXT}, deadline_at {_TEXT}, deadline_trigger {_TEXT}, details {_TEXT})"
)
_HISTORY = (
    f"CREATE TABLE transitions (claim_id {_TEXT} NOT NULL REFERENCES claims (id), seq BIGINT NOT NULL,"
    f" trigger {_TEXT} NOT NULL, from_state {_TEXT}, to_state {_TEXT} NOT NULL, actor {_TEXT} NOT NULL,"
    f" at {_TEXT} NOT NULL, data {_TEXT} NOT NULL, deadline_at {_TEXT}, idempotency_key {_TEXT},"
    f" request_hash {_TEXT}, hash {_TEXT}, PRIMARY KEY (claim_id, seq))"
)
_EVENT_COLUMNS = (
    f"lane INTEGER NOT NULL, lane_seq BIGINT NOT NULL, claim_id {_TEXT} NOT NULL, seq BIGINT NOT NULL,"
    f" trigger {_TEXT} NOT NULL, from_state {_TEXT}, to_state {_TEXT} NOT NULL, actor {_TEXT} NOT NULL,"
    f" at {_TEXT} NOT NULL, data {_TEXT} NOT NULL, claim {_TEXT} NOT NULL"
)
_EVENTS = f"CREATE TABLE events (position BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, {_EVENT_COLUMNS})"
_SCHEMA_V1 = (
    _CLAIMS,
    _HISTORY,
    f"CREATE TABLE meta (name {_TEXT} PRIMARY KEY, value {_TEXT} NOT NULL)",
    *_INDEXES.values(),
    f"CREATE FUNCTION {_APPEND_ONLY}() RETURNS trigger LANGUAGE plpgsql AS $${_APPEND_ONLY_BODY}$$",
    *_TRIGGERS.values(),
)
_SCHEMA_V2 = (  # the event feed (see _store.events); history before it is not replayed into it
    _EVENTS,
    *_FEED_INDEXES.values(),
    "CREATE TABLE lanes (lane INTEGER PRIMARY KEY, last BIGINT NOT NULL)",  # each lane's last number given
    f"CREATE TABLE consumers (name {_TEXT} NOT NULL, lane INTEGER NOT NULL, acked BIGINT NOT NULL,"
    f" leased_to BIGINT NOT NULL, holder {_TEXT}, lease_until {_TEXT}, PRIMARY KEY (name, lane))",
)
_SCHEMA_V3 = (  # which definition decided each claim and history row (its fingerprint), and every one seen
    f"ALTER TABLE claims ADD COLUMN definition {_TEXT}",
    f"ALTER TABLE transitions ADD COLUMN definition {_TEXT}",
    f"CREATE TABLE definitions (fingerprint {_TEXT} PRIMARY KEY, name {_TEXT} NOT NULL, body {_TEXT} NOT NULL,"
    f" first_seen {_TEXT} NOT NULL)",
    *_DEFINITION_INDEXES.values(),
)
_SCHEMA_V4 = (  # when each event entered the feed (NULL before), the tick workers' heartbeats (see _ticker)
    f"ALTER TABLE events ADD COLUMN entered_at {_TEXT}",
    f"CREATE TABLE workers (name {_TEXT} PRIMARY KEY, kind {_TEXT} NOT NULL, started_at {_TEXT} NOT NULL,"
    f" beat_at {_TEXT} NOT NULL, last_tick_at {_TEXT}, fired BIGINT NOT NULL)",
    *_OPERATIONS_INDEXES.values(),
)
# IF NOT EXISTS: an index already made is kept (verify compares what PostgreSQL shows back, without those words).
_SCHEMA_V5 = tuple(sql.replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS", 1) for sql in _FLOW_INDEXES.values())
# Nothing to change: rows written before read as they are (the version stops an earlier claimstate, which
# would take a slim row for a damaged one).
_SCHEMA_V6: tuple[str, ...] = ()
_MIGRATIONS = {1: _SCHEMA_V1, 2: _SCHEMA_V2, 3: _SCHEMA_V3, 4: _SCHEMA_V4, 5: _SCHEMA_V5, 6: _SCHEMA_V6}

# --- the schema partitioned by claim id (see the module's doc) ---------------------------------------------
# Made by the same migrations, each statement of the plain schema that partitioning changes replaced by
# `_partitioned`'s, so a later migration (an ALTER of the parent tables) runs on both layouts alike.
_KEYS = {"claims": "HASH (id)", "transitions": "HASH (claim_id)", "events": "LIST (lane)"}  # as PostgreSQL shows them


class _Kept(NamedTuple):
    """A unique rule of the plain schema whose index a partitioned table cannot hold (it lacks the partition
    key): kept instead in a small unpartitioned table, by a trigger on the partitioned one. Its primary key
    is the rule, and a writer racing another for it fails on it as on the plain schema's index (a Race)."""

    unique: str  # the plain schema's unique index it stands for
    table: str  # the table that keeps it, and its primary key's columns
    columns: str
    on: str  # the partitioned table whose trigger keeps it
    trigger: str  # that trigger, as PostgreSQL shows it back
    function: str  # what the trigger runs, and its body: the table it writes is named with the schema's name
    body: str  # ({schema}), so a session with another search path that edits by hand keeps this schema's table
    mismatch: str  # a query counting the rows in which the table and what it keeps differ
    says: str  # what it keeps, in words


_KEPT = (
    _Kept(  # a row per open claim: added when it is filed open, gone when it closes, moved when its order changes
        "claims_one_open_per_order",
        "open_orders",
        f"order_id {_TEXT} PRIMARY KEY, claim_id {_TEXT} NOT NULL",
        "claims",
        "CREATE TRIGGER claims_keep_open_orders AFTER INSERT OR DELETE OR UPDATE OF closed, order_id ON claims"
        " FOR EACH ROW EXECUTE FUNCTION claimstate_keeps_open_orders()",  # an UPDATE of closed: a fire that closes
        "claimstate_keeps_open_orders",
        " BEGIN IF TG_OP <> 'INSERT' AND OLD.closed = 0 THEN"
        " DELETE FROM {schema}.open_orders WHERE order_id = OLD.order_id AND claim_id = OLD.id; END IF;"
        " IF TG_OP <> 'DELETE' AND NEW.closed = 0 THEN"
        " INSERT INTO {schema}.open_orders (order_id, claim_id) VALUES (NEW.order_id, NEW.id); END IF;"
        " RETURN NULL; END ",
        "SELECT count(*) FROM ((SELECT order_id, id FROM claims WHERE closed = 0 EXCEPT ALL"
        " SELECT order_id, claim_id FROM open_orders) UNION ALL (SELECT order_id, claim_id FROM open_orders"
        " EXCEPT ALL SELECT order_id, id FROM claims WHERE closed = 0)) AS differing",
        "one open claim per order",
    ),
    _Kept(  # a row per filing given an idempotency key (the history is append-only: rows are only added)
        "transitions_filing_keys",
        "filing_keys",
        f"idempotency_key {_TEXT} PRIMARY KEY, claim_id {_TEXT} NOT NULL",
        "transitions",
        "CREATE TRIGGER transitions_keep_filing_keys AFTER INSERT ON transitions FOR EACH ROW"
        " WHEN (((new.seq = 1) AND (new.idempotency_key IS NOT NULL)))"
        " EXECUTE FUNCTION claimstate_keeps_filing_keys()",
        "claimstate_keeps_filing_keys",
        " BEGIN INSERT INTO {schema}.filing_keys (idempotency_key, claim_id)"
        " VALUES (NEW.idempotency_key, NEW.claim_id); RETURN NULL; END ",
        "SELECT count(*) FROM ((SELECT idempotency_key, claim_id FROM transitions WHERE seq = 1 AND idempotency_key"
        " IS NOT NULL EXCEPT ALL SELECT idempotency_key, claim_id FROM filing_keys) UNION ALL (SELECT"
        " idempotency_key, claim_id FROM filing_keys EXCEPT ALL SELECT idempotency_key, claim_id FROM transitions"
        " WHERE seq = 1 AND idempotency_key IS NOT NULL)) AS differing",
        "each filing's idempotency key once",
    ),
)
_PLAIN_INDEXES = {**_INDEXES, **_FEED_INDEXES, **_DEFINITION_INDEXES, **_OPERATIONS_INDEXES, **_FLOW_INDEXES,
                  **_PRIMARY_KEYS}  # fmt: skip
_PARTITIONED_INDEXES = {  # every index above (primary keys too), as PostgreSQL shows it on a partitioned parent
    name: sql.replace(" ON claims ", " ON ONLY claims ")
    .replace(" ON transitions ", " ON ONLY transitions ")
    .replace(" ON events ", " ON ONLY events ")
    .replace("CREATE UNIQUE INDEX transitions_filing_keys ", "CREATE INDEX transitions_filing_keys ")  # read by key
    for name, sql in _PLAIN_INDEXES.items()
    if name != "claims_one_open_per_order"  # the rule is open_orders' primary key; claims_by_order finds them
} | {
    "events_pkey": 'CREATE UNIQUE INDEX events_pkey ON ONLY events USING btree ("position", lane)',
    **{
        f"{kept.table}_pkey": f"CREATE UNIQUE INDEX {kept.table}_pkey ON {kept.table} USING btree"
        f" ({kept.columns.split()[0]})"
        for kept in _KEPT
    },
}


def _partitions(partitions: int) -> dict[str, tuple[str, str]]:
    """Each partition of a schema partitioned `partitions` ways, by name: its parent table and its bounds, as
    PostgreSQL shows them back (pg_get_expr of relpartbound). The events get one lane or more each, lane l
    in partition l % min(partitions, LANES)."""
    made = {
        f"{table}_p{number}": (table, f"FOR VALUES WITH (modulus {partitions}, remainder {number})")
        for table in ("claims", "transitions")
        for number in range(partitions)
    }
    spread = min(partitions, LANES)
    for number in range(spread):
        made[f"events_p{number}"] = ("events", f"FOR VALUES IN ({', '.join(map(str, range(number, LANES, spread)))})")
    return made


def _partitioned(statement: str, partitions: int, schema: str) -> tuple[str, ...]:
    """What a schema partitioned `partitions` ways runs for `statement` of a plain schema's migration
    (`schema`: the schema's name, quoted as an identifier)."""
    made = _partitions(partitions)
    of = {table: [(name, bounds) for name, (parent, bounds) in made.items() if parent == table] for table in _KEYS}
    if statement in (_CLAIMS, _HISTORY):
        table = "claims" if statement == _CLAIMS else "transitions"
        return (
            f"{statement} PARTITION BY {_KEYS[table]}",
            *(f"CREATE TABLE {name} PARTITION OF {table} {bounds}" for name, bounds in of[table]),
        )
    if statement == _EVENTS:  # a serial position: the partitions inherit its default, as they would no identity
        return (
            f"CREATE TABLE events (position BIGSERIAL, {_EVENT_COLUMNS}, PRIMARY KEY (position, lane))"
            f" PARTITION BY {_KEYS['events']}",
            *(f"CREATE TABLE {name} PARTITION OF events {bounds}" for name, bounds in of["events"]),
        )
    for kept in _KEPT:
        if statement == _INDEXES[kept.unique]:
            index = _PARTITIONED_INDEXES.get(kept.unique)  # a plain index on the rule's key, where reads need one
            return (
                *(() if index is None else (index.replace(" ON ONLY ", " ON "),)),
                f"CREATE TABLE {kept.table} ({kept.columns})",
                f"CREATE FUNCTION {kept.function}() RETURNS trigger LANGUAGE plpgsql"
                f" AS $${kept.body.format(schema=schema)}$$",
                kept.trigger,
            )
    if statement == _TRIGGERS["transitions_no_truncate"]:  # a statement trigger: PostgreSQL clones it to no partition
        return (statement, *(statement.replace(" ON transitions ", f" ON {name} ") for name, _ in of["transitions"]))
    return (statement,)


class SchemaCheck:
    """What verify compares of the schema on `database` (its tables, indexes, triggers and partitions), run as
    a store's `schema_problems`: `partitions` is how many partitions by claim id the schema has (0: plain
    tables), `schema` its name quoted as an identifier (the bodies of a partitioned schema's triggers name it;
    unused for plain tables)."""

    def __init__(self, database: Database, *, partitions: int, schema: str) -> None:
        self._db = database
        self.partitions = partitions
        self.schema = schema

    def problems(self) -> list[str]:
        """Each schema object claimstate made that is missing or not as it made it, compared as PostgreSQL
        shows it: every index (primary keys and unique constraints included) by its definition, and valid;
        the append-only triggers by theirs, enabled, running the function claimstate wrote; and any other trigger
        or rule on claimstate's tables (an internal one, of a foreign key, must be enabled). Partitioned by
        claim id, also: how each table is partitioned, each partition by its bounds, each index of a
        partitioned table on every partition, each partition's triggers, and the tables that keep the unique
        rules (`open_orders`, `filing_keys`) agreeing with what they keep."""
        partitions = _partitions(self.partitions) if self.partitions else {}
        expected_indexes = _PARTITIONED_INDEXES if self.partitions else _PLAIN_INDEXES
        made_tables = (*_TABLES, *(kept.table for kept in _KEPT)) if self.partitions else _TABLES
        tables = {row[0] for row in self._db.all("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}
        indexes = {  # by name: its definition, whether it is valid, and on how many of its table's partitions
            row[0]: row[1:]
            for row in self._db.all(
                f"SELECT i.relname, replace(replace(pg_get_indexdef(i.oid), {_HERE}, ' ON '), {_HERE_ONLY},"
                " ' ON ONLY '), x.indisvalid, (SELECT count(*) FROM pg_inherits h WHERE h.inhparent = i.oid),"
                " (SELECT count(*) FROM pg_inherits h WHERE h.inhparent = x.indrelid)"
                " FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
                " WHERE i.relnamespace = current_schema()::regnamespace"
            )
        }
        wrong, present = self._partitioning_problems(partitions, tables)  # and the partitions as claimstate made them
        ours = ", ".join(f"'{table}'" for table in (*made_tables, *present))
        triggers = {  # by table and name: PostgreSQL names triggers per table, so another table's may take ours
            (row[0], row[1]): row[2:]
            for row in self._db.all(
                "SELECT c.relname, t.tgname, t.tgisinternal, t.tgenabled,"
                f" replace(pg_get_triggerdef(t.oid), {_HERE}, ' ON '), p.proname,"
                " p.pronamespace = current_schema()::regnamespace, p.prosrc,"
                " (SELECT u.tgenabled FROM pg_trigger u WHERE u.oid = t.tgparentid)"  # a clone's: its parent's state
                " FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_proc p ON p.oid = t.tgfoid"
                f" WHERE c.relnamespace = current_schema()::regnamespace AND c.relname IN ({ours}) ORDER BY t.tgname"
            )
        }
        rules = self._db.all(
            f"SELECT rulename, tablename FROM pg_rules WHERE schemaname = current_schema() AND tablename IN ({ours})"
            " ORDER BY rulename"
        )
        problems = [f"the table {name} is missing" for name in made_tables if name not in tables]
        columns = {
            (row[0], row[1])
            for row in self._db.all(
                "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()"
            )
        }
        problems += [
            f"the table {table} lacks its {column} column"
            for table, column in _ADDED_COLUMNS
            if table in tables and (table, column) not in columns
        ]
        problems += wrong
        for name, sql in expected_indexes.items():
            if name not in indexes:
                problems.append(f"the index {name} is missing")
                continue
            shown, valid, on_partitions, of_partitions = indexes[name]
            if shown != sql:
                problems.append(f"the index {name} is not the one claimstate made: {shown}")
            elif on_partitions != of_partitions:  # a partitioned table's, on each of its partitions (found above)
                table = sql.split(" ON ONLY ", 1)[1].split()[0]
                problems.append(f"the index {name} is on {on_partitions} of the {of_partitions} partitions of {table}")
            if not valid:
                problems.append(f"the index {name} is not valid (pg_index.indisvalid): a partition lacks it, or"
                                " building it failed")  # fmt: skip
        problems += self._trigger_problems(triggers, {name: partitions[name] for name in present})
        problems += [f"the rule {name} on {table} is not claimstate's" for name, table in rules]
        for kept in _KEPT if self.partitions else ():
            differing = self._db.one(kept.mismatch) if {kept.on, kept.table} <= tables else None
            if differing is not None and differing[0]:
                problems.append(
                    f"the table {kept.table}, which keeps {kept.says}, differs from {kept.on} in {differing[0]} row(s)"
                )
        return problems

    def _partitioning_problems(
        self, partitions: dict[str, tuple[str, str]], tables: set[str]
    ) -> tuple[list[str], set[str]]:
        """How each of claimstate's tables is partitioned (by claim id, or not at all, as meta records), and
        each partition that is missing, bounded otherwise, or that claimstate did not make; and the names of
        the partitions found as claimstate made them."""
        keys = dict(
            self._db.all(
                "SELECT relname, pg_get_partkeydef(oid) FROM pg_class"
                " WHERE relnamespace = current_schema()::regnamespace AND relkind = 'p'"
            )
        )
        found = {
            row[0]: (row[1], row[2])
            for row in self._db.all(
                "SELECT c.relname, p.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits h"
                " JOIN pg_class c ON c.oid = h.inhrelid JOIN pg_class p ON p.oid = h.inhparent"
                " WHERE p.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')"
            )
        }
        problems = []
        for table in (*_TABLES, *(kept.table for kept in _KEPT)):
            wanted = _KEYS.get(table) if self.partitions else None
            if table in tables and keys.get(table) != wanted:
                how = f"partitioned by {keys[table]}" if table in keys else "not partitioned"
                made = f"partitioned by {wanted}" if wanted else "not partitioned"
                problems.append(f"the table {table} is {how}; claimstate made it {made}")
        for name, (parent, bounds) in partitions.items():
            if name not in found:
                problems.append(f"the partition {name} of {parent} is missing")
            elif found[name] != (parent, bounds):
                problems.append(f"the partition {name} is not the one claimstate made: of {found[name][0]}"
                                f" {found[name][1]}")  # fmt: skip
        problems += [
            f"the table {name} is a partition of {parent} that claimstate did not make ({bounds})"
            for name, (parent, bounds) in sorted(found.items())
            if name not in partitions and parent in _KEYS
        ]
        return problems, {name for name, made in partitions.items() if found.get(name) == made}

    def _trigger_problems(
        self, triggers: dict[tuple[str, str], tuple[Any, ...]], partitions: dict[str, tuple[str, str]]
    ) -> list[str]:
        """claimstate's triggers missing, changed, disabled or running another function, and any trigger on its
        tables (their partitions included) it did not make. A trigger PostgreSQL cloned to a partition from its
        parent table's is named only where it differs from its parent's (disabled on that partition alone),
        so a trigger dropped or disabled on the parent is one problem, not one per partition."""
        made = {("transitions", name): sql for name, sql in _TRIGGERS.items()}  # the history's append-only rule
        runs = dict.fromkeys(_TRIGGERS, (_APPEND_ONLY, _APPEND_ONLY_BODY, "the append-only triggers run"))
        if self.partitions:
            schema = self.schema
            for kept in _KEPT:
                name = kept.trigger.split()[2]
                made[kept.on, name] = kept.trigger
                runs[name] = (kept.function, kept.body.format(schema=schema), f"the trigger keeping {kept.table} runs")
            for partition, (parent, _bounds) in partitions.items():
                made |= {
                    (partition, name): sql.replace(f" ON {parent} ", f" ON {partition} ")
                    for (table, name), sql in list(made.items())
                    if table == parent
                }
        parents = {partition: parent for partition, (parent, _bounds) in partitions.items()}
        problems = [
            f"the trigger {name} is missing" + ("" if table in _KEYS else f" on {table}")
            for table, name in made
            if (table, name) not in triggers and (parents.get(table), name) not in set(made) - set(triggers)
        ]
        wrong_functions: dict[str, str] = {}
        for (table, name), (internal, enabled, sql, function, here, source, parents_state) in triggers.items():
            if parents_state is not None:  # a clone, made and changed with its parent (checked on its own row)
                if enabled not in ("O", parents_state):
                    problems.append(
                        f"the trigger {name} on {table} is not enabled as claimstate made it"
                        f" (pg_trigger.tgenabled {enabled!r})"
                    )
                continue
            if not internal and (table, name) not in made:
                problems.append(f"the trigger {name} on {table} is not claimstate's: {sql}")
            elif not internal and sql != made[table, name]:
                problems.append(f"the trigger {name} is not the one claimstate made: {sql}")
            if enabled != "O":
                problems.append(
                    f"the trigger {name} on {table} is not enabled as claimstate made it"
                    f" (pg_trigger.tgenabled {enabled!r})"
                )
            if (table, name) in made and (function, here, source) != (runs[name][0], True, runs[name][1]):
                wrong_functions[runs[name][0]] = runs[name][2]
        problems += [f"the function {function}, which {what}, is not claimstate's"
                     for function, what in wrong_functions.items()]  # fmt: skip
        return problems
