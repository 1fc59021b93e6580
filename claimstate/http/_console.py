"""The console's routes under /console/: the overview with live figures, the phase views, the stories, the
claims lists, a claim's page and the change review. Every route reads (GET): nothing here writes.

Who may look is `viewer_from`'s to say (`viewer_tokens` is the ready-made check); `claimstate serve`
gives none on loopback (whoever reaches a server on 127.0.0.1 is on this machine) and viewer tokens
beyond it. A browser sends its token once as
``?token=...``: it is kept in an HttpOnly cookie for the console's path, and the address loses it.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from claimstate._actor import Actor
from claimstate._check import check
from claimstate._check.stories import to_html as stories_html
from claimstate._console.live import live_figures
from claimstate._console.pages import claim_page, claims_page
from claimstate._diagrams import Diagrams
from claimstate._diagrams.console import overview_page
from claimstate._diagrams.graph import extract
from claimstate._diagrams.page import CLAIMS_PAGE, html_page, nav_html, view_page
from claimstate._errors import ClaimStateError, InvalidInput
from claimstate._service import ClaimService
from claimstate._service.asynchronous import AsyncClaimService
from claimstate.http._auth import VIEWER_COOKIE

ViewerFrom = Callable[[Request], Awaitable[None] | None]
MAX_WINDOW_DAYS = 366
PAGE = 100  # claims per list page
_FILTERS = ("open", "stuck", "overdue", "all")
# Pages are never kept by a cache, and may run their own inline script and fetch their own address alone.
_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self';"
    " img-src 'self' data:; base-uri 'none'; form-action 'none'"
)
_HTML = {"Cache-Control": "no-store", "Content-Security-Policy": _POLICY}


class Console:
    """The console's handlers over one service (read-only calls only)."""

    def __init__(self, service: AsyncClaimService, ready: Callable[[], Awaitable[ClaimService]],
                 viewer_from: ViewerFrom | None, stuck_after: timedelta) -> None:  # fmt: skip
        self.claims = service
        self.ready = ready
        self.viewer_from = viewer_from
        self.stuck_after = stuck_after
        self._stories: str | None = None

    def routes(self) -> list[Route]:
        return [
            Route("/console", self.home, methods=["GET"]),
            Route("/console/", self.overview, methods=["GET"]),
            Route("/console/lifecycle.html", self.overview, methods=["GET"]),
            Route("/console/live.json", self.live, methods=["GET"]),
            Route("/console/lifecycle-{view}.html", self.view, methods=["GET"]),
            Route("/console/stories.html", self.stories, methods=["GET"]),
            Route("/console/changes.html", self.changes, methods=["GET"]),
            Route(f"/console/{CLAIMS_PAGE}", self.claims_list, methods=["GET"]),
            Route(f"/console/{CLAIMS_PAGE}/{{claim_id}}", self.claim, methods=["GET"]),
        ]

    async def _viewer(self, request: Request) -> Response | None:
        """None when the request may look; a redirect keeping a token given in the address as a cookie."""
        token = request.query_params.get("token")
        if token is not None:
            kept = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            target = (
                request.url.replace_query_params(**dict(kept)) if kept else request.url.remove_query_params("token")
            )
            answer = RedirectResponse(str(target), status_code=303)
            answer.set_cookie(VIEWER_COOKIE, token, httponly=True, samesite="strict", path="/console",
                              secure=request.url.scheme == "https")  # fmt: skip
            return answer
        if self.viewer_from is not None:
            found = self.viewer_from(request)
            if inspect.isawaitable(found):
                await found
        return None

    async def _page(self, request: Request, make: Callable[[ClaimService], Any]) -> Response:
        refused = await self._viewer(request)
        if refused is not None:
            return refused
        sync = await self.ready()
        try:
            return HTMLResponse(await make(sync), headers=_HTML)
        except ClaimStateError as error:  # a person reads it: a page saying what was wrong, with the links
            problem = error.to_problem()
            views = tuple((v.name, v.title) for v in sync.definition.views)
            up = request.url.path.startswith(f"/console/{CLAIMS_PAGE}/")
            nav = nav_html(views, "", served=True, up=up)
            page = html_page(problem["title"], str(problem.get("detail", "")), "", nav=nav)
            return HTMLResponse(page, status_code=int(problem["status"]), headers=_HTML)

    async def home(self, request: Request) -> Response:
        return RedirectResponse(str(request.url.replace(path="/console/")), status_code=308)

    async def overview(self, request: Request) -> Response:
        async def make(sync: ClaimService) -> str:
            return overview_page(extract(sync.definition, policy=sync.engine.policy), live="live.json",
                                 claims=CLAIMS_PAGE)  # fmt: skip

        return await self._page(request, make)

    async def live(self, request: Request) -> Response:
        refused = await self._viewer(request)
        if refused is not None:
            return refused
        sync = await self.ready()
        days = _whole(request.query_params.get("window"), "window", default=30, least=1, most=MAX_WINDOW_DAYS)
        stats = await self.claims.stats(stuck_after=self.stuck_after)
        flows = await self.claims.flows(stats.now - timedelta(days=days), stats.now)
        window = "day" if days == 1 else f"{days} days"
        figures = live_figures(sync.definition, stats, flows, window=window, claims=CLAIMS_PAGE)
        return Response(orjson.dumps(figures), media_type="application/json", headers={"Cache-Control": "no-store"})

    async def view(self, request: Request) -> Response:
        async def make(sync: ClaimService) -> str:
            name = request.path_params["view"]
            page = Diagrams(sync.definition, policy=sync.engine.policy, view=name).html()
            views = tuple((v.name, v.title) for v in sync.definition.views)
            return page.replace(nav_html(views, view_page(name)), nav_html(views, view_page(name), served=True), 1)

        return await self._page(request, make)

    async def stories(self, request: Request) -> Response:
        async def make(sync: ClaimService) -> str:
            if self._stories is None:  # an exploration of every situation: once per process, off the loop
                self._stories = await asyncio.to_thread(lambda: stories_html(check(sync.definition).exploration))
            return self._stories

        return await self._page(request, make)

    async def changes(self, request: Request) -> Response:
        async def make(sync: ClaimService) -> str:
            from claimstate._diagrams.review import review_page  # noqa: PLC0415

            current = sync.definition.to_dict(sync.engine.policy)
            stored = await self.claims.definitions()
            waiting = [o for o in await self.claims.outdated() if o.fingerprint in stored]
            nav = nav_html(tuple((v.name, v.title) for v in sync.definition.views), "changes.html", served=True)
            if not waiting:
                return review_page(current, current, nav=nav)
            old = waiting[0]  # the claims a migration has yet to move, and what changed for them
            return review_page(stored[old.fingerprint or ""], current, open_claims=old.states, nav=nav)

        return await self._page(request, make)

    async def claims_list(self, request: Request) -> Response:
        async def make(sync: ClaimService) -> str:
            query = request.query_params
            state = query.get("state")
            shown = query.get("filter", "open")
            if shown not in _FILTERS:
                raise InvalidInput(f"unknown filter {shown!r}; known: {', '.join(_FILTERS)}", field="filter")
            stats_now = sync.now()
            filters: dict[str, Any] = {"state": state, "after": query.get("after"), "limit": PAGE}
            if shown == "stuck":
                filters["changed_before"] = stats_now - self.stuck_after
            elif shown == "overdue":
                filters["due_by"] = stats_now
            claims = await self.claims.list_claims(**filters)
            if shown == "open":
                claims = [c for c in claims if not sync.definition.state(c.state).final]
            title = sync.definition.state(state).title if state else "every state"
            heading = f"{shown.capitalize()} claims: {title}"
            return claims_page(sync.definition, claims, heading=heading, now=stats_now, links=f"{CLAIMS_PAGE}/")

        return await self._page(request, make)

    async def claim(self, request: Request) -> Response:
        async def make(sync: ClaimService) -> str:
            claim_id = request.path_params["claim_id"]
            claim = await self.claims.get(claim_id)
            history = await self.claims.history(claim_id)
            now = sync.now()
            actors = {
                "buyer": f"buyer:{claim.buyer_id}",
                "supplier": f"supplier:{claim.supplier_id}",
                "agent": "agent:console",
            }
            options = {}
            for role, actor in actors.items():
                found = await self.claims.available(claim_id, Actor.parse(actor), now)
                options[role] = tuple(a for a in found if a.allowed)
            return claim_page(sync.definition, sync.engine.policy, claim, history=history, options=options, now=now)

        return await self._page(request, make)


def _whole(text: str | None, field: str, *, default: int, least: int, most: int) -> int:
    if text is None:
        return default
    if not text.isdigit() or not least <= int(text) <= most:
        raise InvalidInput(f"must be a whole number from {least} to {most}, not {text!r}", field=field)
    return int(text)
