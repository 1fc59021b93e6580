"""The HTTP API's cost: `POST /claims/{id}/{trigger}` through `claimstate serve --workers 2`, against the same
fires made on the service directly, in the same run, on PostgreSQL.

Run on demand (not part of the test suite), with a PostgreSQL server at $CLAIMSTATE_BENCH_POSTGRES
(default postgresql://postgres@127.0.0.1:5432/test; the run creates and drops its own database):

    .venv/bin/python tests/benchmarks/bench_http.py            # the figures in docs/performance.md
    .venv/bin/python tests/benchmarks/bench_http.py --quick    # a smaller, faster run

What runs. The run starts `claimstate serve --workers 2` (a free port, a tokens file for the three actors
of bench_store.PATH) as a subprocess, once. Each round empties the tables and files fresh claims (with the
clock, as a server fires with the clock), a set of its own for every run, so nothing is refused and every
run does the same work: each claim walks the five transitions of bench_store.PATH, one commit each. The
first claims of each run are walked untimed, to warm connections. The one-at-a-time runs are interleaved
claim by claim (their order turned at each claim), so that whatever else the machine does falls on all of
them alike; the runs under load go one after another, in an order reversed every other round.

One request at a time: `ClaimService.fire` in a plain loop is the floor (the cost of a fire to a Python
caller), then `AsyncClaimService.fire` awaited one at a time (the thread hop the app makes too), the app
called in-process as ASGI (Starlette, the token, the body, the JSON answer; no server, no socket), HTTP
through the server with one request in flight (httpx2), the same with a raw asyncio client (the request
written by hand on a kept-alive socket, the answer read by its Content-Length: about the least a Python
client can spend, so that what is left is the server's), and both clients on an unknown trigger (404
before any claim is read: the HTTP stack alone, client and server, with no fire). The issue's goal reads
here: HTTP p50 over the floor's p50 at most 1.30.

N in flight (--in-flight, default 8): an `AsyncClaimService` with N tasks on one process is the floor (what
an asyncio program embedding claimstate would run); two processes of N/2 tasks each have the server's
shape (two interpreters, four worker threads and a pool each) without HTTP; then HTTP with N requests in
flight (N tasks of one httpx2 AsyncClient with N connections, or N raw connections), and the 404 route.

Each figure is the median over rounds; "p50 / floor" and "fires/s / floor" are medians of the ratio within
each round. Latency is the time one caller waited for one fire (for HTTP, from sending the request to the
parsed answer). "CPU ms per fire" splits the CPU time the run took, per fire, among the caller (this
process, or the two direct processes; for HTTP, the load client), the server's processes and PostgreSQL's
processes; "busy" is the whole machine's, of all its cores. On a 2-core machine the load client, the two
server workers and PostgreSQL share the cores: when "busy" nears 100%, the client's CPU is taken from the
server and the database, and throughput under load measures the machine, not the HTTP layer alone; the
one-at-a-time latencies are then the cleanest reading of what HTTP adds to a fire, and the raw client's
rows the cleanest reading of what the server adds. The last lines give each HTTP run's split of the
server's CPU between its two workers (uvicorn's workers share one listening socket: whichever wakes first
accepts, so a client's few kept-alive connections may all land on one worker).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2 as httpx
import orjson
import psycopg
import uvicorn
from bench_postgres import database, fresh
from bench_store import FILING, PATH

from claimstate import AsyncClaimService, ClaimService
from claimstate.http import bearer_tokens, create_app

TOKENS = {  # token -> actor: one for each actor of PATH
    "bench-buyer-alice-0123456789": "buyer:alice",
    "bench-supplier-acme-012345678": "supplier:acme",
    "bench-agent-kim-0123456789ab": "agent:kim",
}
HEADERS = {actor: {"Authorization": f"Bearer {token}"} for token, actor in TOKENS.items()}
OVER_HTTP = {"http", "raw", "http404", "raw404", "http_n", "raw_n", "http404_n", "raw404_n"}
UNKNOWN = "no_such_trigger"  # refused 404 by the app before the token, the body or any claim is read
_TICK = os.sysconf("SC_CLK_TCK")

Fire = Callable[[str, str, str, dict[str, Any]], Awaitable[None]]


# --- claims ----------------------------------------------------------------------------------------------


def seeded(url: str, sizes: dict[str, int]) -> dict[str, list[str]]:
    """Empty the tables and file `sizes[run]` claims for each run, now (a server fires with the clock, and
    a claim filed long ago would be past its evidence deadline): each run's claim ids."""
    fresh(url, 0)
    ids: dict[str, list[str]] = {}
    number = 0
    with ClaimService(url) as service, service.batch():
        for run, count in sizes.items():
            ids[run] = []
            for _ in range(count):
                claim_id = f"c{number:08d}"
                service.file_claim({**FILING, "order_id": f"o-{number}"}, claim_id=claim_id)
                ids[run].append(claim_id)
                number += 1
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE claims")
        conn.execute("VACUUM ANALYZE transitions")
    return ids


# --- CPU time, from /proc -----------------------------------------------------------------------------------


def _stat(pid: int | str) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name_end = text.rindex(")")
    return [text[: name_end + 1], *text[name_end + 2 :].split()]  # [pid (comm), state, ppid, ...]


def _seconds(fields: list[str]) -> float:
    return (int(fields[12]) + int(fields[13])) / _TICK  # utime + stime


def _processes(server: int | None) -> dict[int, str]:
    """PostgreSQL's processes ("postgres"), the server's supervisor ("server") and its workers ("worker")."""
    found = {}
    for entry in os.listdir("/proc"):
        fields = _stat(entry) if entry.isdigit() else None
        if fields is None:
            continue
        if fields[0].endswith("(postgres)"):
            found[int(entry)] = "postgres"
        elif server is not None and int(entry) == server:
            found[int(entry)] = "server"
        elif server is not None and fields[2] == str(server):
            found[int(entry)] = "worker"
    return found


def _times(pids: dict[int, str]) -> dict[int, float]:
    return {pid: _seconds(fields) for pid in pids if (fields := _stat(pid)) is not None}


def _machine() -> tuple[int, int]:
    """(busy, all) jiffies of all cores since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(values) - values[3] - values[4], sum(values)  # less idle and iowait


class Cpu:
    """CPU seconds taken between `start` and `stop` by the caller, the server's processes and PostgreSQL's,
    and the machine's busy and total jiffies. `scan=False` reads the processes found by the last scan only
    (quicker, for many short measurements once every connection is open)."""

    def __init__(self, server: int | None) -> None:
        self.server = server
        self._pids: dict[int, str] = {}

    def start(self, *, scan: bool = True) -> None:
        if scan or not self._pids:
            self._pids = _processes(self.server)
        self._machine = _machine()
        self._before = _times(self._pids)
        self._caller = time.process_time()

    def stop(self, caller: float | None = None, *, scan: bool = True) -> dict[str, Any]:
        """The seconds each side took (`caller` given for callers in other processes), each worker's own."""
        mine = time.process_time() - self._caller
        if scan:
            self._pids |= _processes(self.server)
        taken = {pid: s - self._before.get(pid, 0.0) for pid, s in _times(self._pids).items()}
        busy, total = _machine()
        return {
            "caller": mine if caller is None else caller,
            "server": sum(s for pid, s in taken.items() if self._pids[pid] != "postgres"),
            "postgres": sum(s for pid, s in taken.items() if self._pids[pid] == "postgres"),
            "busy": busy - self._machine[0],
            "total": total - self._machine[1],
            "workers": {pid: s for pid, s in taken.items() if self._pids[pid] == "worker"},
        }


# --- the runs -----------------------------------------------------------------------------------------------


class Run:
    """One run's figures: each fire's latency, the seconds spent firing, the CPU taken (summed over parts)."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.elapsed = 0.0
        self.cpu: dict[str, Any] = {"caller": 0.0, "server": 0.0, "postgres": 0.0, "busy": 0, "total": 0,
                                    "workers": {}}  # fmt: skip

    def add(self, latencies: list[float], elapsed: float, cpu: dict[str, Any]) -> Run:
        self.latencies = sorted(self.latencies + latencies)
        self.elapsed += elapsed
        for side, value in cpu.items():
            if side == "workers":
                for pid, seconds in value.items():
                    self.cpu["workers"][pid] = self.cpu["workers"].get(pid, 0.0) + seconds
            else:
                self.cpu[side] += value
        return self

    def p(self, percent: int) -> float:
        return self.latencies[min(len(self.latencies) - 1, round(percent / 100 * len(self.latencies)) - 1)]

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed

    def per_fire(self, side: str) -> float:
        """CPU milliseconds per fire taken by `side` (caller, server, postgres)."""
        return float(self.cpu[side]) / len(self.latencies) * 1000

    @property
    def busy(self) -> float:
        return float(self.cpu["busy"]) / max(float(self.cpu["total"]), 1.0)

    @property
    def shares(self) -> list[float]:
        """Each server worker's share of the workers' CPU, the busiest first."""
        taken = sorted(self.cpu["workers"].values(), reverse=True)
        return [seconds / max(sum(taken), 1e-9) for seconds in taken]


async def walk(fire: Fire, ids: list[str], in_flight: int) -> tuple[list[float], float]:
    """`in_flight` callers, each walking PATH on its share of `ids`, one fire after another: each fire's
    latency, and the seconds from the first to the last."""
    latencies: list[float] = []

    async def caller(share: list[str]) -> None:
        for claim_id in share:
            for trigger, actor, data in PATH:
                start = time.perf_counter()
                await fire(claim_id, trigger, actor, data)
                latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(caller(ids[n::in_flight]) for n in range(in_flight)))
    return latencies, time.perf_counter() - start


async def timed(fire: Fire, warm: list[str], ids: list[str], in_flight: int, cpu: Cpu) -> Run:
    await walk(fire, warm, in_flight)
    cpu.start()
    latencies, elapsed = await walk(fire, ids, in_flight)
    return Run().add(latencies, elapsed, cpu.stop())


async def direct(url: str, warm: list[str], ids: list[str], in_flight: int, cpu: Cpu) -> Run:
    """`AsyncClaimService.fire` (its default four worker threads) with `in_flight` tasks on this process."""
    async with AsyncClaimService(url) as service:

        async def fire(claim_id: str, trigger: str, actor: str, data: dict[str, Any]) -> None:
            await service.fire(claim_id, trigger, actor, data)

        return await timed(fire, warm, ids, in_flight, cpu)


def _process(
    url: str, warm: list[str], ids: list[str], in_flight: int, ready: Any, go: Any, done: Any, measured: Any
) -> None:
    async def main() -> None:
        async with AsyncClaimService(url) as service:

            async def fire(claim_id: str, trigger: str, actor: str, data: dict[str, Any]) -> None:
                await service.fire(claim_id, trigger, actor, data)

            await walk(fire, warm, in_flight)
            ready.wait()
            go.wait()
            cpu, start = time.process_time(), time.perf_counter()
            latencies, elapsed = await walk(fire, ids, in_flight)
            done.put((latencies, start, start + elapsed, time.process_time() - cpu))
            measured.wait()  # the connections (and their PostgreSQL backends) kept until their CPU is read

    asyncio.run(main())


def direct_processes(url: str, warm: list[str], ids: list[str], in_flight: int, processes: int, cpu: Cpu) -> Run:
    """`processes` processes, each an `AsyncClaimService` with in_flight / processes tasks: the server's shape
    without HTTP. Throughput from the first process's start to the last one's end (one system-wide clock)."""
    context = multiprocessing.get_context("spawn")
    ready, go, measured = (context.Barrier(processes + 1) for _ in range(3))
    done = context.Queue()
    started = [
        context.Process(target=_process, args=(url, warm[n::processes], ids[n::processes], in_flight // processes,
                                                ready, go, done, measured))
        for n in range(processes)
    ]  # fmt: skip
    for process in started:
        process.start()
    ready.wait()
    cpu.start()
    go.wait()
    results = [done.get() for _ in started]
    figures = cpu.stop(caller=sum(r[3] for r in results))
    measured.wait()
    for process in started:
        process.join()
    latencies = [latency for r in results for latency in r[0]]
    return Run().add(latencies, max(r[2] for r in results) - min(r[1] for r in results), figures)


def http_fire(client: httpx.AsyncClient, *, trigger: str | None = None, status: int = 200) -> Fire:
    """A fire as one `POST /claims/{id}/{trigger}` with the actor's token and the data as the JSON body (to
    `trigger` instead, when given, expecting `status`)."""

    async def fire(claim_id: str, named: str, actor: str, data: dict[str, Any]) -> None:
        response = await client.post(f"/claims/{claim_id}/{trigger or named}", json=data, headers=HEADERS[actor])
        if response.status_code != status:
            raise RuntimeError(f"{named} on {claim_id}: {response.status_code} {response.text}")
        response.json()

    return fire


async def raw_connections(base: str, count: int) -> asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    host, port = base.removeprefix("http://").split(":")
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(count):
        pool.put_nowait(await asyncio.open_connection(host, int(port)))
    return pool


def raw_fire(pool: asyncio.Queue[Any], host: str, *, trigger: str | None = None, status: int = 200) -> Fire:
    """The same request as `http_fire`, written by hand on a kept-alive socket of `pool` and its answer read by
    its Content-Length: about the least CPU a Python client can spend on a request, so that what remains is
    the server's."""
    tokens = {actor: token for token, actor in TOKENS.items()}

    async def fire(claim_id: str, named: str, actor: str, data: dict[str, Any]) -> None:
        body = orjson.dumps(data)
        head = (
            f"POST /claims/{claim_id}/{trigger or named} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer"
            f" {tokens[actor]}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        reader, writer = await pool.get()
        try:
            writer.write(head.encode() + body)
            lines = (await reader.readuntil(b"\r\n\r\n")).split(b"\r\n")
            length = next(int(line[15:]) for line in lines if line[:15].lower() == b"content-length:")
            answer = await reader.readexactly(length)
        finally:
            pool.put_nowait((reader, writer))
        if int(lines[0].split()[1]) != status:
            raise RuntimeError(f"{named} on {claim_id}: {lines[0]!r} {answer!r}")
        orjson.loads(answer)

    return fire


def asgi_fire(app: Any) -> Fire:
    """A fire through the app called in-process as ASGI: the request's scope and body handed over, the answer
    collected (the routing, the token, the body, the service, the JSON answer; no server, no socket)."""
    tokens = {actor: f"Bearer {token}".encode() for token, actor in TOKENS.items()}

    async def fire(claim_id: str, trigger: str, actor: str, data: dict[str, Any]) -> None:
        body = orjson.dumps(data)
        path = f"/claims/{claim_id}/{trigger}"
        scope = {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
            "root_path": "", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000), "state": {},
            "headers": [(b"host", b"127.0.0.1:8000"), (b"authorization", tokens[actor]),
                        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }  # fmt: skip
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        answer: dict[str, Any] = {"body": b""}

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            await asyncio.Event().wait()  # the client never goes away
            raise AssertionError

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
            else:
                answer["body"] += message.get("body", b"")

        await app(scope, receive, send)
        if answer["status"] != 200:
            raise RuntimeError(f"{trigger} on {claim_id}: {answer['status']} {answer['body']!r}")
        orjson.loads(answer["body"])

    return fire


# --- the server ---------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def server(url: str, folder: Path, workers: int) -> Iterator[tuple[str, int]]:
    """`claimstate serve --workers N` on a free port, until the block ends: its base URL and process id."""
    tokens = folder / "tokens.json"
    tokens.write_text(json.dumps(TOKENS))
    port = free_port()
    log = (folder / "serve.log").open("w")
    env = {k: v for k, v in os.environ.items() if k != "CLAIMSTATE_HISTORY_KEY"}  # as the direct service
    command = [sys.executable, "-m", "claimstate", "--db", url, "serve", "--tokens", str(tokens), "--port",
               str(port), "--workers", str(workers)]  # fmt: skip
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"claimstate serve did not start:\n{(folder / 'serve.log').read_text()[-3000:]}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1, trust_env=False).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        while list(_processes(process.pid).values()).count("worker") < workers:
            time.sleep(0.1)
        yield base, process.pid
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


# --- the benchmark ------------------------------------------------------------------------------------------


WARM = 2  # claims walked untimed before each run's own, one at a time (under load: one per caller)
SERIAL = ["sync", "async", "asgi", "http", "raw", "http404", "raw404"]
LOADED = ["direct", "direct2", "http_n", "raw_n", "http404_n", "raw404_n"]


async def one_at_a_time(url: str, base: str, pid: int, ids: dict[str, list[str]], claims: int) -> dict[str, Run]:
    """Every one-at-a-time run, interleaved claim by claim (the order turned each claim), so that whatever else
    the machine does falls on all of them alike: each run's figures."""
    host = base.removeprefix("http://")
    runs = {run: Run() for run in SERIAL}
    cpu = Cpu(pid)
    with ClaimService(url) as plain:
        async with AsyncClaimService(url) as service, httpx.AsyncClient(base_url=base, trust_env=False) as client:
            pool = await raw_connections(base, 1)

            async def sync_fire(claim_id: str, trigger: str, actor: str, data: dict[str, Any]) -> None:
                plain.fire(claim_id, trigger, actor, data)  # blocks the loop, as a plain caller: nothing else runs

            async def async_fire(claim_id: str, trigger: str, actor: str, data: dict[str, Any]) -> None:
                await service.fire(claim_id, trigger, actor, data)

            fires = {
                "sync": sync_fire, "async": async_fire,
                "asgi": asgi_fire(create_app(service, actor_from=bearer_tokens(TOKENS))),
                "http": http_fire(client), "raw": raw_fire(pool, host),
                "http404": http_fire(client, trigger=UNKNOWN, status=404),
                "raw404": raw_fire(pool, host, trigger=UNKNOWN, status=404),
            }  # fmt: skip
            for run, fire in fires.items():
                await walk(fire, ids[run][:WARM], 1)
            cpu.start()  # finds the processes, every connection now open
            for n in range(claims):
                for run in SERIAL[n % len(SERIAL) :] + SERIAL[: n % len(SERIAL)]:
                    cpu.start(scan=False)
                    latencies, elapsed = await walk(fires[run], [ids[run][WARM + n]], 1)
                    runs[run].add(latencies, elapsed, cpu.stop(scan=False))
            while not pool.empty():
                pool.get_nowait()[1].close()
    return runs


def one_round(url: str, base: str, pid: int, claims: tuple[int, int], in_flight: int, flip: bool) -> dict[str, Run]:
    serial_n, loaded_n = claims
    sizes = {run: WARM + serial_n for run in SERIAL if "404" not in run}
    sizes |= {run: in_flight + loaded_n for run in LOADED if "404" not in run}
    ids = seeded(url, sizes)
    for run in SERIAL + LOADED:  # the 404 runs read no claim: ids of none
        ids.setdefault(run, [f"x{n:08d}" for n in range(WARM + max(in_flight, serial_n, loaded_n))])

    def split(run: str) -> tuple[list[str], list[str]]:
        return ids[run][:in_flight], ids[run][in_flight : in_flight + loaded_n]

    serving = Cpu(pid)

    async def over_http(run: str) -> Run:
        limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60, trust_env=False) as client:
            fire = http_fire(client, trigger=UNKNOWN, status=404) if "404" in run else http_fire(client)
            return await timed(fire, *split(run), in_flight, serving)

    async def over_raw(run: str) -> Run:
        pool = await raw_connections(base, in_flight)
        host = base.removeprefix("http://")
        fire = raw_fire(pool, host, trigger=UNKNOWN, status=404) if "404" in run else raw_fire(pool, host)
        try:
            return await timed(fire, *split(run), in_flight, serving)
        finally:
            while not pool.empty():
                pool.get_nowait()[1].close()

    here = Cpu(None)
    plays: dict[str, Callable[[], Run]] = {
        "direct": lambda: asyncio.run(direct(url, *split("direct"), in_flight, here)),
        "direct2": lambda: direct_processes(url, *split("direct2"), in_flight, 2, here),
        "http_n": lambda: asyncio.run(over_http("http_n")),
        "raw_n": lambda: asyncio.run(over_raw("raw_n")),
        "http404_n": lambda: asyncio.run(over_http("http404_n")),
        "raw404_n": lambda: asyncio.run(over_raw("raw404_n")),
    }
    results = asyncio.run(one_at_a_time(url, base, pid, ids, serial_n))
    for run in LOADED[::-1] if flip else LOADED:
        results[run] = plays[run]()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer claims and rounds, for a first look")
    parser.add_argument("--rounds", type=int, help="rounds (default 8, or 3 with --quick)")
    parser.add_argument("--in-flight", type=int, default=8, help="requests (or tasks) in flight under load (default 8)")
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 8)
    claims = (20, 60) if args.quick else (60, 160)  # claims a run walks one at a time, and under load, a round
    labels = {
        "sync": "`ClaimService.fire`, a loop (the floor)",
        "async": "`AsyncClaimService.fire`, one awaited at a time",
        "asgi": "the app in-process (ASGI called directly, no server)",
        "http": "HTTP: `claimstate serve --workers 2`, one request at a time",
        "raw": "the same, a raw asyncio client (hand-written HTTP/1.1)",
        "http404": "HTTP to an unknown trigger (404, no fire): the HTTP stack alone",
        "raw404": "the same, the raw client",
        "direct": f"`AsyncClaimService`, {args.in_flight} tasks, one process (the floor)",
        "direct2": f"`AsyncClaimService`, 2 processes x {args.in_flight // 2} tasks (the server's shape)",
        "http_n": f"HTTP: `claimstate serve --workers 2`, {args.in_flight} in flight",
        "raw_n": "the same, the raw client",
        "http404_n": f"HTTP to an unknown trigger (404, no fire), {args.in_flight} in flight",
        "raw404_n": "the same, the raw client",
    }
    with database() as url, tempfile.TemporaryDirectory() as folder, server(url, Path(folder), 2) as (base, pid):
        parser_name = "httptools" if importlib.util.find_spec("httptools") else "h11"  # what uvicorn picks
        loop_name = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
        print(f"server: `claimstate serve --workers 2` (uvicorn {uvicorn.__version__}, HTTP parser {parser_name},"
              f" event loop {loop_name}, access log off)")  # fmt: skip
        print(f"claimstate HTTP benchmark ({'quick' if args.quick else 'full'}): {rounds} rounds, PostgreSQL at"
              f" {url.rsplit('/', 1)[0]}, {os.cpu_count()} cores; {len(PATH)} transitions per claim, one commit"
              f" each; {claims[0]} claims a run one at a time, {claims[1]} under load", flush=True)  # fmt: skip
        results: dict[str, list[Run]] = {}
        for number in range(rounds):
            start = time.perf_counter()
            for run, figures in one_round(url, base, pid, claims, args.in_flight, flip=number % 2 == 1).items():
                results.setdefault(run, []).append(figures)
            print(f"  round {number + 1}: {time.perf_counter() - start:.1f} s", flush=True)

    def table(title: str, runs: list[str], floor: str) -> None:
        print(f"\n### {title}\n")
        print("| run | p50 | p99 | fires/s | p50 / floor | fires/s / floor | CPU ms per fire: caller / server /"
              " PostgreSQL | busy |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|")
        for run in runs:
            got, base_runs = results[run], results[floor]
            p50 = statistics.median(r.p(50) for r in got)
            p99 = statistics.median(r.p(99) for r in got)
            rate = statistics.median(r.rate for r in got)
            slower = statistics.median(r.p(50) / f.p(50) for r, f in zip(got, base_runs, strict=True))
            faster = statistics.median(r.rate / f.rate for r, f in zip(got, base_runs, strict=True))
            cpu = {side: statistics.median(r.per_fire(side) for r in got) for side in ("caller", "server", "postgres")}
            busy = statistics.median(r.busy for r in got)
            server = f"{cpu['server']:.2f}" if run in OVER_HTTP else "-"
            print(
                f"| {labels[run]} | {p50 * 1000:.2f} ms | {p99 * 1000:.2f} ms | {rate:,.0f} | {slower:.2f} |"
                f" {faster:.2f} | {cpu['caller']:.2f} / {server} / {cpu['postgres']:.2f} | {busy:.0%} |"
            )

    table("One request at a time", SERIAL, "sync")
    table(f"{args.in_flight} in flight", LOADED, "direct")

    def over(run: str, floor: str) -> float:
        return statistics.median(r.p(50) / f.p(50) for r, f in zip(results[run], results[floor], strict=True))

    print()
    for client, serial, loaded in (("httpx2", "http", "http_n"), ("the raw client", "raw", "raw_n")):
        ratio = over(serial, "sync")
        print(
            f"HTTP p50 over the floor's, {client}: one at a time {ratio:.2f} (goal <= 1.30:"
            f" {'met' if ratio <= 1.3 else 'not met'}), {args.in_flight} in flight {over(loaded, 'direct'):.2f}"
        )
    print("the server workers' shares of the server's CPU (the busier first), round by round:")
    for run in ("http", "raw", "http_n", "raw_n"):
        shares = [" / ".join(f"{share:.0%}" for share in r.shares[:2]) for r in results[run]]
        print(f"  {labels[run]}: {', '.join(shares)}")


if __name__ == "__main__":
    main()
