"""The command group, how each command joins it, and `main`, the `claimstate` program."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

import click

from claimstate.cli._options import (
    EXIT_HELP,
    P,
    R,
    get_settings,
    global_options,
    handles_errors,
    one_line_usage_errors,
    refuse,
)


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
        with one_line_usage_errors(json_in_args):
            ctx = super().make_context(info_name, args, parent, **extra)
        ctx.meta["claimstate.json_in_args"] = json_in_args
        return ctx

    def invoke(self, ctx: click.Context) -> Any:
        with one_line_usage_errors(ctx.meta.get("claimstate.json_in_args", False)):
            return super().invoke(ctx)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_HELP)
@click.version_option(package_name="claimstate")
@global_options(group=True)
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
            after = get_settings().after
            for option, why in (("--now", no_now), ("--db", no_db), ("--definition", no_definition)):
                if why is not None and option in after:
                    refuse(f"takes no {option}: {why}")
            return function(*args, **kwargs)

        options = (("--now", no_now), ("--db", no_db), ("--definition", no_definition))
        refused = {option for option, why in options if why is not None}
        with_options = global_options(group=False, hidden=refused)(handles_errors(run))
        return cli.command(name, cls=cls, epilog=EXIT_HELP)(with_options)

    return decorate


def main() -> None:
    # The PostgreSQL pool's own notes (a dropped connection it replaced) are for services' logs, not for
    # the terminal of a person scripting claims: the command reports what matters itself.
    logging.getLogger("psycopg").setLevel(logging.ERROR)
    cli(prog_name="claimstate")
