"""The command line: a thin click layer over the public API (the library itself never imports click)."""

from __future__ import annotations

from pathlib import Path

import click

from claimstate._demo import format_history, walk
from claimstate._diagram import FORMATS, REGENERATE, Diagrams
from claimstate._service import ClaimService


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="claimstate")
def cli() -> None:
    """claimstate: buyer claims (disputes) as an explicit, declarative state machine."""


@cli.command()
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("claimstate-demo"),
    show_default=True,
    help="Folder for the demo's own database (claims.db), kept apart from real claims.",
)
def demo(folder: Path) -> None:
    """Walk demo claims through the lifecycle's main paths on SQLite and print their histories."""
    folder.mkdir(parents=True, exist_ok=True)
    with ClaimService(folder / "claims.db") as service:
        walked = list(walk(service))
        click.echo(f"claimstate demo: {len(walked)} claims walked through the buyer-claim lifecycle")
        for title, claim, history in walked:
            refund = "none" if claim.refund is None else claim.refund.format()
            click.echo(f"\n{claim.id}: {title}\n  final state {claim.state}, refund {refund}, version {claim.version}")
            for line in format_history(history):
                click.echo(f"  {line}")
        problems = service.verify()
        click.echo(f"\ndatabase: {service.path} (verify: {'clean' if not problems else f'{len(problems)} problem(s)'})")
        click.echo(f"  look inside: sqlite-utils rows {service.path} claims --nl")


@cli.command()
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)), default="mermaid", show_default=True)
@click.option("--claim", "claim_id", help="Draw this stored claim's path (needs --db).")
@click.option("--db", type=click.Path(dir_okay=False), default="claims.db", show_default=True, help="Database.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here, not to stdout.")
@click.option(
    "--all",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    help=f"Write the lifecycle in every format into this folder ({REGENERATE} regenerates the committed ones).",
)
def diagram(fmt: str, claim_id: str | None, db: str, output: Path | None, folder: Path | None) -> None:
    """Draw the lifecycle, or one claim's path through it, generated from the model."""
    if folder is not None:
        for path in Diagrams().write_all(folder):
            click.echo(path)
        return
    if claim_id is None:
        drawn = Diagrams().render(fmt)
    else:
        with ClaimService(db) as service:
            drawn = Diagrams(claim=service.get(claim_id), history=service.history(claim_id)).render(fmt)
    if output is not None:
        output.write_bytes(drawn if isinstance(drawn, bytes) else drawn.encode())
        click.echo(output)
    else:
        click.echo(drawn, nl=False)  # click writes bytes to the binary stream
