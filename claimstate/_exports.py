"""A definition from outside the process: an exported one read from its JSON file, or one named MODULE:NAME."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

from claimstate._definition import Definition
from claimstate._diagrams.diff import within_export_bounds
from claimstate._errors import InvalidInput
from claimstate._json import read_outside


def load_definition(target: str, *, field: str = "definition") -> Definition:
    """The Definition `target` names as MODULE:NAME (MODULE imported, the current folder first on the path).

    Anything wrong (no colon, no such module, one that fails or exits as it loads, no such name, not a
    Definition) is InvalidInput naming `field`.
    """
    module_name, _, name = target.partition(":")
    if not module_name or not name:
        raise InvalidInput(f"give MODULE:NAME (like mylifecycle:LIFECYCLE), not {target!r}", field=field)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise InvalidInput(f"cannot import {module_name}: {error}", field=field) from None
    except (SystemExit, KeyboardInterrupt) as error:  # its own exit, not the caller's
        raise InvalidInput(f"{module_name} stops as it loads: {type(error).__name__}({error})", field=field) from None
    except Exception as error:
        raise InvalidInput(f"{module_name} fails as it loads: {type(error).__name__}: {error}", field=field) from None
    if not hasattr(module, name):
        raise InvalidInput(f"{module_name} has no {name}", field=field)
    found = getattr(module, name)
    if not isinstance(found, Definition):
        raise InvalidInput(f"{target} is a {type(found).__name__}, not a Definition", field=field)
    return found


def read_export(path: Path, field: str = "path") -> dict[str, Any]:
    """The exported definition (`Definition.to_dict()`, `claimstate model --export`) in the JSON file `path`.

    The file is read as JSON from outside (integers of at most 100 digits) and held to an export's bounds;
    unreadable, not JSON, not a JSON object or out of bounds is InvalidInput naming `field`.
    """
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput(f"cannot read {path}: {error}", field=field) from None
    data = read_outside(text, field)
    if not isinstance(data, dict):
        raise InvalidInput(f"{path} holds no exported definition (not a JSON object)", field=field)
    within_export_bounds(data, field)
    return data
