"""The rules `claimstate check` proves over every explored situation, each a named, documented predicate.

A property looks at the whole exploration and returns its first violation as the index of the step
that breaks it (the shortest path to it is the counterexample), or a finding without a step (a dead
transition, a trap); None when it holds. Users add their own the same way.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from claimstate._actor import AGENT, BUYER, SUPPLIER, SYSTEM, Actor
from claimstate._check.explore import Exploration
from claimstate._lifecycle import FULL_REFUND, PARTIAL_REFUND, PARTY_MOVES


@attrs.frozen
class Violation:
    """Why a property does not hold: in words, and the step that shows it (None: no single step does)."""

    reason: str
    step: int | None = None


@attrs.frozen
class Property:
    """A rule over the lifecycle: `name` for people and scripts, `description` in plain words."""

    name: str
    description: str
    check: Callable[[Exploration], Violation | None] = attrs.field(eq=False, repr=False)


def _first(found: Exploration, broken: Callable[[int], str | None]) -> Violation | None:
    for index in range(len(found.steps)):
        reason = broken(index)
        if reason is not None:
            return Violation(reason, index)
    return None


def full_refund_needs_shipment(found: Exploration) -> Violation | None:
    def broken(i: int) -> str | None:
        after = found.steps[i].after
        shipped = after.shipment is not None and bool(after.shipment.tracking_number.strip())
        return None if after.state != FULL_REFUND or shipped else "refunded in full with no return shipment"

    return _first(found, broken)


def refund_within_order(found: Exploration) -> Violation | None:
    def broken(i: int) -> str | None:
        after = found.steps[i].after
        if after.refund is None:
            return None
        if after.refund.minor > after.amount.minor:
            return f"refund {after.refund.format()} is above the order amount {after.amount.format()}"
        if after.state == PARTIAL_REFUND and not 0 < after.refund.minor < after.amount.minor:
            return f"partial refund {after.refund.format()} is not below the order amount {after.amount.format()}"
        return None

    return _first(found, broken)


def clock_only_when_due(found: Exploration) -> Violation | None:
    deadline_triggers = {s.deadline.trigger for s in found.definition.states if s.deadline}

    def broken(i: int) -> str | None:
        step = found.steps[i]
        if step.trigger not in deadline_triggers:
            return None
        if Actor.parse(step.actor).role != SYSTEM:
            return f"{step.actor} fired the deadline trigger {step.trigger}"
        running = None if step.before is None else step.before.deadline
        if running is None or running.trigger != step.trigger:
            return f"{step.trigger} fired while its deadline was not the one running"
        if step.at < running.due:
            return f"{step.trigger} fired before its deadline"
        return None

    return _first(found, broken)


def parties_act_on_their_own(found: Exploration) -> Violation | None:
    def broken(i: int) -> str | None:
        step = found.steps[i]
        actor = Actor.parse(step.actor)
        claim = step.before or step.after
        if actor.role in (BUYER, SUPPLIER) and not claim.is_party(actor):
            return f"{step.actor} fired {step.trigger} on a claim that is not theirs"
        if actor.role == AGENT and step.trigger in PARTY_MOVES:
            return f"the team fired {step.trigger}, a party's move"
        return None

    return _first(found, broken)


def no_trap(found: Exploration) -> Violation | None:
    """Every situation reaches a final state; a final state accepts nothing (building the definition
    already refuses a final state with a way out: this proves the engine keeps to it)."""
    if not found.complete:
        return Violation("the exploration stopped at its bound, so traps cannot be judged")
    finals = {s.name for s in found.definition.states if s.final}
    for index, step in enumerate(found.steps):
        if step.before is not None and step.before.state in finals:
            return Violation(f"the final state {step.before.state} accepted {step.trigger}", index)
    reaches = {i for i, c in enumerate(found.claims) if c.state in finals}
    edges = [(s.source, s.target) for s in found.steps if s.source >= 0 and s.target >= 0]
    grew = True
    while grew:
        grew = False
        for source, target in edges:
            if target in reaches and source not in reaches:
                reaches.add(source)
                grew = True
    stuck = [i for i in range(len(found.claims)) if i not in reaches]
    if stuck:
        claim = found.claims[stuck[0]]
        return Violation(f"from {claim.state} no final state can be reached", found.reached_by[stuck[0]])
    return None


def no_dead_transition(found: Exploration) -> Violation | None:
    """Every transition row is taken on some path, every guard seen passing and (unless defensive) refusing."""
    taken = {(s.trigger, None if s.before is None else s.before.state, s.after.state) for s in found.steps}
    for t in found.definition.transitions:
        for source in t.sources or (None,):
            if (t.trigger, source, t.dest) not in taken:
                return Violation(f"{t.trigger} from {source or '(filing)'} to {t.dest} is never taken")
    for t in found.definition.transitions:
        for g in t.guards:
            if g.code not in found.guards_passed:
                return Violation(f"the guard {g.code} never passes")
            if g.code not in found.guards_refused and not g.defensive:
                return Violation(f"the guard {g.code} never refuses: it decides nothing")
    return None


PROPERTIES = (
    Property("full_refund_needs_return", "a full refund is paid only after a return shipment with a tracking"
             " number is recorded", full_refund_needs_shipment),
    Property("refund_within_order", "no refund is above the order amount, and a partial refund is below it",
             refund_within_order),
    Property("no_trap", "from every situation a final state can still be reached, and a final state accepts"
             " nothing", no_trap),
    Property("clock_when_due", "only the clock fires deadline triggers, and only once the deadline has passed",
             clock_only_when_due),
    Property("own_claims_only", "a buyer or supplier fires only on their own claim, and the team never makes a"
             " party's move", parties_act_on_their_own),
    Property("nothing_dead", "every transition is taken on some path, and every guard is seen passing and"
             " refusing (a defensive guard need not refuse)", no_dead_transition),
)  # fmt: skip
