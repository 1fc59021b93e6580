"""The HTTP API: one Starlette application over one claim service, its routes and its conventions.

Every call goes to the service's coroutines (`AsyncClaimService`; a `ClaimService` is run on its twin's
worker threads), so the event loop never waits on the database. The service decides everything it
decides for Python callers; this layer maps HTTP onto it: who calls (`actor_from`), the body as the
trigger's data, `If-Match` as the expected version, `Idempotency-Key`, and every error as an RFC 9457
problem from the error's own `to_problem()`.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from claimstate._actor import AGENT, BUYER, SUPPLIER, SYSTEM, Actor
from claimstate._claim import Claim
from claimstate._diagrams import Diagrams
from claimstate._errors import ClaimNotFound, ClaimStateError, InvalidInput
from claimstate._service import ClaimService
from claimstate._service.asynchronous import AsyncClaimService
from claimstate._stats import STUCK_AFTER
from claimstate.http._auth import RequestRefused
from claimstate.http._console import Console, ViewerFrom
from claimstate.http._openapi import (
    CURSOR,
    DIAGRAM_TYPES,
    ETAG,
    MAX_LIMIT,
    MAX_WAIT,
    MAX_WORKER,
    PROBLEM,
    openapi,
)

ActorFrom = Callable[[Request], "Actor | str | Awaitable[Actor | str | None] | None"]
"""Who calls: the actor (an `Actor` or ``"buyer:alice"``) from the request, or None (401); it may raise a
`ClaimStateError` (say, `RequestRefused(403, ...)`) to refuse with that error's status."""

MAX_BODY = 1_000_000  # bytes: far above any trigger's data within the default limits
_POLL = 0.25  # seconds between looks at the feed while a poll of /events waits
_FEED_READERS = frozenset({AGENT, SYSTEM})  # the feed holds every claim: the team's and services' to read


class _Json(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def create_app(
    service: ClaimService | AsyncClaimService,
    *,
    actor_from: ActorFrom | None,
    max_body: int = MAX_BODY,
    title: str | None = None,
    viewer_from: ViewerFrom | None = None,
    stuck_after: timedelta = STUCK_AFTER,
) -> Starlette:
    """The HTTP API over `service` (see the docs' HTTP page for every route).

    `actor_from(request)` says who calls; there is no default, and nothing trusts a header naming an actor
    (`bearer_tokens` maps tokens the server holds to actors). A buyer or supplier reads only their own
    claims; the feed (`/events`) is for the team and services (roles agent and system). A service given
    open stays the caller's to close; an `AsyncClaimService` given unopened is opened at startup (or on the
    first request) and closed at shutdown, when the app is the server's own (a mounted app's lifespan is not
    run: give it a service you open and close). Bodies over `max_body` bytes are refused (413).

    The console for people is served under /console/ (it only reads). `viewer_from(request)` says who may
    look (raising `RequestRefused` for anyone else); None lets in whoever reaches the server, as suits one
    listening on loopback alone (`viewer_tokens` is the ready-made check beyond it). With `actor_from` None,
    only the console is served. Claims unchanged for longer than `stuck_after` in a state without a
    deadline are shown as stuck.
    """
    if actor_from is not None and not callable(actor_from):
        raise InvalidInput("actor_from must be a function of the request giving its actor", field="actor_from")
    if viewer_from is not None and not callable(viewer_from):
        raise InvalidInput("viewer_from must be a function of the request, refusing who may not look",
                           field="viewer_from")  # fmt: skip
    if not isinstance(stuck_after, timedelta) or stuck_after <= timedelta():
        raise InvalidInput(f"must be a timedelta above zero, not {stuck_after!r}", field="stuck_after")
    if isinstance(max_body, bool) or not isinstance(max_body, int) or max_body < 1:
        raise InvalidInput(f"must be a whole number of bytes above 0, not {max_body!r}", field="max_body")
    if isinstance(service, ClaimService):
        service = AsyncClaimService(service)
    elif not isinstance(service, AsyncClaimService):
        raise InvalidInput(f"must be a ClaimService or AsyncClaimService, not {type(service).__name__}",
                           field="service")  # fmt: skip
    api = _Api(service, actor_from, max_body, title)
    console = Console(service, api.ready, viewer_from, stuck_after)
    routes = (
        []
        if actor_from is None
        else [
            Route("/claims/{claim_id}/{trigger}", api.fire, methods=["POST"], name="fire"),  # the busiest, tried first
            Route("/claims", api.file_or_list, methods=["GET", "POST"], name="claims"),  # one route: a 405 lists both
            Route("/claims/{claim_id}", api.get_claim, methods=["GET"], name="get_claim"),
            Route("/claims/{claim_id}/diagram", api.diagram, methods=["GET"], name="claim_diagram"),
            Route("/events", api.events, methods=["GET"], name="events"),
            Route("/openapi.json", api.openapi, methods=["GET"], name="openapi"),
        ]
    )
    routes += [Route("/healthz", api.healthz, methods=["GET"], name="healthz"), *console.routes()]
    if actor_from is None:  # the console alone: its address is where a person lands
        routes.append(Route("/", console.home, methods=["GET"]))
    handlers: dict[Any, Callable[..., Any]] = {
        ClaimStateError: api.problem, HTTPException: api.http_problem, Exception: api.crash,
    }  # fmt: skip
    return Starlette(routes=routes, exception_handlers=handlers, lifespan=api.lifespan)


class _Api:
    """The routes' handlers over one service."""

    def __init__(
        self, service: AsyncClaimService, actor_from: ActorFrom | None, max_body: int, title: str | None
    ) -> None:
        self.claims = service
        self.actor_from = actor_from
        self.max_body = max_body
        self.title = title
        self._owned = False  # opened here (given unopened): closed here at shutdown
        self._document: dict[str, Any] | None = None

    @asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        await self.ready()
        try:
            yield
        finally:
            if self._owned:
                await self.claims.close()

    async def ready(self) -> ClaimService:
        try:
            return self.claims.sync
        except InvalidInput:  # not open yet: open it, and close it at shutdown
            self._owned = True
            await self.claims.open()
            return self.claims.sync

    async def _actor(self, request: Request) -> Actor:
        if self.actor_from is None:  # the API's routes are not served then: a route that asks is a mistake here
            raise RequestRefused(404, "not-found", "this server serves the console alone")
        found = self.actor_from(request)
        if inspect.isawaitable(found):
            found = await found
        if found is None:
            raise RequestRefused(401, "not-authenticated", "who calls is not known: send your credentials")
        return Actor.parse(found)

    # --- routes ----------------------------------------------------------------------------------------

    async def file_or_list(self, request: Request) -> Response:
        return await (self.file_claim if request.method == "POST" else self.list_claims)(request)

    async def file_claim(self, request: Request) -> Response:
        await self.ready()
        actor = await self._actor(request)
        data = await self._body(request, required=True)
        fired = await self.claims.file_claim(data, actor=actor, idempotency_key=_idempotency_key(request))
        headers = {"Location": str(request.url_for("get_claim", claim_id=fired.claim.id)), **_versioned(fired.claim)}
        if fired.replayed:
            headers["Idempotent-Replayed"] = "true"
        return _Json(fired.claim.to_dict(), 200 if fired.replayed else 201, headers)

    async def fire(self, request: Request) -> Response:
        sync = await self.ready()
        actor = await self._actor(request)  # who calls, first: a stranger learns nothing, not even the triggers
        claim_id, trigger = request.path_params["claim_id"], request.path_params["trigger"]
        if trigger not in sync.definition.triggers or trigger == sync.definition.creation.trigger:
            firing = [t for t in sync.definition.triggers if t != sync.definition.creation.trigger]
            raise RequestRefused(404, "no-such-trigger", f"no trigger {trigger!r}; known: {', '.join(firing)}")
        data = await self._body(request, required=False)
        try:
            fired = await self.claims.fire(claim_id, trigger, actor, data, idempotency_key=_idempotency_key(request),
                                           expected_version=_if_match(request))  # fmt: skip
        except ClaimStateError as error:
            # A refusal names the claim's state and a stale If-Match its version: a party learns them of their
            # own claims only. (A fire that applies was the caller's to make: the engine permits parties alone.)
            if actor.role in (BUYER, SUPPLIER) and not isinstance(error, ClaimNotFound | InvalidInput):
                _may_read(actor, await self.claims.get(claim_id))
            raise
        headers = _versioned(fired.claim)
        if fired.replayed:
            headers["Idempotent-Replayed"] = "true"
        return _Json(fired.claim.to_dict(), 200, headers)

    async def get_claim(self, request: Request) -> Response:
        await self.ready()
        actor = await self._actor(request)
        view = await self.claims.view(request.path_params["claim_id"], actor)
        _may_read(actor, view.claim)
        # The ETag is the claim's version; what the caller may do now also turns with the clock (deadlines), and
        # the answer is the caller's own: caches keep it privately, and revalidate it.
        headers = {**_versioned(view.claim), "Cache-Control": "private, no-cache", "Vary": "Authorization"}
        if _holds(request.headers.get("if-none-match"), headers["ETag"]):
            return Response(status_code=304, headers=headers)
        return _Json(view.to_dict(), 200, headers)

    async def list_claims(self, request: Request) -> Response:
        await self.ready()
        actor = await self._actor(request)
        query = request.query_params
        filters = {name: query.get(name) for name in ("state", "buyer", "supplier", "order")}
        own = actor.role if actor.role in (BUYER, SUPPLIER) else None
        if own is not None:
            if filters[own] not in (None, actor.id):
                raise RequestRefused(403, "not-yours", f"a {own} lists only their own claims ({own}={actor.id})")
            filters[own] = actor.id
        limit = _whole(query.get("limit"), "limit", default=100, most=MAX_LIMIT)
        state, buyer, supplier, order = (filters[name] for name in ("state", "buyer", "supplier", "order"))
        claims = await self.claims.list_claims(state=state, buyer=buyer, supplier=supplier, order=order, limit=limit,
                                               after=query.get("after"))  # fmt: skip
        page = {"claims": [c.to_dict() for c in claims], "next": claims[-1].id if len(claims) == limit else None}
        return _Json(page)

    async def diagram(self, request: Request) -> Response:
        sync = await self.ready()
        actor = await self._actor(request)
        fmt = request.query_params.get("format", "html")
        if fmt not in DIAGRAM_TYPES:
            raise InvalidInput(f"unknown format {fmt!r}; known: {', '.join(DIAGRAM_TYPES)}", field="format")
        view = await self.claims.view(request.path_params["claim_id"])
        _may_read(actor, view.claim)
        pages = Diagrams(sync.definition, policy=sync.engine.policy, claim=view.claim, history=view.history)
        drawn = await run_in_threadpool(pages.render, fmt)  # a picture takes a while: off the event loop
        return Response(drawn, media_type=DIAGRAM_TYPES[fmt])

    async def events(self, request: Request) -> Response:
        await self.ready()
        actor = await self._actor(request)
        if actor.role not in _FEED_READERS:
            raise RequestRefused(403, "not-yours", "the feed holds every claim: it is for the team and services")
        query = request.query_params
        consumer = query.get("consumer")
        if consumer is None:
            raise InvalidInput("name the consumer whose events to read", field="consumer")
        limit = _whole(query.get("limit"), "limit", default=100, most=MAX_LIMIT)
        wait = _seconds(query.get("wait"), "wait", most=MAX_WAIT)
        named = query.get("worker", "default")
        if len(named) > MAX_WORKER or not named.strip():
            raise InvalidInput(f"must be a name of 1 to {MAX_WORKER} characters, not {named!r}", field="worker")
        worker = f"http/{actor}/{named}"
        acked = query.get("ack")
        if acked is not None:
            if not CURSOR.fullmatch(acked):
                raise InvalidInput(f"{acked!r} is not an answer's ack (an event's cursor, like '3.17')", field="ack")
            await self.claims.ack(consumer, acked, worker=worker)
        ends = time.monotonic() + wait
        while True:
            batch = await self.claims.events(consumer, limit, worker=worker)
            if batch or time.monotonic() >= ends or await request.is_disconnected():
                break
            await asyncio.sleep(min(_POLL, max(0.0, ends - time.monotonic())))
        return _Json({"events": [e.to_dict() for e in batch], "ack": batch[-1].cursor if batch else None})

    async def openapi(self, _request: Request) -> Response:
        sync = await self.ready()
        if self._document is None:
            self._document = openapi(sync.definition, sync.engine.policy, title=self.title)
        return _Json(self._document)

    async def healthz(self, _request: Request) -> Response:
        return _Json({"status": "ok"})  # answers however busy the database is: no call blocks the event loop

    # --- errors ----------------------------------------------------------------------------------------

    async def problem(self, request: Request, error: Exception) -> Response:
        assert isinstance(error, ClaimStateError)
        body = {**error.to_problem(), "instance": request.url.path}
        headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
        return _Json(body, error.status, headers, media_type=PROBLEM)

    async def http_problem(self, request: Request, error: Exception) -> Response:
        """Starlette's own refusals (no route, a method the route does not take) as problems too."""
        assert isinstance(error, HTTPException)
        code = {404: "no-such-route", 405: "method-not-allowed"}.get(error.status_code, "http-error")
        response = await self.problem(request, RequestRefused(error.status_code, code, error.detail))
        response.headers.update(error.headers or {})
        return response

    async def crash(self, request: Request, _error: Exception) -> Response:
        """A fault of claimstate's (a bug): a problem body all the same, and the server logs the traceback."""
        body = {"type": "urn:claimstate:problem:internal-error", "title": "Internal error", "status": 500,
                "detail": "the server failed; it is logged", "instance": request.url.path}  # fmt: skip
        return _Json(body, 500, media_type=PROBLEM)

    # --- the request's parts ---------------------------------------------------------------------------

    async def _body(self, request: Request, *, required: bool) -> dict[str, Any]:
        """The JSON object the body holds ({} for no body where none is `required`)."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            raise _too_large(self.max_body)
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > self.max_body:
                raise _too_large(self.max_body)
        if not raw.strip():
            if required:
                raise InvalidInput("the request needs a JSON object as its body", field="body")
            return {}
        media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media != "application/json" and not media.endswith("+json"):
            raise RequestRefused(415, "not-json", f"the body must be JSON (Content-Type: application/json), not"
                                                  f" {media or 'unnamed'}")  # fmt: skip
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            raise InvalidInput(f"the body is not valid JSON ({error})", field="body") from None
        if not isinstance(data, dict):
            raise InvalidInput(f"the body must be a JSON object, not {type(data).__name__}", field="body")
        return data


def _too_large(most: int) -> RequestRefused:
    return RequestRefused(413, "too-large", f"the body is larger than {most} bytes")


def _versioned(claim: Claim) -> dict[str, str]:
    return {"ETag": f'"{claim.version}"'}


def _may_read(actor: Actor, claim: Claim) -> None:
    """A buyer or supplier reads only their own claims."""
    if actor.role in (BUYER, SUPPLIER) and not claim.is_party(actor):
        raise RequestRefused(403, "not-yours", f"claim {claim.id!r} is not {actor}'s")


def _idempotency_key(request: Request) -> str | None:
    """The Idempotency-Key header, as a plain token or a quoted string (the IETF draft's form)."""
    key = request.headers.get("idempotency-key")
    if key is not None and len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    return key


def _holds(if_none_match: str | None, etag: str) -> bool:
    """Whether If-None-Match names `etag` as RFC 9110 reads it: `*`, or a list of tags compared weakly (caches
    and HTTP libraries send `W/"3"` and lists)."""
    tags = [] if if_none_match is None else [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return tags == ["*"] or etag in tags


def _if_match(request: Request) -> int | None:
    """The version If-Match names (its ETag, ``"3"``); None for none or ``*``."""
    given = request.headers.get("if-match")
    if given is None or given == "*":
        return None
    etag = ETAG.fullmatch(given)
    if etag is None:
        raise InvalidInput(f"{given!r} is not one of this API's ETags (a quoted version, like \"3\")",
                           field="If-Match")  # fmt: skip
    return int(etag[1])


def _whole(given: str | None, name: str, *, default: int, most: int) -> int:
    if given is None:
        return default
    if not (given.isascii() and given.isdigit() and len(given) <= 6 and 1 <= int(given) <= most):
        raise InvalidInput(f"must be a whole number from 1 to {most}, not {given!r}", field=name)
    return int(given)


def _seconds(given: str | None, name: str, *, most: float) -> float:
    if given is None:
        return 0.0
    try:
        value = float(given)
    except ValueError:
        value = -1.0
    if not 0 <= value <= most:  # NaN too
        raise InvalidInput(f"must be a number of seconds from 0 to {most:g}, not {given!r}", field=name)
    return value
