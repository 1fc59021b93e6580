"""Who calls: the refusals of the HTTP layer itself, and bearer tokens mapped to actors.

The embedding service decides who acts (`create_app(actor_from=...)`); nothing here trusts a header that
names an actor. `bearer_tokens` is the one ready-made way: a token the server was given names one actor.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from starlette.requests import Request

from claimstate._actor import Actor
from claimstate._errors import PROBLEM_TYPES, ClaimStateError, InvalidInput

MIN_TOKEN = 16  # characters: a shorter token could be guessed
VIEWER_COOKIE = "claimstate_viewer"  # where a browser keeps its viewer token for the console


_TITLES = {"not-json": "Not JSON", "not-yours": "Not the caller's", "too-large": "Body too large"}


class RequestRefused(ClaimStateError):
    """The HTTP layer refused a request, and wrote nothing: no or an unknown token (401), a claim or listing
    that is not the caller's (403), no such trigger or route (404) or method (405), a body too large (413) or
    not JSON (415). `code` names the case; it is also the problem type's name."""

    problem = "request-refused"
    title = "Request refused"

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        super().__init__(message)

    def to_problem(self) -> dict[str, Any]:
        """As `ClaimStateError.to_problem`, with a problem type and title of the case's own (`code`)."""
        title = _TITLES.get(self.code) or self.code.replace("-", " ").capitalize()
        return {**super().to_problem(), "type": PROBLEM_TYPES + self.code, "title": title}


def bearer_tokens(tokens: Mapping[str, Actor | str]) -> Callable[[Request], Actor]:
    """An `actor_from` for `create_app`: the request's ``Authorization: Bearer <token>`` names the actor its
    token is mapped to; no token, or one not in `tokens`, is refused (401). Tokens are kept and looked up
    by their SHA-256 digest (so a lookup's timing tells nothing of a token), and never appear in an error or
    a log."""
    if not isinstance(tokens, Mapping):
        raise InvalidInput(f"tokens must map each token to an actor, not {type(tokens).__name__}", field="tokens")
    known: dict[bytes, Actor] = {}
    for number, (token, actor) in enumerate(tokens.items(), 1):
        _checked(token, number)
        try:
            known[digest(token)] = Actor.parse(actor)
        except InvalidInput as error:
            raise InvalidInput(f"token {number}'s actor: {error.reason}", field="tokens") from None

    def actor_from(request: Request) -> Actor:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise RequestRefused(401, "not-authenticated", "send Authorization: Bearer <token>")
        actor = known.get(digest(token.strip()))
        if actor is None:
            raise RequestRefused(401, "not-authenticated", "the bearer token names no one here")
        return actor

    return actor_from


def _checked(token: object, number: int) -> str:
    if not isinstance(token, str) or len(token) < MIN_TOKEN or not token.isascii() or not token.isprintable():
        raise InvalidInput(f"token {number} must be printable ASCII of at least {MIN_TOKEN} characters",
                           field="tokens")  # fmt: skip
    return token


def viewer_tokens(tokens: Iterable[str]) -> Callable[[Request], None]:
    """A `viewer_from` for `create_app`'s console: the request carries one of `tokens`, in the console's cookie
    (a browser, after opening it once with ``?token=``) or as ``Authorization: Bearer``; else 401. Kept by
    digest, as `bearer_tokens` keeps its tokens."""
    if isinstance(tokens, str | Mapping) or not isinstance(tokens, Iterable):
        raise InvalidInput(f"viewer tokens must be a collection of tokens, not {type(tokens).__name__}",
                           field="tokens")  # fmt: skip
    known = {digest(_checked(token, number)) for number, token in enumerate(tokens, 1)}

    def viewer_from(request: Request) -> None:
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        token = bearer.strip() if scheme.lower() == "bearer" else request.cookies.get(VIEWER_COOKIE, "")
        if not token or digest(token) not in known:
            raise RequestRefused(401, "not-authenticated", "the console needs a viewer token: open it once with"
                                 " ?token=<your viewer token>")  # fmt: skip

    return viewer_from


def digest(token: str) -> bytes:
    """A token as it is kept and looked up: its SHA-256 digest."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
