"""Fixtures of the HTTP API's tests: an app over a service on each backend (`store_target`) that knows
http_helpers.TOKENS, and `api`, a client that speaks to it in this process (httpx's ASGI transport) from
synchronous tests, on an event loop of the test's own.

Nothing here starts a server: tests/http/test_serve.py starts real ones where the real server is the point.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import closing
from typing import Any

import pytest
from helpers import filing, query
from http_helpers import ACTORS, TOKENS, Api

from claimstate import AsyncClaimService, ClaimService
from claimstate.http import bearer_tokens, create_app


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    with closing(asyncio.new_event_loop()) as loop:
        yield loop


@pytest.fixture
def service(store_target: str, loop: asyncio.AbstractEventLoop) -> Iterator[AsyncClaimService]:
    """The service the apps serve, on each backend: an AsyncClaimService around an open ClaimService (what
    create_app makes of a ClaimService itself), closed at the end with its worker threads. Its `sync` is
    the ClaimService, for the tests' own reads."""
    yield from _opened(store_target, loop)


@pytest.fixture
def make_api(service: AsyncClaimService, loop: asyncio.AbstractEventLoop) -> Iterator[Callable[..., Api]]:
    """Makes an in-process client of a new app over the test's service (create_app's options as given:
    `max_body`, say); every client is closed at the end."""
    yield from _clients(service, loop)


@pytest.fixture
def api(make_api: Callable[..., Api]) -> Api:
    """An in-process client of the app with its default options."""
    return make_api()


@pytest.fixture
def footprint(store_target: str) -> Callable[[], dict[str, Any]]:
    """What the store holds, read from its tables directly: how many claims, history rows and events, every
    claim's version, and how far each consumer of the feed got. Equal before and after a call means the call
    wrote nothing."""
    return lambda: _footprint(store_target)


# The same over one store per backend for a whole module (tests/conftest.py's `shared_store_target`), for
# tests whose requests are all refused, each checked to have written nothing: a PostgreSQL schema made and
# migrated for each would cost more than the test.


@pytest.fixture(scope="module")
def shared_loop() -> Iterator[asyncio.AbstractEventLoop]:
    with closing(asyncio.new_event_loop()) as loop:
        yield loop


@pytest.fixture(scope="module")
def shared_service(shared_store_target: str, shared_loop: asyncio.AbstractEventLoop) -> Iterator[AsyncClaimService]:
    yield from _opened(shared_store_target, shared_loop)


@pytest.fixture(scope="module")
def shared_claim(shared_service: AsyncClaimService) -> str:
    """A claim in the shared store (alice's, on order o-1, awaiting evidence), for refused requests to name."""
    return shared_service.sync.file_claim(filing()).claim.id


@pytest.fixture
def make_shared_api(
    shared_service: AsyncClaimService, shared_loop: asyncio.AbstractEventLoop
) -> Iterator[Callable[..., Api]]:
    """`make_api` over the shared store."""
    yield from _clients(shared_service, shared_loop)


@pytest.fixture
def shared_footprint(shared_store_target: str) -> Callable[[], dict[str, Any]]:
    """`footprint` of the shared store."""
    return lambda: _footprint(shared_store_target)


def _opened(target: str, loop: asyncio.AbstractEventLoop) -> Iterator[AsyncClaimService]:
    service = AsyncClaimService(ClaimService(target))
    try:
        yield service
    finally:
        loop.run_until_complete(service.close())


def _clients(service: AsyncClaimService, loop: asyncio.AbstractEventLoop) -> Iterator[Callable[..., Api]]:
    made: list[Api] = []
    actor_from = bearer_tokens({TOKENS[name]: actor for name, actor in ACTORS.items()})

    def make(**options: Any) -> Api:
        made.append(Api(create_app(service, actor_from=actor_from, **options), loop))
        return made[-1]

    yield make
    for api in made:
        loop.run_until_complete(api.client.aclose())


def _footprint(target: str) -> dict[str, Any]:
    counts = {
        table: query(target, f"SELECT count(*) FROM {table}")[0][0] for table in ("claims", "transitions", "events")
    }
    return {
        **counts,
        "versions": dict(query(target, "SELECT id, version FROM claims")),
        "consumers": sorted(query(target, "SELECT name, lane, acked, leased_to FROM consumers")),
    }
