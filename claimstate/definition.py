"""The vocabulary for writing or extending a lifecycle: states, transitions, guards, data fields, deadlines.

The built-in lifecycle (`claimstate.CLAIM_LIFECYCLE`) is written in exactly these terms; its states and
transitions are there to read (`CLAIM_LIFECYCLE.states`, `.transitions`) and to build on::

    from claimstate.definition import Definition, State, Transition, guard, text

A `Definition` checks itself when built and raises one `DefinitionError` listing every problem. What
`claimstate.check` fires and judges it by is data it carries too (`CheckSettings`).
"""

from claimstate._actor import AGENT, BUYER, SUPPLIER, SYSTEM
from claimstate._definition import (
    ROLES,
    CheckSettings,
    Context,
    DeadlineRule,
    Definition,
    Field,
    Guard,
    Limits,
    Policy,
    State,
    Transition,
    View,
    guard,
)
from claimstate._exports import load_definition, read_export
from claimstate._fields import choice, currency, money, text
from claimstate._fingerprints import fingerprint_of
from claimstate._fingerprints import short as short_fingerprint
from claimstate._lifecycle import CLAIM_LIFECYCLE

__all__ = [
    "AGENT",
    "BUYER",
    "CLAIM_LIFECYCLE",
    "ROLES",
    "SUPPLIER",
    "SYSTEM",
    "CheckSettings",
    "Context",
    "DeadlineRule",
    "Definition",
    "Field",
    "Guard",
    "Limits",
    "Policy",
    "State",
    "Transition",
    "View",
    "choice",
    "currency",
    "fingerprint_of",
    "guard",
    "load_definition",
    "money",
    "read_export",
    "short_fingerprint",
    "text",
]
