"""What scripts and command lines built on claimstate use: the demo walk, times as text, printable text, JSON
object input, safe file writing, which database a target names.

A service embedding claimstate needs none of this (it imports from `claimstate`); the command line
(`claimstate.cli`) is built on it, and so can a script of your own:

- `DEMO_TITLES`, `walk_demo`, `is_demo_claim`, `format_history`: the demo (`claimstate demo`), its claims
  walked through the lifecycle's main paths, recognised again in its folder, and their histories printed.
- `parse_time`, `format_time`: times as text, ISO 8601 with an offset read (as `--now` takes one) and the
  fixed-width UTC form claimstate writes, whose text order is time order.
- `visible_text`: text made printable, control characters escaped, so words from a claim never drive a
  terminal.
- `read_json_object`: a JSON object from outside (`--data`, a plan, a script line), integers held to 100
  digits, or `InvalidInput` naming the field.
- `write_file`, `make_folder`: safe file writing, a file written whole through a rename (never through a
  symlink or over a non-file), and a folder made with its parents.
- `is_postgres`: which database a target names, PostgreSQL (a URL, a libpq string or a pool) or SQLite.
"""

from claimstate._demo import DEMO_TITLES, format_history
from claimstate._demo import is_demo as is_demo_claim
from claimstate._demo import walk as walk_demo
from claimstate._files import make_folder, write_file
from claimstate._script import json_object as read_json_object
from claimstate._store import is_postgres
from claimstate._text import visible as visible_text
from claimstate._time import from_iso as parse_time
from claimstate._time import to_iso as format_time

__all__ = [
    "DEMO_TITLES",
    "format_history",
    "format_time",
    "is_demo_claim",
    "is_postgres",
    "make_folder",
    "parse_time",
    "read_json_object",
    "visible_text",
    "walk_demo",
    "write_file",
]
