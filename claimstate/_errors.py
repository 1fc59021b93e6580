"""Every error claimstate raises, rooted in one class, each carrying its context as attributes.

Callers catch `ClaimStateError` for all of them, or one subclass for one situation; the message is
for people, the attributes are for code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs

RefusalKind = Literal["state", "permission", "guard"]


@attrs.frozen
class Refusal:
    """One reason a trigger was refused: not allowed in this state, actor not permitted, or a guard."""

    kind: RefusalKind
    code: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "code": self.code, "message": self.message}


class ClaimStateError(Exception):
    """The root of every error claimstate raises on purpose."""

    def to_dict(self) -> dict[str, Any]:
        """The error as JSON-ready data: its class name, its message and its context attributes."""
        context = {k: _plain(v) for k, v in vars(self).items() if not k.startswith("_")}
        return {"error": type(self).__name__, "message": str(self), **context}


def _plain(value: object) -> Any:
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):  # a Refusal, or a report value (Outdated)
        return to_dict()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


class DefinitionError(ClaimStateError):
    """A lifecycle definition is inconsistent; `problems` lists every problem found, not just the first."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__(
            f"the lifecycle definition has {len(self.problems)} problem(s):\n"
            + "\n".join(f"- {p}" for p in self.problems)
        )


class InvalidInput(ClaimStateError):
    """A value given by the caller is malformed; `field` names it (or is None for the whole input)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        self.reason = message
        super().__init__(f"{field}: {message}" if field else message)


class TransitionRefused(ClaimStateError):
    """The machine refused a trigger; nothing changed.

    `reasons` says why, each with a `kind` ("state", "permission" or "guard"), a stable `code` and a
    plain-words `message`.
    """

    def __init__(
        self, trigger: str, state: str | None, reasons: Sequence[Refusal], *, claim_id: str | None = None
    ) -> None:
        self.trigger = trigger
        self.state = state
        self.reasons = tuple(reasons)
        self.claim_id = claim_id
        where = f"in state {state}" if state else "before filing"
        super().__init__(f"{trigger} refused {where}: " + "; ".join(r.message for r in self.reasons))

    @property
    def kinds(self) -> frozenset[str]:
        """The kinds of reason present, e.g. ``{"guard"}``."""
        return frozenset(r.kind for r in self.reasons)


class ClaimNotFound(ClaimStateError):
    """No claim has this id."""

    def __init__(self, claim_id: str) -> None:
        self.claim_id = claim_id
        super().__init__(f"no claim with id {claim_id!r}")


class ConcurrentModification(ClaimStateError):
    """The claim changed since the caller read it (`expected` version), or other writers kept winning the
    race for it (`expected` and `actual` None, `detail` says how), so nothing was applied."""

    def __init__(
        self, claim_id: str | None, expected: int | None, actual: int | None, *, detail: str | None = None
    ) -> None:
        self.claim_id = claim_id
        self.expected = expected
        self.actual = actual
        self.detail = detail
        if expected is not None:
            message = f"claim {claim_id!r} is at version {actual}, not the expected {expected}: read it again"
        else:
            which = "the claim" if claim_id is None else f"claim {claim_id!r}"
            message = f"other writers changed {which} at the same moment ({detail}), every try: nothing was applied;"
            message += " try again"
        super().__init__(message)


class StorageError(ClaimStateError):
    """The database could not be used; `path` is the file concerned."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__(message)


class UnreadableClaims(StorageError):
    """A listing matched stored claims that cannot be read (damaged rows): `unreadable` maps each one's id to
    why. The others were listed all the same: `claims` holds them for `list_claims`; `iter_claims` yielded
    them before raising this at its end (and `claims` is empty). `last` is the id of the last row listed,
    readable or not, to page on `after`."""

    def __init__(self, unreadable: Mapping[str, str], *, claims: Sequence[Any] = (), last: str | None = None,
                 path: str | None = None) -> None:  # fmt: skip
        self.unreadable = dict(unreadable)
        self.claims = tuple(claims)
        self.last = last
        shown = ", ".join(list(self.unreadable)[:10]) + (", ..." if len(self.unreadable) > 10 else "")
        super().__init__(
            f"{len(self.unreadable)} claim(s) in {path} cannot be read ({shown}): the rows are damaged, run verify;"
            " every other claim was listed",
            path=path,
        )


class LifecycleChanged(ClaimStateError):
    """Open claims were decided under another lifecycle definition than the service's (`definition`, a
    fingerprint): `outdated` lists, per earlier definition, how many open claims sit in each state and
    which of those states and transitions the current one lacks. Nothing was changed; move them with a
    plan (`ClaimService.migrate`), or run the definition they were decided under."""

    def __init__(self, message: str, *, definition: str, outdated: Sequence[Any], claim_id: str | None = None) -> None:
        self.definition = definition
        self.outdated = tuple(outdated)
        self.claim_id = claim_id
        super().__init__(message)


class PlanRefused(InvalidInput):
    """A migration plan does not fit the open claims or the new definition; `problems` lists every problem,
    and nothing was written."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__(
            f"the migration plan has {len(self.problems)} problem(s):\n" + "\n".join(f"- {p}" for p in self.problems),
            field="plan",
        )


class DiagramError(ClaimStateError):
    """A diagram could not be drawn in `fmt` (Graphviz missing or failing); the text formats still work."""

    def __init__(self, message: str, *, fmt: str) -> None:
        self.fmt = fmt
        super().__init__(message)
