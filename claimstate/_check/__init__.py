"""Proofs over a lifecycle: explore every reachable situation (`explore`), check each rule over all of
it (`properties`), and report what holds with a shortest counterexample for what does not (`check`),
firing each trigger with sample data (`examples`: one default for the library and the command line)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from claimstate._check.examples import default_examples, lacking
from claimstate._check.explore import Exploration, Step, explore
from claimstate._check.properties import PROPERTIES, Property, Violation
from claimstate._check.scenarios import Scenario, scenarios
from claimstate._check.stories import to_html as stories_html
from claimstate._check.stories import to_markdown as stories_markdown
from claimstate._definition import Definition
from claimstate._errors import InvalidInput

__all__ = [
    "PROPERTIES",
    "Checked",
    "Exploration",
    "Property",
    "Report",
    "Step",
    "Violation",
    "check",
    "default_examples",
]


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
    """What `check` explored and found; `untried` names each trigger never fired for want of example data
    (with the required fields no example gives), which a report that held has none of."""

    situations: int
    transitions: int
    seconds: float
    complete: bool
    results: tuple[Checked, ...]
    exploration: Exploration = attrs.field(eq=False, repr=False)  # for the scenarios and the stories
    untried: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)

    @property
    def held(self) -> bool:
        return self.complete and not self.untried and all(r.held for r in self.results)

    def scenarios(self) -> list[Scenario]:
        """The scenarios found: the shortest path into every state and through every transition, each with a
        `script()` for `claimstate script` (what `claimstate check --scripts` writes)."""
        return scenarios(self.exploration)

    def stories_markdown(self) -> str:
        """The stories page in Markdown: one story per outcome a claim can have (`check --stories`)."""
        return stories_markdown(self.exploration)

    def stories_html(self) -> str:
        """The stories page as a self-contained HTML page (`check --stories`)."""
        return stories_html(self.exploration)

    def to_dict(self) -> dict[str, Any]:
        return {
            "situations": self.situations,
            "transitions": self.transitions,
            "seconds": round(self.seconds, 2),
            "complete": self.complete,
            "held": self.held,
            "untried": {trigger: list(fields) for trigger, fields in self.untried.items()},
            "properties": [r.to_dict() for r in self.results],
        }


def check(
    definition: Definition,
    examples: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    properties: Sequence[Property] = PROPERTIES,
) -> Report:
    """Explore `definition`, firing each trigger with its `examples` (each sample data; by default
    `default_examples(definition)`, as `claimstate check` does), and check every property over what was found.

    A filing no example can make (its required fields missing) is InvalidInput naming the trigger and the
    fields, as nothing could be explored; any other trigger no example gives its required fields is named
    in the report's `untried`, and the report does not hold.
    """
    if examples is None:
        examples = default_examples(definition)
    untried = lacking(definition, examples)
    filing = definition.creation.trigger
    if filing in untried:
        raise InvalidInput(
            f"no example files a claim of {definition.name}: its filing trigger {filing} needs"
            f" {', '.join(untried[filing])}, which no example gives; pass check() examples for it",
            field="examples",
        )
    found = explore(definition, examples)
    results = []
    for prop in properties:
        violation = prop.check(found)
        path = () if violation is None or violation.step is None else tuple(found.path_to(violation.step))
        results.append(Checked(prop, violation, path))
    return Report(len(found.claims), len(found.steps), found.seconds, found.complete, tuple(results), found, untried)


def _step_dict(step: Step) -> dict[str, Any]:
    return {
        "trigger": step.trigger,
        "actor": step.actor,
        "from": None if step.before is None else step.before.state,
        "to": step.after.state,
        "at": step.at.isoformat(),
        "data": dict(step.data),
    }
