"""`claimstate serve`: the console for people and, given bearer tokens, the HTTP API (`claimstate.http`),
under uvicorn. A token mapped to ``viewer`` only opens the console; beyond loopback the console needs one."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
from datetime import timedelta
from pathlib import Path
from typing import Any

import click

from claimstate import CLAIM_LIFECYCLE, InvalidInput
from claimstate.cli._group import command
from claimstate.cli._options import (
    HISTORY_KEY_VARIABLE,
    Duration,
    get_settings,
    load_definition,
    read_text,
    say,
)

TOKENS_VARIABLE = "CLAIMSTATE_TOKENS"
VIEWER = "viewer"  # a token mapped to this opens the console, and nothing else
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
    help=f'A JSON file mapping each bearer token to the actor it acts as ({{"<token>": "buyer:alice"}}), or to'
    f' "{VIEWER}" for a token that only opens the console; else ${TOKENS_VARIABLE} holds that JSON. Without'
    " actors' tokens only the console is served (read-only).",
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
@click.option("--stuck-after", type=Duration(), default="1d", show_default=True, metavar="DURATION",
              help="The console shows open claims unchanged for longer than this, in a state without a deadline,"
              " as stuck (5m, 2h, 1d).")  # fmt: skip
@click.option("--read-db", metavar="URL", envvar="CLAIMSTATE_READ_DB",
              help="A PostgreSQL standby of --db (or $CLAIMSTATE_READ_DB): the console's figures and lists, and"
              " the API's lists, stats and feed, are read there (they may lag by moments); claims acted on and"
              " every write stay on --db.")  # fmt: skip
def serve(host: str, port: int, tokens_path: Path | None, workers: int, access_log: bool,
          stuck_after: timedelta, read_db: str | None) -> None:  # fmt: skip
    """Serve --db until stopped (Ctrl-C): the console for people at /console/ (it only reads), and, given
    actors' tokens, the HTTP API (every trigger a route, the OpenAPI document at /openapi.json). Needs the
    http extra (pip install 'claimstate[http]'). Callers send `Authorization: Bearer <token>`; each token
    acts as one actor, and a token is never printed (nor logged, but for a viewer token a browser sends once
    as ?token=..., which --access-log shows). On 127.0.0.1 (the default) the console is open to this
    machine; on any other address it asks for a viewer token (open it once with ?token=...)."""
    try:
        import uvicorn  # noqa: PLC0415  (the http extra's: the other commands run without it)

        from claimstate.http import bearer_tokens, viewer_tokens  # noqa: PLC0415
    except ModuleNotFoundError as error:
        raise InvalidInput(f"serve needs the http extra ({error.name} is missing): pip install 'claimstate[http]'",
                           field="serve") from None  # fmt: skip
    tokens = _tokens(tokens_path)
    actors = {token: actor for token, actor in tokens.items() if actor != VIEWER}
    viewers = sorted(token for token, actor in tokens.items() if actor == VIEWER)
    bearer_tokens(actors)  # refused now, by number and never by value, rather than in each worker
    viewer_tokens(viewers)
    if not viewers and not _loopback(host):
        raise InvalidInput(f"on {host}, beyond loopback, the console needs a viewer token: map one to"
                           f' "{VIEWER}" in --tokens', field="--host")  # fmt: skip
    settings = get_settings()
    _listenable(host, port)
    with settings.service(
        create=bool(actors), read_only=not actors, read_url=read_db
    ) as service:  # opened once here: its errors are ours
        shown, reads = service.path, service.read_path  # URLs without their passwords
    os.environ[_SERVING] = json.dumps({"db": settings.db, "definition": settings.definition_name, "tokens": actors,
                                       "viewers": viewers, "stuck_after": stuck_after.total_seconds(),
                                       "read_db": read_db})  # fmt: skip
    api = "the API (OpenAPI: /openapi.json) and " if actors else ""
    standby = "" if reads is None else f" (lists and figures read from {reads})"
    say(f"serving {shown}{standby} on http://{host}:{port}: {api}the console at http://{host}:{port}/console/"
        f"{'' if actors else ' (no actor tokens: the console alone, reading)'}; Ctrl-C stops", err=True)  # fmt: skip
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


def _loopback(host: str) -> bool:
    """Whether `host` is this machine alone (127.0.0.0/8, ::1, localhost)."""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _tokens(path: Path | None) -> dict[str, Any]:
    """The token map from --tokens or the environment (none: empty); refused by where it came from, never by
    its text."""
    where = f"--tokens {path}" if path is not None else f"${TOKENS_VARIABLE}"
    text = read_text(str(path), "--tokens") if path is not None else os.environ.get(TOKENS_VARIABLE)
    if text is None:
        return {}
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
    from claimstate.http import bearer_tokens, create_app, viewer_tokens  # noqa: PLC0415

    serving = json.loads(os.environ.pop(_SERVING))  # the tokens go no further: not to Graphviz, say
    named, key = serving["definition"], os.environ.get(HISTORY_KEY_VARIABLE)
    actors, viewers = serving["tokens"], serving["viewers"]
    service = AsyncClaimService(
        serving["db"],
        definition=CLAIM_LIFECYCLE if named is None else load_definition(named),
        create=bool(actors),
        read_only=not actors,
        read_url=serving["read_db"],
        history_key=None if key is None else key.encode("utf-8", "surrogateescape"),
    )  # opened by the app as it starts, closed as it stops
    return create_app(
        service,
        actor_from=bearer_tokens(actors) if actors else None,
        viewer_from=viewer_tokens(viewers) if viewers else None,
        stuck_after=timedelta(seconds=serving["stuck_after"]),
    )
