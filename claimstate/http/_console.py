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
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from claimstate._check import Report, check
from claimstate._check.stories import to_html as stories_html
from claimstate._claim import Claim
from claimstate._console.live import figures_of
from claimstate._console.pages import claims_page, page_of_claim
from claimstate._diagrams import Diagrams
from claimstate._diagrams.console import overview_page
from claimstate._diagrams.graph import extract
from claimstate._diagrams.page import CHANGES_PAGE, CLAIMS_PAGE, STORIES_PAGE, html_page, nav_html, view_page
from claimstate._errors import ClaimStateError, InvalidInput
from claimstate._service import ClaimService
from claimstate._service.asynchronous import AsyncClaimService
from claimstate.http._auth import VIEWER_COOKIE, RequestRefused

ViewerFrom = Callable[[Request], Awaitable[None] | None]
MAX_WINDOW_DAYS = 366
PAGE = 100  # claims per list page
_FILTERS = ("open", "stuck", "overdue", "all")
_LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
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
        self._report: Report | None = None
        self._overview: str | None = None

    async def _checked(self, sync: ClaimService) -> Report:
        """`check` of the served definition (its stories, and the change review's verdict): explored once per
        process, off the loop (it takes seconds)."""
        if self._report is None:
            self._report = await asyncio.to_thread(check, sync.definition)
        return self._report

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
            Route(f"/console/{CLAIMS_PAGE}/{{claim_id:path}}", self.claim, methods=["GET"]),
            Route("/console/{rest:path}", self.missing, methods=["GET"]),
        ]

    async def _viewer(self, request: Request) -> Response | None:
        """None when the request may look; a redirect keeping a token given in the address as a cookie.

        With no `viewer_from`, the console answers only requests addressed to this machine by name (Host
        127.0.0.1, localhost or ::1): a web page elsewhere cannot rebind its own name to 127.0.0.1 and read it."""
        if self.viewer_from is None and _host(request) not in _LOOPBACK_NAMES:
            raise RequestRefused(403, "not-loopback", "this console answers only at 127.0.0.1, localhost or [::1]:"
                                 " serve it with viewer tokens to reach it by another name")  # fmt: skip
        token = request.query_params.get("token")
        if token is not None:
            kept = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            target = request.url.path + (f"?{urlencode(kept)}" if kept else "")  # relative: never another host
            answer = RedirectResponse(target, status_code=303)
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
            up = request.url.path.startswith(f"/console/{CLAIMS_PAGE}/")
            nav = nav_html(sync.definition.views, "", served=True, up=up)
            page = html_page(problem["title"], str(problem.get("detail", "")), "", nav=nav)
            return HTMLResponse(page, status_code=int(problem["status"]), headers=_HTML)

    async def home(self, request: Request) -> Response:
        return RedirectResponse("/console/", status_code=308)

    async def missing(self, request: Request) -> Response:
        async def make(_sync: ClaimService) -> str:
            raise RequestRefused(404, "not-found", f"no page {request.url.path} in the console")

        return await self._page(request, make)

    async def overview(self, request: Request) -> Response:
        async def make(sync: ClaimService) -> str:
            if self._overview is None:  # the served definition never changes: drawn once, off the loop
                graph = extract(sync.definition, policy=sync.engine.policy)
                self._overview = await asyncio.to_thread(overview_page, graph, live="live.json", claims=CLAIMS_PAGE)
            return self._overview

        return await self._page(request, make)

    async def live(self, request: Request) -> Response:
        refused = await self._viewer(request)
        if refused is not None:
            return refused
        sync = await self.ready()
        days = _whole(request.query_params.get("window"), "window", default=30, least=1, most=MAX_WINDOW_DAYS)
        figures = await asyncio.to_thread(figures_of, sync, days=days, stuck_after=self.stuck_after, claims=CLAIMS_PAGE)
        return Response(orjson.dumps(figures), media_type="application/json", headers={"Cache-Control": "no-store"})

    async def view(self, request: Request) -> Response:
        async def make(sync: ClaimService) -> str:
            name = request.path_params["view"]
            page = await asyncio.to_thread(Diagrams(sync.definition, policy=sync.engine.policy, view=name).html)
            return _served(page, sync, view_page(name))

        return await self._page(request, make)

    async def stories(self, request: Request) -> Response:
        async def make(sync: ClaimService) -> str:
            report = await self._checked(sync)
            return _served(stories_html(report.exploration), sync, STORIES_PAGE)

        return await self._page(request, make)

    async def changes(self, request: Request) -> Response:
        async def make(sync: ClaimService) -> str:
            from claimstate._diagrams.review import review_page  # noqa: PLC0415

            current = sync.definition.to_dict(sync.engine.policy)
            stored = await self.claims.definitions()
            waiting = [o for o in await self.claims.outdated() if o.fingerprint in stored]
            nav = nav_html(sync.definition.views, CHANGES_PAGE, served=True)
            if not waiting:
                return html_page(
                    "Change review: nothing waiting",
                    "Every open claim was decided under the lifecycle this server runs: no change waits for a"
                    " migration. To review a change before it is deployed, export both lifecycles and write the"
                    " review page: claimstate diff OLD.json NEW.json --format html -o review.html (see the docs,"
                    " Changing the lifecycle).",
                    "",
                    nav=nav,
                )
            old = waiting[0]  # the claims a migration has yet to move, and what changed for them
            report = (await self._checked(sync)).to_dict()
            return review_page(stored[old.fingerprint or ""], current, open_claims=old.states, report=report, nav=nav)

        return await self._page(request, make)

    async def claims_list(self, request: Request) -> Response:
        async def make(sync: ClaimService) -> str:
            query = request.query_params
            state, shown = query.get("state"), query.get("filter", "open")
            if shown not in _FILTERS:
                raise InvalidInput(f"unknown filter {shown!r}; known: {', '.join(_FILTERS)}", field="filter")
            now = sync.now()
            claims, more = await asyncio.to_thread(self._listed, sync, state, shown, now, query.get("after"))
            title = sync.definition.state(state).title if state else "every state"
            after = None if not more else f"{CLAIMS_PAGE}?{urlencode({**dict(query), 'after': claims[-1].id})}"
            return claims_page(sync.definition, claims, heading=f"{shown.capitalize()} claims: {title}", now=now,
                               links=f"{CLAIMS_PAGE}/", more=after)  # fmt: skip

        return await self._page(request, make)

    def _listed(
        self, sync: ClaimService, state: str | None, shown: str, now: datetime, after: str | None
    ) -> tuple[list[Claim], bool]:
        """A page of the claims a count stands for, in id order, and whether more follow: all of a state's,
        its open ones, its stuck ones (open, in a state without a deadline, unchanged for `stuck_after`) or
        its overdue ones. The database narrows by state and time; what it cannot (open, no deadline) is
        passed over here, reading on until the page is full."""
        waiting = {s.name for s in sync.definition.states if not s.final and s.deadline is None}
        kept: Callable[[Claim], bool] = {
            "all": lambda _claim: True,
            "open": lambda claim: not sync.definition.state(claim.state).final,
            "stuck": lambda claim: claim.state in waiting,
            "overdue": lambda _claim: True,
        }[shown]
        changed_before = now - self.stuck_after if shown == "stuck" else None
        due_by = now if shown == "overdue" else None
        found: list[Claim] = []
        for claim in sync.iter_claims(state=state, after=after, page=PAGE, changed_before=changed_before,
                                      due_by=due_by):  # fmt: skip
            if kept(claim):
                if len(found) == PAGE:
                    return found, True
                found.append(claim)
        return found, False

    async def claim(self, request: Request) -> Response:
        async def make(sync: ClaimService) -> str:
            return await asyncio.to_thread(page_of_claim, sync, request.path_params["claim_id"])

        return await self._page(request, make)


def _host(request: Request) -> str:
    """The name the request was addressed to, without its port (``[::1]:8000`` -> ``::1``)."""
    host = request.headers.get("host", "").strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _served(page: str, sync: ClaimService, current: str) -> str:
    """A page written for a diagrams folder, with the served console's links (the claims, the review)."""
    views = sync.definition.views
    return page.replace(nav_html(views, current), nav_html(views, current, served=True), 1)


def _whole(text: str | None, field: str, *, default: int, least: int, most: int) -> int:
    if text is None:
        return default
    if not text.isdigit() or not least <= int(text) <= most:
        raise InvalidInput(f"must be a whole number from {least} to {most}, not {text!r}", field=field)
    return int(text)
