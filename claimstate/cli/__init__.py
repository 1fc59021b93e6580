"""The command line: a thin click layer over the public API (the library itself never imports click).

Each command parses its options, calls one library function and prints the result: JSON with `--json`,
aligned tables otherwise. Library errors and usage errors become one line on stderr (and a JSON object
on stdout with `--json`) and the exit code in `EXIT_CODES`, never a traceback or click's usage block.

It imports only `claimstate` and `claimstate.definition` (a test holds it to that): `_group` is the group
and `main`; `_options` the global options, settings, exit codes and one-line errors; `_output` the tables,
streamed listings and JSON; the commands by what they act on: `_claims`, `_database` and `_lifecycle`;
`_serve` runs the HTTP API (`claimstate.http`, the one other module it may import).
"""

from claimstate.cli import _claims, _database, _lifecycle, _serve  # noqa: F401  (each command joins the group as it loads)
from claimstate.cli._group import cli, main
from claimstate.cli._options import EXIT_CODES

__all__ = ["EXIT_CODES", "cli", "main"]
