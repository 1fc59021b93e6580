"""Every error claimstate raises, rooted in one class, each carrying its context as attributes.

Callers catch `ClaimStateError` for all of them, or one subclass for one situation; the message is
for people, the attributes are for code. A service routes them without reading messages: each says
whether trying again may succeed (`retryable`) and the HTTP status it means (`status`), and
`to_problem()` gives it as an RFC 9457 problem details body.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

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


PROBLEM_TYPES = "urn:claimstate:problem:"  # each error kind's problem type is this and its own name
PROBLEM_MEMBERS = frozenset({"type", "title", "status", "detail", "instance"})  # RFC 9457's own members
_ROUTING = frozenset({"retryable", "status"})  # an instance's own routing, never part of `to_dict`


class ClaimStateError(Exception):
    """The root of every error claimstate raises on purpose.

    `retryable` says whether the same call, made again unchanged, may succeed (a write retried carries the
    same idempotency key); `status` is the HTTP status the error means. Each class sets both; an instance
    sets its own where they depend on the case (see `TransitionRefused`, `ConcurrentModification`).
    """

    retryable: bool = False
    status: int = 500  # claimstate raises only subclasses, each with its own status
    problem: ClassVar[str] = "claimstate-error"  # the problem type's name: `PROBLEM_TYPES` + this
    title: ClassVar[str] = "claimstate error"
    _problem_names: ClassVar[Mapping[str, str]] = {}  # an attribute's name in `to_problem`, where not its own
    _problem_omits: ClassVar[frozenset[str]] = frozenset()  # attributes `to_problem` leaves out

    def to_dict(self) -> dict[str, Any]:
        """The error as JSON-ready data: its class name, its message and its context attributes."""
        context = {k: _plain(v) for k, v in vars(self).items() if not k.startswith("_") and k not in _ROUTING}
        return {"error": type(self).__name__, "message": str(self), **context}

    def to_problem(self) -> dict[str, Any]:
        """The error as an RFC 9457 problem details body (JSON-ready): `type` (a URN fixed per kind of
        error), `title` (fixed per kind), `status`, `detail` (the message), then claimstate's own members:
        `error` (the class name), `retryable` and the context attributes, each under a name none of RFC
        9457's members has (`ConcurrentModification`'s `detail` is `race` here). `instance` is left to the
        service, which knows the request."""
        problem: dict[str, Any] = {
            "type": PROBLEM_TYPES + self.problem,
            "title": self.title,
            "status": self.status,
            "detail": str(self),
            "error": type(self).__name__,
            "retryable": self.retryable,
        }
        for key, value in vars(self).items():
            if key.startswith("_") or key in _ROUTING or key in self._problem_omits:
                continue
            name = self._problem_names.get(key, key)
            if name in PROBLEM_MEMBERS or name in problem:  # never shadow a member: name it as claimstate's
                name = f"claimstate_{name}"
            problem[name] = _plain(value)
        return problem


def _plain(value: object) -> Any:
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):  # a Refusal, or a report value (Outdated)
        return to_dict()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


class DefinitionError(ClaimStateError):
    """A lifecycle definition is inconsistent; `problems` lists every problem found, not just the first."""

    status = 422
    problem = "definition-error"
    title = "The lifecycle definition is inconsistent"

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__(
            f"the lifecycle definition has {len(self.problems)} problem(s):\n"
            + "\n".join(f"- {p}" for p in self.problems)
        )


class InvalidInput(ClaimStateError):
    """A value given by the caller is malformed; `field` names it (or is None for the whole input).

    Status 400; 422 for an idempotency key already used for a different request (as the IETF's
    Idempotency-Key draft says)."""

    status = 400
    problem = "invalid-input"
    title = "Invalid input"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        self.reason = message
        super().__init__(f"{field}: {message}" if field else message)


class TransitionRefused(ClaimStateError):
    """The machine refused a trigger; nothing changed.

    `reasons` says why, each with a `kind` ("state", "permission" or "guard"), a stable `code` and a
    plain-words `message`. Its `status`: 403 when every reason is a permission (who fires: the actor may not),
    409 when the claim's state does not take the trigger (or is final), else 422 (a guard refused: the
    request is understood, but the lifecycle's rules refuse it now).
    """

    status = 409  # each instance's own: see above
    problem = "transition-refused"
    title = "Transition refused"

    def __init__(
        self, trigger: str, state: str | None, reasons: Sequence[Refusal], *, claim_id: str | None = None
    ) -> None:
        self.trigger = trigger
        self.state = state
        self.reasons = tuple(reasons)
        self.claim_id = claim_id
        self.status = _refused_status(self.reasons)
        where = f"in state {state}" if state else "before filing"
        super().__init__(f"{trigger} refused {where}: " + "; ".join(r.message for r in self.reasons))

    @property
    def kinds(self) -> frozenset[str]:
        """The kinds of reason present, e.g. ``{"guard"}``."""
        return frozenset(r.kind for r in self.reasons)


def _refused_status(reasons: Sequence[Refusal]) -> int:
    """The HTTP status of a refusal for these reasons: 403 if all are permissions, 409 if the state
    refuses (or none is given), else 422."""
    kinds = {r.kind for r in reasons}
    if kinds == {"permission"}:
        return 403
    if "state" in kinds or not kinds:
        return 409
    return 422


class ClaimNotFound(ClaimStateError):
    """No claim has this id."""

    status = 404
    problem = "claim-not-found"
    title = "Claim not found"

    def __init__(self, claim_id: str) -> None:
        self.claim_id = claim_id
        super().__init__(f"no claim with id {claim_id!r}")


class ConcurrentModification(ClaimStateError):
    """The claim changed since the caller read it (`expected` version), or other writers kept winning the
    race for it (`expected` and `actual` None, `detail` says how), so nothing was applied.

    With an `expected` version: 412, not retryable (read the claim again, then decide). A race lost every
    try: 409, retryable. In `to_problem`, `expected`, `actual` and `detail` are `expected_version`,
    `actual_version` and `race`."""

    status = 412  # each instance's own: see above
    problem = "concurrent-modification"
    title = "The claim was changed concurrently"
    _problem_names: ClassVar[Mapping[str, str]] = {
        "expected": "expected_version",
        "actual": "actual_version",
        "detail": "race",
    }

    def __init__(
        self, claim_id: str | None, expected: int | None, actual: int | None, *, detail: str | None = None
    ) -> None:
        self.claim_id = claim_id
        self.expected = expected
        self.actual = actual
        self.detail = detail
        self.status = 409 if expected is None else 412
        self.retryable = expected is None
        if expected is not None:
            message = f"claim {claim_id!r} is at version {actual}, not the expected {expected}: read it again"
        else:
            which = "the claim" if claim_id is None else f"claim {claim_id!r}"
            message = f"other writers changed {which} at the same moment ({detail}), every try: nothing was applied;"
            message += " try again"
        super().__init__(message)


class StorageError(ClaimStateError):
    """The database could not be used; `path` is the file concerned (a URL without its password).

    503. Not retryable, unless said for the case (`retryable=True`: a connection lost mid-call, say): most
    are a file or server that is missing, damaged, read-only or full, which a retry does not mend."""

    status = 503
    problem = "storage-error"
    title = "The database could not be used"

    def __init__(self, message: str, *, path: str | None = None, retryable: bool | None = None) -> None:
        self.path = path
        if retryable is not None:
            self.retryable = retryable
        super().__init__(message)


class StorageBusy(StorageError):
    """A lock or busy timeout: another writer held what the call needed (the SQLite file's write lock, a
    PostgreSQL row past `lock_timeout`) or the pool gave no connection, for longer than the busy timeout.
    Nothing was applied; retryable, 503."""

    retryable = True
    problem = "storage-busy"
    title = "The database is busy"


class UnreadableClaims(StorageError):
    """A listing matched stored claims that cannot be read (damaged rows): `unreadable` maps each one's id to
    why. The others were listed all the same: `claims` holds them for `list_claims`; `iter_claims` yielded
    them before raising this at its end (and `claims` is empty). `last` is the id of the last row listed,
    readable or not, to page on `after`. `to_problem` leaves out `claims` (values for the caller, not a
    body)."""

    problem = "unreadable-claims"
    title = "Stored claims cannot be read"
    _problem_omits: ClassVar[frozenset[str]] = frozenset({"claims"})

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

    status = 409
    problem = "lifecycle-changed"
    title = "Claims were decided under another lifecycle definition"

    def __init__(self, message: str, *, definition: str, outdated: Sequence[Any], claim_id: str | None = None) -> None:
        self.definition = definition
        self.outdated = tuple(outdated)
        self.claim_id = claim_id
        super().__init__(message)


class PlanRefused(InvalidInput):
    """A migration plan does not fit the open claims or the new definition; `problems` lists every problem,
    and nothing was written."""

    status = 422
    problem = "plan-refused"
    title = "The migration plan does not fit"

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__(
            f"the migration plan has {len(self.problems)} problem(s):\n" + "\n".join(f"- {p}" for p in self.problems),
            field="plan",
        )


class DiagramError(ClaimStateError):
    """A diagram could not be drawn in `fmt` (the built-in Graphviz or the PNG rasteriser failed); the text
    formats still work. 503: the server could not draw it, not a fault of the request."""

    status = 503
    problem = "diagram-error"
    title = "The diagram cannot be drawn"

    def __init__(self, message: str, *, fmt: str) -> None:
        self.fmt = fmt
        super().__init__(message)
