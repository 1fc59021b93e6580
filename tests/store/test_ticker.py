"""The tick runner (`run_ticker`, `AsyncClaimService.run_ticker`, `claimstate tick --every`), on both
stores: two runners fire each due deadline once; a stop stops a runner between deadlines with every fired
claim whole; heartbeats show in stats; SIGTERM stops the command cleanly. No timings: the tests wait for
states of the database, and order events with threading.Event."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from helpers import T0, filing

from claimstate import AsyncClaimService, ClaimService, InvalidInput, StorageError, run_ticker
from claimstate._service.service import core_of
from claimstate.cli import cli

DUE = T0 + timedelta(days=8)  # every claim filed at T0 has its evidence deadline (7 days) due
ROOT = Path(__file__).parents[2]


def file_many(service: ClaimService, count: int) -> list[str]:
    with service.batch():
        return [service.file_claim(filing(order_id=f"o-{n}"), claim_id=f"c{n:03}", now=T0).claim.id
                for n in range(count)]  # fmt: skip


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Until `condition()` holds: a state of the database the test waits for, not a measured time."""
    give_up = time.monotonic() + 120
    while not condition():
        assert time.monotonic() < give_up, f"still waiting for {what}"
        time.sleep(0.01)


def whole(service: ClaimService, ids: list[str]) -> dict[str, int]:
    """How many claims fired their deadline (version 2) and stayed as filed (version 1); every claim's history
    agrees with its row (its last record is its version and state), and verify is clean."""
    counts = {"fired": 0, "due": 0}
    for claim_id in ids:
        view = service.view(claim_id)
        assert [r.seq for r in view.history] == list(range(1, view.claim.version + 1))
        assert view.history[-1].dest == view.claim.state
        if view.claim.version == 2:
            assert view.history[-1].trigger == "evidence_deadline"
            counts["fired"] += 1
        else:
            assert view.claim.version == 1
            counts["due"] += 1
    assert service.verify() == []
    return counts


def test_two_runners_on_one_database_fire_each_deadline_once(store_target: str) -> None:
    """Two runners, each on a service of its own, in two threads: every due deadline fires exactly once,
    the counts they return add up, and each one's heartbeat shows in stats with what it fired."""
    with ClaimService(store_target) as seeding:
        ids = file_many(seeding, 60)
    services = [ClaimService(store_target), ClaimService(store_target)]
    stop = threading.Event()
    results: dict[str, int] = {}

    def runner(name: str, service: ClaimService) -> None:
        results[name] = run_ticker(service, 0.01, stop, name=name, now=lambda: DUE, limit=7)

    threads = [threading.Thread(target=runner, args=(f"runner-{n}", s)) for n, s in enumerate(services)]
    for thread in threads:
        thread.start()
    try:
        with ClaimService(store_target) as watcher:

            def done() -> bool:
                beats = watcher.stats(DUE).workers
                return watcher.due(DUE) == 0 and len(beats) == 2 and all(w.last_tick_at is not None for w in beats)

            wait_for(done, "both runners to tick and every deadline to fire")
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    with ClaimService(store_target) as checker:
        assert whole(checker, ids) == {"fired": 60, "due": 0}
        transitions = sum(len(checker.history(claim_id)) for claim_id in ids)
        assert transitions == 120  # each claim: its filing and one deadline, never two
        beats = {w.name: w for w in checker.stats(DUE).workers}
    assert sum(results.values()) == 60
    assert set(beats) == {"runner-0", "runner-1"}
    for name, beat in beats.items():
        assert (beat.kind, beat.last_tick_at, beat.fired) == ("tick", DUE, results[name])
        assert beat.started_at == beat.beat_at == DUE and beat.since_beat == timedelta(0)
    for service in services:
        service.close()


def test_stop_during_a_round_stops_between_claims_with_every_fired_claim_whole(store_target: str) -> None:
    """Stop set while the fifth deadline's transaction is open: that one still commits whole, the runner
    fires no sixth, and the rest stay due for the next runner."""
    with ClaimService(store_target) as service:
        ids = file_many(service, 20)
        store = core_of(service).store
        update, calls, stop = store.claims.update, [], threading.Event()

        def update_then_stop(*args: Any, **kwargs: Any) -> bool:
            calls.append(args[1].id)
            if len(calls) == 5:
                stop.set()  # in the middle of the fifth deadline's transaction
            return update(*args, **kwargs)

        store.claims.update = update_then_stop  # type: ignore[method-assign]
        fired = run_ticker(service, 60, stop, now=lambda: DUE)
        store.claims.update = update  # type: ignore[method-assign]
        assert fired == len(calls) == 5
        assert whole(service, ids) == {"fired": 5, "due": 15}
        assert service.due(DUE) == 15
        [beat] = service.stats(DUE).workers
        assert (beat.fired, beat.last_tick_at) == (5, DUE)  # the round's heartbeat is written as it stops
        assert run_ticker(service, 60, _set_after_first_round(service), now=lambda: DUE) == 15
        assert whole(service, ids) == {"fired": 20, "due": 0}


def _set_after_first_round(service: ClaimService) -> threading.Event:
    """A stop set once nothing is due any more (checked as the round's heartbeat is written)."""
    stop = threading.Event()
    store = core_of(service).store
    beat = store.operations.beat

    def beat_then_stop(*args: Any) -> None:
        beat(*args)
        stop.set()

    store.operations.beat = beat_then_stop  # type: ignore[method-assign]
    return stop


def test_the_runner_checks_what_it_is_given(tmp_path: Path) -> None:
    with ClaimService(tmp_path / "claims.db") as service:
        for every in (0, -1, float("nan"), "5s"):
            with pytest.raises(InvalidInput, match="every"):
                run_ticker(service, every, threading.Event())  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="stop"):
            run_ticker(service, 1, asyncio.Event())  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="now"):
            run_ticker(service, 1, threading.Event(), now=DUE)  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="name"):
            run_ticker(service, 1, threading.Event(), name="")
    with ClaimService(tmp_path / "claims.db", read_only=True) as reader, pytest.raises(StorageError, match="read-only"):
        run_ticker(reader, 1, threading.Event())  # its first heartbeat cannot be written: at once, not a loop


def test_the_async_runner_fires_until_its_stop_is_set(store_target: str) -> None:
    with ClaimService(store_target) as seeding:
        ids = file_many(seeding, 10)

    async def main() -> int:
        async with AsyncClaimService(store_target) as service:
            stop = asyncio.Event()
            task = asyncio.create_task(service.run_ticker(0.01, stop, name="async", now=lambda: DUE))
            while await service.due(DUE) or not (await service.stats(DUE)).workers:
                await asyncio.sleep(0.01)
            stop.set()
            return await task

    assert asyncio.run(main()) == 10
    with ClaimService(store_target) as service:
        assert whole(service, ids) == {"fired": 10, "due": 0}
        assert [(w.name, w.fired) for w in service.stats(DUE).workers] == [("async", 10)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--every", "soon"], "give a number of seconds, or one with a unit"),
        (["--every", "0"], "out of range"),
        (["--every", "5s", "--now", "2026-03-02T09:00:00+00:00"], "--every fires on the clock: it takes no --now"),
        (["--name", "x"], "--name goes with --every"),
    ],
)
def test_the_command_refuses_a_bad_every(tmp_path: Path, args: list[str], message: str) -> None:
    ClaimService(tmp_path / "claims.db").close()
    result = CliRunner().invoke(cli, ["--db", str(tmp_path / "claims.db"), "tick", *args])
    assert result.exit_code == 2 and message in result.stderr, result.output


@pytest.mark.parametrize("every", ["5", "5s", "500ms", "1m", "0.5"])
def test_the_command_reads_every_with_or_without_a_unit(every: str) -> None:
    from claimstate.cli._options import Duration  # noqa: PLC0415

    expected = {"5": 5, "5s": 5, "500ms": 0.5, "1m": 60, "0.5": 0.5}[every]
    assert Duration().convert(every, None, None) == timedelta(seconds=expected)


def _command(store_target: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "CLAIMSTATE_DB": store_target}
    return subprocess.Popen(
        [sys.executable, "-m", "claimstate", *args], cwd=ROOT, env=env,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_command_stops_on_a_signal_between_deadlines_and_exits_0(store_target: str, sig: signal.Signals) -> None:
    """`claimstate tick --every 50ms` runs until the signal, which stops it between deadlines: exit 0, its
    count printed, every fired claim whole and verify clean; its heartbeat stays in stats."""
    with ClaimService(store_target) as service:
        ids = file_many(service, 300)  # due on the wall clock: filed in March 2026
    process = _command(store_target, "--json", "tick", "--every", "50ms", "--name", "cli-runner")
    try:
        with ClaimService(store_target) as watcher:
            wait_for(
                lambda: bool(watcher.stats().workers) or process.poll() is not None, "the runner's first heartbeat"
            )
            process.send_signal(sig)
            out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert err == ""
    printed = json.loads(out)
    with ClaimService(store_target) as checker:
        counts = whole(checker, ids)
        [beat] = checker.stats().workers
    assert printed == {"fired": counts["fired"], "stopped": True}
    assert (beat.name, beat.kind) == ("cli-runner", "tick")
    assert beat.fired <= counts["fired"]  # a round stopped before its heartbeat was written is not counted there
