"""claimstate: the e-commerce buyer-claim lifecycle as a declarative state machine.

Services import from here: the service, the engine, the values they return and the errors they catch.
The vocabulary for writing a lifecycle is in `claimstate.definition`; the command line is `claimstate.cli`.
The other modules are private.
"""

from importlib.metadata import version as _version

from claimstate._actor import Actor
from claimstate._check import PROPERTIES, Property, Report, Violation, check
from claimstate._claim import Claim, Deadline, Evidence, Offer, ReturnShipment, TransitionRecord
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
    StorageError,
    TransitionRefused,
    UnreadableClaims,
)
from claimstate._feed import Event
from claimstate._lifecycle import CLAIM_LIFECYCLE
from claimstate._migration import Migration, Move, Outdated
from claimstate._money import Money
from claimstate._move import Moved, move_claims
from claimstate._service import ClaimService, Difference, Mismatch

__version__ = _version("claimstate")

__all__ = [
    "CLAIM_LIFECYCLE",
    "PROPERTIES",
    "Actor",
    "Availability",
    "Claim",
    "ClaimNotFound",
    "ClaimService",
    "ClaimStateError",
    "ConcurrentModification",
    "Deadline",
    "DefinitionError",
    "DiagramError",
    "Diagrams",
    "Difference",
    "Engine",
    "Event",
    "Evidence",
    "Fired",
    "InvalidInput",
    "LifecycleChanged",
    "Migration",
    "Mismatch",
    "Money",
    "Move",
    "Moved",
    "Offer",
    "Outdated",
    "PlanRefused",
    "Property",
    "Refusal",
    "Report",
    "ReturnShipment",
    "StorageError",
    "TransitionRecord",
    "TransitionRefused",
    "UnreadableClaims",
    "Violation",
    "__version__",
    "check",
    "move_claims",
]
