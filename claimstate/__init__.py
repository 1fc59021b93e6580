"""claimstate: the e-commerce buyer-claim lifecycle as a declarative state machine.

Import everything from here; the modules behind it are private.
"""

from importlib.metadata import version as _version

from claimstate._actor import Actor
from claimstate._claim import Claim, Deadline, Evidence, Offer, ReturnShipment, TransitionRecord
from claimstate._definition import Context, DeadlineRule, Definition, Field, Guard, Policy, State, Transition
from claimstate._diagram import Diagrams
from claimstate._engine import Availability, Engine, Fired
from claimstate._errors import (
    ClaimNotFound,
    ClaimStateError,
    ConcurrentModification,
    DefinitionError,
    DiagramError,
    InvalidInput,
    Refusal,
    StorageError,
    TransitionRefused,
)
from claimstate._lifecycle import CLAIM_LIFECYCLE
from claimstate._money import Money
from claimstate._service import ClaimService, Mismatch

__version__ = _version("claimstate")

__all__ = [
    "CLAIM_LIFECYCLE",
    "Actor",
    "Availability",
    "Claim",
    "ClaimNotFound",
    "ClaimService",
    "ClaimStateError",
    "ConcurrentModification",
    "Context",
    "Deadline",
    "DeadlineRule",
    "Definition",
    "DefinitionError",
    "DiagramError",
    "Diagrams",
    "Engine",
    "Evidence",
    "Field",
    "Fired",
    "Guard",
    "InvalidInput",
    "Mismatch",
    "Money",
    "Offer",
    "Policy",
    "Refusal",
    "ReturnShipment",
    "State",
    "StorageError",
    "Transition",
    "TransitionRecord",
    "TransitionRefused",
    "__version__",
]
