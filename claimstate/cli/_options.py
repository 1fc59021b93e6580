"""The shared parts of every command: the global options and their settings, the exit codes, one-line errors."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import wraps
from pathlib import Path
from typing import IO, Any, NoReturn, ParamSpec, TypeVar

import attrs
import click
from click.core import ParameterSource

import claimstate.definition
from claimstate import (
    CLAIM_LIFECYCLE,
    ClaimNotFound,
    ClaimService,
    ClaimStateError,
    ConcurrentModification,
    DiagramError,
    InvalidInput,
    LifecycleChanged,
    StorageError,
    TransitionRefused,
)
from claimstate.definition import Definition
from claimstate.scripting import parse_time, visible_text

EXIT_CODES: dict[type[ClaimStateError], int] = {
    TransitionRefused: 1,
    InvalidInput: 2,
    ClaimNotFound: 3,
    ConcurrentModification: 4,
    StorageError: 5,
    DiagramError: 6,
    LifecycleChanged: 7,
}
EXIT_HELP = (
    "Exit codes: 0 done; 1 transition refused (each reason printed); 2 usage or invalid input; "
    "3 claim not found; 4 concurrent modification; 5 storage error, or verify found damage; "
    "6 a picture could not be drawn; 7 open claims were decided under another lifecycle definition "
    "(migrate them)."
)

P = ParamSpec("P")
R = TypeVar("R")


HISTORY_KEY_VARIABLE = "CLAIMSTATE_HISTORY_KEY"


@attrs.define
class Settings:
    """The global options, given before the command's name (or from the environment), or after it.

    Before the name they are the whole program's: every command accepts them, and one with no use for an
    option ignores it (so a script may always pass --db). After the name they are the command's own: one
    with no use for an option refuses it by name (`after`).
    """

    db: str = "claims.db"
    db_given: bool = False  # --db was typed, not taken from the default or $CLAIMSTATE_DB
    json: bool = False
    now: datetime | None = None
    definition_name: str | None = None  # MODULE:NAME from --definition or $CLAIMSTATE_DEFINITION
    definition_given: bool = False  # --definition was typed, not taken from $CLAIMSTATE_DEFINITION
    after: set[str] = attrs.field(factory=set)  # the global options typed after the command's name
    _definition: Definition | None = attrs.field(default=None, init=False)

    @property
    def definition(self) -> Definition:
        """The definition named, imported when a command first needs it (so one that does not, never fails on
        it); the built-in lifecycle when none is named."""
        if self._definition is None:
            named = self.definition_name
            self._definition = CLAIM_LIFECYCLE if named is None else load_definition(named, self.definition_given)
        return self._definition

    def service(self, **options: Any) -> ClaimService:
        """The service on --db, deciding by --definition, opened with `options` (ClaimService's): only the
        commands meant to start a database may create the file, and the commands that only read open it
        read-only, so another OS user's reads never lock its owner out."""
        return open_service(self.db, definition=self.definition, **options)


def open_service(
    db: str, *, create: bool = False, definition: Definition = CLAIM_LIFECYCLE, **options: Any
) -> ClaimService:
    """ClaimService(db, ...), not creating the file unless asked. $CLAIMSTATE_HISTORY_KEY, when set, is the
    secret that chains the history (HMAC-SHA256); it is read from the environment only, so it never shows in
    a process list."""
    key = os.environ.get(HISTORY_KEY_VARIABLE)
    history_key = None if key is None else key.encode("utf-8", "surrogateescape")
    return ClaimService(db, create=create, definition=definition, history_key=history_key, **options)


def load_definition(target: str, typed: bool = True) -> Definition:
    """The Definition `target` names as MODULE:NAME (`claimstate.definition.load_definition`); `typed`: named by
    --definition, else by $CLAIMSTATE_DEFINITION (what an error names)."""
    field = "--definition" if typed else "$CLAIMSTATE_DEFINITION"
    return claimstate.definition.load_definition(target, field=field)


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class Duration(click.ParamType):  # type: ignore[type-arg]
    """A length of time: a number of seconds (``5``, ``0.5``) or with a unit (``500ms``, ``5s``, ``1m``,
    ``2h``, ``1d``), given as a timedelta; at least `least` seconds."""

    name = "DURATION"

    def __init__(self, least: float = 0.0) -> None:
        self.least = least

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, timedelta):
            return value
        found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*", str(value))
        if found is None:
            self.fail(f"give a number of seconds, or one with a unit (500ms, 5s, 1m, 2h, 1d), not {value!r}", param,
                      ctx)  # fmt: skip
        number = float(found[1]) * _UNITS[found[2] or "s"]
        if not math.isfinite(number) or number < self.least or number > 366 * 86400:
            self.fail(f"{value!r} is out of range (from {self.least:g} seconds to a year)", param, ctx)
        return timedelta(seconds=number)


@contextmanager
def stopped_by_signals(stop: threading.Event) -> Iterator[None]:
    """Ctrl-C (SIGINT) and SIGTERM set `stop` instead of interrupting, so a loop finishes what it is doing
    (a batch's acknowledgement, a deadline being fired) and the command exits 0."""
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class NonEmptyPath(click.Path):
    """A click.Path that refuses an empty one by name: to the system "" is the current folder, so a
    command given one would write where nobody asked."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str | os.PathLike) and not os.fspath(value):
            self.fail("an empty path names no file or folder", param, ctx)
        return super().convert(value, param, ctx)


def _given(ctx: click.Context, option: str) -> Settings:
    """The settings, noting `option` as typed after the command's name when `ctx` is a command's."""
    settings = ctx.ensure_object(Settings)
    if ctx.parent is not None:
        settings.after.add(option)
    return settings


def _set_db(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        settings = _given(ctx, "--db")
        settings.db = value
        settings.db_given = ctx.get_parameter_source("db") is ParameterSource.COMMANDLINE


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        _given(ctx, "--json").json = True


def _set_definition(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        settings = _given(ctx, "--definition")
        settings.definition_name = value
        settings.definition_given = ctx.get_parameter_source("definition") is ParameterSource.COMMANDLINE


def _set_now(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is None:
        return
    try:
        now = parse_time(value, field="--now")
    except InvalidInput as error:
        raise click.BadParameter(error.reason) from None
    _given(ctx, "--now").now = now


def global_options(*, group: bool, hidden: Collection[str] = ()) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """--db, --json, --now and --definition, on the group or again after a command's name; `hidden` are the
    ones the command refuses there (and accepts, to ignore, before its name).

    Only the group reads $CLAIMSTATE_DB, so an explicit --db anywhere wins over the environment.
    """
    options = [
        click.option(
            "--db", envvar="CLAIMSTATE_DB" if group else None, expose_value=False, callback=_set_db,
            type=NonEmptyPath(dir_okay=False, readable=False),  # an unreadable file is the store's to name (exit 5)
            is_eager=group, hidden="--db" in hidden,
            help="The SQLite file, a postgresql:// URL or a libpq key=value string (default claims.db, or"
            " $CLAIMSTATE_DB).",
        ),
        click.option(
            "--json", "as_json", is_flag=True, expose_value=False, callback=_set_json, is_eager=group,
            hidden="--json" in hidden, help="Print JSON for scripts.",
        ),
        click.option(
            "--now", metavar="ISO-8601", expose_value=False, callback=_set_now, is_eager=group,
            hidden="--now" in hidden, help="The time to act at, with its offset (default: the clock).",
        ),
        click.option(
            "--definition", metavar="MODULE:NAME", envvar="CLAIMSTATE_DEFINITION" if group else None,
            expose_value=False, callback=_set_definition, is_eager=group, hidden="--definition" in hidden,
            help="The lifecycle Definition to decide by (default the built-in one, or $CLAIMSTATE_DEFINITION).",
        ),
    ]  # fmt: skip

    def decorate(command: Callable[P, R]) -> Callable[P, R]:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def get_settings() -> Settings:
    return click.get_current_context().ensure_object(Settings)


def refuse(problem: str) -> NoReturn:
    """A global option typed after the command's name that the command has no use for: a usage error naming
    the command, never silence (before the name, such an option is the program's, and ignored)."""
    ctx = click.get_current_context()
    raise click.UsageError(f"{ctx.info_name} {problem}", ctx)


def say(text: str, *, err: bool = False) -> None:
    """Print text for people: every control character in it shown as its escape (``\\x1b``), but line ends,
    so words from a claim never drive the terminal (a title, a cleared screen, rewritten lines)."""
    click.echo(visible_text(text, keep="\n"), err=err)


def exit_code(error: ClaimStateError) -> int:
    return next(c for kind, c in EXIT_CODES.items() if isinstance(error, kind))


def _fail(error: ClaimStateError) -> NoReturn:
    """One line on stderr (and the error as JSON on stdout with --json), then the error's exit code."""
    code = exit_code(error)
    if get_settings().json:
        click.echo(json.dumps({**error.to_dict(), "exit_code": code}))
    say(f"error: {error}", err=True)
    sys.exit(code)


def handles_errors(command: Callable[P, R]) -> Callable[P, R]:
    @wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except ClaimStateError as error:
            _fail(error)

    return run


class _OneLineUsageError(click.UsageError):
    """A usage error as the library's errors show: one line on stderr, and JSON on stdout with --json."""

    def __init__(self, error: click.UsageError, *, as_json: bool) -> None:
        super().__init__(" ".join(error.format_message().split()).removesuffix("."), error.ctx)
        self.as_json = as_json

    def show(self, file: IO[Any] | None = None) -> None:
        if self.as_json:
            click.echo(json.dumps({"error": "UsageError", "message": self.message, "exit_code": self.exit_code}))
        command_path = "claimstate" if self.ctx is None else self.ctx.command_path
        click.echo(visible_text(f"error: {self.message} (see {command_path} --help)"), file=file, err=True)


@contextmanager
def one_line_usage_errors(as_json: bool) -> Iterator[None]:
    try:
        yield
    except _OneLineUsageError:
        raise
    except click.UsageError as error:
        raise _OneLineUsageError(error, as_json=as_json) from None


def read_text(path: str, field: str) -> str:
    """A text file, or stdin for -; unreadable or not UTF-8 is invalid input naming the option."""
    try:
        raw = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
        return raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput(f"cannot read {path}: {error}", field=field) from None
