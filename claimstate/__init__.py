"""claimstate: the e-commerce buyer-claim lifecycle as a declarative state machine.

Services import from here: the service, the engine, the values they return and the errors they catch.
The vocabulary for writing a lifecycle is in `claimstate.definition`; the command line is `claimstate.cli`.
The other modules are private.
"""

import warnings as _warnings
from importlib.metadata import version as _version

from claimstate._actor import Actor
from claimstate._check import PROPERTIES, Property, Report, Violation, check
from claimstate._claim import Claim, Deadline, Evidence, Offer, ReturnShipment, TransitionRecord
from claimstate._copy import Copied, copy_claims
from claimstate._demo import DEMO_TITLES, format_history
from claimstate._demo import is_demo as is_demo_claim
from claimstate._demo import walk as walk_demo
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
from claimstate._files import make_folder, write_file
from claimstate._lifecycle import CLAIM_LIFECYCLE
from claimstate._migration import Migration, Move, Outdated
from claimstate._money import Money
from claimstate._script import json_object as read_json_object
from claimstate._script import run_script
from claimstate._service import ClaimService, Difference, Mismatch
from claimstate._store import is_postgres
from claimstate._text import visible as visible_text
from claimstate._time import from_iso as parse_time
from claimstate._time import to_iso as format_time

__version__ = _version("claimstate")

__all__ = [
    "CLAIM_LIFECYCLE",
    "DEMO_TITLES",
    "PROPERTIES",
    "Actor",
    "Availability",
    "Claim",
    "ClaimNotFound",
    "ClaimService",
    "ClaimStateError",
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
    "StorageError",
    "TransitionRecord",
    "TransitionRefused",
    "UnreadableClaims",
    "Violation",
    "__version__",
    "check",
    "copy_claims",
    "format_history",
    "format_time",
    "is_demo_claim",
    "is_postgres",
    "make_folder",
    "parse_time",
    "read_json_object",
    "run_script",
    "visible_text",
    "walk_demo",
    "write_file",
]

_RENAMED = {"Moved": "Copied", "move_claims": "copy_claims"}  # deprecated names, kept for one release


def __getattr__(name: str) -> object:
    """The names of an earlier release, still importable, with a DeprecationWarning naming the new one."""
    if name in _RENAMED:
        _warnings.warn(
            f"claimstate.{name} is now claimstate.{_RENAMED[name]}; the old name goes in the next release",
            DeprecationWarning,
            stacklevel=2,
        )
        return globals()[_RENAMED[name]]
    raise AttributeError(f"module 'claimstate' has no attribute {name!r}")
