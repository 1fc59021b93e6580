"""The commands that act on claims: file, fire, show, history, list, can, tick and script."""

from __future__ import annotations

import json
import sys
import threading
from datetime import timedelta
from typing import Any

import click

from claimstate import (
    Claim,
    InvalidInput,
    TransitionRecord,
    run_script,
    run_ticker,
)
from claimstate.cli._group import command
from claimstate.cli._options import (
    Duration,
    NonEmptyPath,
    exit_code,
    get_settings,
    read_text,
    say,
    stopped_by_signals,
)
from claimstate.cli._output import (
    CLAIM_HEADERS,
    RECORD_HEADERS,
    claim_row,
    emit,
    help_definition,
    progress,
    record_row,
    show_claim,
    show_records,
    stream,
    table,
    write_triggers,
)
from claimstate.scripting import read_json_object


def _json_option(value: str | None, path: str | None) -> dict[str, Any] | None:
    if value is not None and path is not None:
        raise InvalidInput("give --data or --data-file, not both", field="data")
    text = value if path is None else read_text(path, "--data-file")
    return None if text is None else read_json_object(text, "data")


# The built-in filing's fields as options of their own (the parameter's name: the field's); any filing
# field, these included, may also come in --data.
_FILING_OPTIONS = {"order": "order_id", "buyer": "buyer_id", "supplier": "supplier_id", "amount": "amount",
                   "currency": "currency", "reason": "reason", "resolution": "resolution",
                   "refund_amount": "refund_amount"}  # fmt: skip


class _FileCommand(click.Command):
    """`file`, whose help ends with the chosen definition's filing fields: --data, or the option naming one."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        definition = help_definition(ctx)
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
    definition = get_settings().definition
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


class _FireCommand(click.Command):
    """`fire`, whose help ends with every trigger it can fire and the --data each takes."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        definition = help_definition(ctx)
        heading = "Triggers, who may fire them, and their --data fields"
        write_triggers(formatter, heading, with_filing=False, definition=definition)
        super().format_epilog(ctx, formatter)


@command("file", cls=_FileCommand)
@click.option("--order", help="The order the claim is about (order_id).")
@click.option("--buyer", help="The buyer's id (buyer_id; the buyer files it).")
@click.option("--supplier", help="The supplier's id (supplier_id).")
@click.option("--amount", help="The order amount, a decimal string like 25.00.")
@click.option("--currency", help="ISO 4217 code, e.g. USD.")
@click.option("--reason", help="What went wrong, in the buyer's words.")
@click.option("--resolution", help="What the buyer asks (resolution; the definition's filing names the choices).")
@click.option("--refund-amount", help="The partial refund asked (refund_amount; partial_refund only).")
@click.option("--data", "data_text", metavar="JSON",
              help="The filing data as a JSON object: any field listed below (a definition's own too).")  # fmt: skip
@click.option(
    "--data-file", type=NonEmptyPath(dir_okay=False, allow_dash=True), help="Read the data from a file (- for stdin)."
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
    settings = get_settings()
    with settings.service(create=True) as service:
        show_claim(service.file_claim(data, idempotency_key=key, now=settings.now).claim)


@command(cls=_FireCommand)
@click.argument("claim_id", metavar="CLAIM")
@click.argument("trigger")
@click.option("--actor", required=True, help="Who fires it: buyer:<id>, supplier:<id>, agent:<id> or system.")
@click.option("--data", "data_text", metavar="JSON", help="The trigger's data as a JSON object.")
@click.option(
    "--data-file", type=NonEmptyPath(dir_okay=False, allow_dash=True), help="Read the data from a file (- for stdin)."
)
@click.option("--key", help="Idempotency key: a retry with it applies once.")
@click.option("--expect-version", type=int, help="Refuse unless the claim is still at this version.")
def fire(
    claim_id: str, trigger: str, actor: str, data_text: str | None, data_file: str | None, key: str | None,
    expect_version: int | None,
) -> None:  # fmt: skip
    """Apply one transition to CLAIM; prints the new claim, or why it was refused."""
    data = _json_option(data_text, data_file)
    settings = get_settings()
    with settings.service() as service:
        fired = service.fire(
            claim_id, trigger, actor, data, idempotency_key=key, expected_version=expect_version, now=settings.now
        )
        show_claim(fired.claim)


@command(no_now="it prints the claim as stored")
@click.argument("claim_id", metavar="CLAIM")
def show(claim_id: str) -> None:
    """Show a claim's current state and details."""
    with get_settings().service(read_only=True) as service:
        show_claim(service.get(claim_id))


@command(no_now="it lists the transitions as recorded, each with its own time")
@click.argument("claim_id", metavar="CLAIM")
def history(claim_id: str) -> None:
    """List every transition of a claim, in order."""
    with get_settings().service(read_only=True) as service:
        show_records(service.history(claim_id))


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
    with get_settings().service(read_only=True) as service:
        claims = service.iter_claims(state=state, buyer=buyer, supplier=supplier, order=order, limit=limit, after=after)
        stream(claims, CLAIM_HEADERS, claim_row, Claim.to_dict)


@command()
@click.argument("claim_id", metavar="CLAIM")
@click.option("--actor", required=True, help="Who asks: buyer:<id>, supplier:<id>, agent:<id> or system.")
def can(claim_id: str, actor: str) -> None:
    """List every trigger with allowed or refused for ACTOR now, why not, and the data each needs."""
    settings = get_settings()
    with settings.service(read_only=True) as service:
        answers = service.available(claim_id, actor, settings.now)
    rows = [(a.trigger, "allowed" if a.allowed else "refused", "; ".join(r.message for r in a.reasons),
             ", ".join(a.needs)) for a in answers]  # fmt: skip
    emit([a.to_dict() for a in answers], lambda: table(rows, ("trigger", "answer", "why not", "needs")))


@command()
@click.option("--every", type=Duration(least=0.001), metavar="DURATION",
              help="Run as a tick runner: fire what is due every DURATION (5, 5s, 500ms, 1m) until SIGTERM or"
              " Ctrl-C, which stop it between deadlines; records a heartbeat per round (see stats).")  # fmt: skip
@click.option("--name", metavar="NAME", help="With --every: the runner's name in its heartbeat (default host:pid:id).")
def tick(every: timedelta | None, name: str | None) -> None:
    """Fire every deadline that is due now (or at --now), once each; prints what fired. With --every, keep
    firing them on the clock until stopped, then print how many fired (exit 0 after a clean stop)."""
    settings = get_settings()
    if every is None:
        if name is not None:
            raise click.UsageError("--name goes with --every, which was not given")
        _tick_once()
        return
    if settings.now is not None:
        raise click.UsageError("--every fires on the clock: it takes no --now")
    stop = threading.Event()
    with settings.service() as service, stopped_by_signals(stop):
        fired = run_ticker(service, every.total_seconds(), stop, name=name)
    emit({"fired": fired, "stopped": True}, lambda: f"tick runner stopped: fired {fired} deadline(s)")


def _tick_once() -> None:
    settings = get_settings()
    with settings.service() as service, progress(service.due(settings.now), "tick") as advance:
        fired = service.iter_tick(settings.now, progress=advance)
        stream(fired, RECORD_HEADERS, record_row, TransitionRecord.to_dict, empty="no deadline was due")


@command()
@click.argument("path", default="-", type=NonEmptyPath(dir_okay=False, allow_dash=True))
@click.option("--atomic", is_flag=True, help="All lines in one transaction: any failure undoes them all.")
@click.option("--keep-going", is_flag=True, help="Run the lines after a failure too (not with --atomic).")
def script(path: str, atomic: bool, keep_going: bool) -> None:
    """Run a JSON Lines file of commands (file, fire, tick, show); - reads stdin. Reports each line."""
    if atomic and keep_going:
        raise click.UsageError("--atomic stops at the first failure and undoes every line; it cannot --keep-going")
    settings = get_settings()
    lines = read_text(path, "PATH").splitlines()
    with settings.service(create=True) as service, progress(len(lines), "script") as advance:
        report = run_script(service, lines, atomic=atomic, keep_going=keep_going, now=settings.now, progress=advance)
    for result in report.results:
        if settings.json:
            click.echo(json.dumps({**result.to_dict(), "kept": report.kept and result.ok}))
        elif result.ok:
            done = result.result if isinstance(result.result, dict) else {}
            detail = f" {done['id']} {done['state']} v{done['version']}" if "id" in done else ""
            say(f"line {result.line}: ok{detail}{'' if report.kept else ' (undone)'}")
        else:
            say(f"line {result.line}: {result.error}")
    if report.failures:
        first = report.failures[0].error
        assert first is not None
        applied = sum(r.ok for r in report.results)
        not_run = sum(1 for n, text in enumerate(lines, 1) if text.strip() and n > report.results[-1].line)
        if not report.kept:
            outcome = "nothing was kept (atomic)"
        else:
            outcome = f"{applied} line(s) applied and kept" + (f", {not_run} not run" if not_run else "")
        say(f"error: {len(report.failures)} line(s) failed, first line {report.failures[0].line}; {outcome}", err=True)
        sys.exit(exit_code(first))
