"""claimstate: the e-commerce buyer-claim lifecycle as a declarative state machine.

Services import from here: the service, the engine, the values they return and the errors they catch.
The vocabulary for writing a lifecycle is in `claimstate.definition`; what scripts and command lines built
on claimstate use (the demo, times as text, printable text, JSON input, file writing) is in
`claimstate.scripting`; the command line is `claimstate.cli`. The other modules are private.
"""

import warnings as _warnings
from typing import TYPE_CHECKING as _TYPE_CHECKING

from claimstate._actor import Actor
from claimstate._check import PROPERTIES, Property, Report, Violation, check
from claimstate._claim import Claim, Deadline, Evidence, Offer, ReturnShipment, TransitionRecord
from claimstate._copy import Copied, copy_claims
from claimstate._diagrams import Diagrams
from claimstate._engine import Availability, Engine, Fired
from claimstate._errors import (
    ClaimNotFound,
    ClaimStateError,
    ConcurrentModification,
    DefinitionError,
    DiagramError,
    InvalidInput,
    LifecycleChanged,
    PlanRefused,
    Refusal,
    StorageBusy,
    StorageError,
    TransitionRefused,
    UnreadableClaims,
)
from claimstate._feed import Event
from claimstate._flows import ArrowCount, Flows, TimeInState
from claimstate._lifecycle import CLAIM_LIFECYCLE
from claimstate._migration import Migration, Move, Outdated
from claimstate._money import Money
from claimstate._script import run_script
from claimstate._service import Backup, ClaimService, Difference, Mismatch
from claimstate._stats import Stats
from claimstate._ticker import run_ticker
from claimstate._view import ClaimView

if _TYPE_CHECKING:
    __version__: str  # computed on first use by `__getattr__` below, then cached as a plain global
    from claimstate._service.asynchronous import AsyncClaimService  # imported on first use, as __version__

__all__ = [
    "CLAIM_LIFECYCLE",
    "PROPERTIES",
    "Actor",
    "ArrowCount",
    "AsyncClaimService",
    "Availability",
    "Backup",
    "Claim",
    "ClaimNotFound",
    "ClaimService",
    "ClaimStateError",
    "ClaimView",
    "ConcurrentModification",
    "Copied",
    "Deadline",
    "DefinitionError",
    "DiagramError",
    "Diagrams",
    "Difference",
    "Engine",
    "Event",
    "Evidence",
    "Fired",
    "Flows",
    "InvalidInput",
    "LifecycleChanged",
    "Migration",
    "Mismatch",
    "Money",
    "Move",
    "Offer",
    "Outdated",
    "PlanRefused",
    "Property",
    "Refusal",
    "Report",
    "ReturnShipment",
    "Stats",
    "StorageBusy",
    "StorageError",
    "TimeInState",
    "TransitionRecord",
    "TransitionRefused",
    "UnreadableClaims",
    "Violation",
    "__version__",
    "check",
    "copy_claims",
    "run_script",
    "run_ticker",
]

_RENAMED = {"Moved": "Copied", "move_claims": "copy_claims"}  # deprecated names, kept for one release


def __getattr__(name: str) -> object:
    """`__version__`, read from the installed metadata on first use (importing importlib.metadata costs a
    process some 30 ms, which `import claimstate` need not pay), and `AsyncClaimService` (it brings asyncio,
    ~45 ms), each then kept; and the names of an earlier release, still importable, with a DeprecationWarning
    naming the new one."""
    if name == "__version__":
        from importlib.metadata import version  # noqa: PLC0415  (only when asked: it costs ~30 ms to import)

        globals()["__version__"] = found = version("claimstate")
        return found
    if name == "AsyncClaimService":
        from claimstate._service.asynchronous import AsyncClaimService  # noqa: PLC0415

        globals()[name] = AsyncClaimService
        return AsyncClaimService
    if name in _RENAMED:
        _warnings.warn(
            f"claimstate.{name} is now claimstate.{_RENAMED[name]}; the old name goes in the next release",
            DeprecationWarning,
            stacklevel=2,
        )
        return globals()[_RENAMED[name]]
    raise AttributeError(f"module 'claimstate' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The module's names, those made on first use included."""
    return sorted({*globals(), *__all__})
