"""Scenarios from the exploration: the shortest path into every state and through every transition, as
scripts `claimstate script` runs against a real store, and as stories people read, one per outcome.

Breadth-first search found each path first, so each is a shortest one; a path that another already
covers whole is left out.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import attrs

from claimstate._actor import SYSTEM
from claimstate._check.explore import Exploration, Step
from claimstate._time import to_iso


@attrs.frozen
class Scenario:
    """A shortest path from a filing: what it shows (`title`), where it ends, and its steps."""

    title: str
    ends_in: str
    steps: tuple[Step, ...]

    def script(self) -> str:
        """The path as JSON Lines for `claimstate script`: a filing named ``c``, then each step (the
        clock's as a tick at its time)."""
        first, *rest = self.steps
        lines = [{"cmd": "file", "as": "c", "actor": first.actor, "data": dict(first.data), "now": to_iso(first.at)}]
        for step in rest:
            if step.actor == SYSTEM:
                lines.append({"cmd": "tick", "now": to_iso(step.at)})
            else:
                lines.append({"cmd": "fire", "claim": "@c", "trigger": step.trigger, "actor": step.actor,
                              "data": dict(step.record.data), "now": to_iso(step.at)})  # fmt: skip
        return "".join(json.dumps(line, sort_keys=True) + "\n" for line in lines)


def scenarios(found: Exploration) -> list[Scenario]:
    """One scenario into each state and through each transition row, shortest first found, none a part
    of another."""
    wanted: dict[tuple[str, str | None, str], int] = {}
    for index, step in enumerate(found.steps):
        key = (step.trigger, None if step.before is None else step.before.state, step.after.state)
        wanted.setdefault(key, index)
    titles = {s.name: s.title for s in found.definition.states}
    paths = sorted(
        ((found.path_to(index), key) for key, index in wanted.items()), key=lambda item: (-len(item[0]), item[1][0])
    )
    kept: list[Scenario] = []
    for path, (trigger, source, dest) in paths:
        if any(_within(path, other.steps) for other in kept):
            continue
        title = f"{trigger} from {titles.get(source or '', 'a new claim').lower()} to {titles[dest].lower()}"
        kept.append(Scenario(title, dest, tuple(path)))
    return sorted(kept, key=lambda s: (len(s.steps), s.title))


def _within(path: Sequence[Step], longer: Sequence[Step]) -> bool:
    """Whether `path` is the beginning of `longer` (the same steps, in order)."""
    return len(path) <= len(longer) and all(a is b for a, b in zip(path, longer, strict=False))


def outcomes(found: Exploration) -> list[Scenario]:
    """The shortest story into each final state (each outcome a claim can have)."""
    stories = []
    for state in found.definition.states:
        if not state.final:
            continue
        first = next((i for i, s in enumerate(found.steps) if s.after.state == state.name), None)
        if first is not None:
            stories.append(Scenario(state.title, state.name, tuple(found.path_to(first))))
    return stories
