"""Proofs over a lifecycle: explore every reachable situation (`explore`), check each rule over all of
it (`properties`), and report what holds with a shortest counterexample for what does not (`check`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from claimstate._check.explore import Exploration, Step, explore
from claimstate._check.properties import PROPERTIES, Property, Violation
from claimstate._definition import Definition
from claimstate._lifecycle import CLAIM_LIFECYCLE, EXAMPLES

__all__ = ["PROPERTIES", "Checked", "Exploration", "Property", "Report", "Step", "Violation", "check"]


@attrs.frozen
class Checked:
    """One property's verdict, with the shortest path to its violation when there is one."""

    prop: Property
    violation: Violation | None
    path: tuple[Step, ...] = ()

    @property
    def held(self) -> bool:
        return self.violation is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "property": self.prop.name,
            "description": self.prop.description,
            "held": self.held,
            "reason": None if self.violation is None else self.violation.reason,
            "counterexample": [_step_dict(s) for s in self.path],
        }


@attrs.frozen
class Report:
    """What `check` explored and found."""

    situations: int
    transitions: int
    seconds: float
    complete: bool
    results: tuple[Checked, ...]
    exploration: Exploration = attrs.field(eq=False, repr=False)  # for the scenarios and the stories

    @property
    def held(self) -> bool:
        return self.complete and all(r.held for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "situations": self.situations,
            "transitions": self.transitions,
            "seconds": round(self.seconds, 2),
            "complete": self.complete,
            "held": self.held,
            "properties": [r.to_dict() for r in self.results],
        }


def check(
    definition: Definition,
    examples: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    properties: Sequence[Property] = PROPERTIES,
) -> Report:
    """Explore `definition`, firing each trigger with its `examples` (each sample data; the built-in
    lifecycle's by default, else no data), and check every property over what was found."""
    if examples is None:
        examples = EXAMPLES if definition == CLAIM_LIFECYCLE else {}
    found = explore(definition, examples)
    results = []
    for prop in properties:
        violation = prop.check(found)
        path = () if violation is None or violation.step is None else tuple(found.path_to(violation.step))
        results.append(Checked(prop, violation, path))
    return Report(len(found.claims), len(found.steps), found.seconds, found.complete, tuple(results), found)


def _step_dict(step: Step) -> dict[str, Any]:
    return {
        "trigger": step.trigger,
        "actor": step.actor,
        "from": None if step.before is None else step.before.state,
        "to": step.after.state,
        "at": step.at.isoformat(),
        "data": dict(step.data),
    }
