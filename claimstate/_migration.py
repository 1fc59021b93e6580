"""Moving open claims onto a changed lifecycle: what is out of date, a plan checked whole, the moves it makes.

Each claim is decided under one definition, whose fingerprint its row records. When the service's
definition changes, the open claims decided under another stay as they are until a plan moves them,
each old state onto a state of the new definition. The plan is checked against every such claim before
anything is written, and all its problems are reported at once. A move is one history row (trigger
`migrate`, actor system) that changes the claim's state, deadline and definition and nothing else of it,
so it replays from the row alone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Literal, cast

import attrs

from claimstate._actor import SYSTEM, Actor
from claimstate._claim import Claim, Deadline, TransitionRecord
from claimstate._definition import MIGRATE, Definition, Policy
from claimstate._errors import InvalidInput, LifecycleChanged, PlanRefused
from claimstate._time import from_iso, to_iso

Choice = Literal["keep", "recompute"]
How = Literal["kept", "recomputed", "started", "none"]
CHOICES: tuple[Choice, ...] = ("keep", "recompute")
_PLAN_KEYS = ("definition", "states", "deadlines")
_SHOWN = 12  # hex digits of a fingerprint shown to people


def short(fingerprint: str | None) -> str:
    return "(none recorded)" if fingerprint is None else fingerprint[:_SHOWN]


@attrs.frozen
class Outdated:
    """The open claims decided under one earlier definition: how many sit in each state, and which of those
    states, and which transitions out of them, the current definition lacks."""

    fingerprint: str | None
    name: str
    states: Mapping[str, int]
    missing_states: tuple[str, ...]
    missing_transitions: tuple[str, ...]

    @property
    def claims(self) -> int:
        return sum(self.states.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "name": self.name,
            "open_claims": dict(self.states),
            "missing_states": list(self.missing_states),
            "missing_transitions": list(self.missing_transitions),
        }

    def describe(self) -> str:
        counts = ", ".join(f"{n} in {state}" for state, n in sorted(self.states.items()))
        said = f"definition {short(self.fingerprint)} ({self.name or 'not stored'}): {counts}"
        if self.missing_states:
            said += f"; this service's definition lacks state(s) {', '.join(self.missing_states)}"
        if self.missing_transitions:
            said += f"; it lacks transition(s) {', '.join(self.missing_transitions)}"
        return said


def outdated(
    rows: Iterable[tuple[str | None, str, int]], bodies: Mapping[str, Mapping[str, Any]], current: Definition
) -> tuple[Outdated, ...]:
    """The store's (definition, state, count) rows of open claims under other definitions, per definition."""
    by_definition: dict[str | None, dict[str, int]] = defaultdict(dict)
    for fingerprint, state, count in rows:
        by_definition[fingerprint][state] = count
    known = {s.name for s in current.states}
    moves = {(t.trigger, source, t.dest) for t in current.transitions for source in t.sources}
    found = []
    for fingerprint, states in by_definition.items():
        body = bodies.get(fingerprint or "", {})
        lacking = sorted(
            f"{t['trigger']}: {source} -> {t['dest']}"
            for t in body.get("transitions", ())
            for source in t["sources"]
            if source in states and (t["trigger"], source, t["dest"]) not in moves
        )
        found.append(
            Outdated(fingerprint, str(body.get("name", "")), states, tuple(sorted(set(states) - known)), tuple(lacking))
        )
    return tuple(sorted(found, key=lambda o: o.fingerprint or ""))


def changed_error(where: str, current: str, found: tuple[Outdated, ...]) -> LifecycleChanged:
    lines = "\n".join(f"- {o.describe()}" for o in found)
    return LifecycleChanged(
        f"{where} holds {sum(o.claims for o in found)} open claim(s) decided under another lifecycle definition"
        f" than this service's ({short(current)}):\n{lines}\nMove them with a plan (ClaimService(...,"
        " migrating=True).migrate(plan), or `claimstate migrate --plan PLAN.json`), or run the definition they"
        " were decided under (`--definition MODULE:NAME`, or $CLAIMSTATE_DEFINITION).",
        definition=current,
        outdated=found,
    )


@attrs.frozen
class Plan:
    """Where each old state goes (a state the new definition has under the same name goes there unless
    mapped), and what becomes of a running deadline whose window changed, by deadline name (`default` for
    every other): kept as it is due, or recomputed from when its clock started with the new window."""

    states: Mapping[str, str]
    deadlines: Mapping[str, Choice]
    default: Choice | None = None
    definition: str | None = None

    def choice(self, deadline: str) -> Choice | None:
        return self.deadlines.get(deadline, self.default)

    def to_dict(self) -> dict[str, Any]:
        return {
            "definition": self.definition,
            "states": dict(self.states),
            "deadlines": self.default if not self.deadlines else {**self.deadlines},
        }


def plan_of(data: object) -> Plan:
    """A plan from its JSON form: ``{"states": {old: new}, "deadlines": "keep" | "recompute" | {name:
    choice}, "definition": fingerprint}``, every key but states optional; PlanRefused lists what is wrong."""
    if isinstance(data, Plan):
        return data
    if not isinstance(data, Mapping):
        raise PlanRefused([f"a plan is a JSON object, not {type(data).__name__}"])
    problems = [f"unknown key {key!r} (a plan has {', '.join(_PLAN_KEYS)})" for key in data if key not in _PLAN_KEYS]
    states = data.get("states", {})
    if not isinstance(states, Mapping) or not all(isinstance(v, str) for kv in states.items() for v in kv):
        problems.append("states must map old state names to new state names (text to text)")
        states = {}
    given = data.get("deadlines", {})
    default = given if isinstance(given, str) else None
    deadlines: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
    if not isinstance(given, str | Mapping):
        problems.append('deadlines must be "keep", "recompute", or an object of deadline name to one of them')
    for name, choice in (*deadlines.items(), *([("(every deadline)", default)] if default is not None else [])):
        if choice not in CHOICES:
            problems.append(f'deadlines: {name}: {choice!r} is not "keep" or "recompute"')
    definition = data.get("definition")
    if definition is not None and (not isinstance(definition, str) or len(definition) < _SHOWN):
        problems.append(f"definition must be the new definition's fingerprint (at least {_SHOWN} hex digits)")
    if problems:
        raise PlanRefused(problems)
    return Plan(dict(states), dict(deadlines), cast(Choice | None, default), definition)


@attrs.frozen
class Move:
    """One open claim's move: from `source` under definition `from_definition` to `dest`, its running
    deadline before and after (`how`: kept, recomputed, started anew, or none in the new state)."""

    claim_id: str
    from_definition: str | None
    source: str
    dest: str
    due_before: datetime | None
    due_after: datetime | None
    how: How

    def to_dict(self) -> dict[str, Any]:
        return {
            "claim_id": self.claim_id,
            "from_definition": self.from_definition,
            "from_state": self.source,
            "to_state": self.dest,
            "deadline_before": None if self.due_before is None else to_iso(self.due_before),
            "deadline_after": None if self.due_after is None else to_iso(self.due_after),
            "deadline": self.how,
        }


@attrs.frozen
class Migration:
    """What `migrate` moved (or, with `dry_run`, would move) onto definition `definition`."""

    definition: str
    moves: tuple[Move, ...]
    dry_run: bool

    def to_dict(self) -> dict[str, Any]:
        return {"definition": self.definition, "dry_run": self.dry_run, "moves": [m.to_dict() for m in self.moves]}


@attrs.frozen
class Target:
    """Where claims move: the new definition, its policy and fingerprint, and the time of the move."""

    definition: Definition
    policy: Policy
    fingerprint: str
    at: datetime


def planned(
    plan: Plan,
    claims: Iterable[tuple[Claim, str | None]],
    bodies: Mapping[str, Mapping[str, Any]],
    target: Target,
    problems: Iterable[str] = (),
) -> tuple[Move, ...]:
    """Every claim's move under `plan` onto `definition`, or PlanRefused listing every problem at once
    (`problems`: those the caller found already).

    `claims` are the open claims decided under other definitions, each with its definition's fingerprint;
    `bodies` the stored exports by fingerprint (the old windows come from there).
    """
    claims, definition, at, problems = list(claims), target.definition, target.at, list(problems)
    if plan.definition is not None and not target.fingerprint.startswith(plan.definition):
        problems.append(
            f"the plan was written for definition {short(plan.definition)}, not this service's"
            f" {short(target.fingerprint)}"
        )
    old_states = {s["name"]: bool(s.get("final")) for body in bodies.values() for s in body.get("states", ())}
    for mapped in plan.states if claims else ():
        if mapped not in old_states:
            problems.append(f"states maps {mapped!r}, which is no state of an earlier definition")
        elif old_states[mapped]:
            problems.append(f"states maps {mapped!r}, a final state: closed claims are never moved")
    for source, dest in sorted(plan.states.items()):
        problems += _target_problems(definition, dest, f"states maps {source!r} to")
    deadline_names = {s.deadline.name for s in definition.states if s.deadline}
    problems += [f"deadlines names {name!r}, which the new definition has no deadline of" for name in plan.deadlines
                 if name not in deadline_names]  # fmt: skip
    moves: list[Move] = []
    unplaced: dict[tuple[str, str | None], int] = defaultdict(int)
    undecided: dict[str, int] = defaultdict(int)
    for claim, old in claims:
        dest = plan.states.get(claim.state, claim.state)
        if _target_problems(definition, dest, ""):
            if claim.state not in plan.states:  # else the mapping's own problem is listed
                unplaced[(claim.state, old)] += 1
            continue
        if claim.updated_at > at:
            problems.append(f"claim {claim.id} was changed at {to_iso(claim.updated_at)}, after the migration's time")
            continue
        move = _move(claim, old, dest, plan.choice, bodies.get(old or "", {}), target)
        if move is None:
            undecided[claim.deadline.name if claim.deadline else ""] += 1
        else:
            moves.append(move)
    problems += [
        f"{n} open claim(s) in {state} (definition {short(old)}) have no state to go to in the new definition:"
        f" map {state!r} in the plan's states"
        for (state, old), n in sorted(unplaced.items(), key=str)
    ]
    problems += [
        f"{n} open claim(s) run deadline {name}, whose window changes: say in the plan's deadlines whether it is"
        f' "keep" (due as before) or "recompute" (from when its clock started, with the new window)'
        for name, n in sorted(undecided.items())
    ]
    if problems:
        raise PlanRefused(problems)
    return tuple(moves)


def _target_problems(definition: Definition, state: str, said: str) -> list[str]:
    names = {s.name: s for s in definition.states}
    if state not in names:
        return [f"{said} {state!r}, which the new definition has no state of".strip()]
    if names[state].final:
        return [f"{said} {state!r}, a final state: a migration moves open claims; close one by its own transition"]
    return []


def _move(  # noqa: PLR0917  (one claim's move: each argument is needed)
    claim: Claim, old: str | None, dest: str, choice_of: Callable[[str], Choice | None], body: Mapping[str, Any],
    target: Target,
) -> Move | None:  # fmt: skip
    """The claim's move to `dest`, its deadline set as the plan says; None when the plan must say and does not."""
    at, rule = target.at, target.definition.state(dest).deadline
    due = None if claim.deadline is None else claim.deadline.due
    if rule is None:
        return Move(claim.id, old, claim.state, dest, due, None, "none")
    window = target.policy.window(rule.name)
    if claim.deadline is None or claim.deadline.name != rule.name:
        return Move(claim.id, old, claim.state, dest, due, at + window, "started")
    assert due is not None
    before = _old_window(body, rule.name)
    if before == window:
        return Move(claim.id, old, claim.state, dest, due, due, "kept")
    choice = choice_of(rule.name)
    if choice == "keep":
        return Move(claim.id, old, claim.state, dest, due, due, "kept")
    if choice == "recompute" and before is not None:
        return Move(claim.id, old, claim.state, dest, due, due - before + window, "recomputed")
    return None


def _old_window(body: Mapping[str, Any], deadline: str) -> timedelta | None:
    """The window deadline `deadline` had in a stored export (None: not known)."""
    for state in body.get("states", ()):
        rule = state.get("deadline") or {}
        if rule.get("name") == deadline:
            return timedelta(seconds=int(rule["window_seconds"]))
    return None


def moved(
    claim: Claim, move: Move, definition: Definition, fingerprint: str, at: datetime
) -> tuple[Claim, TransitionRecord]:
    """The claim after `move` under `definition`, and the history record of it."""
    rule = definition.state(move.dest).deadline
    deadline = None if rule is None or move.due_after is None else Deadline(rule.name, rule.trigger, move.due_after)
    after = attrs.evolve(claim, state=move.dest, version=claim.version + 1, updated_at=at, deadline=deadline)
    data = {"from_definition": move.from_definition, "to_definition": fingerprint, "deadline": move.how}
    record = TransitionRecord(claim.id, after.version, MIGRATE, claim.state, move.dest, Actor.parse(SYSTEM), data, at)
    return after, record


def replayed(claim: Claim, row: Mapping[str, Any], definition: Definition) -> tuple[Claim, TransitionRecord]:
    """A `migrate` history row applied to the claim before it: what the row says, checked against `definition`
    (the row's own); InvalidInput when it cannot be a migration's row."""
    if row["actor"] != str(SYSTEM):
        raise InvalidInput(f"a migration is the system's, not {row['actor']}'s", field="actor")
    if row["from_state"] != claim.state:
        raise InvalidInput(f"the migration moves from {row['from_state']}, but the claim is in {claim.state}")
    problems = _target_problems(definition, str(row["to_state"]), "it moves to")
    if problems:
        raise InvalidInput(problems[0])
    due = None if row["deadline_at"] is None else from_iso(row["deadline_at"], field="deadline_at")
    at = from_iso(row["at"], field="at")
    data = row["data"] if isinstance(row["data"], Mapping) else {}
    move = Move(claim.id, data.get("from_definition"), claim.state, row["to_state"], None, due, "kept")
    after, record = moved(claim, move, definition, str(data.get("to_definition")), at)
    return after, attrs.evolve(record, data=row["data"])
