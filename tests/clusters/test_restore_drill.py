"""The PostgreSQL restore drill, as docs/guides/operations.md (Backups and restores) tells an operator to run it.

On a throw-away PostgreSQL 15 cluster archiving its WAL (tests/clusters/cluster.py): claims filed and fired;
the backup role made by the docs' own SQL (read from the docs: `LOGIN REPLICATION` and the grants), after a
role with `LOGIN REPLICATION` alone is refused; `claimstate backup DEST` as that role (pg_basebackup, checked
by pg_verifybackup); more fires, a named restore point with every claim's version noted, fires the restore
must not hold, a WAL switch so the archive has it all, and the primary killed. Then the restore: the base
backup as a new data folder, `restore_command` fetching the archive, `recovery_target_name`,
`recovery.signal`; started, it replays to the point and is promoted; the recovery settings are reset as the
docs say (`ALTER SYSTEM RESET`), and the server restarted comes back out of recovery, replaying nothing.
Every claim is at the version noted, `claimstate verify` is clean, and firing resumes. Every wait is bounded.

Where it differs from the docs' steps (they say so too): the cluster is initdb's in a folder of the test's,
not one of Debian's, so the server is started with `pg_ctl -D` by its full path, not `pg_ctlcluster` or
`systemctl`; its pg_hba.conf trusts every local connection, so the role's grants are proved, not the
pg_hba.conf lines.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cluster import cluster, run, tool
from helpers import EVIDENCE, filing

from claimstate import ClaimService

pytestmark = pytest.mark.slow

_WAIT = 60.0  # seconds for the archive to take a segment, or a restored server to be promoted
_DOCS = Path(__file__).parents[2] / "docs" / "guides" / "operations.md"
_RECOVERY = ("restore_command", "recovery_target_name", "recovery_target_action")  # what the restore is given


def _backup_role_sql() -> list[str]:
    """The statements the docs give to make the backup role (the first ```sql block of Backups and restores),
    as the drill runs them: no password (the cluster trusts local connections), and the default privileges
    for the role that owns the tables here (postgres, the docs' svc)."""
    section = _DOCS.read_text().split("## Backups and restores", 1)[1]
    block = re.search(r"```sql\n(.*?)```", section, re.DOTALL)
    assert block is not None, "the docs give no SQL for the backup role"
    lines = [line for line in block.group(1).splitlines() if line.strip() and not line.startswith("--")]
    statements = [part.strip() for part in " ".join(lines).split(";") if part.strip()]
    assert statements[0] == "CREATE ROLE backup LOGIN REPLICATION PASSWORD '...'", statements
    return [
        statement.replace(" PASSWORD '...'", "").replace("FOR ROLE svc", "FOR ROLE postgres")
        for statement in statements
    ]


def _claimstate(*args: str) -> subprocess.CompletedProcess[str]:
    """`claimstate ARGS` as an operator runs it, in a process of its own."""
    env = {k: v for k, v in os.environ.items() if k != "CLAIMSTATE_DB"}
    return subprocess.run([sys.executable, "-m", "claimstate", *args], capture_output=True, text=True, env=env,
                          timeout=300, check=False)  # fmt: skip


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + _WAIT
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {_WAIT:g} s"
        time.sleep(0.05)


def _fire_round(service: ClaimService, ids: list[str], note: str) -> None:
    """One evidence step on every claim."""
    for claim_id in ids:
        service.fire(claim_id, "submit_evidence", "supplier:acme",
                     {"evidence": [{"kind": "other", "description": note}]})  # fmt: skip


def test_a_base_backup_and_the_archive_restore_to_a_named_point_and_firing_resumes() -> None:
    timings: dict[str, float] = {}
    with cluster(standby=False) as made:
        primary = made.primary
        primary.sql("CREATE DATABASE claims")
        url = primary.url("claims")
        with ClaimService(url) as service:
            ids = []
            for n in range(20):
                filed = service.file_claim(filing(order_id=f"o-{n}"))
                service.fire(filed.claim.id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE})
                ids.append(filed.claim.id)

            # 0. the backup role: LOGIN REPLICATION alone cannot back up (claimstate reads its tables too);
            # the role the docs' statements make can
            primary.sql("CREATE ROLE replicates_only LOGIN REPLICATION")
            refused = _claimstate("--db", url.replace("postgres@", "replicates_only@"), "backup",
                                  str(made.folder / "refused"))  # fmt: skip
            assert refused.returncode == 5, (refused.stdout, refused.stderr)
            assert not (made.folder / "refused").exists()
            for statement in _backup_role_sql():
                primary.sql(statement, "claims")

            # 1. the base backup, by the command the docs give, as the backup role
            base = made.folder / "base"
            started = time.monotonic()
            backup = _claimstate("--db", url.replace("postgres@", "backup@"), "--json", "backup", str(base))
            timings["backup"] = time.monotonic() - started
            assert backup.returncode == 0, backup.stderr
            made_backup = json.loads(backup.stdout)
            assert (made_backup["kind"], made_backup["clean"], made_backup["problems"]) == ("postgres", True, [])
            assert (made_backup["claims"], made_backup["transitions"]) == (20, 40)
            assert (base / "backup_manifest").is_file()
            assert not [p for p in made.folder.iterdir() if p.name.endswith(".partial")]

            # 2. written after the backup, before the restore point: the archive brings these back
            _fire_round(service, ids, "after the backup")
            service.file_claim(filing(order_id="o-after-backup"), claim_id="after-backup")
            primary.sql("SELECT pg_create_restore_point('drill')", "claims")
            noted = {c.id: c.version for c in service.iter_claims()}
            assert set(noted.values()) == {1, 3}

            # 3. written after the restore point: the restore must not hold these
            _fire_round(service, ids, "after the restore point")
            service.file_claim(filing(order_id="o-too-late"), claim_id="too-late")
        segment = primary.sql("SELECT pg_walfile_name(pg_switch_wal())")
        _until((made.archive / segment).exists, f"the archiving of {segment}")
        primary.kill()

        # 4. the restore: the base backup as a new data folder, the archive replayed up to 'drill', then promoted
        started = time.monotonic()
        copy = made.folder / "base-copy"
        subprocess.run(["cp", "-a", str(base), str(copy)], check=True)
        restored = made.server_from(copy, "restored")
        restored.configure(
            restore_command=f"cp {made.archive}/%f %p",
            recovery_target_name="drill",
            recovery_target_action="promote",
        )
        (restored.data / "recovery.signal").touch()
        restored.start()
        _until(lambda: restored.sql("SELECT pg_is_in_recovery()") == "f", "the promotion of the restored server")
        timings["restore"] = time.monotonic() - started
        log = restored.log.read_text()
        assert "restored log file" in log  # what came after the backup came from the archive
        assert 'starting point-in-time recovery to "drill"' in log
        assert 'recovery stopping at restore point "drill"' in log

        # 4b. the recovery settings taken out as the docs say (each ALTER SYSTEM RESET on its own), and the
        # server restarted: it comes back out of recovery, fetching nothing from the archive
        resets = [arg for name in _RECOVERY for arg in ("-c", f"ALTER SYSTEM RESET {name}")]
        run(tool("psql"), "-X", "-h", "127.0.0.1", "-p", str(restored.port), "-U", "postgres", *resets)
        settings = (restored.data / "postgresql.auto.conf").read_text()
        assert not [line for line in settings.splitlines() if line.startswith(_RECOVERY)], settings
        assert not (restored.data / "recovery.signal").exists()  # the server removed it as it promoted
        restored.stop()
        seen = len(restored.log.read_text())
        restored.start()
        assert restored.sql("SELECT pg_is_in_recovery()") == "f"
        after = restored.log.read_text()[seen:]
        assert "restored log file" not in after, after
        assert "starting point-in-time recovery" not in after, after
        assert "starting archive recovery" not in after, after

        # 5. checked, and firing resumed
        again = restored.url("claims")
        verified = _claimstate("--db", again, "--json", "verify")
        assert (verified.returncode, json.loads(verified.stdout)) == (0, []), verified.stderr
        with ClaimService(again) as service:
            assert {c.id: c.version for c in service.iter_claims()} == noted
            assert service.verify() == []
            fired = service.fire(ids[0], "escalate", "buyer:alice")
            assert (fired.claim.version, fired.claim.state) == (noted[ids[0]] + 1, "under_review")
            filed = service.file_claim(filing(order_id="o-too-late"))  # the order's claim was never restored
            assert filed.claim.version == 1
            assert service.verify() == []
    assert not made.folder.exists()
    print(f"\nrestore drill: backup {timings['backup']:.1f} s, restore to promoted {timings['restore']:.1f} s")
