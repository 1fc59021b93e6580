"""claimstate over HTTP, for services in any language: `create_app(service, actor_from=...)` is an ASGI
application (Starlette) with an OpenAPI document generated from the definition. Needs the `http` extra
(``pip install 'claimstate[http]'``); `claimstate serve` runs it under uvicorn.

`openapi(definition)` gives the document alone, and needs no web framework.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from claimstate.http._openapi import openapi

if TYPE_CHECKING:
    from claimstate.http._app import ActorFrom, create_app
    from claimstate.http._auth import RequestRefused, bearer_tokens, viewer_tokens
    from claimstate.http._console import ViewerFrom

__all__ = ["ActorFrom", "RequestRefused", "ViewerFrom", "bearer_tokens", "create_app", "openapi", "viewer_tokens"]

_NEEDS_STARLETTE = {"ActorFrom": "_app", "create_app": "_app", "RequestRefused": "_auth", "bearer_tokens": "_auth",
                    "ViewerFrom": "_console", "viewer_tokens": "_auth"}  # fmt: skip


def __getattr__(name: str) -> object:
    """The names that need Starlette, imported on first use: `openapi` (and `claimstate model --openapi`)
    works without the `http` extra."""
    module = _NEEDS_STARLETTE.get(name)
    if module is None:
        raise AttributeError(f"module 'claimstate.http' has no attribute {name!r}")
    try:
        from importlib import import_module  # noqa: PLC0415

        found = getattr(import_module(f"claimstate.http.{module}"), name)
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            f"claimstate.http.{name} needs the http extra ({error.name} is missing): pip install 'claimstate[http]'",
            name=error.name,
        ) from None
    globals()[name] = found
    return found


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
