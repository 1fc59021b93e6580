"""`claimstate serve`: what it refuses before it starts (no tokens, a short token, --now after its name),
named without ever printing a token; and real servers, started as processes and called over real HTTP: one
on SQLite, two worker processes on PostgreSQL firing on the same claim, each stopped with SIGINT.

The refusals run in process (click's CliRunner: they end before uvicorn starts); the servers are
processes, because there the point is the real server: its port, its workers, its signals, its output.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx2 as httpx
import pytest
from click.testing import CliRunner, Result
from helpers import EVIDENCE, filing, query
from http_helpers import ACTORS, TOKENS

from claimstate import ClaimService
from claimstate.cli import cli

START_WITHIN = 15.0  # seconds for a server to answer /healthz
STOP_WITHIN = 15.0  # seconds for it to exit after SIGINT
NOW = "2026-03-02T09:00:00+00:00"


def auth(who: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[who]}", **headers}


def tokens_file(folder: Path, tokens: dict[str, str] | None = None) -> Path:
    path = folder / "tokens.json"
    path.write_text(json.dumps({TOKENS[n]: a for n, a in ACTORS.items()} if tokens is None else tokens))
    return path


# --- refused before it starts ---------------------------------------------------------------------------


def serve(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), prog_name="claimstate")


def assert_refused(result: Result, says: str, *secrets: str) -> None:
    """Exit 2 with one line on stderr that says `says`, nothing on stdout, and none of `secrets` anywhere."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert result.stdout == ""
    assert result.stderr.endswith("\n") and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: ") and says in result.stderr, result.stderr
    for secret in secrets:
        assert secret not in result.stdout + result.stderr


@pytest.fixture
def no_tokens_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLAIMSTATE_TOKENS", raising=False)


@pytest.mark.usefixtures("no_tokens_variable")
def test_serve_without_tokens_reads_an_existing_database_and_beyond_loopback_needs_a_viewer(tmp_path: Path) -> None:
    """Without --tokens or $CLAIMSTATE_TOKENS serve offers the console alone, which only reads: a database that
    is not there is not made (exit 5); on an address beyond loopback it refuses to start without a viewer
    token (exit 2, one line), before it opens anything."""
    db = tmp_path / "claims.db"
    result = serve("--db", str(db), "serve")
    assert result.exit_code == 5 and "no database" in result.stderr
    assert not db.exists()
    assert_refused(serve("--db", str(db), "serve", "--host", "0.0.0.0"), 'map one to "viewer"')
    assert_refused(serve("--db", str(db), "serve", "--host", "192.0.2.7"), "beyond loopback")
    assert not db.exists()


@pytest.mark.usefixtures("no_tokens_variable")
def test_serve_refuses_a_short_token_naming_it_by_number_and_never_printing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token shorter than 16 characters could be guessed: serve refuses it, naming it by its place in the
    map (token 2), from a file or from $CLAIMSTATE_TOKENS; neither it nor the good tokens beside it are
    printed, and neither is a tokens file that is not JSON (its text may be a token) nor a token whose
    actor is bad."""
    good, short = TOKENS["alice"], "short-secret"
    path = tokens_file(tmp_path, {good: "buyer:alice", short: "agent:kim"})
    assert_refused(serve("--db", str(tmp_path / "c.db"), "serve", "--tokens", str(path)), "token 2", good, short)

    monkeypatch.setenv("CLAIMSTATE_TOKENS", json.dumps({short: "agent:kim", good: "buyer:alice"}))
    assert_refused(serve("--db", str(tmp_path / "c.db"), "serve"), "token 1", good, short)
    monkeypatch.delenv("CLAIMSTATE_TOKENS")

    path.write_text(json.dumps({good: "wizard:merlin"}))
    assert_refused(serve("--db", str(tmp_path / "c.db"), "serve", "--tokens", str(path)), "token 1", good)
    path.write_text(good)  # a bare token, not a JSON map
    assert_refused(serve("--db", str(tmp_path / "c.db"), "serve", "--tokens", str(path)), "not JSON", good)


@pytest.mark.usefixtures("no_tokens_variable")
def test_serve_refuses_now_after_its_name(tmp_path: Path) -> None:
    """A server reads the clock as each request comes: --now after `serve` would be silently ignored, so it
    is refused by name (exit 2, one line), tokens and all in order."""
    path = tokens_file(tmp_path)
    result = serve("--db", str(tmp_path / "c.db"), "serve", "--now", NOW, "--tokens", str(path))
    assert_refused(result, "serve takes no --now", *TOKENS.values())


# --- real servers ---------------------------------------------------------------------------------------


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    stdout: Path
    stderr: Path
    workers: set[int] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")

    def descendants(self) -> set[int]:
        """The processes the server started (uvicorn's workers, multiprocessing's helpers), found by their
        parent in /proc."""
        parents: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with suppress(OSError):
                    stat = Path(f"/proc/{entry}/stat").read_text()
                    parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
        found: set[int] = set()
        frontier = {self.proc.pid}
        while frontier:
            frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
            found |= frontier
        return found

    def stop(self) -> int:
        """SIGINT, as Ctrl-C sends; its exit code once it (and every process it started) is gone."""
        started = self.descendants()
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=STOP_WITHIN)
        deadline = time.monotonic() + 5
        while (alive := {pid for pid in started if running(pid)}) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive, f"processes the server started outlived it: {alive}"
        return code


def assert_stopped_cleanly(output: str, *, workers: int) -> None:
    """Ctrl-C ran each worker's shutdown (which closes its service) and printed no traceback."""
    assert "Traceback" not in output, output
    assert output.count("Application shutdown complete") == workers, output


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serving(db: str, folder: Path, *options: str, tokens: bool = True) -> Iterator[Server]:
    """`claimstate --db DB serve --tokens FILE --port P *options` as a process (without --tokens: the console
    alone), once /healthz answers; killed (with whatever it started) at the end if the test did not stop it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMSTATE_")}
    argv = [sys.executable, "-m", "claimstate", "--db", db, "serve"]
    argv += ["--tokens", str(tokens_file(folder))] if tokens else []
    port = free_port()
    out, err = folder / "stdout.txt", folder / "stderr.txt"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen([*argv, "--port", str(port), *options], stdin=subprocess.DEVNULL, stdout=stdout,
                                stderr=stderr, env=env)  # fmt: skip
    server = Server(proc, port, out, err)
    try:
        deadline = time.monotonic() + START_WITHIN
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the server exited ({proc.returncode}) before answering: {server.output()[-3000:]}")
            with suppress(httpx.TransportError):
                if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"the server did not answer /healthz within {START_WITHIN} s: {server.output()[-3000:]}")
            time.sleep(0.05)
        yield server
    finally:
        for pid in [*server.descendants(), proc.pid]:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=10)


def assert_nothing_secret_in(output: str, *secrets: str) -> None:
    assert "Uvicorn running" in output or "Started server process" in output, output  # its output was read
    for token in TOKENS.values():
        assert token not in output
    for secret in secrets:
        assert secret not in output, secret


@pytest.mark.slow
def test_a_real_server_on_sqlite_serves_the_api_and_stops_on_sigint(tmp_path: Path) -> None:
    """`claimstate serve` on a SQLite file answers over real HTTP: a claim filed is 201 with a Location the
    server answers; a long poll the client drops loses no event; SIGINT stops it (exit 0), and its output
    never holds a token."""
    with (
        serving(str(tmp_path / "claims.db"), tmp_path) as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
    ):
        filed = client.post("/claims", json=filing(), headers=auth("alice"))
        assert filed.status_code == 201, filed.text
        assert filed.headers["etag"] == '"1"'
        claim_id = filed.json()["id"]
        assert filed.headers["location"] == f"{server.url}/claims/{claim_id}"
        read = client.get(filed.headers["location"], headers=auth("alice"))
        assert read.status_code == 200 and read.json()["claim"]["id"] == claim_id
        refused = client.get("/claims")
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        fired = client.post(f"/claims/{claim_id}/submit_evidence", json={"evidence": EVIDENCE},
                            headers=auth("alice", **{"If-Match": '"1"'}))  # fmt: skip
        assert fired.status_code == 200 and fired.headers["etag"] == '"2"'

        feed = {"consumer": "relay"}
        first = client.get("/events", params=feed, headers=auth("kim")).json()
        assert [(e["claim_id"], e["seq"]) for e in first["events"]] == [(claim_id, 1), (claim_id, 2)]
        with pytest.raises(httpx.ReadTimeout):  # the client gives up on a long poll: the connection drops
            client.get("/events", params={**feed, "ack": first["ack"], "wait": 10}, headers=auth("kim"), timeout=0.5)
        assert client.post(f"/claims/{claim_id}/escalate", json={}, headers=auth("alice")).status_code == 200
        after = client.get("/events", params=feed, headers=auth("kim")).json()
        assert [(e["claim_id"], e["seq"]) for e in after["events"]] == [(claim_id, 3)]

        assert server.stop() == 0
        assert_stopped_cleanly(server.output(), workers=1)
        assert_nothing_secret_in(server.output())


def test_a_real_server_without_tokens_serves_the_console_alone_reading(tmp_path: Path) -> None:
    """Without tokens the server serves the console, its live figures and its pages, and no API route; the
    database, opened read-only, is unchanged; Ctrl-C stops it cleanly."""
    db = str(tmp_path / "claims.db")
    with ClaimService(db) as service:
        service.file_claim(filing(), claim_id="c-1")
    with serving(db, tmp_path, tokens=False) as server, httpx.Client(base_url=server.url) as client:
        page = client.get("/console/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert client.get("/console/live.json").json()["states"]["awaiting_evidence"]["open"] == 1
        assert "Who must act next" in client.get("/console/claims/c-1").text
        assert client.get("/claims").status_code == 404
        assert client.post("/claims", json=filing(order_id="o-2")).status_code == 404
        assert client.post("/console/claims/c-1").status_code == 405
        assert server.stop() == 0
    assert "the console alone" in server.output()
    assert_stopped_cleanly(server.output(), workers=1)
    assert query(db, "SELECT id, version FROM claims") == [("c-1", 1)]


def worker_of(response: httpx.Response, server: Server) -> int:
    """Which of the server's processes answered `response`: the one holding the server's end of the TCP
    connection it came on (read from /proc while the connection is kept alive)."""
    client_port = response.extensions["network_stream"].get_extra_info("client_addr")[1]
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = (int(address.split(":")[1], 16) for address in fields[1:3])
        if (local, remote) == (server.port, client_port):
            inodes.add(f"socket:[{fields[9]}]")
    holders = set()
    for pid in server.descendants():
        with suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                        holders.add(pid)
    assert len(holders) == 1, f"connection from port {client_port}: held by {holders}"
    return holders.pop()


@pytest.mark.slow
def test_two_server_processes_on_postgresql_fire_on_one_claim(tmp_path: Path, postgres_url: str) -> None:
    """`serve --workers 2` on PostgreSQL: two processes, each with its own connections, serve one store. A
    claim filed through one worker is fired through the other; an If-Match one made stale is refused by the
    other (412); both firing on one version at once, one applies and the other gets 412; the feed read
    through one is acknowledged through the other. SIGINT stops both (exit 0), and the output never holds
    a token or the database's password."""
    password = "db-password-not-to-print"
    url = postgres_url.replace("postgresql://postgres@", f"postgresql://postgres:{password}@", 1)
    assert password in url
    with serving(url, tmp_path, "--workers", "2") as server:
        clients: dict[int, httpx.Client] = {}  # one kept-alive connection to each worker
        opened: list[httpx.Client] = []
        try:
            for _ in range(60):
                client = httpx.Client(base_url=server.url, timeout=10)
                opened.append(client)
                clients.setdefault(worker_of(client.get("/healthz"), server), client)
                if len(clients) == 2:
                    break
            assert len(clients) == 2, "every connection went to one worker"
            (one, first), (other, second) = clients.items()

            filed = first.post("/claims", json=filing(), headers=auth("alice"))
            assert filed.status_code == 201, filed.text
            claim_id = filed.json()["id"]
            fired = second.post(f"/claims/{claim_id}/submit_evidence", json={"evidence": EVIDENCE},
                                headers=auth("alice", **{"If-Match": '"1"'}))  # fmt: skip
            assert fired.status_code == 200 and fired.headers["etag"] == '"2"', fired.text
            assert (worker_of(filed, server), worker_of(fired, server)) == (one, other)  # fired from both
            stale = first.post(f"/claims/{claim_id}/escalate", json={}, headers=auth("alice", **{"If-Match": '"1"'}))
            assert stale.status_code == 412 and stale.json()["actual_version"] == 2, stale.text

            def escalate(client: httpx.Client) -> httpx.Response:
                return client.post(
                    f"/claims/{claim_id}/escalate", json={}, headers=auth("alice", **{"If-Match": '"2"'})
                )

            with ThreadPoolExecutor(2) as pool:
                raced = list(pool.map(escalate, (first, second)))
            assert sorted(r.status_code for r in raced) == [200, 412], [r.text for r in raced]
            assert query(url, f"SELECT seq, trigger FROM transitions WHERE claim_id = '{claim_id}' ORDER BY seq") == [
                (1, "file_claim"), (2, "submit_evidence"), (3, "escalate")
            ]  # fmt: skip

            feed = {"consumer": "ledger"}
            events = first.get("/events", params=feed, headers=auth("kim")).json()
            assert [(e["claim_id"], e["seq"]) for e in events["events"]] == [
                (claim_id, 1),
                (claim_id, 2),
                (claim_id, 3),
            ]
            rest = second.get("/events", params={**feed, "ack": events["ack"]}, headers=auth("kim"))
            assert rest.status_code == 200 and rest.json() == {"events": [], "ack": None}
        finally:
            for client in opened:
                client.close()
        assert server.stop() == 0
        assert_stopped_cleanly(server.output(), workers=2)
        assert_nothing_secret_in(server.output(), password)


@pytest.mark.slow
def test_serve_on_a_database_it_cannot_use_exits_as_a_storage_error_without_its_password(
    tmp_path: Path, postgres_database: str
) -> None:
    """A --db that cannot be opened (here a PostgreSQL database that does not exist) is a storage error:
    exit 5 as every command's help says (not uvicorn's own 3, which claimstate's codes give to "claim not
    found"), said without a traceback, and the URL's password is never printed, as the store masks it in
    every message of its own."""
    password = "db-password-not-to-print"
    server, _ = postgres_database.rsplit("/", 1)
    url = server.replace("postgresql://postgres@", f"postgresql://postgres:{password}@", 1) + "/no_such_database"
    assert password in url
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMSTATE_")}
    argv = [sys.executable, "-m", "claimstate", "--db", url, "serve", "--tokens", str(tokens_file(tmp_path)),
            "--port", str(free_port())]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=30, check=False)
    output = done.stdout + done.stderr
    assert password not in output, output
    for token in TOKENS.values():
        assert token not in output
    assert "Traceback" not in output, output
    assert done.returncode == 5, (done.returncode, output[-2000:])
