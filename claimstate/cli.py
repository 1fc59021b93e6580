"""The command line: a thin click layer over the public API (the library itself never imports click).

Each command parses its options, calls one library function and prints the result: JSON with `--json`,
aligned tables otherwise. Library errors and usage errors become one line on stderr (and a JSON object
on stdout with `--json`) and the exit code below, never a traceback or click's usage block.
"""

from __future__ import annotations

import importlib
import itertools
import json
import logging
import os
import signal
import sys
import textwrap
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import partial, wraps
from pathlib import Path
from typing import IO, Any, NoReturn, ParamSpec, TypeVar

import attrs
import click
from click.core import ParameterSource

from claimstate._check import check as run_check
from claimstate._check.scenarios import scenarios
from claimstate._check.stories import to_html as stories_html
from claimstate._check.stories import to_markdown as stories_markdown
from claimstate._claim import Claim, TransitionRecord
from claimstate._copy import copy_claims
from claimstate._definition import Definition
from claimstate._demo import DEMO_START, SCENARIOS, format_history, is_demo, walk
from claimstate._diagrams import FORMATS, REGENERATE, Diagrams, diff_html, diff_markdown
from claimstate._diagrams.diff import changes, within_export_bounds
from claimstate._errors import (
    ClaimNotFound,
    ClaimStateError,
    ConcurrentModification,
    DiagramError,
    InvalidInput,
    LifecycleChanged,
    StorageError,
    TransitionRefused,
)
from claimstate._feed import Event
from claimstate._files import make_folder, write_file
from claimstate._fingerprints import fingerprint_of, short
from claimstate._json import read_outside
from claimstate._lifecycle import CLAIM_LIFECYCLE, RESOLUTIONS
from claimstate._script import json_object, run_script
from claimstate._service import ClaimService, Mismatch
from claimstate._store import is_postgres
from claimstate._text import json_visible, visible
from claimstate._time import from_iso, to_iso

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
    "6 a drawing tool (Graphviz) is missing; 7 open claims were decided under another lifecycle definition "
    "(migrate them)."
)

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


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

    def service(self, *, create: bool = False, read_only: bool = False, migrating: bool = False) -> ClaimService:
        """The service on --db; only the commands meant to start a database may create the file, and the
        commands that only read open it read-only, so another OS user's reads never lock its owner out.

        $CLAIMSTATE_HISTORY_KEY, when set, is the secret that chains the history (HMAC-SHA256); it is read
        from the environment only, so it never shows in a process list.
        """
        return _open(self.db, create=create, read_only=read_only, definition=self.definition, migrating=migrating)


def _open(
    db: str,
    *,
    create: bool = False,
    read_only: bool = False,
    definition: Definition = CLAIM_LIFECYCLE,
    migrating: bool = False,
) -> ClaimService:
    key = os.environ.get(HISTORY_KEY_VARIABLE)
    return ClaimService(
        db,
        create=create,
        read_only=read_only,
        definition=definition,
        migrating=migrating,
        history_key=None if key is None else key.encode("utf-8", "surrogateescape"),
    )


def load_definition(target: str, typed: bool = True) -> Definition:
    """The Definition `target` names as MODULE:NAME (MODULE imported, the current folder first on the path);
    `typed`: named by --definition, else by $CLAIMSTATE_DEFINITION (what an error names)."""
    field = "--definition" if typed else "$CLAIMSTATE_DEFINITION"
    module_name, _, name = target.partition(":")
    if not module_name or not name:
        raise InvalidInput(f"give MODULE:NAME (like mylifecycle:LIFECYCLE), not {target!r}", field=field)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise InvalidInput(f"cannot import {module_name}: {error}", field=field) from None
    except (SystemExit, KeyboardInterrupt) as error:  # its own exit, not this command's
        raise InvalidInput(f"{module_name} stops as it loads: {type(error).__name__}({error})", field=field) from None
    except Exception as error:
        raise InvalidInput(f"{module_name} fails as it loads: {type(error).__name__}: {error}", field=field) from None
    if not hasattr(module, name):
        raise InvalidInput(f"{module_name} has no {name}", field=field)
    found = getattr(module, name)
    if not isinstance(found, Definition):
        raise InvalidInput(f"{target} is a {type(found).__name__}, not a Definition", field=field)
    return found


class _Path(click.Path):
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
        now = from_iso(value, field="--now")
    except InvalidInput as error:
        raise click.BadParameter(error.reason) from None
    _given(ctx, "--now").now = now


def _global_options(*, group: bool, hidden: Collection[str] = ()) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """--db, --json, --now and --definition, on the group or again after a command's name; `hidden` are the
    ones the command refuses there (and accepts, to ignore, before its name).

    Only the group reads $CLAIMSTATE_DB, so an explicit --db anywhere wins over the environment.
    """
    options = [
        click.option(
            "--db", envvar="CLAIMSTATE_DB" if group else None, expose_value=False, callback=_set_db,
            type=_Path(dir_okay=False, readable=False),  # an unreadable file is the store's to name (exit 5)
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


def _settings() -> Settings:
    return click.get_current_context().ensure_object(Settings)


def _refuse(problem: str) -> NoReturn:
    """A global option typed after the command's name that the command has no use for: a usage error naming
    the command, never silence (before the name, such an option is the program's, and ignored)."""
    ctx = click.get_current_context()
    raise click.UsageError(f"{ctx.info_name} {problem}", ctx)


def _say(text: str, *, err: bool = False) -> None:
    """Print text for people: every control character in it shown as its escape (``\\x1b``), but line ends,
    so words from a claim never drive the terminal (a title, a cleared screen, rewritten lines)."""
    click.echo(visible(text, keep="\n"), err=err)


def exit_code(error: ClaimStateError) -> int:
    return next(c for kind, c in EXIT_CODES.items() if isinstance(error, kind))


def _fail(error: ClaimStateError) -> NoReturn:
    """One line on stderr (and the error as JSON on stdout with --json), then the error's exit code."""
    code = exit_code(error)
    if _settings().json:
        click.echo(json.dumps({**error.to_dict(), "exit_code": code}))
    _say(f"error: {error}", err=True)
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
        click.echo(visible(f"error: {self.message} (see {command_path} --help)"), file=file, err=True)


@contextmanager
def _one_line_usage_errors(as_json: bool) -> Iterator[None]:
    try:
        yield
    except _OneLineUsageError:
        raise
    except click.UsageError as error:
        raise _OneLineUsageError(error, as_json=as_json) from None


class _Commands(click.Group):
    """The command group, whose usage errors (its own and every command's) are `_OneLineUsageError`.

    --json counts wherever it is in the arguments, even after the point where parsing failed.
    """

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        if not args:  # bare `claimstate` prints the help
            return super().make_context(info_name, args, parent, **extra)
        json_in_args = "--json" in args  # parsing consumes `args`
        with _one_line_usage_errors(json_in_args):
            ctx = super().make_context(info_name, args, parent, **extra)
        ctx.meta["claimstate.json_in_args"] = json_in_args
        return ctx

    def invoke(self, ctx: click.Context) -> Any:
        with _one_line_usage_errors(ctx.meta.get("claimstate.json_in_args", False)):
            return super().invoke(ctx)


def _table(rows: Sequence[Sequence[object]], headers: Sequence[str]) -> str:
    """Aligned columns with a header line, each cell on one line (its line ends shown as ``\\n``)."""
    cells = [[str(h) for h in headers], *[["-" if c is None else visible(str(c)) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells)


def _emit(data: Any, human: Callable[[], str]) -> None:
    if _settings().json:
        click.echo(json.dumps(data, indent=2))
    else:
        _say(human())


def _show_claim(claim: Claim) -> None:
    """Every detail of the claim: JSON as stored, or a two-column table with amounts in their currency."""
    data = claim.to_dict()

    def human() -> str:
        money = {"amount", "refund_amount", "refund"}
        rows: list[tuple[str, object]] = [
            (k, f"{v} {claim.amount.currency}" if k in money and v is not None else v)
            for k, v in data.items()
            if k not in {"currency", "evidence", "offers", "shipment", "agreement"}
        ]
        rows += [(f"evidence {i}", f"{e.by}, {e.kind}: {e.description}") for i, e in enumerate(claim.evidence, 1)]
        rows += [(f"offer {o.number}", f"{o.by}, {o.kind} {o.amount.format()}, {o.status}") for o in claim.offers]
        if claim.agreement is not None:
            agreed = claim.agreement
            rows.append(("agreement", f"offer {agreed.number}: {agreed.kind} {agreed.amount.format()} by {agreed.by}"))
        if claim.shipment is not None:
            rows.append(("shipment", f"{claim.shipment.carrier} {claim.shipment.tracking_number}"))
        return _table(rows, ("field", "value"))

    _emit(data, human)


_RECORD_HEADERS = ("claim", "seq", "at", "trigger", "from", "to", "actor")


def _record_row(r: TransitionRecord) -> tuple[object, ...]:
    return r.claim_id, r.seq, to_iso(r.at), r.trigger, r.source, r.dest, str(r.actor)


def _show_records(records: Sequence[TransitionRecord], *, empty: str = "no transitions") -> None:
    rows = [_record_row(r) for r in records]
    _emit([r.to_dict() for r in records], lambda: _table(rows, _RECORD_HEADERS) if rows else empty)


def _claim_row(c: Claim) -> tuple[object, ...]:
    return c.id, c.state, c.version, c.order_id, c.buyer_id, c.supplier_id, c.amount.format()


_CLAIM_HEADERS = ("id", "state", "version", "order", "buyer", "supplier", "amount")


def _stream(
    items: Iterable[T],
    headers: Sequence[str],
    row: Callable[[T], Sequence[object]],
    to_dict: Callable[[T], Any],
    *,
    empty: str | None = None,
    page: int = 500,
) -> None:
    """Print items as they come, a page at a time, so a long listing never sits in memory whole.

    JSON is the same array `json.dumps(..., indent=2)` writes; the table's columns widen as wider values
    come. A listing that fails midway (`UnreadableClaims` after every readable claim, or a lost database)
    prints everything it read, closing its JSON array, then fails.
    """
    ended: list[ClaimStateError] = []

    def reading() -> Iterator[T]:
        try:
            yield from items
        except ClaimStateError as error:
            ended.append(error)

    if _settings().json:
        opened = False
        for item in reading():
            text = textwrap.indent(json.dumps(to_dict(item), indent=2), "  ")
            click.echo((",\n" if opened else "[\n") + text, nl=False)
            opened = True
        click.echo("\n]" if opened else "[]")
    else:
        widths = [len(h) for h in headers]
        rows = ([visible("-" if c is None else str(c)) for c in row(item)] for item in reading())
        first = True
        for chunk in iter(lambda: list(itertools.islice(rows, page)), []):
            widths = [max(w, *(len(r[i]) for r in chunk)) for i, w in enumerate(widths)]
            lines = [list(headers), *chunk] if first else chunk
            click.echo("\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in lines))
            first = False
        if first:
            click.echo(empty if empty is not None else "  ".join(headers))
    if ended:
        raise ended[0]


def _show_mismatches(problems: Sequence[Mismatch]) -> None:
    """One line per differing value (stored, then expected, as JSON), and each problem that has none."""

    def human() -> str:
        if not problems:
            return "verify: clean"
        rows = [(m.claim_id, d.field, json.dumps(d.stored), json.dumps(d.expected))
                for m in problems for d in m.differences]  # fmt: skip
        lines = [_table(rows, ("claim", "field", "stored", "expected"))] if rows else []
        plain = [f"{m.claim_id or 'database'}: {m.problem}" for m in problems if not m.differences]
        return "\n".join([*lines, *plain])

    _emit([m.to_dict() for m in problems], human)


@attrs.define
class _TriggerHelp:
    """One trigger as the help shows it: who may fire it from which states, and the data fields it takes."""

    name: str
    sources_by_actors: dict[tuple[str, ...], list[str]] = attrs.field(factory=dict)
    fields: dict[str, dict[str, Any]] = attrs.field(factory=dict)

    @property
    def files_a_claim(self) -> bool:
        return not any(self.sources_by_actors.values())

    def heading(self) -> str:
        """``make_offer  (by buyer, supplier from in_mediation)``, one group per set of actors."""
        groups = [f"by {', '.join(actors)} " + (f"from {', '.join(sources)}" if sources else "to file a claim")
                  for actors, sources in self.sources_by_actors.items()]  # fmt: skip
        return f"{self.name}  ({'; '.join(groups)})"


def _triggers_help(definition: Definition) -> list[_TriggerHelp]:
    """Every trigger once, gathered over its transitions from the definition's `to_dict()` (never by hand)."""
    triggers: dict[str, _TriggerHelp] = {}
    for transition in definition.to_dict()["transitions"]:
        trigger = triggers.setdefault(transition["trigger"], _TriggerHelp(transition["trigger"]))
        sources = trigger.sources_by_actors.setdefault(tuple(transition["actors"]), [])
        sources += [s for s in transition["sources"] if s not in sources]
        for field in transition["data"]:
            trigger.fields.setdefault(field["name"], field)
    return list(triggers.values())


def _write_triggers(
    formatter: click.HelpFormatter, heading: str, *, with_filing: bool, definition: Definition = CLAIM_LIFECYCLE
) -> None:
    """A block per trigger: its heading (continued lines indented deeper), then its fields as a definition list."""
    with formatter.section(heading):
        for trigger in _triggers_help(definition):
            if trigger.files_a_claim and not with_filing:
                continue
            indent = " " * formatter.current_indent
            formatter.write(click.wrap_text(trigger.heading(), formatter.width, initial_indent=indent,
                                            subsequent_indent=indent + "      ") + "\n")  # fmt: skip
            if trigger.fields:
                with formatter.indentation():
                    formatter.write_dl(
                        (f"{f['name']} ({'required' if f['required'] else 'optional'})", f["description"])
                        for f in trigger.fields.values()
                    )


def _help_definition(ctx: click.Context) -> Definition:
    """The definition a command's help describes: the one named so far, else (or if it does not load) the
    built-in lifecycle, as the command itself will say what is wrong with the one named."""
    settings = ctx.find_object(Settings)
    try:
        return CLAIM_LIFECYCLE if settings is None else settings.definition
    except InvalidInput:
        return CLAIM_LIFECYCLE


class _FireCommand(click.Command):
    """`fire`, whose help ends with every trigger it can fire and the --data each takes."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        definition = _help_definition(ctx)
        heading = "Triggers, who may fire them, and their --data fields"
        _write_triggers(formatter, heading, with_filing=False, definition=definition)
        super().format_epilog(ctx, formatter)


class _DiagramCommand(click.Command):
    """`diagram`, whose help ends with the chosen definition's detail views, the names --view takes."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        definition = _help_definition(ctx)
        with formatter.section(f"Views of the {definition.name} definition (for --view)"):
            if definition.views:
                formatter.write_dl((v.name, v.title) for v in definition.views)
            else:
                formatter.write_text("none: it draws the overview only")
        super().format_epilog(ctx, formatter)


@contextmanager
def _progress(length: int, label: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr when it is a terminal; none otherwise."""
    if length < 2 or not sys.stderr.isatty():
        yield lambda _n: None
        return
    with click.progressbar(length=length, label=label, file=sys.stderr) as bar:
        yield bar.update


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_HELP)
@click.version_option(package_name="claimstate")
@_global_options(group=True)
def cli() -> None:
    """claimstate: buyer claims (disputes) as an explicit, declarative state machine, kept in SQLite or
    PostgreSQL."""


def command(
    name: str | None = None,
    *,
    no_now: str | None = None,
    no_db: str | None = None,
    no_definition: str | None = None,
    cls: type[click.Command] = click.Command,
) -> Callable[[Callable[P, R]], click.Command]:
    """A subcommand with the global options, the exit codes in its help, and errors handled.

    `no_now`, `no_db` and `no_definition` say why the command refuses --now, --db or --definition after
    its name, which its help then leaves out: typed there, a global option is used or refused, never
    silently ignored. Before the name (or from the environment) the command accepts them and ignores them.
    """

    def decorate(function: Callable[P, R]) -> click.Command:
        @wraps(function)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            after = _settings().after
            for option, why in (("--now", no_now), ("--db", no_db), ("--definition", no_definition)):
                if why is not None and option in after:
                    _refuse(f"takes no {option}: {why}")
            return function(*args, **kwargs)

        options = (("--now", no_now), ("--db", no_db), ("--definition", no_definition))
        refused = {option for option, why in options if why is not None}
        with_options = _global_options(group=False, hidden=refused)(handles_errors(run))
        return cli.command(name, cls=cls, epilog=EXIT_HELP)(with_options)

    return decorate


@command(no_now="it creates or migrates the database, which holds no times")
def init() -> None:
    """Create the database, or migrate it to this version's schema."""
    with _settings().service(create=True) as service:
        path, version = service.path, service.schema_version
    _emit({"db": path, "schema_version": version}, lambda: f"{path}: claimstate schema {version}")


def _read(path: str, field: str) -> str:
    """A text file, or stdin for -; unreadable or not UTF-8 is invalid input naming the option."""
    try:
        raw = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
        return raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput(f"cannot read {path}: {error}", field=field) from None


def _json_option(value: str | None, path: str | None) -> dict[str, Any] | None:
    if value is not None and path is not None:
        raise InvalidInput("give --data or --data-file, not both", field="data")
    text = value if path is None else _read(path, "--data-file")
    return None if text is None else json_object(text, "data")


# The built-in filing's fields as options of their own (the parameter's name: the field's); any filing
# field, these included, may also come in --data.
_FILING_OPTIONS = {"order": "order_id", "buyer": "buyer_id", "supplier": "supplier_id", "amount": "amount",
                   "currency": "currency", "reason": "reason", "resolution": "resolution",
                   "refund_amount": "refund_amount"}  # fmt: skip


class _FileCommand(click.Command):
    """`file`, whose help ends with the chosen definition's filing fields: --data, or the option naming one."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        definition = _help_definition(ctx)
        options = {field: f"--{name.replace('_', '-')}" for name, field in _FILING_OPTIONS.items()}
        creation = definition.creation
        heading = f"Filing fields of the {definition.name} definition ({creation.trigger}), in --data or by option"
        with formatter.section(heading):
            formatter.write_dl(
                (f"{f.name} ({'required' if f.required else 'optional'}"
                 + (f", or {options[f.name]}" if f.name in options else "") + ")", f.description)
                for f in creation.fields
            )  # fmt: skip
        super().format_epilog(ctx, formatter)


def _filing(options: dict[str, str | None], data_text: str | None, data_file: str | None) -> dict[str, Any]:
    """The filing data: --data (or --data-file) with the filing options given; a missing required field
    that has an option is click's missing option, as when the options were all the command took."""
    ctx = click.get_current_context()
    definition = _settings().definition
    fields = {f.name: f for f in definition.creation.fields}
    data = _json_option(data_text, data_file) or {}
    params = {p.name: p for p in ctx.command.params}
    for name, field in _FILING_OPTIONS.items():
        value = options[name]
        if value is None:
            if field not in data and field in fields and fields[field].required:
                raise click.MissingParameter(ctx=ctx, param=params[name])
            continue
        if field not in fields:
            takes = ", ".join(fields) or "no data"
            raise click.BadParameter(
                f"the {definition.name} definition files claims with no {field} (its filing takes {takes})",
                ctx=ctx, param=params[name],
            )  # fmt: skip
        if field in data:
            raise click.UsageError(f"{field} is given twice: by --{name.replace('_', '-')} and in the data", ctx)
        data[field] = value
    return data


@command("file", cls=_FileCommand)
@click.option("--order", help="The order the claim is about (order_id).")
@click.option("--buyer", help="The buyer's id (buyer_id; the buyer files it).")
@click.option("--supplier", help="The supplier's id (supplier_id).")
@click.option("--amount", help="The order amount, a decimal string like 25.00.")
@click.option("--currency", help="ISO 4217 code, e.g. USD.")
@click.option("--reason", help="What went wrong, in the buyer's words.")
@click.option("--resolution", type=click.Choice(RESOLUTIONS),
              help="What the buyer asks (the built-in lifecycle's choices; another's go in --data).")  # fmt: skip
@click.option("--refund-amount", help="The partial refund asked (refund_amount; partial_refund only).")
@click.option("--data", "data_text", metavar="JSON",
              help="The filing data as a JSON object: any field listed below (a definition's own too).")  # fmt: skip
@click.option(
    "--data-file", type=_Path(dir_okay=False, allow_dash=True), help="Read the data from a file (- for stdin)."
)
@click.option("--key", help="Idempotency key: a retry with it files once.")
def file_claim(
    order: str | None, buyer: str | None, supplier: str | None, amount: str | None, currency: str | None,
    reason: str | None, resolution: str | None, refund_amount: str | None, data_text: str | None,
    data_file: str | None, key: str | None,
) -> None:  # fmt: skip
    """File a claim on an order, as its buyer, with the definition's filing fields (the options, --data, or
    both, each field once); prints the new claim."""
    options = {"order": order, "buyer": buyer, "supplier": supplier, "amount": amount, "currency": currency,
               "reason": reason, "resolution": resolution, "refund_amount": refund_amount}  # fmt: skip
    data = _filing(options, data_text, data_file)
    settings = _settings()
    with settings.service(create=True) as service:
        _show_claim(service.file_claim(data, idempotency_key=key, now=settings.now).claim)


@command(cls=_FireCommand)
@click.argument("claim_id", metavar="CLAIM")
@click.argument("trigger")
@click.option("--actor", required=True, help="Who fires it: buyer:<id>, supplier:<id>, agent:<id> or system.")
@click.option("--data", "data_text", metavar="JSON", help="The trigger's data as a JSON object.")
@click.option(
    "--data-file", type=_Path(dir_okay=False, allow_dash=True), help="Read the data from a file (- for stdin)."
)
@click.option("--key", help="Idempotency key: a retry with it applies once.")
@click.option("--expect-version", type=int, help="Refuse unless the claim is still at this version.")
def fire(
    claim_id: str, trigger: str, actor: str, data_text: str | None, data_file: str | None, key: str | None,
    expect_version: int | None,
) -> None:  # fmt: skip
    """Apply one transition to CLAIM; prints the new claim, or why it was refused."""
    data = _json_option(data_text, data_file)
    settings = _settings()
    with settings.service() as service:
        fired = service.fire(
            claim_id, trigger, actor, data, idempotency_key=key, expected_version=expect_version, now=settings.now
        )
        _show_claim(fired.claim)


@command(no_now="it prints the claim as stored")
@click.argument("claim_id", metavar="CLAIM")
def show(claim_id: str) -> None:
    """Show a claim's current state and details."""
    with _settings().service(read_only=True) as service:
        _show_claim(service.get(claim_id))


@command(no_now="it lists the transitions as recorded, each with its own time")
@click.argument("claim_id", metavar="CLAIM")
def history(claim_id: str) -> None:
    """List every transition of a claim, in order."""
    with _settings().service(read_only=True) as service:
        _show_records(service.history(claim_id))


@command("list", no_now="it lists the claims as stored")
@click.option("--state", help="Only claims in this state.")
@click.option("--buyer", help="Only this buyer's claims.")
@click.option("--supplier", help="Only this supplier's claims.")
@click.option("--order", help="Only claims on this order.")
@click.option("--limit", type=int, default=100, show_default=True, help="At most this many.")
@click.option("--after", metavar="ID", help="Start after this claim id (paging).")
def list_claims(
    state: str | None, buyer: str | None, supplier: str | None, order: str | None, limit: int, after: str | None
) -> None:
    """List claims, oldest first, filtered; printed as they are read, so any --limit keeps memory flat."""
    with _settings().service(read_only=True) as service:
        claims = service.iter_claims(state=state, buyer=buyer, supplier=supplier, order=order, limit=limit, after=after)
        _stream(claims, _CLAIM_HEADERS, _claim_row, Claim.to_dict)


@command()
@click.argument("claim_id", metavar="CLAIM")
@click.option("--actor", required=True, help="Who asks: buyer:<id>, supplier:<id>, agent:<id> or system.")
def can(claim_id: str, actor: str) -> None:
    """List every trigger with allowed or refused for ACTOR now, why not, and the data each needs."""
    settings = _settings()
    with settings.service(read_only=True) as service:
        answers = service.available(claim_id, actor, settings.now)
    rows = [(a.trigger, "allowed" if a.allowed else "refused", "; ".join(r.message for r in a.reasons),
             ", ".join(a.needs)) for a in answers]  # fmt: skip
    _emit([a.to_dict() for a in answers], lambda: _table(rows, ("trigger", "answer", "why not", "needs")))


@command()
def tick() -> None:
    """Fire every deadline that is due now (or at --now), once each; prints what fired."""
    settings = _settings()
    with settings.service() as service, _progress(service.due(settings.now), "tick") as advance:
        fired = service.iter_tick(settings.now, progress=advance)
        _stream(fired, _RECORD_HEADERS, _record_row, TransitionRecord.to_dict, empty="no deadline was due")


@command(no_now="it replays each history at the times recorded")
def verify() -> None:
    """Replay every claim's history and report each stored value that differs (exit 5 when any)."""
    with _settings().service(read_only=True) as service:
        problems = service.verify()
    _show_mismatches(problems)
    if problems:
        claims = len({m.claim_id for m in problems if m.claim_id is not None})
        whole = " (and in the database as a whole)" if any(m.claim_id is None for m in problems) else ""
        _say(f"error: verify found {len(problems)} problem(s) in {claims} claim(s){whole}", err=True)
        sys.exit(EXIT_CODES[StorageError])


@command(no_now="it draws the lifecycle, or a claim as stored", cls=_DiagramCommand)
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)), default="mermaid", show_default=True,
              help="The diagram format.")  # fmt: skip
@click.option("--claim", "claim_id", help="Draw this stored claim's path instead of the lifecycle.")
@click.option("-o", "--output", type=_Path(dir_okay=False, path_type=Path), help="Write here, not to stdout.")
@click.option("--all", "folder", type=_Path(file_okay=False, path_type=Path),
              help=f"Write the lifecycle in every format into this folder (`{REGENERATE}`).")  # fmt: skip
@click.option("--view", metavar="VIEW",
              help="Draw this detail view of the definition (a phase, every arrow of it) instead of the overview;"
              " the views are listed below.")  # fmt: skip
@click.option("--diff", nargs=2, type=_Path(dir_okay=False, exists=True, path_type=Path), metavar="OLD NEW",
              help="What changed between two exported definitions (`model --json`): --format md or html.")  # fmt: skip
def diagram(
    fmt: str,
    claim_id: str | None,
    output: Path | None,
    folder: Path | None,
    view: str | None,
    diff: tuple[Path, Path] | None,
) -> None:
    """Draw the lifecycle, a detail view of it, or one claim's path through it, generated from the model;
    or, for review, what changed between two exported definitions."""
    settings = _settings()
    db_after, json_after = "--db" in settings.after, "--json" in settings.after  # before the name: ignored
    if diff and (claim_id or folder or view or db_after or json_after):
        raise click.UsageError(
            "--diff compares two exported definitions; it takes no --claim, --all, --view, --db or --json"
        )
    if view and (claim_id or folder):
        raise click.UsageError("--view draws one detail view of the lifecycle; it takes no --claim or --all")
    if diff:
        drawn_diff = _diagram_diff(diff, fmt)
        if output is None:
            click.echo(drawn_diff, nl=False)
            return
        write_file(output, drawn_diff)
        _say(str(output))  # a --json before the name is the program's, and --diff has no use for it
        return
    if claim_id is None and db_after:
        _refuse("takes no --db without --claim: the lifecycle is drawn from the definition, not a database")
    if json_after and output is None and folder is None:
        _refuse("takes --json only with -o or --all: without them it prints the drawing itself")
    if view is not None:
        _known_view(settings.definition, view)
    if folder is not None:
        if claim_id is not None or output is not None:
            raise InvalidInput("--all writes the lifecycle in every format; it takes no --claim or -o", field="--all")
        paths = [str(p) for p in Diagrams(settings.definition).write_all(folder)]
        _emit(paths, lambda: "\n".join(paths))
        return
    if claim_id is None:
        drawn = Diagrams(settings.definition, view=view).render(fmt)
    else:
        with settings.service(read_only=True) as service:
            claim, history = service.get(claim_id), service.history(claim_id)
            drawn = Diagrams(settings.definition, claim=claim, history=history).render(fmt)
    if output is None:
        click.echo(drawn, nl=False)  # click writes bytes to the binary stream
        return
    write_file(output, drawn)
    _emit({"path": str(output), "format": fmt}, lambda: str(output))


@command(
    no_now="the definition is the same at any time",
    no_db="it prints the definition and reads no database",
)
@click.option("--export", "path", type=_Path(dir_okay=False, path_type=Path),
              help="Write the definition as JSON (with its fingerprint) to this file, for `diff`.")  # fmt: skip
def model(path: Path | None) -> None:
    """Print the lifecycle definition: states, transitions, guards, actors, deadline windows, each trigger's data,
    and its fingerprint (what claims record they were decided under)."""
    definition = _settings().definition
    data = definition.to_dict()
    if path is not None:
        write_file(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        _emit({"path": str(path), "fingerprint": data["fingerprint"]},
              lambda: f"{path}: definition {data['name']}, fingerprint {data['fingerprint']}")  # fmt: skip
        return

    def human() -> str:
        states = [(s["name"], "final" if s["final"] else "", (s["deadline"] or {}).get("name", ""), s["meaning"])
                  for s in data["states"]]  # fmt: skip
        transitions = [(t["trigger"], ", ".join(t["sources"]) or "(new)", t["dest"], ", ".join(t["actors"]),
                        "; ".join(g["description"] for g in t["guards"])) for t in data["transitions"]]  # fmt: skip
        triggers = click.HelpFormatter()
        _write_triggers(
            triggers, "Triggers, who may fire them, and their data", with_filing=True, definition=definition
        )
        return (f"{data['name']}, fingerprint {data['fingerprint']}\n\n"
                + _table(states, ("state", "final", "deadline", "meaning")) + "\n\n"
                + _table(transitions, ("trigger", "from", "to", "who", "only when")) + "\n\n"
                + triggers.getvalue().rstrip())  # fmt: skip

    _emit(data, human)


@command()
@click.argument("path", default="-", type=_Path(dir_okay=False, allow_dash=True))
@click.option("--atomic", is_flag=True, help="All lines in one transaction: any failure undoes them all.")
@click.option("--keep-going", is_flag=True, help="Run the lines after a failure too (not with --atomic).")
def script(path: str, atomic: bool, keep_going: bool) -> None:
    """Run a JSON Lines file of commands (file, fire, tick, show); - reads stdin. Reports each line."""
    if atomic and keep_going:
        raise click.UsageError("--atomic stops at the first failure and undoes every line; it cannot --keep-going")
    settings = _settings()
    lines = _read(path, "PATH").splitlines()
    with settings.service(create=True) as service, _progress(len(lines), "script") as advance:
        report = run_script(service, lines, atomic=atomic, keep_going=keep_going, now=settings.now, progress=advance)
    for result in report.results:
        if settings.json:
            click.echo(json.dumps({**result.to_dict(), "kept": report.kept and result.ok}))
        elif result.ok:
            done = result.result if isinstance(result.result, dict) else {}
            detail = f" {done['id']} {done['state']} v{done['version']}" if "id" in done else ""
            _say(f"line {result.line}: ok{detail}{'' if report.kept else ' (undone)'}")
        else:
            _say(f"line {result.line}: {result.error}")
    if report.failures:
        first = report.failures[0].error
        assert first is not None
        applied = sum(r.ok for r in report.results)
        not_run = sum(1 for n, text in enumerate(lines, 1) if text.strip() and n > report.results[-1].line)
        if not report.kept:
            outcome = "nothing was kept (atomic)"
        else:
            outcome = f"{applied} line(s) applied and kept" + (f", {not_run} not run" if not_run else "")
        _say(f"error: {len(report.failures)} line(s) failed, first line {report.failures[0].line}; {outcome}", err=True)
        sys.exit(exit_code(first))


@command(no_now="leases on the feed run on the wall clock")
@click.option("--consumer", metavar="NAME", help="Only the events NAME has not acknowledged (kept per name).")
@click.option("--ack", is_flag=True, help="Take them as a worker of NAME, acknowledging each batch once printed.")
@click.option("--follow", is_flag=True, help="Keep printing new events as they come (needs --ack); Ctrl-C stops.")
@click.option("--poll", type=click.FloatRange(min=0.01), default=1.0, show_default=True,
              help="Seconds between looks for new events, with --follow.")  # fmt: skip
@click.option("--lease", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="With --ack: seconds a batch stays this worker's (a killed one's return then).")  # fmt: skip
def events(consumer: str | None, ack: bool, follow: bool, poll: float, lease: float) -> None:
    """Print transition events as JSON Lines, one per line, oldest first: every retained one, or with
    --consumer the ones NAME has not acknowledged. With --ack each batch is acknowledged only once it was
    written out (to the terminal, a file or a pipe's buffer), so a reader gets every event at least once:
    dedupe on claim_id and seq."""
    if ack and consumer is None:
        raise click.UsageError("--ack needs --consumer NAME: progress is kept per consumer")
    if follow and not ack:
        raise click.UsageError("--follow needs --consumer NAME and --ack: unacknowledged events would print again")
    ctx = click.get_current_context()
    for option, needs, given in (("--lease", "--ack", ack), ("--poll", "--follow", follow)):
        if not given and ctx.get_parameter_source(option.strip("-")) is ParameterSource.COMMANDLINE:
            raise click.UsageError(f"{option} goes with {needs}, which was not given")
    settings = _settings()
    if not ack:
        with settings.service(read_only=True) as service:
            after = 0
            while page := service.feed(consumer, after=after, limit=500):
                if not _printed(page):
                    return
                after = page[-1].position
        return
    assert consumer is not None
    with settings.service(migrating=True) as service:  # it fires nothing: a change awaiting its plan stops no feed
        if follow:
            stop = threading.Event()
            with _stopped_by_signals(stop):
                service.consume(consumer, partial(_print_event, stop), stop=stop, poll=poll, lease=lease)
            return
        while batch := service.events(consumer, limit=500, lease=lease):
            if not _printed(batch):
                return
            service.ack(consumer, batch[-1])
        left = bool(service.feed(consumer, limit=1))
    if left:
        _say(
            f"note: events of {consumer} remain unacknowledged: leased to another worker (or set aside after a"
            " failure) until its lease ends, or written meanwhile; run again to take them",
            err=True,
        )


def _known_view(definition: Definition, view: str) -> None:
    """A usage error on --view unless `view` names one of `definition`'s detail views, listing them."""
    names = [v.name for v in definition.views]
    if view not in names:
        listed = f"its views are {', '.join(names)}" if names else "it has no detail views"
        raise click.BadParameter(
            f"{view!r} is not a view of the {definition.name} definition; {listed}", param_hint="'--view'"
        )


def _diagram_diff(paths: tuple[Path, Path], fmt: str) -> str:
    """The review of a change from one exported definition to another, in Markdown or HTML."""
    if click.get_current_context().get_parameter_source("fmt") is ParameterSource.DEFAULT:
        fmt = "md"
    if fmt not in ("md", "html"):
        raise InvalidInput(f"--diff draws md or html, not {fmt}", field="--format")
    old, new = (_export_file(path, f"--diff {which}") for path, which in zip(paths, ("OLD", "NEW"), strict=True))
    return diff_markdown(old, new) if fmt == "md" else diff_html(old, new)


def _export_file(path: Path, field: str) -> dict[str, Any]:
    """The JSON object in `path` (`_json.read_outside`), within an export's bounds (`within_export_bounds`)."""
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput(f"cannot read {path}: {error}", field=field) from None
    data = read_outside(text, field)
    if not isinstance(data, dict):
        raise InvalidInput(f"{path} holds no exported definition (not a JSON object)", field=field)
    within_export_bounds(data, field)
    return data


def _exported(path: Path, field: str) -> dict[str, Any]:
    """An exported definition (`model --export`) read from `path`, its rules checked readable."""
    data = _export_file(path, field)
    try:
        fingerprint_of(data)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise InvalidInput(
            f"{path} is not an exported definition (`claimstate model --export`): its states and transitions"
            " do not read",
            field=field,
        ) from None
    return data


def _printed(events: Sequence[Event]) -> bool:
    """Write the events out; False once nobody reads them (a closed pipe): then nothing more is printed
    or acknowledged, and the command ends quietly with exit 0."""
    try:
        for event in events:
            click.echo(json_visible(json.dumps(event.to_dict(), ensure_ascii=False)))
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error as Python exits
        return False
    return True


def _print_event(stop: threading.Event, event: Event) -> None:
    """Write one event out; once nobody reads (a closed pipe), stop without acknowledging it."""
    if not _printed([event]):
        stop.set()
        raise BrokenPipeError("the reader of the events went away")


@contextmanager
def _stopped_by_signals(stop: threading.Event) -> Iterator[None]:
    """Ctrl-C and SIGTERM set `stop`, so a follower finishes its batch's acknowledgement and exits 0."""
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@command(
    no_db="it explores the definition, not a database",
    no_now="it explores every time that matters: before and at each deadline",
)
@click.option("--stories", "folder", type=_Path(file_okay=False, path_type=Path),
              help="Also write the stories page (stories.md, stories.html) into this folder.")  # fmt: skip
@click.option("--scripts", type=_Path(file_okay=False, path_type=Path),
              help="Also write each scenario (the shortest path into every state and through every transition)"
              " as a JSON Lines file `claimstate script` runs.")  # fmt: skip
def check(folder: Path | None, scripts: Path | None) -> None:
    """Explore every reachable situation of the lifecycle and check its rules; exit 1 if one fails,
    printing the shortest path that breaks it, or if a trigger could not be tried for want of example data.

    It fires each trigger with the same sample data as the library's `claimstate.check(definition)`."""
    for folder_given in (scripts, folder):  # before the exploration, so a place that cannot be written fails fast
        if folder_given is not None:
            make_folder(folder_given)
    report = run_check(_settings().definition)
    if scripts is not None:
        for number, scenario in enumerate(scenarios(report.exploration), 1):
            write_file(scripts / f"scenario-{number:02d}-{scenario.ends_in}.jsonl", scenario.script())
    if folder is not None:
        write_file(folder / "stories.md", stories_markdown(report.exploration))
        write_file(folder / "stories.html", stories_html(report.exploration))

    def human() -> str:
        lines = [
            f"explored {report.situations} situations and {report.transitions} transitions in"
            f" {report.seconds:.1f} s" + ("" if report.complete else " (stopped at the bound: not complete)")
        ]
        for trigger, fields in report.untried.items():
            lines.append(f"NOT TRIED  {trigger}: no example gives its {', '.join(fields)}")
        for result in report.results:
            lines.append(f"{'held' if result.held else 'VIOLATED'}  {result.prop.name}: {result.prop.description}")
            if result.violation is not None:
                lines.append(f"    {result.violation.reason}")
                for n, s in enumerate(result.path, 1):
                    source = s.before.state if s.before else "(new)"
                    lines.append(
                        f"    {n}. {s.actor} fires {s.trigger} at {s.at:%d %b %H:%M}: {source} -> {s.after.state}"
                    )
        return "\n".join(lines)

    _emit(report.to_dict(), human)
    if not report.held:
        sys.exit(1)


@command(
    "migrate-store",
    no_db="it names both databases as arguments",
    no_now="it copies the claims as stored",
)
@click.argument("source", type=_Path(dir_okay=False, readable=False))
@click.argument("target", type=_Path(dir_okay=False, readable=False))
def migrate_store(source: str, target: str) -> None:
    """Copy every claim and its whole history from SOURCE (a SQLite file) into the empty TARGET (a
    postgresql:// URL, or another file), then verify TARGET (exit 5 if it finds anything)."""
    definition = _settings().definition
    with (
        _open(source, read_only=True, definition=definition) as old,
        _open(target, create=True, definition=definition, migrating=True) as new,
    ):
        moved = copy_claims(old, new)
    done = (
        f"copied {moved.claims} claim(s), {moved.transitions} history row(s) and {moved.events} event(s) from"
        f" {old.path} to {new.path}"
    )
    _emit(
        {"source": old.path, "target": new.path, "claims": moved.claims, "transitions": moved.transitions,
         "events": moved.events, "mismatches": [m.to_dict() for m in moved.mismatches]},
        lambda: done + ("; verify: clean" if not moved.mismatches else ""),
    )  # fmt: skip
    if moved.mismatches:
        _show_mismatches(moved.mismatches)
        _say(f"error: verify found {len(moved.mismatches)} problem(s) in {new.path}", err=True)
        sys.exit(EXIT_CODES[StorageError])


@command()
@click.option("--plan", "plan_path", required=True, type=_Path(dir_okay=False, allow_dash=True),
              help="The plan, a JSON file (- reads stdin): the states to map, and the deadlines to keep or"
              " recompute.")  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Only print what would move; write nothing.")
def migrate(plan_path: str, dry_run: bool) -> None:
    """Move the open claims decided under another lifecycle definition onto this one (--definition), as the
    plan says: checked whole first (exit 2 naming every problem, nothing written), then one transaction."""
    settings = _settings()
    plan = json_object(_read(plan_path, "--plan"), "plan")
    with settings.service(read_only=dry_run, migrating=not dry_run) as service:
        migration = service.migrate(plan, dry_run=dry_run, now=settings.now)

    def human() -> str:
        verb = "would move" if dry_run else "moved"
        head = f"{verb} {len(migration.moves)} open claim(s) onto definition {short(migration.definition)}"
        if not migration.moves:
            return head + ": nothing to move"
        rows = [(m.claim_id, m.source, m.dest, _when(m.due_before), _when(m.due_after), m.how) for m in migration.moves]
        return head + "\n" + _table(rows, ("claim", "from", "to", "deadline before", "deadline after", "deadline"))

    _emit(migration.to_dict(), human)


def _when(at: datetime | None) -> str:
    return "-" if at is None else to_iso(at)


@command(
    no_now="it compares two definitions, and counts claims as they are now",
    no_definition="it compares the two exported definitions it is given",
)
@click.argument("old_path", metavar="OLD.json", type=_Path(dir_okay=False, exists=True, path_type=Path))
@click.argument("new_path", metavar="NEW.json", type=_Path(dir_okay=False, exists=True, path_type=Path))
def diff(old_path: Path, new_path: Path) -> None:
    """What changed from one exported definition (`model --export`) to another: each state and transition
    added, removed or changed; with --db, how many open claims decided under OLD each change touches."""
    settings = _settings()
    old, new = _exported(old_path, "OLD.json"), _exported(new_path, "NEW.json")
    found = changes(old, new)
    counts: dict[str, int] | None = None
    if settings.db_given or os.environ.get("CLAIMSTATE_DB"):
        with settings.service(read_only=True) as service:
            counts = service.open_claims(fingerprint_of(old))
    listed = [
        {**attrs.asdict(c), "details": list(c.details), "touches": list(c.touches),
         **({} if counts is None else {"open_claims": sum(counts.get(s, 0) for s in c.touches)})}
        for c in found
    ]  # fmt: skip

    def human() -> str:
        if not found:
            return "no change to states or transitions"
        lines = []
        for change, item in zip(found, listed, strict=True):
            touched = "" if counts is None else f"  [{item['open_claims']} open claim(s)]"
            lines.append(f"{change.kind} {change.what} {change.name}{touched}")
            lines += [f"    {detail}" for detail in change.details]
        return "\n".join(lines)

    _emit(listed, human)


@command(no_definition="the demo walks the built-in lifecycle's own stories")
@click.option(
    "--dir",
    "folder",
    type=_Path(file_okay=False, path_type=Path),
    default=Path("claimstate-demo"),
    show_default=True,
    help="Folder for the demo's database and diagrams, apart from real claims.",
)
@click.option("--reuse", is_flag=True,
              help="Walk into the database even if it holds claims other than the demo's own.")  # fmt: skip
def demo(folder: Path, reuse: bool) -> None:
    """Walk demo claims through the lifecycle's main paths (from --now, if given); print histories; write diagrams.

    The claims go into DIR/claims.db, or into the database --db names when it is typed (a file, or a
    PostgreSQL database made with `init`; $CLAIMSTATE_DB is never used, so demo claims never land in a real
    database unasked).
    A database that holds other claims than the demo's own is refused unless --reuse is given, and
    DIR/claims.db is never opened through a symlink.
    """
    settings = _settings()
    make_folder(folder)
    target: str | Path = settings.db if settings.db_given else folder / "claims.db"
    field = "--db" if settings.db_given else "--dir"
    if not settings.db_given and (folder / "claims.db").is_symlink():
        raise InvalidInput(f"{target} is a symlink: the demo walks into a database of its own, never through a link",
                           field=field)  # fmt: skip
    if not reuse and (is_postgres(str(target)) or Path(target).exists()):
        # looked at read-only first, so a refused database is left untouched (a server's is never created or
        # migrated by the demo: `init` it first)
        with _open(str(target), read_only=True) as existing:
            _only_demo_claims(existing, field)
    with ClaimService(target) as service, _progress(len(SCENARIOS), "demo") as advance:
        walked = []
        for walked_one in walk(service, start=settings.now or DEMO_START):
            walked.append(walked_one)
            advance(1)
        pictures = folder / "diagrams"
        try:
            written = Diagrams().write_all(pictures)
        except DiagramError as error:
            written = sorted(pictures.iterdir())
            _say(f"note: {error}", err=True)
        for _, claim, claim_history in walked:
            pages = Diagrams(claim=claim, history=claim_history)
            written.append(write_file(pictures / f"claim-{claim.id}.md", pages.markdown()))
            written.append(write_file(pictures / f"claim-{claim.id}.html", pages.html()))
        problems = service.verify()
    if settings.json:
        claims = [{"title": t, "claim": c.to_dict(), "history": [r.to_dict() for r in h]} for t, c, h in walked]
        click.echo(json.dumps({"db": str(service.path), "diagrams": [str(p) for p in written], "claims": claims,
                               "verify": [m.to_dict() for m in problems]}, indent=2))  # fmt: skip
        return
    _say(f"claimstate demo: {len(walked)} claims walked through the buyer-claim lifecycle")
    for title, claim, claim_history in walked:
        refund = "none" if claim.refund is None else claim.refund.format()
        _say(f"\n{claim.id}: {title}\n  final state {claim.state}, refund {refund}, version {claim.version}")
        for line in format_history(claim_history):
            _say(f"  {line}")
    _say(f"\ndatabase: {service.path} (verify: {'clean' if not problems else f'{len(problems)} problem(s)'})")
    _say(f"  look inside: claimstate --db {service.path} list")
    _say(
        f"diagrams: {pictures}/ (lifecycle.html to open in a browser, the phases in lifecycle-<phase>.html,"
        " each claim's story in claim-<id>.html)"
    )


def _only_demo_claims(service: ClaimService, field: str) -> None:
    """InvalidInput unless every claim in the database is one the demo files (an earlier run's)."""
    other = next((c for c in service.iter_claims() if not is_demo(c)), None)
    if other is not None:
        raise InvalidInput(
            f"{service.path} holds claims that are not the demo's (such as {other.id}): the demo walks into a"
            " database of its own; name another, or give --reuse to add the demo's claims to these",
            field=field,
        )


def main() -> None:
    # The PostgreSQL pool's own notes (a dropped connection it replaced) are for services' logs, not for
    # the terminal of a person scripting claims: the command reports what matters itself.
    logging.getLogger("psycopg").setLevel(logging.ERROR)
    cli(prog_name="claimstate")
