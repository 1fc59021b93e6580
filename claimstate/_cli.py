"""The command line: a thin click layer over the public API (the library itself never imports click)."""

from __future__ import annotations

import click

from claimstate._demo import format_history, walk
from claimstate._engine import Engine


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="claimstate")
def cli() -> None:
    """claimstate: buyer claims (disputes) as an explicit, declarative state machine."""


@cli.command()
def demo() -> None:
    """Walk demo claims through the lifecycle's main paths and print their histories."""
    walked = list(walk(Engine()))
    click.echo(f"claimstate demo: {len(walked)} claims walked through the buyer-claim lifecycle (in memory)")
    for title, claim, history in walked:
        refund = "none" if claim.refund is None else claim.refund.format()
        click.echo(f"\n{claim.id}: {title}\n  final state {claim.state}, refund {refund}, version {claim.version}")
        for line in format_history(history):
            click.echo(f"  {line}")
