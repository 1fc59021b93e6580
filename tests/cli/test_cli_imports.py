"""The command line stands on the public API alone, and only it imports click (moved here from test_cli.py,
and widened to every module of the package and of its sub-packages)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "claimstate"
CLI = PACKAGE / "cli"
PUBLIC = {"claimstate", "claimstate.definition", "claimstate.scripting", "claimstate.http"}


def imported(module: Path) -> list[str]:
    """Every module name `module` imports, absolute (a relative import is resolved against its package)."""
    package = ".".join(module.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    names: list[str] = []
    for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names.append(base)
            if base == "claimstate":  # `from claimstate import _store` imports a module too
                names += [f"{base}.{alias.name}" for alias in node.names
                          if (PACKAGE / f"{alias.name}.py").exists() or (PACKAGE / alias.name).is_dir()]  # fmt: skip
    return names


def test_the_cli_package_is_there() -> None:
    """The command line is a package (its group, options, output and commands), not one module."""
    assert (CLI / "__init__.py").is_file()
    assert not (PACKAGE / "cli.py").exists()
    assert len(list(CLI.glob("*.py"))) > 1


@pytest.mark.parametrize("module", sorted(CLI.rglob("*.py")), ids=lambda p: p.name)
def test_the_cli_imports_only_the_public_api(module: Path) -> None:
    """Every `import`/`from` of claimstate in claimstate/cli/ names `claimstate`, `claimstate.definition`,
    `claimstate.scripting` or the CLI package itself: whatever a command does is reachable from the public API."""
    ours = [n for n in imported(module) if n == "claimstate" or n.startswith("claimstate.")]
    private = [n for n in ours if n not in PUBLIC and n != "claimstate.cli" and not n.startswith("claimstate.cli.")]
    assert private == [], f"{module.name} imports private modules: {private}"


def test_only_the_cli_imports_click() -> None:
    """The library (claimstate/ outside cli/) never imports click; the CLI does."""
    importers = set()
    for module in PACKAGE.rglob("*.py"):
        if any(n == "click" or n.startswith("click.") for n in imported(module)):
            importers.add(module.relative_to(PACKAGE).parts[0])
    assert importers == {"cli"}
