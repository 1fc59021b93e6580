"""Fixtures shared by the tests; the data and helpers they use are in helpers.py.

Tests that take a `store_target` (or a fixture built on it, like test_service's `service`) run on both
backends: a SQLite file, and a throw-away PostgreSQL schema. A test marked `@pytest.mark.sqlite_only`
(one that reads the SQLite file itself, through `db_path`) runs on SQLite alone; a test that takes
`db_path` on a backend without the mark is a collection error. PostgreSQL tests need a server:
$CLAIMSTATE_TEST_POSTGRES (default postgresql://postgres@127.0.0.1:5432/test, where each test process,
every pytest-xdist worker included, creates and drops a database of its own); where none answers they are
skipped, saying why, unless $CLAIMSTATE_REQUIRE_POSTGRES is 1 (CI sets it), which makes that a failure.
With $CLAIMSTATE_TEST_PARTITIONS=N, every PostgreSQL schema a test gets is made partitioned by claim id into
N (docs: PostgreSQL, Partitioning by claim id) before the test sees it, so the contract tests, their child
processes and the commands they start all run on that layout.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager as ContextManager
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from helpers import Walker, on_server
from hypothesis import settings

from claimstate import Engine
from claimstate._chain import Chain
from claimstate._json import encode
from claimstate._store import StoredDefinition, open_store

# Bytecode is cached, whatever the machine says (some set PYTHONDONTWRITEBYTECODE=1): the suite starts some
# 200 Python processes (commands, workers, children), and each would compile claimstate's source again,
# half of what it costs a command to start. The pytest-xdist workers start after this line, so they cache too.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

POSTGRES = os.environ.get("CLAIMSTATE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_POSTGRES = os.environ.get("CLAIMSTATE_REQUIRE_POSTGRES") == "1"
PARTITIONS = int(os.environ.get("CLAIMSTATE_TEST_PARTITIONS") or 0)  # 0: plain schemas, made by the tests' opens
_ENGINE = Engine()  # the store that makes a partitioned schema opens it for the lifecycle, and records no definition
_DECIDES_BY = StoredDefinition(_ENGINE.fingerprint, _ENGINE.definition.name, encode(_ENGINE.definition.to_dict()))

# No example database: the suite runs in several processes at once (pytest-xdist), which would share one
# .hypothesis/ folder, and a worker does not get the same tests from one run to the next. A failure prints
# the blob that replays it (@reproduce_failure) instead.
settings.register_profile("claimstate", database=None, print_blob=True)
settings.load_profile("claimstate")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long tests first (those marked slow, then those that start processes), the rest in their order:
    with the suite spread over workers (pytest-xdist, --dist load), no worker is left with a long test at
    the end while the others stand idle. The order is the same in every worker, as xdist requires."""

    def rank(item: pytest.Item) -> int:
        if item.get_closest_marker("slow"):
            return 0
        return 1 if "processes" in item.path.parts else 2

    items.sort(key=rank)
    if PARTITIONS:
        for item in items:
            why = _plain_only(item)
            if why is not None:
                item.add_marker(pytest.mark.skip(reason=f"$CLAIMSTATE_TEST_PARTITIONS: {why}"))


# The tests that cannot run on a schema made partitioned before they start, and why (test_partitions.py checks
# the partitioned schema's own objects).
_PLAIN_ONLY = {
    "test_processes_creating_one_schema_at_once_migrate_it_once": "it counts what opens make of empty schemas",
    "test_tables_of_another_application_are_refused_by_name": "it needs an empty schema",
    "test_postgres_an_internal_trigger_disabled_is_a_schema_problem": "it counts the plain schema's triggers",
    "test_another_history_key_is_refused": "a schema made before the test has the plain SHA-256 chain",
    "test_constructor_options_are_refused_by_name_creating_nothing": "it checks a refused open leaves a schema empty",
    "test_the_demo_walks_into_a_postgresql_database_only_once_it_is_made_and_holds_no_real_claims": "it needs a"
    " schema never made",
}


def _plain_only(item: pytest.Item) -> str | None:
    """Why `item` cannot run with $CLAIMSTATE_TEST_PARTITIONS set; None when it can."""
    params = item.callspec.params if isinstance(item, pytest.Function) and hasattr(item, "callspec") else {}
    if isinstance(item, pytest.Function) and item.originalname in _PLAIN_ONLY:
        return _PLAIN_ONLY[item.originalname] if params.get("backend", "postgres") == "postgres" else None
    if params.get("key") is not None and params.get("backend") == "postgres":
        return "a schema made before the test has the plain SHA-256 chain, which a service with a key refuses"
    if "claims_one_open_per_order" in str(params.get("sql", "")):
        return "a partitioned schema keeps that rule in open_orders, not in that index"
    return None


@pytest.fixture
def engine() -> Engine:
    return Engine()


@pytest.fixture
def walker(engine: Engine) -> Walker:
    return Walker(engine)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        sqlite_only = metafunc.definition.get_closest_marker("sqlite_only") is not None
        if "db_path" in metafunc.fixturenames and not sqlite_only:
            raise pytest.UsageError(
                f"{metafunc.definition.nodeid} reads the SQLite file (db_path) on every backend: "
                "mark it @pytest.mark.sqlite_only"
            )
        metafunc.parametrize("backend", ["sqlite"] if sqlite_only else ["sqlite", "postgres"])


@pytest.fixture
def store_target(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """Where a test's service keeps its claims: a new SQLite file, or a new PostgreSQL schema (a URL)."""
    if backend == "sqlite":
        return str(tmp_path / "claims.db")
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def shared_store_target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One store per backend for a whole module, for tests that each leave it as they found it (calls that
    are refused, each checked to have written nothing): made once, not once per test."""
    if request.param == "sqlite":
        yield str(tmp_path_factory.mktemp("shared") / "claims.db")
        return
    with new_schema(request.getfixturevalue("postgres_database")) as url:
        yield url


def _unavailable(reason: str) -> None:
    if REQUIRE_POSTGRES:
        pytest.fail(f"PostgreSQL is required ($CLAIMSTATE_REQUIRE_POSTGRES=1): {reason}")
    pytest.skip(f"{reason} (set $CLAIMSTATE_TEST_POSTGRES to a server's URL)")


def _admin() -> Any:
    try:
        import psycopg  # noqa: PLC0415  (an optional extra; its absence is a skip, not an error)
    except ImportError:
        _unavailable("psycopg is not installed: pip install -e '.[test]'")
    try:
        return psycopg.connect(POSTGRES, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        _unavailable(f"no PostgreSQL server answers at {POSTGRES}: {str(error).strip()}")


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A database of this test run's own, dropped at its end: the URL of it."""
    name = f"claimstate_test_{os.getpid()}_{secrets.token_hex(3)}"
    with _admin() as admin:  # not held open: a test may terminate every other backend
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES.rsplit('/', 1)[0]}/{name}"
    finally:
        with _admin() as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(postgres_database: str) -> Iterator[str]:
    """The URL of a new, empty schema in the run's database (its search path)."""
    with new_schema(postgres_database) as url:
        yield url


@contextmanager
def new_schema(database: str) -> Iterator[str]:
    """A new, empty schema in `database`, as a URL whose search path is it. It is not dropped: the run's
    database takes every schema with it at the end (a DROP SCHEMA for each test cost the server ~10 ms),
    and each is made through one kept connection (a new backend per test cost it ~8 ms more)."""
    schema = f"t_{secrets.token_hex(6)}"
    on_server(database, f"CREATE SCHEMA {schema}", use="admin")
    url = f"{database}?options=-csearch_path%3D{schema}"
    if PARTITIONS:  # made partitioned now, with its plain SHA-256 chain: its tables, and no definition yet
        open_store(url, chain=Chain(None), definition=_DECIDES_BY, partitions=PARTITIONS).close()
    yield url


_CLAIMSTATE_ROWS = ("transitions", "events", "lanes", "consumers", "claims", "definitions", "workers")
_EMPTIED = (  # a claimstate schema's rows gone, as a new one has none (meta's chain and version kept)
    "SET session_replication_role = replica",  # the append-only history's triggers stand aside
    *(f"DELETE FROM {table}" for table in _CLAIMSTATE_ROWS),
    "SELECT setval(pg_get_serial_sequence('events', 'position'), 1, false)",
    *(("DELETE FROM open_orders", "DELETE FROM filing_keys") if PARTITIONS else ()),  # kept by triggers, set aside
)


@pytest.fixture
def fresh_targets(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[], ContextManager[str]]:
    """Makes an empty store of the test's backend each time it is called (for Hypothesis examples): a new
    SQLite file; on PostgreSQL one schema per test, its rows deleted after each example (making and migrating
    a new schema costs the server ~60 ms; deleting a few rows, 2 ms)."""
    if backend == "postgres":
        import psycopg  # noqa: PLC0415

        url = str(request.getfixturevalue("postgres_url"))

        @contextmanager
        def emptied() -> Iterator[str]:
            try:
                yield url
            finally:
                with psycopg.connect(url, autocommit=True) as conn:
                    if conn.execute("SELECT to_regclass('meta')").fetchone() != (None,):
                        conn.execute(";".join(_EMPTIED))

        return emptied

    @contextmanager
    def new_file() -> Iterator[str]:
        with tempfile.TemporaryDirectory(dir=tmp_path) as folder:
            yield str(Path(folder) / "claims.db")

    return new_file
