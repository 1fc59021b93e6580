"""`claimstate serve`: the HTTP API (`claimstate.http`) under uvicorn, with bearer tokens mapped to actors."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import click

from claimstate import CLAIM_LIFECYCLE, InvalidInput
from claimstate.cli._group import command
from claimstate.cli._options import HISTORY_KEY_VARIABLE, get_settings, load_definition, read_text, say

TOKENS_VARIABLE = "CLAIMSTATE_TOKENS"
_SERVING = "CLAIMSTATE_SERVING"  # what the command hands to uvicorn's workers, which import the app anew


@command(no_now="a server reads the clock as each request comes")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="The address to listen on; 0.0.0.0 to be reached from other machines.",
)
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="The port to listen on.")
@click.option(
    "--tokens",
    "tokens_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help=f'A JSON file mapping each bearer token to the actor it acts as ({{"<token>": "buyer:alice"}});'
    f" else ${TOKENS_VARIABLE} holds that JSON.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Server processes (each with its own connections; use PostgreSQL for more than one).",
)
@click.option(
    "--access-log",
    is_flag=True,
    help="Log a line per request (off by default: it costs a request a tenth of its server time).",
)
def serve(host: str, port: int, tokens_path: Path | None, workers: int, access_log: bool) -> None:  # fmt: skip
    """Serve the HTTP API on --db until stopped (Ctrl-C): every trigger a route, the OpenAPI document at
    /openapi.json. Needs the http extra (pip install 'claimstate[http]'). Callers send
    `Authorization: Bearer <token>`; each token acts as one actor, and a token is never printed or logged."""
    try:
        import uvicorn  # noqa: PLC0415  (the http extra's: the other commands run without it)

        from claimstate.http import bearer_tokens  # noqa: PLC0415
    except ModuleNotFoundError as error:
        raise InvalidInput(f"serve needs the http extra ({error.name} is missing): pip install 'claimstate[http]'",
                           field="serve") from None  # fmt: skip
    tokens = _tokens(tokens_path)
    bearer_tokens(tokens)  # refused now, by number and never by value, rather than in each worker
    settings = get_settings()
    _listenable(host, port)
    with settings.service(create=True) as service:  # opened (made or migrated) once here: its errors are ours
        shown = service.path  # a URL without its password
    os.environ[_SERVING] = json.dumps({"db": settings.db, "definition": settings.definition_name, "tokens": tokens})
    say(f"serving {shown} on http://{host}:{port} (OpenAPI: /openapi.json); Ctrl-C stops", err=True)
    uvicorn.run("claimstate.cli._serve:served_app", factory=True, host=host, port=port, workers=workers,
                log_level="info", access_log=access_log, server_header=False)  # fmt: skip


def _listenable(host: str, port: int) -> None:
    """Refuse an address this process cannot listen on (taken, or not this machine's) before starting, with
    claimstate's exit code rather than the server's."""
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as error:
        raise InvalidInput(f"cannot listen on {host}:{port}: {error.strerror or error}", field="--port") from None


def _tokens(path: Path | None) -> dict[str, Any]:
    """The token map from --tokens or the environment; refused by where it came from, never by its text."""
    where = f"--tokens {path}" if path is not None else f"${TOKENS_VARIABLE}"
    text = read_text(str(path), "--tokens") if path is not None else os.environ.get(TOKENS_VARIABLE)
    if text is None:
        raise InvalidInput(f"give the bearer tokens with --tokens FILE or ${TOKENS_VARIABLE}: without them no one"
                           " could call", field="tokens")  # fmt: skip
    try:
        tokens = json.loads(text)
    except ValueError:
        raise InvalidInput(f"{where} is not JSON (an object mapping each token to an actor)", field="tokens") from None
    if not isinstance(tokens, dict) or not tokens:
        raise InvalidInput(f"{where} must be a JSON object mapping each token to an actor", field="tokens")
    return tokens


def served_app() -> Any:
    """The app each uvicorn worker serves, from what `serve` handed down (and $CLAIMSTATE_HISTORY_KEY)."""
    from claimstate import AsyncClaimService  # noqa: PLC0415  (it brings asyncio, which the other commands need not)
    from claimstate.http import bearer_tokens, create_app  # noqa: PLC0415

    serving = json.loads(os.environ.pop(_SERVING))  # the tokens go no further: not to Graphviz, say
    named, key = serving["definition"], os.environ.get(HISTORY_KEY_VARIABLE)
    service = AsyncClaimService(
        serving["db"],
        definition=CLAIM_LIFECYCLE if named is None else load_definition(named),
        create=True,
        history_key=None if key is None else key.encode("utf-8", "surrogateescape"),
    )  # opened by the app as it starts, closed as it stops
    return create_app(service, actor_from=bearer_tokens(serving["tokens"]))
