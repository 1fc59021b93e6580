"""AsyncClaimService: the whole API as coroutines on both stores, the same answers and errors as
ClaimService's, concurrent tasks that lose and double nothing, and an event loop that never waits for the
database. Each test drives its own event loop with asyncio.run; nothing is timed."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from helpers import ACTORS, EVIDENCE, GOOD_DATA, T0, filing, waiting_for_a_lock

from claimstate import (
    AsyncClaimService,
    ClaimNotFound,
    ClaimService,
    ClaimView,
    Event,
    Fired,
    InvalidInput,
    StorageError,
    TransitionRefused,
)

TASKS = 64
CLAIMS = 24
FIRES_PER_TASK = 4


def test_every_public_method_of_the_service_has_an_awaitable_twin() -> None:
    """What ClaimService offers, AsyncClaimService offers as a coroutine (or an async iterator, or an async
    context manager for batch), under the same name and with the same parameters."""
    skip = {"close", "now"}  # close: a coroutine of its own, checked below; now: the clock, no I/O, plain on both
    for name, method in inspect.getmembers(ClaimService, inspect.isfunction):
        if name.startswith("_") or name in skip:
            continue
        twin = getattr(AsyncClaimService, name, None)
        assert twin is not None, f"AsyncClaimService has no {name}"
        if name.startswith("iter_"):
            assert inspect.isasyncgenfunction(twin), name
            continue
        if name == "batch":
            continue  # an async context manager: used in test_a_batch_is_all_or_nothing
        assert inspect.iscoroutinefunction(twin), name
        ours = [p for p in inspect.signature(method).parameters if p != "self"]
        assert [p for p in inspect.signature(twin).parameters if p != "self"] == ours, name
    assert inspect.iscoroutinefunction(AsyncClaimService.close)
    assert not inspect.iscoroutinefunction(AsyncClaimService.now) and callable(AsyncClaimService.now)


def test_the_async_service_answers_as_the_sync_one(store_target: str) -> None:
    async def main() -> None:
        async with AsyncClaimService(store_target) as service:
            fired = await service.file_claim(filing(), now=T0)
            assert isinstance(fired, Fired) and not fired.replayed
            claim_id = fired.claim.id
            await service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0)
            view = await service.view(claim_id, "agent:kim", now=T0)
            assert isinstance(view, ClaimView)
            assert view.claim.version == 2 and [r.seq for r in view.history] == [1, 2]
            assert view.available is not None and any(a.allowed for a in view.available)
            assert (await service.get(claim_id)) == view.claim
            assert [c.id async for c in service.iter_claims(page=1)] == [claim_id]
            assert await service.list_claims(state="in_mediation") == [view.claim]
            with pytest.raises(ClaimNotFound):
                await service.get("nope")
            with pytest.raises(TransitionRefused) as refused:
                await service.fire(claim_id, "accept_offer", "buyer:alice", now=T0)
            assert refused.value.to_problem()["status"] in (403, 409, 422)
            later = T0 + timedelta(days=400)
            assert await service.due(later) == 0
            assert [r async for r in service.iter_tick(later)] == []
            assert await service.verify() == []

    asyncio.run(main())


def test_a_batch_is_all_or_nothing_and_its_calls_share_one_transaction(store_target: str) -> None:
    async def main() -> None:
        async with AsyncClaimService(store_target) as service:
            async with service.batch():
                first = (await service.file_claim(filing(order_id="o-1"), now=T0)).claim.id
                second = (await service.file_claim(filing(order_id="o-2"), now=T0)).claim.id
                await service.fire(first, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0)
            assert (await service.get(first)).version == 2 and (await service.get(second)).version == 1
            with pytest.raises(RuntimeError):
                await failing_batch(service, second)
            assert (await service.get(second)).version == 1  # rolled back whole
            assert await service.verify() == []

    asyncio.run(main())


async def failing_batch(service: AsyncClaimService, claim_id: str) -> None:
    """A batch that fires on `claim_id`, then fails."""
    async with service.batch():
        await service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0)
        raise RuntimeError("the block fails")


def test_consume_awaits_an_async_handler_and_acknowledges_each_event(store_target: str) -> None:
    async def main() -> None:
        async with AsyncClaimService(store_target) as service:
            ids = [(await service.file_claim(filing(order_id=f"o-{n}"), now=T0)).claim.id for n in range(3)]
            seen: list[tuple[str, int]] = []
            stop = asyncio.Event()
            loop_thread = threading.get_ident()

            async def handler(event: Event) -> None:
                assert threading.get_ident() == loop_thread  # an async handler runs on the event loop
                await asyncio.sleep(0)
                seen.append((event.claim_id, event.seq))
                if len(seen) == len(ids):
                    stop.set()

            handled = await service.consume("mailer", handler, stop=stop, poll=0.01)
            assert handled == len(ids) and sorted(seen) == sorted((claim_id, 1) for claim_id in ids)
            assert await service.events("mailer") == []  # every one acknowledged

    asyncio.run(main())


def test_an_async_consume_cancelled_gives_its_lane_back(store_target: str) -> None:
    async def main() -> None:
        async with AsyncClaimService(store_target) as service:
            await service.file_claim(filing(), now=T0)
            started = asyncio.Event()

            async def handler(event: Event) -> None:
                started.set()
                await asyncio.sleep(3600)

            task = asyncio.create_task(service.consume("slow", handler, poll=0.01))
            await started.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(main())
    with ClaimService(store_target) as service:  # another worker gets the event at once: no lease holds it
        assert [e.seq for e in service.events("slow")] == [1]


def test_64_tasks_sharing_one_async_service_lose_and_double_nothing(store_target: str) -> None:
    """As with threads (test_concurrency): versions contiguous, history equal to the accepted fires, the
    feed equal to the history, verify clean."""

    async def main() -> None:
        async with AsyncClaimService(store_target, busy_timeout=60) as service:
            ids = [(await service.file_claim(filing(order_id=f"o-{n}"), now=T0)).claim.id for n in range(CLAIMS)]
            accepted: Counter[str] = Counter()

            async def storm(seed: int) -> None:
                chance = random.Random(seed)
                for _ in range(FIRES_PER_TASK):
                    claim_id = chance.choice(ids)
                    actor = ACTORS[chance.choice(["buyer", "supplier", "agent"])]
                    allowed = [a.trigger for a in await service.available(claim_id, actor, T0) if a.allowed]
                    allowed = [trigger for trigger in allowed if trigger != "withdraw"] or allowed
                    if not allowed:
                        continue
                    trigger = chance.choice(allowed)
                    try:
                        await service.fire(claim_id, trigger, actor, GOOD_DATA.get(trigger), now=T0)
                    except TransitionRefused:
                        continue  # another task moved the claim on since `available` looked
                    accepted[claim_id] += 1

            await asyncio.gather(*(storm(seed) for seed in range(TASKS)))
            assert sum(accepted.values()) > CLAIMS
            for claim_id in ids:
                view = await service.view(claim_id)
                assert [r.seq for r in view.history] == list(range(1, view.claim.version + 1))
                assert view.claim.version == 1 + accepted[claim_id]
            events = await service.feed(limit=10_000)
            assert sorted((e.claim_id, e.seq) for e in events) == sorted(
                (claim_id, seq) for claim_id in ids for seq in range(1, 2 + accepted[claim_id])
            )
            assert await service.verify() == []

    asyncio.run(main())


def test_the_event_loop_runs_while_every_database_call_is_under_way(store_target: str) -> None:
    """Each statement is made slow (it sleeps, blocking its thread, as a far database would); a coroutine
    beside a storm of fires records when it runs. Every slow statement must have seen the loop run at
    least once while it was under way: a call that blocked the loop would show none."""

    async def main() -> None:
        async with AsyncClaimService(store_target, threads=4) as service:
            ids = [(await service.file_claim(filing(order_id=f"o-{n}"), now=T0)).claim.id for n in range(4)]
            spans: list[tuple[float, float]] = []
            store = service.sync._store  # the test's probe: each statement of the store, slowed
            plain_one = store.one

            def slow_one(sql: str, params: Any = ()) -> Any:
                start = time.monotonic()
                time.sleep(0.02)
                try:
                    return plain_one(sql, params)
                finally:
                    spans.append((start, time.monotonic()))

            store.one = slow_one  # type: ignore[method-assign]
            ran: list[float] = []
            storming = True

            async def beside() -> None:
                while storming:
                    ran.append(time.monotonic())
                    await asyncio.sleep(0)

            watcher = asyncio.create_task(beside())
            await asyncio.gather(
                *(
                    service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0)
                    for claim_id in ids
                ),
                *(service.get(claim_id) for claim_id in ids),
            )
            storming = False
            await watcher
            store.one = plain_one  # type: ignore[method-assign]
            assert spans, "no statement went through the probe"
            for start, end in spans:
                assert any(start < moment < end for moment in ran), "the event loop stood still during a call"

    asyncio.run(main())


def test_a_task_waiting_for_a_row_lock_delays_no_task_on_another_claim(postgres_url: str) -> None:
    import psycopg  # noqa: PLC0415

    async def until(condition: Callable[[], bool]) -> None:
        for _ in range(3000):
            if condition():
                return
            await asyncio.sleep(0.01)
        pytest.fail("the fire on A never waited for the row lock")

    async def main() -> None:
        async with AsyncClaimService(postgres_url, busy_timeout=60) as service:
            a = (await service.file_claim(filing(order_id="o-a"))).claim.id
            b = (await service.file_claim(filing(order_id="o-b"))).claim.id
            with psycopg.connect(postgres_url) as holder:
                holder.execute("SELECT 1 FROM claims WHERE id = %s FOR UPDATE", (a,))
                on_a = asyncio.create_task(service.fire(a, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}))
                await until(waiting_for_a_lock(postgres_url))
                assert (await service.view(b)).claim.id == b
                await service.fire(b, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE})
                assert not on_a.done()
                holder.rollback()
            assert (await on_a).claim.version == 2

    asyncio.run(main())


def test_an_unopened_service_and_bad_threads_are_refused_by_name() -> None:
    with pytest.raises(InvalidInput) as error:
        AsyncClaimService(":memory:", threads=0)
    assert error.value.field == "threads"
    service = AsyncClaimService(":memory:")
    with pytest.raises(InvalidInput) as error:
        asyncio.run(service.get("c-1"))
    assert error.value.field == "service"


def test_a_batch_cancelled_as_it_begins_gives_its_connection_back(store_target: str) -> None:
    """A task cancelled while its batch's BEGIN runs on the batch's thread: the transaction is rolled back
    there, so the one pooled connection (PostgreSQL) or the in-memory turn is free for the next call."""

    async def main() -> None:
        async with AsyncClaimService(store_target, pool_size=1, busy_timeout=2) as service:
            claim_id = (await service.file_claim(filing(), now=T0)).claim.id

            async def body() -> None:
                async with service.batch():
                    await service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0)

            for turns in range(4):  # cancelled at each await of the block in turn
                task = asyncio.create_task(body())
                for _ in range(turns):
                    await asyncio.sleep(0)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                assert (await service.get(claim_id)).id == claim_id  # no connection or turn left held
            assert await service.verify() == []

    asyncio.run(main())


def test_tasks_started_inside_a_batch_run_outside_it() -> None:
    """Only the block's own calls join its transaction: a task it starts calls on the shared workers, and
    still can after the block has ended."""

    async def main() -> None:
        async with AsyncClaimService(":memory:") as service:
            claim_id = (await service.file_claim(filing(), now=T0)).claim.id
            async with service.batch():
                later = asyncio.create_task(asyncio.sleep(0.01))
                started = asyncio.create_task(service.get(claim_id))
            await later
            assert (await started).id == claim_id
            assert (await asyncio.create_task(service.get(claim_id))).id == claim_id

    asyncio.run(main())


def test_closing_twice_and_calling_after_close() -> None:
    async def main() -> None:
        async with AsyncClaimService(":memory:") as service:
            await service.close()  # and again by `async with`: nothing happens
        with pytest.raises(StorageError, match="closed"):
            await service.get("c-1")

    asyncio.run(main())


def test_at_most_threads_batches_are_open_at_once(postgres_url: str) -> None:
    """Each open batch holds a thread and a connection: the third of three batches on a 2-thread service
    waits until one of the first two ends (on PostgreSQL, where batches do not wait for each other)."""

    async def main() -> None:
        async with AsyncClaimService(postgres_url, threads=2) as service:
            inside: list[int] = []
            release = asyncio.Event()

            async def batch(n: int) -> None:
                async with service.batch():
                    inside.append(n)
                    await release.wait()

            tasks = [asyncio.create_task(batch(n)) for n in range(3)]
            for _ in range(50):
                await asyncio.sleep(0.01)
                if len(inside) == 2:
                    break
            await asyncio.sleep(0.05)
            assert len(inside) == 2  # the third waits its turn
            release.set()
            await asyncio.gather(*tasks)
            assert sorted(inside) == [0, 1, 2]

    asyncio.run(main())
