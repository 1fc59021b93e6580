"""The commands that act on the lifecycle definition: model, diagram, diff, check and demo."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import attrs
import click
from click.core import ParameterSource

from claimstate import (
    ClaimService,
    DiagramError,
    Diagrams,
    InvalidInput,
    Migration,
    PlanRefused,
)
from claimstate import check as run_check
from claimstate.cli._group import command
from claimstate.cli._options import (
    NonEmptyPath,
    get_settings,
    open_service,
    read_text,
    refuse,
    say,
)
from claimstate.cli._output import (
    emit,
    help_definition,
    progress,
    table,
    write_triggers,
)
from claimstate.definition import Definition, fingerprint_of, load_definition, read_export, short_fingerprint
from claimstate.http import openapi
from claimstate.scripting import (
    DEMO_TITLES,
    format_history,
    is_demo_claim,
    is_postgres,
    make_folder,
    read_json_object,
    visible_text,
    walk_demo,
    write_file,
)


class _DiagramCommand(click.Command):
    """`diagram`, whose help ends with the chosen definition's detail views, the names --view takes."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        definition = help_definition(ctx)
        with formatter.section(f"Views of the {definition.name} definition (for --view)"):
            if definition.views:
                formatter.write_dl((v.name, v.title) for v in definition.views)
            else:
                formatter.write_text("none: it draws the overview only")
        super().format_epilog(ctx, formatter)


@command(no_now="it draws the lifecycle, or a claim as stored", cls=_DiagramCommand)
@click.option("--format", "fmt", type=click.Choice(list(Diagrams.FORMATS)), default="mermaid", show_default=True,
              help="The diagram format.")  # fmt: skip
@click.option("--claim", "claim_id", help="Draw this stored claim's path instead of the lifecycle.")
@click.option("-o", "--output", type=NonEmptyPath(dir_okay=False, path_type=Path), help="Write here, not to stdout.")
@click.option("--all", "folder", type=NonEmptyPath(file_okay=False, path_type=Path),
              help=f"Write the lifecycle in every format into this folder (`{Diagrams.REGENERATE}`).")  # fmt: skip
@click.option("--view", metavar="VIEW",
              help="Draw this detail view of the definition (a phase, every arrow of it) instead of the overview;"
              " the views are listed below.")  # fmt: skip
@click.option("--diff", nargs=2, type=NonEmptyPath(dir_okay=False, exists=True, path_type=Path), metavar="OLD NEW",
              help="Deprecated, gone in the next release: `claimstate diff OLD NEW --format md|html`.")  # fmt: skip
def diagram(
    fmt: str,
    claim_id: str | None,
    output: Path | None,
    folder: Path | None,
    view: str | None,
    diff: tuple[Path, Path] | None,
) -> None:
    """Draw the lifecycle, a detail view of it, or one claim's path through it, generated from the model.
    (What changed between two exported definitions is `claimstate diff`.)"""
    settings = get_settings()
    db_after, json_after = "--db" in settings.after, "--json" in settings.after  # before the name: ignored
    if diff:
        _deprecated_diff(diff, fmt, output, alone=not (claim_id or folder or view or db_after or json_after))
        return
    if view and (claim_id or folder):
        raise click.UsageError("--view draws one detail view of the lifecycle; it takes no --claim or --all")
    if claim_id is None and db_after:
        refuse("takes no --db without --claim: the lifecycle is drawn from the definition, not a database")
    if json_after and output is None and folder is None:
        refuse("takes --json only with -o or --all: without them it prints the drawing itself")
    if view is not None:
        _known_view(settings.definition, view)
    if folder is not None:
        if claim_id is not None or output is not None:
            raise InvalidInput("--all writes the lifecycle in every format; it takes no --claim or -o", field="--all")
        paths = [str(p) for p in Diagrams(settings.definition).write_all(folder)]
        emit(paths, lambda: "\n".join(paths))
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
    emit({"path": str(output), "format": fmt}, lambda: str(output))


@command(
    no_now="the definition is the same at any time",
    no_db="it prints the definition and reads no database",
)
@click.option(
    "--export",
    "path",
    type=NonEmptyPath(dir_okay=False, path_type=Path),
    help="Write the definition as JSON (with its fingerprint) to this file, for `diff`.",
)
@click.option(
    "--openapi",
    "api_path",
    type=NonEmptyPath(dir_okay=False, path_type=Path),
    help="Write the HTTP API's OpenAPI document (every trigger's route and data schema) to this file.",
)
def model(path: Path | None, api_path: Path | None) -> None:  # fmt: skip
    """Print the lifecycle definition: states, transitions, guards, actors, deadline windows, each trigger's data,
    and its fingerprint (what claims record they were decided under); with --json, also the JSON Schema of
    each trigger's data."""
    definition = get_settings().definition
    data = definition.to_dict()
    if path is not None and api_path is not None:
        refuse("takes --export or --openapi, not both")
    if api_path is not None:
        write_file(api_path, json.dumps(openapi(definition), indent=2, ensure_ascii=False) + "\n")
        emit({"path": str(api_path), "fingerprint": data["fingerprint"]},
             lambda: f"{api_path}: the OpenAPI document of definition {data['name']}")  # fmt: skip
        return
    if path is not None:
        write_file(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        emit({"path": str(path), "fingerprint": data["fingerprint"]},
              lambda: f"{path}: definition {data['name']}, fingerprint {data['fingerprint']}")  # fmt: skip
        return

    def human() -> str:
        states = [(s["name"], "final" if s["final"] else "", (s["deadline"] or {}).get("name", ""), s["meaning"])
                  for s in data["states"]]  # fmt: skip
        transitions = [(t["trigger"], ", ".join(t["sources"]) or "(new)", t["dest"], ", ".join(t["actors"]),
                        "; ".join(g["description"] for g in t["guards"])) for t in data["transitions"]]  # fmt: skip
        triggers = click.HelpFormatter()
        write_triggers(triggers, "Triggers, who may fire them, and their data", with_filing=True, definition=definition)
        return (f"{data['name']}, fingerprint {data['fingerprint']}\n\n"
                + table(states, ("state", "final", "deadline", "meaning")) + "\n\n"
                + table(transitions, ("trigger", "from", "to", "who", "only when")) + "\n\n"
                + triggers.getvalue().rstrip())  # fmt: skip

    emit({**data, "json_schema": definition.json_schema()}, human)


def _known_view(definition: Definition, view: str) -> None:
    """A usage error on --view unless `view` names one of `definition`'s detail views, listing them."""
    names = [v.name for v in definition.views]
    if view not in names:
        listed = f"its views are {', '.join(names)}" if names else "it has no detail views"
        raise click.BadParameter(
            f"{view!r} is not a view of the {definition.name} definition; {listed}", param_hint="'--view'"
        )


def _deprecated_diff(paths: tuple[Path, Path], fmt: str, output: Path | None, *, alone: bool) -> None:
    """`diagram --diff OLD NEW`, kept for one release: one line on stderr naming `claimstate diff --format ...`,
    which replaces it, then what it always did (`alone`: given no --claim, --all, --view, or --db or --json after
    the name)."""
    shown = "md" if click.get_current_context().get_parameter_source("fmt") is ParameterSource.DEFAULT else fmt
    shown = shown if shown in ("md", "html") else "md|html"
    say(f"warning: `diagram --diff` is deprecated and goes in the next release; use `claimstate diff --format {shown}"
        " OLD NEW`", err=True)  # fmt: skip
    if not alone:
        raise click.UsageError(
            "--diff compares two exported definitions; it takes no --claim, --all, --view, --db or --json"
        )
    drawn = _diagram_diff(paths, fmt)
    if output is None:
        click.echo(drawn, nl=False)
        return
    write_file(output, drawn)
    say(str(output))  # a --json before the name is the program's, and --diff has no use for it


def _diagram_diff(paths: tuple[Path, Path], fmt: str) -> str:
    """The review of a change from one exported definition to another, in Markdown or HTML (`diagram --diff`)."""
    if click.get_current_context().get_parameter_source("fmt") is ParameterSource.DEFAULT:
        fmt = "md"
    if fmt not in ("md", "html"):
        raise InvalidInput(f"--diff draws md or html, not {fmt}", field="--format")
    old, new = (read_export(path, f"--diff {which}") for path, which in zip(paths, ("OLD", "NEW"), strict=True))
    return Diagrams.diff_markdown(old, new) if fmt == "md" else Diagrams.diff_html(old, new)


def _exported(path: Path, field: str) -> dict[str, Any]:
    """An exported definition (`model --export`) read from `path`, its rules checked readable."""
    data = read_export(path, field)
    try:
        fingerprint_of(data)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise InvalidInput(
            f"{path} is not an exported definition (`claimstate model --export`): its states and transitions"
            " do not read",
            field=field,
        ) from None
    return data


@command(
    no_db="it explores the definition, not a database",
    no_now="it explores every time that matters: before and at each deadline",
)
@click.option("--stories", "folder", type=NonEmptyPath(file_okay=False, path_type=Path),
              help="Also write the stories page (stories.md, stories.html) into this folder.")  # fmt: skip
@click.option("--scripts", type=NonEmptyPath(file_okay=False, path_type=Path),
              help="Also write each scenario (the shortest path into every state and through every transition)"
              " as a JSON Lines file `claimstate script` runs.")  # fmt: skip
def check(folder: Path | None, scripts: Path | None) -> None:
    """Explore every reachable situation of the lifecycle and check its rules; exit 1 if one fails,
    printing the shortest path that breaks it, or if a trigger could not be tried for want of example data.

    It fires each trigger with the same sample data as the library's `claimstate.check(definition)`."""
    for folder_given in (scripts, folder):  # before the exploration, so a place that cannot be written fails fast
        if folder_given is not None:
            make_folder(folder_given)
    report = run_check(get_settings().definition)
    if scripts is not None:
        for number, scenario in enumerate(report.scenarios(), 1):
            write_file(scripts / f"scenario-{number:02d}-{scenario.ends_in}.jsonl", scenario.script())
    if folder is not None:
        write_file(folder / "stories.md", report.stories_markdown())
        write_file(folder / "stories.html", report.stories_html())

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

    emit(report.to_dict(), human)
    if not report.held:
        sys.exit(1)


DIFF_FORMATS = ("text", "md", "html")


@command(
    no_now="it compares two definitions, and counts claims as they are now",
    no_definition="it compares the two exported definitions it is given (--new-definition names NEW's own)",
)
@click.argument("old_path", metavar="OLD.json", type=NonEmptyPath(dir_okay=False, exists=True, path_type=Path))
@click.argument("new_path", metavar="NEW.json", type=NonEmptyPath(dir_okay=False, exists=True, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(DIFF_FORMATS), default="text", show_default=True,
              help="text: one line per change, then it in words (--json: the changes as JSON); md: a review for a"
              " pull request; html: the change review page, old and new side by side with the changes marked,"
              " each change in words.")  # fmt: skip
@click.option("-o", "--output", type=NonEmptyPath(dir_okay=False, path_type=Path), help="Write here, not to stdout.")
@click.option("--new-definition", "new_name", metavar="MODULE:NAME",
              help="With --format html: the lifecycle Definition NEW.json was exported from (its fingerprint must"
              " be NEW.json's); the page then shows what `check` finds in it.")  # fmt: skip
@click.option("--plan", "plan_path", metavar="PLAN.json", type=NonEmptyPath(dir_okay=False, allow_dash=True),
              help="With --format html, --new-definition and a database (--db): a migration plan (what `migrate"
              " --plan` takes; - reads stdin); the page shows its dry run: which open claims would move where, and"
              " what stops it. Nothing is written.")  # fmt: skip
def diff(old_path: Path, new_path: Path, fmt: str, output: Path | None, new_name: str | None,
         plan_path: str | None) -> None:  # fmt: skip
    """What changed from one exported definition (`model --export`) to another: each state and transition
    added, removed or changed, in plain words; with --db, how many open claims decided under OLD each change
    touches (in every format). The html review page also shows, given --new-definition, `check`'s results
    for the new lifecycle and, given --plan, a migration plan's dry run."""
    settings = get_settings()
    if fmt != "text" and output is None and "--json" in settings.after:
        refuse(f"takes --json with --format {fmt} only with -o: without it it prints the review itself")
    counting = bool(settings.db_given or os.environ.get("CLAIMSTATE_DB"))
    _page_options(fmt, new_name, plan_path, counting=counting)
    # text reads both as exports with a fingerprint, as it always has; md and html read them as `diagram --diff`
    # did (a hand-edited export reviews), but OLD's fingerprint is what --db counts the open claims of
    old = _exported(old_path, "OLD.json") if fmt == "text" or counting else read_export(old_path, "OLD.json")
    new = _exported(new_path, "NEW.json") if fmt == "text" else read_export(new_path, "NEW.json")
    found = Diagrams.changes(old, new)
    definition = None if new_name is None else _new_definition(new_name, new)
    plan = None if plan_path is None else read_json_object(read_text(plan_path, "--plan"), "--plan")
    counts: dict[str, int] | None = None
    migration: Migration | PlanRefused | None = None
    if counting:
        with open_service(settings.db, read_only=True, definition=definition or settings.definition) as service:
            counts = service.open_claims(fingerprint_of(old))
            if plan is not None:
                try:
                    migration = service.migrate(plan, dry_run=True)
                except PlanRefused as refused:  # what stops the plan is for the page to say
                    migration = refused
    listed = [
        {**attrs.asdict(c), "details": list(c.details), "touches": list(c.touches), "words": list(c.words),
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
            lines += [f"    {said}" for said in change.words]
            lines += [f"    {detail}" for detail in change.details]
        return "\n".join(lines)

    if fmt == "text" and output is None:
        emit(listed, human)
        return
    if fmt == "text":
        review = visible_text(human(), keep="\n") + "\n"  # what it prints, as it prints it
    elif fmt == "md":
        review = Diagrams.diff_markdown(old, new, open_claims=counts)
    elif definition is None:  # the page says how to check the new lifecycle
        review = Diagrams.diff_html(old, new, open_claims=counts)
    else:
        review = Diagrams.diff_html(old, new, open_claims=counts, migration=migration,
                                    report=_checked(definition, new_name))  # fmt: skip
    if output is None:
        click.echo(review, nl=False)
        return
    write_file(output, review)
    emit({"path": str(output), "format": fmt}, lambda: str(output))


def _page_options(fmt: str, new_name: str | None, plan_path: str | None, *, counting: bool) -> None:
    """A usage error unless --new-definition and --plan are where they fit: on the html page, the plan with
    the new definition (its dry run moves claims onto it) and a database (it reads the open claims)."""
    if (new_name or plan_path) and fmt != "html":
        raise click.UsageError("--new-definition and --plan go with --format html: they add check's results and the"
                               " migration's dry run to the review page")  # fmt: skip
    if plan_path and not new_name:
        raise click.UsageError("--plan needs --new-definition: its dry run moves the open claims onto the new"
                               " definition, which NEW.json alone cannot decide by")  # fmt: skip
    if plan_path and not counting:
        raise click.UsageError("--plan needs a database (--db or $CLAIMSTATE_DB): its dry run reads the open claims")


def _new_definition(target: str, new: dict[str, Any]) -> Definition:
    """The Definition --new-definition names, refused (naming the option) unless NEW.json is its export: the
    same rules, by fingerprint."""
    definition = load_definition(target, field="--new-definition")
    ours = definition.to_dict()["fingerprint"]
    try:
        theirs: str | None = fingerprint_of(new)
    except (KeyError, TypeError, ValueError, AttributeError):
        theirs = None
    if theirs != ours:
        said = "rules that do not read" if theirs is None else f"fingerprint {short_fingerprint(theirs)}"
        raise InvalidInput(
            f"{target} is not the definition NEW.json exports: its fingerprint is {short_fingerprint(ours)}, and"
            f" NEW.json holds {said} (export it with `claimstate --definition {target} model --export NEW.json`)",
            field="--new-definition",
        )
    return definition


def _checked(definition: Definition, target: str | None) -> dict[str, Any] | str:
    """`check`'s report on the new definition (as JSON), or why it could not explore it (a filing no example
    makes)."""
    try:
        return run_check(definition).to_dict()
    except InvalidInput as error:
        return f"Check could not explore {target}: {error.reason}"


@command(no_definition="the demo walks the built-in lifecycle's own stories")
@click.option(
    "--dir",
    "folder",
    type=NonEmptyPath(file_okay=False, path_type=Path),
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
    settings = get_settings()
    make_folder(folder)
    target: str | Path = settings.db if settings.db_given else folder / "claims.db"
    field = "--db" if settings.db_given else "--dir"
    if not settings.db_given and (folder / "claims.db").is_symlink():
        raise InvalidInput(f"{target} is a symlink: the demo walks into a database of its own, never through a link",
                           field=field)  # fmt: skip
    if not reuse and (is_postgres(str(target)) or Path(target).exists()):
        # looked at read-only first, so a refused database is left untouched (a server's is never created or
        # migrated by the demo: `init` it first)
        with open_service(str(target), read_only=True) as existing:
            _only_demo_claims(existing, field)
    with open_service(str(target), create=True) as service, progress(len(DEMO_TITLES), "demo") as advance:
        walked = []
        for walked_one in walk_demo(service, start=settings.now):
            walked.append(walked_one)
            advance(1)
        pictures = folder / "diagrams"
        try:
            written = Diagrams().write_all(pictures)
        except DiagramError as error:
            written = sorted(pictures.iterdir())
            say(f"note: {error}", err=True)
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
    say(f"claimstate demo: {len(walked)} claims walked through the buyer-claim lifecycle")
    for title, claim, claim_history in walked:
        refund = "none" if claim.refund is None else claim.refund.format()
        say(f"\n{claim.id}: {title}\n  final state {claim.state}, refund {refund}, version {claim.version}")
        for line in format_history(claim_history):
            say(f"  {line}")
    say(f"\ndatabase: {service.path} (verify: {'clean' if not problems else f'{len(problems)} problem(s)'})")
    say(f"  look inside: claimstate --db {service.path} list")
    say(
        f"diagrams: {pictures}/ (lifecycle.html to open in a browser, the phases in lifecycle-<phase>.html,"
        " each claim's story in claim-<id>.html)"
    )


def _only_demo_claims(service: ClaimService, field: str) -> None:
    """InvalidInput unless every claim in the database is one the demo files (an earlier run's)."""
    other = next((c for c in service.iter_claims() if not is_demo_claim(c)), None)
    if other is not None:
        raise InvalidInput(
            f"{service.path} holds claims that are not the demo's (such as {other.id}): the demo walks into a"
            " database of its own; name another, or give --reuse to add the demo's claims to these",
            field=field,
        )
