"""AsyncClaimService: the service for asyncio, every call a coroutine that never blocks the event loop.

It is a twin with no write path of its own: each call runs `ClaimService`'s very method (the same checks,
decisions, transactions, retries and errors) on a worker thread of the twin's own, while the event loop
goes on. Because a `ClaimService` gives each thread its own connection and transaction, the workers run
side by side, as many at once as there are threads (and, on PostgreSQL, pooled connections). A batch
keeps one worker for its whole block, so its calls share one transaction. See the docs' concurrency page
for why threads, and not a second, async-only copy of the store on an async driver.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import datetime
from functools import partial, update_wrapper
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from claimstate._claim import Claim, TransitionRecord
from claimstate._definition import Definition
from claimstate._engine import Engine
from claimstate._errors import InvalidInput, StorageError
from claimstate._feed import Event
from claimstate._service.service import ClaimService
from claimstate._store import Store
from claimstate._ticker import run_ticker

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
_THREADS = 4  # measured: 32 tasks on 4 workers match 8 threads; on 8 workers they fire a third fewer
_DONE = object()  # what `_next` returns when an iterator is used up (StopIteration cannot cross a Future)


def _twin(
    method: Callable[Concatenate[ClaimService, P], R],
) -> Callable[Concatenate[AsyncClaimService, P], Awaitable[R]]:
    """The coroutine of `ClaimService.method`: the same arguments and result, run on a worker thread."""

    async def call(self: AsyncClaimService, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return await self._run(partial(method, self.sync, *args, **kwargs))

    update_wrapper(call, method)
    call.__doc__ = f"Awaitable `ClaimService.{method.__name__}`: {method.__doc__ or ''}".rstrip()
    return call


class AsyncClaimService:
    """`ClaimService` for asyncio: the same methods, as coroutines, with the same meaning and errors.

    Made like a `ClaimService` (the same `path` and options; opening connects and may migrate, so it is
    done by `await service.open()` or `async with AsyncClaimService(...)`), or around a `ClaimService`
    already open. `threads` is how many calls run at once (each on a thread and connection of its own;
    keep it at most the PostgreSQL `pool_size`, 10 by default). It defaults to 4: more threads mostly
    wait for Python's interpreter lock, and slow the event loop's own turns (docs: Performance).
    A call whose task is cancelled still runs to its end on its thread (it may have applied: retry with
    the same idempotency key to learn its result).
    """

    def __init__(self, path: str | Path | Store | ClaimService = "claims.db", *, threads: int | None = None,
                 **options: Any) -> None:  # fmt: skip
        threads = _THREADS if threads is None else threads
        if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= 1000:
            raise InvalidInput(f"must be a whole number from 1 to 1000, not {threads!r}", field="threads")
        if isinstance(path, ClaimService) and options:
            raise InvalidInput("a ClaimService given open was made with its options already", field=sorted(options)[0])
        self._opening: Callable[[], ClaimService] | None = (
            None if isinstance(path, ClaimService) else partial(ClaimService, path, **options)
        )
        self._sync = path if isinstance(path, ClaimService) else None
        self._workers = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="claimstate")
        # The open batch: the task that opened it and its thread. Tasks the block starts inherit the
        # variable, but their calls run on the shared workers: only the block's own are the batch's.
        self._batch: contextvars.ContextVar[tuple[asyncio.Task[Any], ThreadPoolExecutor] | None] = (
            contextvars.ContextVar(f"claimstate_batch_{id(self)}", default=None)
        )
        self._opened = asyncio.Lock()
        self._closed = False
        # Each open batch holds a thread and a connection for its whole block: at most `threads` at once, so
        # that batches cannot take every pooled connection from the calls on the shared workers.
        self._batches = asyncio.Semaphore(threads)

    @property
    def sync(self) -> ClaimService:
        """The `ClaimService` every call runs on (for what has no coroutine: its engine, definition, path)."""
        if self._sync is None:
            raise InvalidInput(
                "the service is not open yet: await service.open(), or use `async with`", field="service"
            )
        return self._sync

    async def open(self) -> AsyncClaimService:
        """Open the database (connect, check, migrate) off the event loop; opening twice does nothing."""
        async with self._opened:
            if self._sync is None and self._opening is not None:
                self._sync = await self._run(self._opening)
        return self

    async def close(self) -> None:
        """Let the calls under way finish, stop the worker threads, then give back the feed's lanes and close
        the database. Closing twice does nothing; calls after it are refused."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, partial(self._workers.shutdown, wait=True))
        if self._sync is not None:
            await loop.run_in_executor(None, self._sync.close)

    async def __aenter__(self) -> AsyncClaimService:
        return await self.open()

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def _run(self, call: Callable[[], T]) -> T:
        """Run `call` on a worker thread (the batch's own inside `batch()`), in this task's context, so that
        what the caller set in context variables (a tracing span, say) holds there too."""
        if self._closed:
            raise StorageError("the service is closed: open a new one", path=self._sync.path if self._sync else "")
        context = contextvars.copy_context()
        batch = self._batch.get()
        workers = batch[1] if batch is not None and batch[0] is asyncio.current_task() else self._workers
        return await asyncio.get_running_loop().run_in_executor(workers, context.run, call)

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[AsyncClaimService]:
        """Every call awaited inside the block in one transaction: all of them, or none if the block raises.
        The block's calls run on one thread of their own (a transaction is its thread's), one at a time. At
        most `threads` batches are open at once (each holds a connection for its block); more wait their turn."""
        task, batch = asyncio.current_task(), self._batch.get()
        if task is None:
            raise InvalidInput("a batch is opened from a task of an event loop", field="batch")
        if batch is not None and batch[0] is task:  # a batch inside a batch joins it, as ClaimService's does
            yield self
            return
        async with self._batches, self._batch_on_its_thread(task) as service:
            yield service

    @asynccontextmanager
    async def _batch_on_its_thread(self, task: asyncio.Task[Any]) -> AsyncIterator[AsyncClaimService]:
        worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="claimstate-batch")
        token = self._batch.set((task, worker))
        block = self.sync.batch()
        try:
            try:
                await _through(worker, block.__enter__)
            except asyncio.CancelledError:  # cancelled while it began: it did begin, so it is rolled back
                await _through(worker, partial(block.__exit__, asyncio.CancelledError, None, None))
                raise
            try:
                yield self
            except BaseException as error:
                if not await _through(worker, partial(block.__exit__, type(error), error, error.__traceback__)):
                    raise
            else:
                await _through(worker, partial(block.__exit__, None, None, None))
        finally:
            self._batch.reset(token)
            worker.shutdown(wait=False)

    # --- the twins of ClaimService's methods --------------------------------------------------------

    file_claim = _twin(ClaimService.file_claim)
    fire = _twin(ClaimService.fire)
    due = _twin(ClaimService.due)
    tick = _twin(ClaimService.tick)
    get = _twin(ClaimService.get)
    view = _twin(ClaimService.view)
    history = _twin(ClaimService.history)
    available = _twin(ClaimService.available)
    list_claims = _twin(ClaimService.list_claims)
    verify = _twin(ClaimService.verify)
    backup = _twin(ClaimService.backup)
    events = _twin(ClaimService.events)
    ack = _twin(ClaimService.ack)
    feed = _twin(ClaimService.feed)
    forget_consumer = _twin(ClaimService.forget_consumer)
    prune_events = _twin(ClaimService.prune_events)
    outdated = _twin(ClaimService.outdated)
    open_claims = _twin(ClaimService.open_claims)
    definitions = _twin(ClaimService.definitions)
    migrate = _twin(ClaimService.migrate)
    stats = _twin(ClaimService.stats)
    flows = _twin(ClaimService.flows)

    async def iter_claims(self, **filters: Any) -> AsyncIterator[Claim]:
        """`ClaimService.iter_claims` (the same filters and paging), each page read on a worker thread."""
        async for claim in self._iterate(partial(self.sync.iter_claims, **filters)):
            yield claim

    async def iter_tick(self, now: datetime | None = None, **options: Any) -> AsyncIterator[TransitionRecord]:
        """`ClaimService.iter_tick`: each deadline fired on a worker thread, yielded as it fires."""
        async for record in self._iterate(partial(self.sync.iter_tick, now, **options)):
            yield record

    async def _iterate(self, make: Callable[[], Iterator[T]]) -> AsyncIterator[T]:
        """The items of the iterator `make` returns, each step run on a worker thread."""
        iterator = await self._run(make)
        while (item := await self._run(partial(next, iterator, _DONE))) is not _DONE:
            yield item

    async def run_ticker(
        self,
        every: float,
        stop: asyncio.Event | None = None,
        *,
        name: str | None = None,
        now: Callable[[], datetime] | None = None,
        limit: int = 500,
    ) -> int:
        """`claimstate.run_ticker` on this service: due deadlines fired each `every` seconds, with a heartbeat
        per round, on a thread of its own, until `stop` is set or the task is cancelled (either stops it
        between deadlines, nothing half-done); how many fired."""
        runner = partial(run_ticker, self.sync, every, name=name, now=now, limit=limit)
        return await _until_stopped(runner, stop, "claimstate-tick")

    async def consume(
        self,
        consumer: str,
        handler: Callable[[Event], object],
        *,
        stop: asyncio.Event | None = None,
        limit: int = 100,
        lease: float = 30.0,
        poll: float = 1.0,
        max_pause: float = 30.0,
    ) -> int:
        """`ClaimService.consume`, awaiting `handler` when it is a coroutine function (it then runs on the
        event loop; a plain function runs on the worker thread), until `stop` is set or the task is
        cancelled; how many events were handled. The loop itself (leases, pauses, acknowledgements) is
        ClaimService's, on a thread of its own."""
        loop = asyncio.get_running_loop()

        handling: set[Future[object]] = set()  # the async handler's run on the loop, while it runs
        halted = threading.Event()  # set on cancellation: a handler's run registered after it is cancelled too

        def handle(event: Event) -> object:
            result = handler(event)
            if not inspect.isawaitable(result):
                return result
            running = asyncio.run_coroutine_threadsafe(_awaited(result), loop)
            handling.add(running)
            if halted.is_set():
                running.cancel()
            try:
                return running.result()
            finally:
                handling.discard(running)

        def interrupt() -> None:  # on cancellation: the handler is cancelled too, and its event not acknowledged
            halted.set()
            for running in list(handling):
                running.cancel()

        loop_consume = partial(self.sync.consume, consumer, handle, limit=limit, lease=lease, poll=poll,
                               max_pause=max_pause)  # fmt: skip
        return await _until_stopped(lambda stopped: loop_consume(stop=stopped), stop, "claimstate-consume", interrupt)

    # --- what needs no I/O --------------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        return self.sync.engine

    @property
    def definition(self) -> Definition:
        return self.sync.definition

    @property
    def schema_version(self) -> int:
        return self.sync.schema_version

    @property
    def fingerprint(self) -> str:
        return self.sync.fingerprint

    @property
    def path(self) -> str:
        return self.sync.path

    def now(self) -> datetime:
        """The time by the service's clock: no I/O, so a plain method here too."""
        return self.sync.now()


async def _through(worker: ThreadPoolExecutor, call: Callable[[], T]) -> T:
    """`call` on `worker`, awaited to its end even if this task is cancelled meanwhile (a batch's BEGIN
    or COMMIT is never left half-way on its thread); a cancellation that came meanwhile is raised after
    it, and only if `call` succeeded."""
    done = asyncio.wrap_future(worker.submit(contextvars.copy_context().run, call))
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(done)
        except asyncio.CancelledError:
            if done.cancelled():
                raise
            cancelled = True
            continue
        if cancelled:
            raise asyncio.CancelledError
        return result


async def _until_stopped(
    run: Callable[[threading.Event], T],
    stop: asyncio.Event | None,
    name: str,
    interrupt: Callable[[], None] = lambda: None,
) -> T:
    """Run a loop of ClaimService's (consume, the tick runner) on a thread of its own until it returns; its
    `threading.Event` is set when `stop` is, or when this task is cancelled (then `interrupt` stops what
    the loop waits for on the event loop, the loop ends between two steps, nothing half-done, and the
    cancellation goes on)."""
    stopped = threading.Event()

    async def watch() -> None:
        if stop is not None:
            await stop.wait()
            stopped.set()

    watcher = asyncio.create_task(watch())
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
    running = asyncio.get_running_loop().run_in_executor(worker, contextvars.copy_context().run, run, stopped)
    try:
        return await asyncio.shield(running)
    except asyncio.CancelledError:
        stopped.set()
        interrupt()
        with contextlib.suppress(BaseException):  # the loop ends between two steps: wait for it to end
            await asyncio.shield(running)
        raise
    finally:
        watcher.cancel()
        worker.shutdown(wait=False)


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable
