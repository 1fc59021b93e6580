"""The rules `claimstate check` proves over every explored situation, each a named, documented predicate.

A property looks at the whole exploration and returns its first violation as the index of the step
that breaks it (the shortest path to it is the counterexample), or a finding without a step (a dead
transition, a trap); None when it holds. Users add their own the same way.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable

import attrs

from claimstate._actor import AGENT, BUYER, SUPPLIER, SYSTEM, Actor
from claimstate._check.explore import Exploration, Step


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
    full_refund = found.definition.check_settings.full_refund

    def broken(i: int) -> str | None:
        after = found.steps[i].after
        shipped = after.shipment is not None and bool(after.shipment.tracking_number.strip())
        return None if after.state != full_refund or shipped else "refunded in full with no return shipment"

    return _first(found, broken)


def refund_within_order(found: Exploration) -> Violation | None:
    partial_refund = found.definition.check_settings.partial_refund

    def broken(i: int) -> str | None:
        after = found.steps[i].after
        if after.refund is None:
            return None
        if after.refund.minor > after.amount.minor:
            return f"refund {after.refund.format()} is above the order amount {after.amount.format()}"
        if after.state == partial_refund and not 0 < after.refund.minor < after.amount.minor:
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
    party_moves = found.definition.check_settings.party_moves

    def broken(i: int) -> str | None:
        step = found.steps[i]
        actor = Actor.parse(step.actor)
        claim = step.before or step.after
        if actor.role in (BUYER, SUPPLIER) and not claim.is_party(actor):
            return f"{step.actor} fired {step.trigger} on a claim that is not theirs"
        if actor.role == AGENT and step.trigger in party_moves:
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


def _clock_or_team(step: Step) -> bool:
    """Whether `step` is one the clock or the team takes: the team firing any of its triggers, or the clock
    firing the deadline running once it is due (what `tick` does, and all it does)."""
    role = Actor.parse(step.actor).role
    if role == AGENT:
        return True
    running = None if step.before is None else step.before.deadline
    return role == SYSTEM and running is not None and running.trigger == step.trigger and step.at >= running.due


def _at_due(step: Step) -> bool:
    """Whether `step` was taken with its claim's deadline due (at or after the due time)."""
    running = None if step.before is None else step.before.deadline
    return running is not None and step.at >= running.due


def _late(step: Step) -> bool:
    """Whether `step` leaves its claim with the deadline already due: a step that stays in its state keeps
    the deadline running, and one taken at or after the due time leaves it passed."""
    deadline = step.after.deadline
    return deadline is not None and step.at >= deadline.due


def _own_move(step: Step, role: str) -> bool:
    """Whether `step` is the claim's own party of `role` acting."""
    actor = Actor.parse(step.actor)
    return actor.role == role and step.before is not None and step.before.is_party(actor)


def _moves(found: Exploration, taken: Callable[[Step], bool]) -> dict[int, set[int]]:
    """The moves between situations that the steps `taken` allows. Each situation counts twice: as reached
    (node 2i) and with its deadline passed (node 2i+1, which a step that keeps the deadline reaches at or
    after the due time: a situation the exploration merges with the first, as the guards judge time only
    against the deadline). From the second, only the steps taken at or after the due time are possible."""
    ahead: dict[int, set[int]] = defaultdict(set)
    for step in found.steps:
        if step.source < 0 or step.target < 0 or not taken(step):
            continue
        to = 2 * step.target + _late(step)
        ahead[2 * step.source].add(to)
        if _at_due(step):
            ahead[2 * step.source + 1].add(to)
    return ahead


def _with(found: Exploration, party: str) -> dict[int, set[int]]:
    """The moves the clock, the team and the claim's own `party` make together."""

    def taken(step: Step) -> bool:
        return _clock_or_team(step) or _own_move(step, party)

    return _moves(found, taken)


def _closing(ahead: dict[int, set[int]], finals: set[int]) -> set[int]:
    """The nodes from which the moves `ahead` reach one of `finals`: backwards from them."""
    back: dict[int, set[int]] = defaultdict(set)
    for source, targets in ahead.items():
        for target in targets:
            back[target].add(source)
    closes = set(finals)
    queue = deque(closes)
    while queue:
        for source in back[queue.popleft()]:
            if source not in closes:
                closes.add(source)
                queue.append(source)
    return closes


def no_stall(found: Exploration) -> Violation | None:
    """From every situation the clock and the team alone bring the claim to a final state, whatever the
    buyer and the supplier leave undone: every wait on a party ends by a deadline or a team decision.

    Reachability over the explored steps the clock and the team take (`_clock_or_team`), the parties'
    steps left out. The exploration fires from each situation before and at its deadline, so the clock's
    step is there wherever a deadline runs. A claim can also wait with its deadline passed, when a step
    that keeps its state (and so its deadline) came at or after the due time: the exploration merges it
    with the situation as first reached, so it is judged apart here (`_moves`), by the steps taken at the
    due time. Where the clock and the team cannot close a claim, they still move it on until it waits where
    they can move it no further: the nearest such situation (fewest steps from a filing) is the
    counterexample, with the state and the party it would wait on for ever."""
    if not found.complete:
        return Violation("the exploration stopped at its bound, so stalls cannot be judged")
    finals = {2 * i for i, c in enumerate(found.claims) if found.definition.state(c.state).final}
    ahead = _moves(found, _clock_or_team)
    closes = _closing(ahead, finals)
    # how each node is first reached: the shortest path's last step, and its length
    depth: list[int] = []
    for i in range(len(found.claims)):
        source = found.steps[found.reached_by[i]].source
        depth.append(1 if source < 0 else depth[source] + 1)
    first: dict[int, tuple[int, int]] = {2 * i: (depth[i], found.reached_by[i]) for i in range(len(found.claims))}
    for index, step in enumerate(found.steps):
        if step.target >= 0 and _late(step):
            reach = (1 if step.source < 0 else depth[step.source] + 1, index)
            first[2 * step.target + 1] = min(first.get(2 * step.target + 1, reach), reach)
    stalled = sorted((node for node in first if node not in closes), key=lambda node: (first[node], node))
    if not stalled:
        return None
    # the clock and the team lead a stalled claim only to stalled nodes; it waits for ever in a group of
    # them they never lead out of (a bottom component: a finite graph has at least one)
    group = _components(stalled, ahead)
    left = {group[n] for n in stalled if any(group[m] != group[n] for m in ahead[n])}
    waiting = next(n for n in stalled if group[n] not in left)
    return Violation(_stall(found, waiting, finals), first[waiting][1])


def _components(nodes: list[int], ahead: dict[int, set[int]]) -> dict[int, int]:
    """Each node's strongly connected component (named by one of its nodes), by Tarjan's algorithm, kept
    iterative so a long chain of situations needs no deep recursion."""
    order: dict[int, int] = {}
    low: dict[int, int] = {}
    stack: list[int] = []
    on_stack: set[int] = set()
    group: dict[int, int] = {}
    for root in nodes:
        if root in order:
            continue
        order[root] = low[root] = len(order)
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(sorted(ahead[root])))]
        while work:
            node, rest = work[-1]
            for nxt in rest:
                if nxt not in order:
                    order[nxt] = low[nxt] = len(order)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(ahead[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], order[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == order[node]:
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group[member] = node
                        if member == node:
                            break
    return group


def _stall(found: Exploration, node: int, finals: set[int]) -> str:
    """In words: the state the claim waits in, the party it waits on (the one whose moves alone, with the
    clock's and the team's, would close it; else each party that can move it), their moves, and where the
    clock and the team lead from there."""
    index, late = divmod(node, 2)
    claim = found.claims[index]
    moves: dict[str, list[str]] = {}
    leads: list[str] = []
    for step in found.steps:
        if step.source != index or (late and not _at_due(step)):
            continue
        role = Actor.parse(step.actor).role
        to = 2 * step.target + _late(step)
        if role in (BUYER, SUPPLIER) and _own_move(step, role):
            if to != node and step.trigger not in moves.setdefault(role, []):
                moves[role].append(step.trigger)
        elif _clock_or_team(step):
            who = "the clock" if role == SYSTEM else "the team"
            lead = f"{who}'s {step.trigger} leads {'back ' if to == node else ''}to {step.after.state}"
            if lead not in leads:
                leads.append(lead)
    ending = [role for role in (BUYER, SUPPLIER) if moves.get(role) and node in _closing(_with(found, role), finals)]
    named = ending or [role for role in (BUYER, SUPPLIER) if moves.get(role)]
    waits = " or ".join(f"the {role} ({', '.join(moves[role])})" for role in named)
    how = (
        "; ".join(leads) + ", and never on to a final state"
        if leads
        else "no deadline runs there and the team cannot act"
    )
    where = (
        claim.state if not late or claim.deadline is None else f"{claim.state} past its {claim.deadline.name} deadline"
    )
    if not waits:
        return f"a claim in {where} waits for ever, and no one can move it: {how}"
    return f"a claim in {where} waits for ever on {waits} if they stay silent: {how}"


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
    Property("no_stall", "no silent party stalls a claim: from every situation the clock and the team alone bring"
             " it to a final state", no_stall),
    Property("clock_when_due", "only the clock fires deadline triggers, and only once the deadline has passed",
             clock_only_when_due),
    Property("own_claims_only", "a buyer or supplier fires only on their own claim, and the team never makes a"
             " party's move", parties_act_on_their_own),
    Property("nothing_dead", "every transition is taken on some path, and every guard is seen passing and"
             " refusing (a defensive guard need not refuse)", no_dead_transition),
)  # fmt: skip
