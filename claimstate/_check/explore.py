"""Every reachable situation of a lifecycle, found breadth-first with the real engine.

A situation is a claim abstracted to what the guards read: its state, the open offer (kind, and who
made it), the agreement's kind, which parties gave evidence, whether the return address is confirmed
and a shipment recorded, how the refund compares with the order amount, and the deadline running.
From each situation every trigger is fired as every kind of actor (each party, a stranger of each
party's role, the team, the clock), with each of the trigger's example data, before and at the
deadline; the engine decides each one. Breadth-first, so the first path found to anything is a
shortest one.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Hashable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from claimstate._actor import AGENT, BUYER, SUPPLIER, SYSTEM, Actor
from claimstate._check.examples import with_amounts
from claimstate._claim import Claim, TransitionRecord
from claimstate._definition import Context, Definition
from claimstate._engine import Engine, Fired
from claimstate._errors import InvalidInput, TransitionRefused

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # any fixed time: the exploration is relative to it
STRANGER, TEAM_MEMBER = "mallory", "kim"  # the ids of a party to no claim, and of the team's agent


def _actors(claim: Claim) -> tuple[str, ...]:
    """Who fires on `claim`: its own parties, a stranger in each party's role, the team, the clock."""
    return (f"{BUYER}:{claim.buyer_id}", f"{SUPPLIER}:{claim.supplier_id}", f"{BUYER}:{STRANGER}",
            f"{SUPPLIER}:{STRANGER}", f"{AGENT}:{TEAM_MEMBER}", SYSTEM)  # fmt: skip


def situation(claim: Claim) -> Hashable:
    """The claim as the guards and the properties see it (see the module's doc). Left out: how many
    evidence items and offers there are, which only the abuse limits read (at 100 and 50), and ids,
    texts and times, which only the deadline reads, and the exploration fires before and at it. (So a
    claim whose deadline has passed, after a step that kept its state, is the same situation as before:
    the steps' times tell them apart, as `no_stall` does.)"""
    order = claim.amount.minor
    offer, agreement, shipment = claim.open_offer, claim.agreement, claim.shipment
    return (
        claim.state,
        claim.resolution,
        None if claim.refund_amount is None else _compared(claim.refund_amount.minor, order),
        None if offer is None else (offer.kind, offer.by, _compared(offer.amount.minor, order)),
        None if agreement is None else (agreement.kind, _compared(agreement.amount.minor, order)),
        frozenset(e.by for e in claim.evidence),
        claim.return_address is not None,
        None if shipment is None else bool(shipment.tracking_number.strip()),
        None if claim.refund is None else _compared(claim.refund.minor, order),
        None if claim.deadline is None else claim.deadline.trigger,
    )


def _compared(amount: int, order: int) -> str:
    return "zero" if amount <= 0 else "below" if amount < order else "equal" if amount == order else "above"


@attrs.frozen
class Step:
    """One applied transition the exploration took: from which situation, as whom, with what, and after."""

    source: int  # the index of the situation it left (-1: a filing)
    target: int
    trigger: str
    actor: str
    data: Mapping[str, Any]
    at: datetime
    before: Claim | None
    after: Claim
    record: TransitionRecord


@attrs.frozen
class Exploration:
    """What the search found: the situations (their first claims), the steps between them, and what the
    guards did; `reached_by[i]` is the step that first reached situation i (a shortest path back)."""

    definition: Definition
    claims: tuple[Claim, ...]
    steps: tuple[Step, ...]
    reached_by: tuple[int, ...]
    guards_passed: frozenset[str]
    guards_refused: frozenset[str]
    seconds: float
    complete: bool  # False when the bound on situations stopped the search

    def path_to(self, step: int) -> list[Step]:
        """The shortest path of steps from a filing to step `step`, included."""
        path = [self.steps[step]]
        while path[0].source >= 0:
            path.insert(0, self.steps[self.reached_by[path[0].source]])
        return path


def explore(
    definition: Definition,
    examples: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    most: int = 20_000,
) -> Exploration:
    """Explore `definition` from each example filing; `examples` gives each trigger's sample data (money
    as ``{below}``, ``{order}`` or ``{above}`` the order amount); `most` bounds the situations."""
    began = time.monotonic()
    engine = Engine(definition)
    seen: dict[Hashable, int] = {}
    claims: list[Claim] = []
    reached_by: list[int] = []
    steps: list[Step] = []
    passed: set[str] = set()
    refused: set[str] = set()
    queue: deque[int] = deque()
    creation = definition.creation

    def reach(source: int, before: Claim | None, fired: Fired, *, trigger: str, actor: str,
              data: Mapping[str, Any], at: datetime) -> None:  # fmt: skip
        after, record = fired.claim, fired.record
        key = situation(after)
        if key not in seen and len(claims) < most:
            seen[key] = len(claims)
            claims.append(after)
            reached_by.append(len(steps))
            queue.append(seen[key])
        step = Step(source, seen.get(key, -1), trigger, actor, data, at, before, after, record)
        steps.append(step)

    for data in examples.get(creation.trigger, ({},)):
        for filer in (f"{BUYER}:{data.get('buyer_id')}", f"{BUYER}:{STRANGER}"):  # the buyer named, another
            for open_order in (False, True):
                _judge(
                    engine, None, creation.trigger, filer, data, at=START, seen=(passed, refused), open_order=open_order
                )
                try:
                    fired = engine.file_claim("c-1", filer, data, START, order_has_open_claim=open_order)
                except (TransitionRefused, InvalidInput):
                    continue
                reach(-1, None, fired, trigger=creation.trigger, actor=filer, data=data, at=START)
    while queue:
        index = queue.popleft()
        claim = claims[index]
        moments = [claim.updated_at + timedelta(minutes=1)]
        if claim.deadline is not None:
            moments += [claim.deadline.due - timedelta(minutes=1), claim.deadline.due]
        for trigger in definition.triggers:
            if trigger == creation.trigger or not definition.candidates(claim.state, trigger):
                continue  # refused for the state whoever fires it, whatever the data and time: nothing to learn
            for actor in _permitted(engine, claim, trigger):
                for data in examples.get(trigger, ({},)):
                    for at in moments:
                        filled = with_amounts(data, claim.amount)
                        _judge(engine, claim, trigger, actor, filled, at=at, seen=(passed, refused))
                        try:
                            fired = engine.fire(claim, trigger, actor, filled, at)
                        except (TransitionRefused, InvalidInput):
                            continue
                        reach(index, claim, fired, trigger=trigger, actor=actor, data=filled, at=at)
    return Exploration(
        definition,
        tuple(claims),
        tuple(steps),
        tuple(reached_by),
        frozenset(passed),
        frozenset(refused),
        time.monotonic() - began,
        complete=len(claims) < most,
    )


def _permitted(engine: Engine, claim: Claim, trigger: str) -> list[str]:
    """The actors of `_actors` whom some row `trigger` may take from the claim's state permits: the engine
    refuses the others whatever the data and time, so firing as them teaches nothing (and was 80% of fires)."""
    rows = engine.definition.candidates(claim.state, trigger)
    return [actor for actor in _actors(claim) if any(engine._permits(row, Actor.parse(actor), claim) for row in rows)]


def _judge(
    engine: Engine,
    claim: Claim | None,
    trigger: str,
    actor: str,
    data: Mapping[str, Any],
    *,
    at: datetime,
    seen: tuple[set[str], set[str]],
    open_order: bool = False,
) -> None:
    """Each guard of each row `trigger` may take from the claim's state, for an actor the row permits,
    judged on its own: into `seen` (passed, refused) by code (the engine stops at the first row that holds)."""
    passed, refused = seen
    who = Actor.parse(actor)
    for row in engine.definition.candidates(None if claim is None else claim.state, trigger):
        if not engine._permits(row, who, claim):
            continue
        try:
            parsed = engine._parse(row, data, claim)
        except InvalidInput:
            continue
        context = Context("c-1" if claim is None else claim.id, claim, who, parsed, at, engine.policy, open_order)
        for guard in row.guards:
            try:
                (passed if guard.check(context) else refused).add(guard.code)
            except (InvalidInput, KeyError):
                refused.add(guard.code)
