"""What a store's queries run on: a database object's statements, and hooks on its transactions' ends.

A query class (the feed's `events.EventRows`, say) is given a `Database` and calls only this: it never
opens, commits or rolls back a transaction itself, and knows nothing of the store that made it, so no
query module imports the store back. Hooks are registered once, when the query class is made, and run
for every outermost transaction of the database, as procrastinate's connector and DBOS's system
database run theirs: each before-commit hook inside the transaction, just before its COMMIT (a hook that
fails rolls the whole transaction back), each on-rollback hook after it rolled back, whatever the cause.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol


class Database(Protocol):
    """The statements and transaction hooks a query class may use (`?` placeholders on every backend)."""

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        """The first row of a query, or None."""

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Every row of a query."""

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a write statement; how many rows it changed."""

    def send(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run a write whose result nothing waits for (a backend may send it with the next statement)."""

    def send_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """`send` of one statement for each of `rows` (a backend runs it prepared once)."""

    def stream(self, sql: str, page: int = 1000) -> Iterator[tuple[Any, ...]]:
        """Every row of a query (no placeholders) in a read's snapshot, fetched a page at a time as used."""

    @property
    def writing(self) -> AbstractContextManager[None]:
        """Entered around the statements of one write: if one fails half-way, the transaction is spoiled
        (it rolls back, even if the caller caught the error)."""

    def before_commit(self, hook: Callable[[], None]) -> None:
        """Run `hook` in every write transaction, just before it commits."""

    def on_rollback(self, hook: Callable[[], None]) -> None:
        """Run `hook` after every write transaction that rolled back."""
