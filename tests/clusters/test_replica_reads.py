"""Reads from a standby (`read_url`): the reads that tolerate lag go there, every read of a claim to act on
stays on the primary, so a caller always sees its own last write, and a standby never shows a claim newer
than the primary's."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from cluster import Cluster, cluster, free_port
from helpers import EVIDENCE, filing

from claimstate import ClaimService, InvalidInput, StorageError
from claimstate.cli import EXIT_CODES

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def replicated() -> Iterator[Cluster]:
    with cluster(standby=True, synchronous=True) as made:
        yield made


@pytest.fixture
def urls(replicated: Cluster) -> tuple[str, str]:
    """The primary's and the standby's URLs of a claimstate schema of the test's own."""
    schema = f"s{time.monotonic_ns()}"
    replicated.primary.sql(f"CREATE SCHEMA {schema}")
    options = f"?options=-csearch_path%3D{schema}"
    primary = replicated.primary.url() + options
    standby = replicated.standby.url() + options  # type: ignore[union-attr]
    ClaimService(primary).close()  # the schema, made on the primary, then replayed on the standby
    _caught_up(replicated)
    return primary, standby


@pytest.fixture
def service(urls: tuple[str, str]) -> Iterator[ClaimService]:
    """A service on the primary reading the lag-tolerant calls from the standby."""
    with ClaimService(urls[0], read_url=urls[1]) as made:
        assert made.read_path is not None and made.read_path.startswith("postgresql://postgres@127.0.0.1:")
        yield made


def _caught_up(replicated: Cluster) -> None:
    """Wait until the standby has replayed everything the primary wrote so far."""
    target = replicated.primary.sql("SELECT pg_current_wal_lsn()")
    assert replicated.standby is not None
    deadline = time.monotonic() + 30
    while replicated.standby.sql(f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn") != "t":
        assert time.monotonic() < deadline, "the standby never caught up"
        time.sleep(0.01)


def _evidence(service: ClaimService, claim_id: str) -> Any:
    return service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE})


def test_lag_tolerant_reads_come_from_the_standby_and_a_claim_to_act_on_from_the_primary(
    replicated: Cluster, service: ClaimService
) -> None:
    """With the standby's replay paused, a fire is acknowledged (the standby has it on disk, not applied):
    get, view, history and available see it at once; list, iter, stats, flows, the feed and verify show the
    database as the standby last applied it, and catch up once replay resumes."""
    claim = service.file_claim(filing(order_id="r-1")).claim
    _caught_up(replicated)
    assert replicated.standby is not None
    replicated.standby.sql("SELECT pg_wal_replay_pause()")
    try:
        fired = _evidence(service, claim.id)
        assert fired.claim.state == "in_mediation"
        assert service.get(claim.id).version == service.view(claim.id).claim.version == 2
        assert [r.trigger for r in service.history(claim.id)] == ["file_claim", "submit_evidence"]
        assert "escalate" in {a.trigger for a in service.available(claim.id, "buyer:alice") if a.allowed}

        assert [(c.id, c.version) for c in service.list_claims()] == [(claim.id, 1)]
        assert [c.state for c in service.iter_claims()] == ["awaiting_evidence"]
        assert {s.state: s.count for s in service.stats().states} == {"awaiting_evidence": 1}
        assert [e.seq for e in service.feed()] == [1]
        assert sum(a.count for a in service.flows(claim.filed_at).arrows) == 1
        assert service.verify() == []
    finally:
        replicated.standby.sql("SELECT pg_wal_replay_resume()")
    _caught_up(replicated)
    assert [(c.id, c.version) for c in service.list_claims()] == [(claim.id, 2)]
    assert [e.seq for e in service.feed()] == [1, 2]
    assert {s.state: s.count for s in service.stats().states} == {"in_mediation": 1}


def test_under_load_a_standby_never_shows_a_claim_newer_than_the_primary_and_a_get_sees_each_fire(
    service: ClaimService,
) -> None:
    """A writer fires on a few claims, checking after each fire that `get` returns at least that version;
    meanwhile a reader lists the claims from the standby, then gets each from the primary: the standby never
    shows a version the primary does not have. Counted: how often the standby was behind (its lag made
    visible), and how often ahead for a moment: a synchronous commit is applied on the standby as soon as
    its WAL arrives, while the primary shows it only once the standby has confirmed it (PostgreSQL's
    documented order), so the primary shows that version within moments, and the writer has not yet been
    told of it."""
    claims = [service.file_claim(filing(order_id=f"l-{n}")).claim.id for n in range(4)]
    stop, seen = threading.Event(), {"reads": 0, "behind": 0, "ahead": 0, "fires": 0}
    problems: list[str] = []

    def write() -> None:
        number = 0
        while not stop.is_set():
            claim_id = claims[number % len(claims)]
            number += 1
            fired = (
                _evidence(service, claim_id)
                if number <= len(claims)
                else service.fire(claim_id, "submit_evidence", "supplier:acme", {"evidence": EVIDENCE})
            )
            if service.get(claim_id).version < fired.claim.version:
                problems.append(f"get after the fire of version {fired.claim.version} returned an older one")
            seen["fires"] += 1

    def read() -> None:
        while not stop.is_set():
            for listed in service.list_claims():
                primary = service.get(listed.id).version
                seen["reads"] += 1
                seen["behind"] += listed.version < primary
                if listed.version > primary:  # the commit the primary is still confirming with the standby
                    seen["ahead"] += 1
                    if not _reaches(service, listed.id, listed.version):
                        problems.append(f"the standby showed {listed.id} at {listed.version}, the primary never did")

    def guarded(work: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:  # an error in a thread fails the test, rather than ending the thread unseen
            try:
                work()
            except Exception as error:
                problems.append(f"{work.__name__}: {type(error).__name__}: {error}")
                stop.set()

        return run

    threads = [threading.Thread(target=guarded(write)), threading.Thread(target=guarded(read))]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while seen["fires"] < 300 and time.monotonic() < deadline and all(t.is_alive() for t in threads):
        time.sleep(0.05)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert problems == []
    assert seen["fires"] >= 300 and seen["reads"] > 100
    print(
        f"\nreplica reads: {seen['reads']} reads, {seen['behind']} behind the primary, {seen['ahead']} ahead"
        f" by a commit being confirmed; {seen['fires']} fires"
    )


def test_a_read_url_that_is_not_a_standby_of_the_database_is_refused(
    replicated: Cluster, service: ClaimService, postgres_url: str, tmp_path: Path
) -> None:
    primary = replicated.primary.url()
    with pytest.raises(InvalidInput) as caught:
        ClaimService(tmp_path / "claims.db", read_url=primary)
    assert caught.value.field == "read_url" and "SQLite" in str(caught.value)
    assert not (tmp_path / "claims.db").exists()  # refused before the file was made
    with pytest.raises(InvalidInput) as caught:
        ClaimService(primary, read_url="claims.db")  # type: ignore[arg-type]
    assert caught.value.field == "read_url"
    ClaimService(postgres_url).close()
    with pytest.raises(StorageError, match="is not a standby of the database at"):
        ClaimService(primary, read_url=postgres_url)  # a claimstate database of another server


def _reaches(service: ClaimService, claim_id: str, version: int) -> bool:
    """Whether the primary shows `claim_id` at `version` or later within a few seconds."""
    deadline = time.monotonic() + 5
    while service.get(claim_id).version < version:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def test_serve_with_read_db_shows_the_console_from_the_standby(
    replicated: Cluster, urls: tuple[str, str], tmp_path: Path
) -> None:
    """`claimstate serve --read-db STANDBY`: the console's live figures come from the standby (replay
    paused: the fire made on the primary meanwhile is not counted until it resumes); given a SQLite --db,
    --read-db is refused by name before the server starts."""
    primary, standby = urls
    with ClaimService(primary) as writer:
        claim = writer.file_claim(filing(order_id="s-1")).claim
        _caught_up(replicated)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMSTATE_")}
        port = free_port()
        argv = [sys.executable, "-m", "claimstate", "--db", primary, "serve", "--port", str(port), "--read-db", standby]
        with (tmp_path / "out.txt").open("wb") as out:
            server = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env)
        try:
            live = _live(f"http://127.0.0.1:{port}", server)
            assert live["states"]["awaiting_evidence"]["open"] == 1
            assert replicated.standby is not None
            replicated.standby.sql("SELECT pg_wal_replay_pause()")
            try:
                _evidence(writer, claim.id)
                again = _live(f"http://127.0.0.1:{port}", server)
                assert again["states"]["awaiting_evidence"]["open"] == 1 and again["states"]["in_mediation"] == {}
            finally:
                replicated.standby.sql("SELECT pg_wal_replay_resume()")
            _caught_up(replicated)
            assert _live(f"http://127.0.0.1:{port}", server)["states"]["in_mediation"]["open"] == 1
            said = (tmp_path / "out.txt").read_text()
            assert f"(lists and figures read from postgresql://postgres@127.0.0.1:{replicated.standby.port}/" in said
        finally:
            server.kill()
            server.wait(timeout=10)
    ClaimService(tmp_path / "c.db").close()
    refused = subprocess.run(
        [sys.executable, "-m", "claimstate", "--db", str(tmp_path / "c.db"), "serve", "--read-db", standby],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert refused.returncode == EXIT_CODES[InvalidInput], refused.stderr
    assert refused.stderr.startswith("error: ") and "read_url" in refused.stderr and "SQLite" in refused.stderr


def _live(url: str, server: subprocess.Popen[bytes]) -> dict[str, Any]:
    """The console's live figures, once the server answers."""
    deadline = time.monotonic() + 20
    while True:
        assert server.poll() is None, "the server exited"
        try:
            answer = httpx.get(f"{url}/console/live.json", timeout=2)
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the server did not answer"
            time.sleep(0.05)
            continue
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]
