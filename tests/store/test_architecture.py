"""The package's shape, read from its source with `ast`: no import circle, and the store kept to its owners.

Parsed, not imported, so the tests see every module (optional extras, the CLI) and import nothing.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "claimstate"

# Who may reach the store, and why. Reading an object's `_store` attribute:
STORE_READERS = (
    "claimstate._store",  # the store's own helpers (its transaction, its error mapping) hold it as `_store`
    "claimstate._service",  # the facade keeps the store it opened (or was given) as `_store`, for its own methods
)
# Importing `claimstate._store` (or a module in it), these and:
STORE_IMPORTERS = (
    *STORE_READERS,
    "claimstate._copy",  # the whole-database copy works on two stores, table by table (`copies.TABLES`); it gets
    # them from each service's `Core` (`_service.service.core_of`), reading no other object's attributes
)
# The public module for scripts (`claimstate.scripting`, exactly) re-exports what the store decides about a target
# (`is_postgres`), so the CLI and scripts ask the public API, not the store: it may import it, nothing else.
STORE_REEXPORTS = ("claimstate.scripting",)
# The store's query modules: each class in them is given the database object (`database.Database`) and runs
# its statements through it. The database object and its backends are what import them, never the reverse.
# (`postgres.schema`: PostgreSQL's schema as data, and its checks, `SchemaCheck`, which its store imports.)
QUERY_MODULES = tuple(
    f"claimstate._store.{name}"
    for name in ("claims", "copies", "database", "definitions", "events", "rows", "verify", "postgres.schema")
)
DATABASE_MODULES = (
    "claimstate._store",
    "claimstate._store.base",
    "claimstate._store.sqlite",
    "claimstate._store.postgres",  # the package: it re-exports its store
    "claimstate._store.postgres.store",
)
# PostgreSQL's driver, an optional extra, and the one module that imports it as it loads: the PostgreSQL store
# (its package loads it by importing the store; elsewhere a function may import it where it needs it).
POSTGRES_DRIVER = ("psycopg", "psycopg_pool")
POSTGRES_DRIVER_USERS = ("claimstate._store.postgres.store",)


def _modules() -> dict[str, Path]:
    """Every module of claimstate by dotted name (a package by its own name, for its __init__)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _top_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """The statements a module runs as it is imported: its body, and inside `if` (TYPE_CHECKING included),
    `try` and `with` blocks, but not inside functions or classes."""
    for node in body:
        yield node
        if isinstance(node, ast.If | ast.With):
            yield from _top_level(node.body)
            yield from _top_level(getattr(node, "orelse", []))
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                yield from _top_level(block)


def _imported(module: str, node: ast.Import | ast.ImportFrom) -> set[str]:
    """The claimstate modules an import statement of `module` names: `from package import submodule` names
    the submodule, `from module import name` the module."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:
            package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
            base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
            source = f"{base}.{node.module}" if node.module else base
        else:
            source = node.module or ""
        names = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in MODULES else source for alias in node.names]
    found = set()
    for name in names:
        deepest = name
        while deepest and deepest not in MODULES:  # `import claimstate._store.base.x` names the deepest module
            deepest = deepest.rpartition(".")[0]
        if deepest:
            found.add(deepest)
    return found


def _graph() -> dict[str, set[str]]:
    """Each module's imports of other claimstate modules, at module level."""
    graph = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        graph[module] = {
            imported
            for node in _top_level(tree.body)
            if isinstance(node, ast.Import | ast.ImportFrom)
            for imported in _imported(module, node)
            if imported != module
        }
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm): each an import circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for imported in sorted(graph[module]):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def _within(module: str, owners: tuple[str, ...]) -> bool:
    return any(module == owner or module.startswith(f"{owner}.") for owner in owners)


def _reaches_store(module: str, node: ast.AST) -> str | None:
    """How `node` of `module` reaches the store, if it does where it may not."""
    if isinstance(node, ast.Attribute) and node.attr == "_store" and not _within(module, STORE_READERS):
        return "reads ._store"
    if (
        isinstance(node, ast.Import | ast.ImportFrom)
        and module not in STORE_REEXPORTS
        and not _within(module, STORE_IMPORTERS)
    ):
        imported = _imported(module, node)
        if any(name == "claimstate._store" or name.startswith("claimstate._store.") for name in imported):
            return "imports the store"
    return None


def test_the_parser_sees_the_package() -> None:
    """The walk finds the modules and the imports the other tests rely on (a guard against a test that
    passes because it read nothing)."""
    graph = _graph()
    assert {"claimstate", "claimstate._store.base", "claimstate._store.events", "claimstate._copy"} <= set(graph)
    assert "claimstate._store.events" in graph["claimstate._store.base"]
    assert "claimstate._store.database" in graph["claimstate._store.events"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    for code in ("from claimstate._store import base", "from claimstate import _store", "service._store.close()"):
        assert any(_reaches_store("claimstate._verify", node) for node in ast.walk(ast.parse(code))), code
    assert any(_reaches_store("claimstate._copy", node) for node in ast.walk(ast.parse("target._store")))
    assert set(QUERY_MODULES) | set(DATABASE_MODULES) <= set(graph)
    assert _privates_of_others(ast.parse("self._db._stream(sql)\nself._db.one(sql)\nself._lock(x)")) == ["1 ._stream"]
    assert not any(_reaches_store("claimstate._copy", node) for node in ast.walk(ast.parse("import claimstate._store")))
    driver = "import psycopg.pq\nif TYPE_CHECKING:\n    from psycopg_pool import P\ndef f():\n    import psycopg"
    assert _driver_imports(ast.parse(driver)) == ["psycopg.pq", "psycopg_pool"]


def test_no_two_modules_import_each_other() -> None:
    """No import circle among claimstate's modules, counting every import a module makes as it loads
    (those under `if TYPE_CHECKING:` too); an import inside a function is not counted."""
    assert _cycles(_graph()) == []


def test_only_the_store_the_service_and_the_copy_reach_the_store() -> None:
    """Anywhere in its code (functions included), no module but the store's and the service's reads an
    object's `_store`, and none but theirs, the copy and the public face's re-export imports
    `claimstate._store` (or a module in it): everything else works through the service's public methods."""
    reaching = [
        f"{module}:{getattr(node, 'lineno', 0)} {how}"
        for module, path in MODULES.items()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        if (how := _reaches_store(module, node)) is not None
    ]
    assert reaching == []


def _privates_of_others(tree: ast.AST) -> list[str]:
    """Each `x._name` of `tree` where `x` is not `self`: a private of another object (dunders aside)."""
    return [
        f"{node.lineno} .{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
        and not (isinstance(node.value, ast.Name) and node.value.id == "self")
    ]


def test_the_query_modules_import_no_database_and_call_nothing_private_of_it() -> None:
    """The store's queries (claims, definitions, verify, events, copy, and the rows and `Database` protocol
    they share; PostgreSQL's schema checks too, which its store imports, never the reverse) import neither
    the store nor a backend, even for typing: they know the database object only as `database.Database`.
    And no query module reads another object's private attribute (the database's, or another query
    class's): what a backend does its own way reaches them as a hook."""
    graph = _graph()
    importing = {module: sorted(graph[module] & set(DATABASE_MODULES)) for module in QUERY_MODULES}
    assert {module: found for module, found in importing.items() if found} == {}
    private = {
        module: found
        for module in QUERY_MODULES
        if (found := _privates_of_others(ast.parse(MODULES[module].read_text(encoding="utf-8"))))
    }
    assert private == {}


def _driver_imports(tree: ast.Module) -> list[str]:
    """The PostgreSQL driver's modules that `tree` imports as it loads."""
    found = []
    for node in _top_level(tree.body):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            found.append(node.module or "")
    return [name for name in found if name.split(".")[0] in POSTGRES_DRIVER]


def test_only_the_postgres_store_imports_the_driver_as_it_loads() -> None:
    """PostgreSQL's driver is an optional extra: of claimstate's modules, only the PostgreSQL store imports
    psycopg as it loads (its package does by importing the store), and the schema it makes is data and
    statements run on a `database.Database`, with no driver of its own. The store imports its schema: the
    one direction between the two."""
    importing = {
        module: found
        for module, path in MODULES.items()
        if (found := _driver_imports(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))))
    }
    assert set(importing) == set(POSTGRES_DRIVER_USERS)
    graph = _graph()
    assert "claimstate._store.postgres.schema" in graph["claimstate._store.postgres.store"]
    assert "claimstate._store.postgres.store" in graph["claimstate._store.postgres"]
