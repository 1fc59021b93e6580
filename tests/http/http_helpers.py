"""What the HTTP API's tests share besides fixtures (conftest.py): who calls and with which bearer token,
`Api` (a client of an app in this process, driven from synchronous tests), and `assert_problem`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

import httpx2 as httpx
from helpers import filing

T = TypeVar("T")

# Who calls, by a short name: the actor each one acts as, and the bearer token that says so.
ACTORS = {
    "alice": "buyer:alice",
    "bob": "buyer:bob",
    "acme": "supplier:acme",
    "zeta": "supplier:zeta",
    "kim": "agent:kim",
    "bot": "system",
}
TOKENS = {name: f"{name}-secret-token-{index:04d}-abcdefgh" for index, name in enumerate(ACTORS)}
PROBLEM = "application/problem+json"
PROBLEM_TYPE = "urn:claimstate:problem:"


class Api:
    """A client of one app, in process: `api.post("/claims", who="alice", json=...)` sends the request with
    alice's token (who=None: no Authorization header) and answers httpx's response. `run` runs a coroutine
    on the same loop, for tests that send requests side by side (`api.send` makes each one)."""

    def __init__(self, app: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.app = app
        self.loop = loop
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")

    def send(self, method: str, url: str, *, who: str | None = "kim", headers: dict[str, str] | None = None,
             **kwargs: Any) -> Awaitable[httpx.Response]:  # fmt: skip
        sent = dict(headers or {})
        if who is not None:
            sent["Authorization"] = f"Bearer {TOKENS[who]}"
        return self.client.request(method, url, headers=sent, **kwargs)

    def run(self, awaitable: Awaitable[T]) -> T:
        return self.loop.run_until_complete(awaitable)

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.run(self.send("GET", url, **kwargs))

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.run(self.send("POST", url, **kwargs))

    def file(self, *, who: str = "alice", headers: dict[str, str] | None = None, **changes: Any) -> str:
        """File a claim (filing data as helpers.filing, with `changes`); its id. It must be filed (201)."""
        filed = self.post("/claims", who=who, json=filing(**changes), headers=headers)
        assert filed.status_code == 201, filed.text
        return str(filed.json()["id"])

    def fire(self, claim_id: str, trigger: str, data: dict[str, Any] | None = None, *, who: str = "alice",
             **kwargs: Any) -> httpx.Response:  # fmt: skip
        return self.post(f"/claims/{claim_id}/{trigger}", who=who, json={} if data is None else data, **kwargs)


def assert_problem(response: httpx.Response, status: int, kind: str, **members: Any) -> dict[str, Any]:
    """`response` is an RFC 9457 problem of `status` and kind (`urn:claimstate:problem:<kind>`), with RFC
    9457's members and claimstate's (`error`, `retryable`), and `members` as given; its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0] == PROBLEM, response.headers
    body = response.json()
    assert body["type"] == PROBLEM_TYPE + kind, body
    assert body["status"] == status and body["instance"] == response.request.url.path, body
    assert isinstance(body["title"], str) and isinstance(body["detail"], str) and body["detail"], body
    assert isinstance(body["error"], str) and isinstance(body["retryable"], bool), body
    for name, value in members.items():
        assert body.get(name) == value, (name, body)
    return body  # type: ignore[no-any-return]
