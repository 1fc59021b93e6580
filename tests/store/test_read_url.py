"""`read_url` refused by name before anything is opened, a standby that cannot serve said as the standby's,
and nothing left open by a refused open; multi-host URLs shown without their password. (Reads from a
real standby: tests/clusters/test_replica_reads.py.)"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

import psycopg
import pytest
from changed_lifecycle import INSPECTION
from click.testing import CliRunner
from helpers import filing

from claimstate import AsyncClaimService, ClaimService, InvalidInput, LifecycleChanged, StorageError
from claimstate._store.postgres import shown
from claimstate.cli import EXIT_CODES, cli


@pytest.mark.parametrize(
    ("read_url", "said"),
    [
        (b"postgresql://db/claims", "not bytes"),
        (3, "not int"),
        ("", "not an empty string"),
        ("   ", "not an empty string"),
        ("claims.db", "not 'claims.db'"),
        ("mysql://svc:s3cret@db/claims", "not 'mysql://svc:***@db/claims'"),
    ],
)
def test_a_read_url_that_is_not_a_postgresql_url_is_refused_by_name(read_url: Any, said: str, tmp_path: Path) -> None:
    primary = tmp_path / "claims.db"
    with pytest.raises(InvalidInput) as caught:
        ClaimService(primary, read_url=read_url)
    assert caught.value.field == "read_url" and str(caught.value).endswith(said)
    assert "s3cret" not in str(caught.value)
    assert not primary.exists()  # refused before the file was made


def test_a_read_url_beside_a_sqlite_file_is_refused_before_the_file_is_made(tmp_path: Path, postgres_url: str) -> None:
    async def opened_async() -> None:
        await AsyncClaimService(tmp_path / "claims.db", read_url=postgres_url).open()

    for opened in (
        lambda: ClaimService(tmp_path / "claims.db", read_url=postgres_url),
        lambda: asyncio.run(opened_async()),
    ):
        with pytest.raises(InvalidInput) as caught:
            opened()
        assert caught.value.field == "read_url" and "SQLite" in str(caught.value)
    assert not (tmp_path / "claims.db").exists()
    with ClaimService(tmp_path / "claims.db") as service:
        assert service.read_path is None  # no standby: every read on the database itself


def test_a_standby_that_cannot_serve_is_said_as_the_standbys_and_never_advised_to_be_created(
    postgres_url: str, postgres_database: str
) -> None:
    ClaimService(postgres_url).close()
    empty = f"{postgres_database}?options=-csearch_path%3Dnothing_here_{secrets.token_hex(3)}"
    down = "postgresql://svc:s3cret@127.0.0.1:1/claims"
    for read_url, why in ((empty, "no claimstate database at"), (down, "cannot connect to PostgreSQL")):
        with pytest.raises(StorageError) as caught:
            ClaimService(postgres_url, read_url=read_url)
        said = str(caught.value)
        assert said.startswith("read_url: ") and "cannot serve as a standby of the database at" in said, said
        assert why in said and "claimstate init" not in said and "s3cret" not in said


def test_a_refused_open_with_a_read_url_leaves_no_connection_open(postgres_url: str) -> None:
    """An open refused after the standby's store was made (open claims of another lifecycle) closes both."""
    with ClaimService(postgres_url) as service:
        service.file_claim(filing())
    name = f"readurl-{secrets.token_hex(4)}"
    with pytest.raises(LifecycleChanged):
        ClaimService(postgres_url, definition=INSPECTION, read_url=f"{postgres_url}&application_name={name}")
    with psycopg.connect(postgres_url) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (name,)).fetchone()
    assert row == (0,)


def test_serve_refuses_a_read_db_beside_a_sqlite_file_by_name(tmp_path: Path, postgres_url: str) -> None:
    db = tmp_path / "claims.db"
    ClaimService(db).close()
    result = CliRunner().invoke(cli, ["--db", str(db), "serve", "--read-db", postgres_url])
    assert result.exit_code == EXIT_CODES[InvalidInput], result.output
    assert result.stderr.startswith("error: ") and "read_url" in result.stderr and "SQLite" in result.stderr


@pytest.mark.parametrize(
    ("target", "seen"),
    [
        ("postgresql://svc:s3cret@db1:5432,db2:5433/claims?target_session_attrs=read-write",
         "postgresql://svc@db1:5432,db2:5433/claims"),
        ("host=db1,db2 port=5432 dbname=claims user=svc password=s3cret", "postgresql://svc@db1:5432,db2:5432/claims"),
        ("host=::1,::2 port=5432,5433 dbname=claims user=svc", "postgresql://svc@[::1]:5432,[::2]:5433/claims"),
        ("host=db1,db2 dbname=claims", "postgresql://db1,db2/claims"),
    ],
)  # fmt: skip
def test_a_multi_host_url_is_shown_with_every_host_and_no_password(target: str, seen: str) -> None:
    assert shown(target) == seen
