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
from datetime import datetime
from typing import Any, Literal, cast

import attrs

from claimstate._actor import SYSTEM, Actor
from claimstate._claim import Claim, Deadline, TransitionRecord
from claimstate._definition import MIGRATE, DeadlineRule, Definition, Policy
from claimstate._errors import InvalidInput, LifecycleChanged, PlanRefused
from claimstate._fingerprints import SHOWN_DIGITS, short, windows_of
from claimstate._time import from_iso, to_iso, within_range

Choice = Literal["keep", "recompute"]
How = Literal["kept", "recomputed", "started", "none"]
CHOICES: tuple[Choice, ...] = ("keep", "recompute")
_PLAN_KEYS = ("definition", "states", "deadlines")
_DIGITS = 64  # hex digits of a whole fingerprint (SHA-256)


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


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


def plan_of(data: object) -> Plan:
    """A plan from its JSON form: ``{"states": {old: new}, "deadlines": "keep" | "recompute" | {name:
    choice}, "definition": fingerprint}``, every key but states optional; PlanRefused lists what is wrong."""
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
    if definition is not None and (
        not isinstance(definition, str) or not SHOWN_DIGITS <= len(definition) <= _DIGITS or not _is_hex(definition)
    ):
        problems.append(
            f"definition must be the new definition's fingerprint ({SHOWN_DIGITS} to {_DIGITS} hex digits), not"
            f" {_shown(str(definition))}"
        )
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


@attrs.frozen
class Moving:
    """An open claim to move: the fingerprint of the definition it was decided under, and when the clock of
    its running deadline started (the step that entered its state, or the migration that started it)."""

    claim: Claim
    definition: str | None
    started: datetime | None


def planned(
    plan: Plan,
    claims: Iterable[Moving],
    bodies: Mapping[str, Mapping[str, Any]],
    target: Target,
    problems: Iterable[str] = (),
) -> tuple[Move, ...]:
    """Every claim's move under `plan` onto `definition`, or PlanRefused listing every problem at once
    (`problems`: those the caller found already).

    `claims` are the open claims decided under other definitions; `bodies` the stored exports by
    fingerprint (the old windows come from there).
    """
    claims, definition, at, problems = list(claims), target.definition, target.at, list(problems)
    if plan.definition is not None and not target.fingerprint.startswith(plan.definition):
        problems.append(
            f"the plan was written for definition {short(plan.definition)}, not this service's"
            f" {short(target.fingerprint)}"
        )
    problems += _source_problems(plan, claims, bodies, definition)
    for source, dest in sorted(plan.states.items()):
        problems += _target_problems(definition, dest, f"states maps {_shown(source)} to")
    deadline_names = {s.deadline.name for s in definition.states if s.deadline}
    problems += [f"deadlines names {_shown(name)}, which the new definition has no deadline of"
                 for name in plan.deadlines if name not in deadline_names]  # fmt: skip
    moves: list[Move] = []
    unplaced: dict[tuple[str, str | None], int] = defaultdict(int)
    undecided: dict[str, int] = defaultdict(int)
    for moving in claims:
        claim = moving.claim
        dest = plan.states.get(claim.state, claim.state)
        if _target_problems(definition, dest, ""):
            if claim.state not in plan.states:  # else the mapping's own problem is listed
                unplaced[(claim.state, moving.definition)] += 1
            continue
        if claim.updated_at > at:
            problems.append(f"claim {claim.id} was changed at {to_iso(claim.updated_at)}, after the migration's time")
            continue
        move = _move(moving, dest, plan.choice, bodies.get(moving.definition or "", {}), target)
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


def _source_problems(
    plan: Plan, claims: list[Moving], bodies: Mapping[str, Mapping[str, Any]], definition: Definition
) -> list[str]:
    """The states the plan maps from that no claim could be in: each must be an open state of the definitions
    claims are moved from; with no claim to move, still a state some definition the database has seen has."""
    olds = [bodies.get(m.definition or "", {}) for m in claims]
    old_states = {s["name"]: bool(s.get("final")) for body in olds for s in body.get("states", ())}
    seen = {s["name"] for body in bodies.values() for s in body.get("states", ())} | {s.name for s in definition.states}
    problems = []
    for mapped in plan.states:
        if not claims and mapped not in seen:
            problems.append(f"states maps {_shown(mapped)}, which is no state of any definition the database has seen")
        elif claims and mapped not in old_states:
            problems.append(f"states maps {_shown(mapped)}, which is no state of the definitions claims are moved from")
        elif claims and old_states[mapped]:
            problems.append(f"states maps {_shown(mapped)}, a final state: closed claims are never moved")
    return problems


def _target_problems(definition: Definition, state: str, said: str) -> list[str]:
    names = {s.name: s for s in definition.states}
    if state not in names:
        return [f"{said} {_shown(state)}, which the new definition has no state of".strip()]
    if names[state].final:
        return [f"{said} {_shown(state)}, a final state: a migration moves open claims; close one by its own"
                " transition"]  # fmt: skip
    return []


def _shown(name: str) -> str:
    """A name from a plan, quoted, and cut short if it is long."""
    return repr(name if len(name) <= 80 else name[:77] + "...")


def _move(
    moving: Moving, dest: str, choice_of: Callable[[str], Choice | None], body: Mapping[str, Any], target: Target
) -> Move | None:
    """The claim's move to `dest`, its deadline set as the plan says; None when the plan must say and does not."""
    claim, old = moving.claim, moving.definition
    at, rule = target.at, target.definition.state(dest).deadline
    due = None if claim.deadline is None else claim.deadline.due
    if rule is None:
        return Move(claim.id, old, claim.state, dest, due, None, "none")
    window = target.policy.window(rule.name)
    if claim.deadline is None or claim.deadline.name != rule.name:
        return Move(claim.id, old, claim.state, dest, due, within_range(at, window), "started")
    assert due is not None
    before = windows_of(body).get(rule.name) if body else None
    if before == window:
        return Move(claim.id, old, claim.state, dest, due, due, "kept")
    choice = choice_of(rule.name)
    if choice == "keep":
        return Move(claim.id, old, claim.state, dest, due, due, "kept")
    started = moving.started if moving.started is not None else None if before is None else due - before
    if choice == "recompute" and started is not None:
        return Move(claim.id, old, claim.state, dest, due, within_range(started, window), "recomputed")
    return None


def clock_started(rows: Iterable[Mapping[str, Any]]) -> datetime | None:
    """When the clock of a claim's running deadline started, from its history rows (data decoded): the last
    step that entered a state (a deadline is set on entering one), or the migration that started it."""
    started = None
    for row in rows:
        data = row["data"] if isinstance(row["data"], Mapping) else {}
        if row["trigger"] == MIGRATE and data.get("deadline") in ("kept", "recomputed"):
            continue
        if row["trigger"] == MIGRATE or row["from_state"] != row["to_state"]:
            started = None if row["deadline_at"] is None else from_iso(row["at"], field="at")
    return started


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


def replayed(
    claim: Claim, row: Mapping[str, Any], definition: Definition, *, before: str, after: str
) -> tuple[Claim, TransitionRecord]:
    """A `migrate` history row applied to the claim before it, checked to be a migration's: by the system,
    from the claim's state to an open state of `definition` (the row's own, fingerprint `after`), from
    another definition (`before`, the previous step's) that its data names with this one, with a deadline
    exactly where the new state sets one and as its data says it became. InvalidInput when it is not."""
    data = row["data"] if isinstance(row["data"], Mapping) else {}
    problems = _target_problems(definition, str(row["to_state"]), "it moves to")
    if row["actor"] != str(SYSTEM):
        problems.append(f"a migration is the system's, not {row['actor']}'s")
    if row["from_state"] != claim.state:
        problems.append(f"it moves from {row['from_state']}, but the claim is in {claim.state}")
    if before == after or (data.get("from_definition"), data.get("to_definition")) != (before, after):
        problems.append(f"it does not move the claim from definition {short(before)} to another")
    rule = None if problems else definition.state(str(row["to_state"])).deadline
    due = None if row["deadline_at"] is None else from_iso(row["deadline_at"], field="deadline_at")
    if not problems and (rule is None) != (due is None):
        problems.append(f"its deadline ({row['deadline_at']}) does not fit state {row['to_state']}")
    if not problems and data.get("deadline") != _how(claim, rule, due):
        problems.append(f"it says the deadline was {data.get('deadline')!r}, but it was {_how(claim, rule, due)!r}")
    if problems:
        raise InvalidInput(f"not a migration: {problems[0]}", field="data")
    move = Move(claim.id, before, claim.state, row["to_state"], None, due, "kept")
    after_claim, record = moved(claim, move, definition, after, from_iso(row["at"], field="at"))
    return after_claim, attrs.evolve(record, data=row["data"])


def _how(claim: Claim, rule: DeadlineRule | None, due: datetime | None) -> How:
    """What became of the claim's deadline, from what it was and what the new state's rule and due time are."""
    if rule is None:
        return "none"
    if claim.deadline is None or claim.deadline.name != rule.name:
        return "started"
    return "kept" if claim.deadline.due == due else "recomputed"
