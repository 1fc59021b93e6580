"""What the commands print: aligned tables or JSON (`--json`), listings streamed a page at a time, trigger help."""

from __future__ import annotations

import itertools
import json
import sys
import textwrap
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import attrs
import click

from claimstate import (
    CLAIM_LIFECYCLE,
    Claim,
    ClaimStateError,
    InvalidInput,
    Mismatch,
    TransitionRecord,
)
from claimstate.cli._options import Settings, get_settings, say
from claimstate.definition import Definition
from claimstate.scripting import format_time, visible_text

T = TypeVar("T")


def table(rows: Sequence[Sequence[object]], headers: Sequence[str]) -> str:
    """Aligned columns with a header line, each cell on one line (its line ends shown as ``\\n``)."""
    cells = [[str(h) for h in headers], *[["-" if c is None else visible_text(str(c)) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells)


def emit(data: Any, human: Callable[[], str]) -> None:
    if get_settings().json:
        click.echo(json.dumps(data, indent=2))
    else:
        say(human())


def show_claim(claim: Claim) -> None:
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
        return table(rows, ("field", "value"))

    emit(data, human)


RECORD_HEADERS = ("claim", "seq", "at", "trigger", "from", "to", "actor")


def record_row(r: TransitionRecord) -> tuple[object, ...]:
    return r.claim_id, r.seq, format_time(r.at), r.trigger, r.source, r.dest, str(r.actor)


def show_records(records: Sequence[TransitionRecord], *, empty: str = "no transitions") -> None:
    rows = [record_row(r) for r in records]
    emit([r.to_dict() for r in records], lambda: table(rows, RECORD_HEADERS) if rows else empty)


def claim_row(c: Claim) -> tuple[object, ...]:
    return c.id, c.state, c.version, c.order_id, c.buyer_id, c.supplier_id, c.amount.format()


CLAIM_HEADERS = ("id", "state", "version", "order", "buyer", "supplier", "amount")


def stream(
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

    if get_settings().json:
        opened = False
        for item in reading():
            text = textwrap.indent(json.dumps(to_dict(item), indent=2), "  ")
            click.echo((",\n" if opened else "[\n") + text, nl=False)
            opened = True
        click.echo("\n]" if opened else "[]")
    else:
        widths = [len(h) for h in headers]
        rows = ([visible_text("-" if c is None else str(c)) for c in row(item)] for item in reading())
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


def show_mismatches(problems: Sequence[Mismatch]) -> None:
    """One line per differing value (stored, then expected, as JSON), and each problem that has none."""

    def human() -> str:
        if not problems:
            return "verify: clean"
        rows = [(m.claim_id, d.field, json.dumps(d.stored), json.dumps(d.expected))
                for m in problems for d in m.differences]  # fmt: skip
        lines = [table(rows, ("claim", "field", "stored", "expected"))] if rows else []
        plain = [f"{m.claim_id or 'database'}: {m.problem}" for m in problems if not m.differences]
        return "\n".join([*lines, *plain])

    emit([m.to_dict() for m in problems], human)


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


def write_triggers(
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


def help_definition(ctx: click.Context) -> Definition:
    """The definition a command's help describes: the one named so far, else (or if it does not load) the
    built-in lifecycle, as the command itself will say what is wrong with the one named."""
    settings = ctx.find_object(Settings)
    try:
        return CLAIM_LIFECYCLE if settings is None else settings.definition
    except InvalidInput:
        return CLAIM_LIFECYCLE


@contextmanager
def progress(length: int, label: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr when it is a terminal; none otherwise."""
    if length < 2 or not sys.stderr.isatty():
        yield lambda _n: None
        return
    with click.progressbar(length=length, label=label, file=sys.stderr) as bar:
        yield bar.update
