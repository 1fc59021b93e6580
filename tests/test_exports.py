"""The public faces export exactly their public names (as httpx tests its own): `__all__` lists every name a
module shows that does not start with `_` (submodules and `from __future__ import annotations` aside), and
nothing else but `__version__`, in the order ruff keeps it (constants, then classes, then the rest)."""

from __future__ import annotations

import importlib
import subprocess
import sys
import types

import pytest

EXPORTED_DUNDERS = {"__version__"}  # private-looking, exported on purpose


def public_names(module: types.ModuleType) -> set[str]:
    """The names `module` shows: not private, not a submodule, not the `annotations` future flag; a name made
    on first use by the module's `__getattr__` (`claimstate.__version__`, `claimstate.AsyncClaimService`)
    counts if `dir()` lists it and it answers."""
    shown = {
        name
        for name, value in vars(module).items()
        if (not name.startswith("_") or name in EXPORTED_DUNDERS)
        and not isinstance(value, types.ModuleType)
        and name != "annotations"
    }
    later = {name for name in dir(module) if name not in vars(module) and hasattr(module, name)}
    return shown | {name for name in later if not name.startswith("_") or name in EXPORTED_DUNDERS}


def isort_order(name: str) -> tuple[int, str]:
    """Ruff's order for `__all__` (RUF022): SCREAMING_CASE, then CamelCase, then everything else."""
    if name.isupper():
        return (0, name)
    if name[0].isupper():
        return (1, name)
    return (2, name)


PUBLIC_MODULES = ["claimstate", "claimstate.definition", "claimstate.scripting"]


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_all_lists_exactly_the_public_names_sorted(module_name: str) -> None:
    """`__all__` is the module's public names, each once, sorted: a name imported for the public face but not
    exported (or exported but gone) fails here."""
    module = importlib.import_module(module_name)
    importlib.import_module("claimstate.cli")  # a loaded submodule shows as an attribute, and must not count
    exported = module.__all__
    assert len(exported) == len(set(exported)), "a name is exported twice"
    assert exported == sorted(public_names(module), key=isort_order)


def test_every_exported_name_is_importable() -> None:
    """`from claimstate import *` (and the same of `claimstate.definition` and `claimstate.scripting`) gives every
    name of `__all__`."""
    for module_name in PUBLIC_MODULES:
        namespace: dict[str, object] = {}
        exec(f"from {module_name} import *", namespace)  # the star import itself is what is tested
        assert set(importlib.import_module(module_name).__all__) <= set(namespace)


def test_the_version_is_computed_once_and_not_on_import() -> None:
    """`import claimstate` does not import importlib.metadata (some 30 ms a process); `claimstate.__version__`
    reads it on first use and keeps it as a plain global."""
    code = (
        "import sys, claimstate; assert 'importlib.metadata' not in sys.modules; "
        "assert '__version__' not in vars(claimstate); v = claimstate.__version__; "
        "assert vars(claimstate)['__version__'] == v; from importlib.metadata import version; "
        "assert v == version('claimstate'); from claimstate import __version__; assert __version__ == v"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_asyncio_is_imported_with_the_async_service_only() -> None:
    """`import claimstate` (and every command) does without asyncio (some 45 ms a process); the first use of
    `AsyncClaimService` imports it, and the class is then kept as a plain global."""
    code = (
        "import sys, claimstate, claimstate.cli; assert 'asyncio' not in sys.modules; "
        "assert 'AsyncClaimService' not in vars(claimstate); assert 'AsyncClaimService' in dir(claimstate); "
        "from claimstate import AsyncClaimService; assert 'asyncio' in sys.modules; "
        "assert vars(claimstate)['AsyncClaimService'] is AsyncClaimService; "
        "from claimstate._service import AsyncClaimService as inner; assert inner is AsyncClaimService"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_scripting_helpers_left_the_top_level() -> None:
    """What scripts and the command line use is `claimstate.scripting`'s, no longer `claimstate`'s (never released
    there, so no deprecated alias)."""
    top, scripting = importlib.import_module("claimstate"), importlib.import_module("claimstate.scripting")
    for name in scripting.__all__:
        assert name not in top.__all__
        assert not hasattr(top, name), name
