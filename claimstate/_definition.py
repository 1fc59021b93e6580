"""The vocabulary of a lifecycle definition: states, transitions, guards, data fields, deadlines, policy.

A definition is plain frozen data. The engine, the store, the diagrams and the CLI all read it; none
of them names a state or a trigger of their own. It is checked as a whole when it is built, and every
problem is reported at once.
"""

from __future__ import annotations

import sys
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any
from urllib.parse import quote

import attrs

from claimstate._actor import PEOPLE_ROLES, SYSTEM, Actor
from claimstate._claim import Claim
from claimstate._errors import DefinitionError, InvalidInput, Refusal, RefusalKind
from claimstate._fingerprints import fingerprint_of
from claimstate._money import CURRENCY_EXPONENTS
from claimstate._schema import DIALECT, currencies_with, nullable

ROLES = (*PEOPLE_ROLES, SYSTEM)
CURRENCY_FIELD = "currency"  # the filing data's field that names the currency its amounts are in
WITHIN_LIMITS = "within_limits"  # the refusal code of a step past the policy's limits
# What a final state means for the money and the goods, in words (pictures colour final states by it).
OUTCOMES = {
    "refund_with_return": "money back to the buyer; the goods go back to the supplier",
    "refund_goods_kept": "money back to the buyer; the buyer keeps the goods",
    "paid_to_supplier": "the money goes to the supplier",
}
MIGRATE = "migrate"  # the trigger of the history row a lifecycle migration writes (claimstate's own)


@attrs.frozen
class Context:
    """What guards and effects see: the claim (None while filing), who fires, the parsed data, the time."""

    claim_id: str
    claim: Claim | None
    actor: Actor
    data: Mapping[str, Any]
    now: datetime
    policy: Policy
    order_has_open_claim: bool = False

    @property
    def current(self) -> Claim:
        """The claim being changed; every trigger but the filing one has it."""
        if self.claim is None:
            raise InvalidInput("this trigger needs an existing claim", field="claim")
        return self.claim


@attrs.frozen(kw_only=True)
class Guard:
    """A condition a transition needs, in plain words both ways: `description` when it holds, `refusal` when not.

    `uses_data` marks guards that judge the trigger's data, which "what can I do now?" cannot know yet.
    `kind` is "permission" for guards about who fires (the other party of an offer), else "guard".
    `explain`, when given, words the refusal with the facts of one claim (which deadline, due when).
    `defensive` marks a guard no claim the lifecycle made can fail (only a damaged or hand-edited one):
    `claimstate check` does not expect to see it refuse.
    """

    code: str
    description: str
    refusal: str
    check: Callable[[Context], bool] = attrs.field(eq=False, repr=False)
    uses_data: bool = False
    kind: RefusalKind = "guard"
    explain: Callable[[Context], str] | None = attrs.field(default=None, eq=False, repr=False)
    defensive: bool = False

    def refused(self, context: Context) -> Refusal:
        """Why this guard refuses in `context`, as data."""
        message = self.refusal if self.explain is None else self.explain(context)
        return Refusal(self.kind, self.code, message)


def guard(
    code: str,
    description: str,
    refusal: str,
    *,
    uses_data: bool = False,
    kind: RefusalKind = "guard",
    explain: Callable[[Context], str] | None = None,
    defensive: bool = False,
) -> Callable[[Callable[[Context], bool]], Guard]:
    """Declare a guard from its predicate, with what it means in plain words (see `Guard`)."""

    def make(check: Callable[[Context], bool]) -> Guard:
        return Guard(
            code=code, description=description, refusal=refusal, check=check, uses_data=uses_data, kind=kind,
            explain=explain, defensive=defensive,
        )  # fmt: skip

    return make


FieldSchema = Callable[["Limits", "int | None"], dict[str, Any]]
"""What a field kind declares: the JSON Schema of its value under the policy's limits, given the number of
decimals its currency has (None where the currency is not known: any ISO 4217 currency's)."""


def any_value(_limits: Limits, _decimals: int | None) -> dict[str, Any]:
    """The schema of a field that declares none: any JSON value, which its parser judges."""
    return {}


@attrs.frozen(kw_only=True)
class Field:
    """One item of a trigger's data: `parse` turns the caller's JSON value into a domain value or raises InvalidInput.

    `parse` gets the value, the fields parsed before it, and the claim (None while filing). `schema` is the
    JSON Schema of the values `parse` accepts (see `FieldSchema`), declared beside it by each field kind in
    `claimstate.definition` (by default: any JSON value). `in_currency` marks an amount of money, whose
    decimals are those of the claim's currency (while filing, of the data's `currency`).
    """

    name: str
    description: str
    parse: Callable[[object, Mapping[str, Any], Claim | None], Any] = attrs.field(eq=False, repr=False)
    required: bool = True
    schema: FieldSchema = attrs.field(default=any_value, eq=False, repr=False)
    in_currency: bool = False


@attrs.frozen(kw_only=True)
class DeadlineRule:
    """Entering the state sets deadline `name`, due `window` later, when the clock fires `trigger`."""

    name: str
    trigger: str
    window: timedelta
    description: str


def _title_of(state: State) -> str:
    return state.name.replace("_", " ").capitalize()


def _label_of(transition: Transition) -> str:
    return transition.description


@attrs.frozen(kw_only=True)
class View:
    """A detail picture of one phase of the lifecycle: every transition of `triggers` drawn, with the
    states they touch. `name` names its files (``lifecycle-<name>.svg``); `title` heads it."""

    name: str
    title: str
    triggers: tuple[str, ...]


@attrs.frozen(kw_only=True)
class State:
    """A state of the lifecycle: its stored `name` (the identifier code uses), the `title` people read
    (by default the name in words), what it means, and the deadline entering it sets."""

    name: str
    meaning: str
    final: bool = False
    deadline: DeadlineRule | None = None
    title: str = attrs.field(default=attrs.Factory(_title_of, takes_self=True))
    note: str = ""  # a rule people must see on the state itself in the pictures
    outcome: str = ""  # a final state's outcome for money and goods, one of OUTCOMES ("": not said)


def _roles(actors: Iterable[str]) -> frozenset[str]:
    return frozenset((actors,) if isinstance(actors, str) else actors)


@attrs.frozen(kw_only=True)
class Transition:
    """`trigger` moves a claim from any of `sources` to `dest` (no sources: it files a new claim).

    `actors` are the roles that may fire it (a buyer or supplier only on their own claim). `effect`
    returns the claim with its details updated (evidence added, offer accepted...); the engine then sets
    state, version and deadline. `on_deadline` names the deadline a clock transition stands for.
    """

    trigger: str
    sources: tuple[str, ...]
    dest: str
    actors: frozenset[str] = attrs.field(converter=_roles)
    description: str
    guards: tuple[Guard, ...] = ()
    fields: tuple[Field, ...] = ()
    effect: Callable[[Context], Claim] | None = attrs.field(default=None, eq=False, repr=False)
    on_deadline: str | None = None
    # A few words for pictures, starting with who acts ("buyer", "supplier", "team", "either party", "the
    # other party"), which a claim's own story replaces with the actor.
    label: str = attrs.field(default=attrs.Factory(_label_of, takes_self=True))

    @property
    def creates(self) -> bool:
        return not self.sources


def _frozen_windows(windows: Mapping[str, timedelta]) -> Mapping[str, timedelta]:
    if not isinstance(windows, Mapping) or not all(
        isinstance(name, str) and isinstance(window, timedelta) and timedelta(0) < window <= MAX_WINDOW
        for name, window in windows.items()
    ):
        raise InvalidInput(f"must map deadline names to timedeltas above zero, at most {MAX_WINDOW.days} days",
                           field="windows")  # fmt: skip
    return MappingProxyType(dict(windows))


def _at_least_one(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidInput(f"must be a whole number of at least 1, not {value!r}", field=f"limits.{attribute.name}")


@attrs.frozen(kw_only=True)
class Limits:
    """How much one claim may hold, so none grows without bound; going past one is refused by name.

    `text`: characters in any text of a trigger's data. `evidence_per_fire` / `evidence_per_claim`:
    evidence items in one submission / on one claim. `offers_per_claim`: offers made on one claim.
    `history_per_claim`: steps in one claim's history that a buyer or supplier may take it to; past it
    only decisive steps (the clock's, the team's, or one that closes the claim) are taken, so the parties
    cannot grow a history without end and yet the clock and the team can always end the claim.
    """

    text: int = attrs.field(default=10_000, validator=_at_least_one)
    evidence_per_fire: int = attrs.field(default=20, validator=_at_least_one)
    evidence_per_claim: int = attrs.field(default=100, validator=_at_least_one)
    offers_per_claim: int = attrs.field(default=50, validator=_at_least_one)
    history_per_claim: int = attrs.field(default=1_000, validator=_at_least_one)

    def exceeded(self, before: Claim | None, after: Claim, *, decisive: bool = False) -> tuple[Refusal, ...]:
        """What a step from `before` to `after` would take past these limits (empty: nothing); a `decisive`
        step (see the class) passes the history limit."""
        added = len(after.evidence) - (0 if before is None else len(before.evidence))
        found = []
        if before is not None and before.version >= self.history_per_claim and not decisive:
            found.append(f"the claim's history holds {before.version} steps; past {self.history_per_claim} only the"
                         " team, a deadline or a step that closes the claim may add one")  # fmt: skip
        if added > self.evidence_per_fire:
            found.append(f"{added} evidence items at once; at most {self.evidence_per_fire} per step")
        if added > 0 and len(after.evidence) > self.evidence_per_claim:
            found.append(f"the claim would hold {len(after.evidence)} evidence items; at most"
                         f" {self.evidence_per_claim} per claim")  # fmt: skip
        if len(after.offers) > self.offers_per_claim and (before is None or after.offers != before.offers):
            found.append(f"the claim would hold {len(after.offers)} offers; at most {self.offers_per_claim} per claim")
        return tuple(Refusal("guard", WITHIN_LIMITS, message) for message in found)


UNBOUNDED = Limits(text=sys.maxsize, evidence_per_fire=sys.maxsize, evidence_per_claim=sys.maxsize,
                   offers_per_claim=sys.maxsize, history_per_claim=sys.maxsize)  # fmt: skip
MAX_WINDOW = timedelta(days=3650)  # ten years: keeps every deadline a representable time


def _limits(_instance: object, _attribute: attrs.Attribute[Limits], value: object) -> None:
    if not isinstance(value, Limits):
        raise InvalidInput(f"must be a Limits, not {type(value).__name__}", field="limits")


@attrs.frozen
class Policy:
    """One deployment's deadline windows (by deadline name) and limits; build it with `Definition.policy()`."""

    windows: Mapping[str, timedelta] = attrs.field(converter=_frozen_windows)
    limits: Limits = attrs.field(factory=Limits, validator=_limits)

    def window(self, deadline: str) -> timedelta:
        return self.windows[deadline]


def _problems(states: tuple[State, ...], transitions: tuple[Transition, ...]) -> Iterable[str]:
    """Every inconsistency of a definition, in plain words."""
    outgoing: dict[str, list[Transition]] = defaultdict(list)
    for t in transitions:
        for source in t.sources:
            outgoing[source].append(t)
    yield from _naming_problems(states, transitions)
    for s in states:
        if s.outcome and (not s.final or s.outcome not in OUTCOMES):
            yield (f"state {s.name} has outcome {s.outcome!r}: only a final state has one, one of"
                   f" {', '.join(OUTCOMES)}")  # fmt: skip
    yield from _deadline_problems(states, transitions)
    yield from _exit_problems(states, outgoing)
    for source, out in outgoing.items():
        yield from _ambiguities(source, out)
    filings = [t for t in transitions if t.creates]
    yield from _ambiguities("filing", filings)
    if len({t.trigger for t in filings}) > 1:
        yield f"claims are filed by more than one trigger: {', '.join(sorted({t.trigger for t in filings}))}"
    yield from _graph_problems(states, transitions, outgoing)


def _deadline_problems(states: tuple[State, ...], transitions: tuple[Transition, ...]) -> Iterable[str]:
    """Deadlines: positive windows, one window per deadline name, fired by the clock alone."""
    windows: dict[str, timedelta] = {}
    for s in states:
        rule = s.deadline
        if rule is None:
            continue
        if not timedelta(0) < rule.window <= MAX_WINDOW:
            yield f"deadline {rule.name} of state {s.name} needs a window above zero, at most ten years ({rule.window})"
        if windows.setdefault(rule.name, rule.window) != rule.window:
            yield f"deadline {rule.name} is given different windows ({windows[rule.name]} and {rule.window})"
    for t in transitions:
        if t.on_deadline is not None and t.actors != {SYSTEM}:
            yield f"transition {t.trigger} stands for deadline {t.on_deadline} but is not fired by the system alone"


def _naming_problems(states: tuple[State, ...], transitions: tuple[Transition, ...]) -> Iterable[str]:
    """Names: unique plain state names, known states and roles, one set of data fields per trigger."""
    names: set[str] = set()
    for s in states:
        if s.name in names:
            yield f"state {s.name!r} is defined twice"
        names.add(s.name)
        if not s.name.isidentifier():
            yield f"state name {s.name!r} is not a plain token"
    fields_of: dict[str, tuple[str, ...]] = {}
    for t in transitions:
        for place in (*t.sources, t.dest):
            if place not in names:
                yield f"transition {t.trigger} names unknown state {place!r}"
        for role in sorted(t.actors - set(ROLES)):
            yield f"transition {t.trigger} names unknown actor role {role!r}"
        if not t.actors:
            yield f"transition {t.trigger} permits no actor"
        if t.trigger == MIGRATE:
            yield f"trigger {MIGRATE} is claimstate's own: it records a lifecycle migration in the history"
        field_names = tuple(f.name for f in t.fields)
        if fields_of.setdefault(t.trigger, field_names) != field_names:
            yield f"transitions of trigger {t.trigger} declare different data fields"


def _exit_problems(states: tuple[State, ...], outgoing: Mapping[str, list[Transition]]) -> Iterable[str]:
    """Ways out: none from final states, some from the others, and one for each deadline a state sets."""
    for s in states:
        out = outgoing.get(s.name, [])
        if s.final and out:
            yield f"final state {s.name} has a way out: {', '.join(sorted({t.trigger for t in out}))}"
        if not s.final and not out:
            yield f"non-final state {s.name} has no way out"
        rule = s.deadline
        if rule is not None and not any(t.trigger == rule.trigger and t.on_deadline == rule.name for t in out):
            yield f"state {s.name} sets deadline {rule.name} but has no {rule.trigger} transition for it"
        for t in out:
            if t.on_deadline is not None and (rule is None or rule.name != t.on_deadline):
                yield f"transition {t.trigger} fires on deadline {t.on_deadline} that state {s.name} does not set"


def _graph_problems(
    states: tuple[State, ...], transitions: tuple[Transition, ...], outgoing: Mapping[str, list[Transition]]
) -> Iterable[str]:
    """Every state is reachable from filing, and a final state is reachable from every state."""
    creations = {t.dest for t in transitions if t.creates}
    if not creations:
        yield "no transition files a claim (one with no sources)"
    reachable = _closure(creations, {s: {t.dest for t in out} for s, out in outgoing.items()})
    backwards: dict[str, set[str]] = defaultdict(set)
    for source, out in outgoing.items():
        for t in out:
            backwards[t.dest].add(source)
    ending = _closure({s.name for s in states if s.final}, backwards)
    for s in states:
        if s.name not in reachable:
            yield f"state {s.name} is unreachable from filing"
        if s.name not in ending:
            yield f"state {s.name} cannot reach any final state"


def _ambiguities(source: str, out: list[Transition]) -> Iterable[str]:
    """Transitions sharing (trigger, source) must be told apart by a guard of their own or by who fires them."""
    by_trigger: dict[str, list[Transition]] = defaultdict(list)
    for t in out:
        by_trigger[t.trigger].append(t)
    for trigger, same in by_trigger.items():
        for i, a in enumerate(same):
            for b in same[i + 1 :]:
                a_codes, b_codes = {g.code for g in a.guards}, {g.code for g in b.guards}
                apart = (a_codes - b_codes and b_codes - a_codes) or not a.actors & b.actors
                if not apart:
                    yield (
                        f"trigger {trigger} from {source} has transitions to {a.dest} and {b.dest}"
                        " whose guards cannot tell them apart"
                    )


def _closure(start: set[str], edges: Mapping[str, set[str]]) -> set[str]:
    found, queue = set(start), deque(start)
    while queue:
        for nxt in edges.get(queue.popleft(), ()):
            if nxt not in found:
                found.add(nxt)
                queue.append(nxt)
    return found


def trigger_schema(
    trigger: str,
    transitions: Iterable[Transition],
    fields: tuple[Field, ...],
    limits: Limits,
    *,
    decimals: int | None,
    currency_field: str | None,
) -> dict[str, Any]:
    """The schema of `trigger`'s data: an object of its fields, nothing else. Money fields follow
    `decimals`, or, where the data names the currency itself (`currency_field`, while filing), the
    decimals of the currency it names."""

    def value(field: Field, places: int | None) -> dict[str, Any]:
        schema = {**field.schema(limits, places), "description": field.description}
        return schema if field.required else nullable(schema)

    schema: dict[str, Any] = {
        "type": "object",
        "title": trigger,
        "description": "; ".join(dict.fromkeys(t.description for t in transitions)),
        "properties": {f.name: value(f, decimals) for f in fields},
        "required": [f.name for f in fields if f.required],
        "additionalProperties": False,
    }
    priced = [f for f in fields if f.in_currency]
    if priced and decimals is None and currency_field is not None:
        schema["allOf"] = [
            {
                "if": {"properties": {currency_field: {"enum": currencies_with(places)}}},
                "then": {"properties": {f.name: value(f, places) for f in priced}},
            }
            for places in sorted(set(CURRENCY_EXPONENTS.values()))
        ]
    return schema


def _frozen_examples(value: Mapping[str, Iterable[Mapping[str, Any]]]) -> Mapping[str, tuple[Mapping[str, Any], ...]]:
    if not isinstance(value, Mapping):
        raise InvalidInput("must map triggers to sample data", field="check_settings.examples")
    return MappingProxyType(
        {str(trigger): tuple(dict(sample) for sample in samples) for trigger, samples in value.items()}
    )


def _names(value: Iterable[str]) -> frozenset[str]:
    return frozenset(value)


@attrs.frozen(kw_only=True)
class CheckSettings:
    """What `claimstate.check` needs of a lifecycle beyond its rules, carried by the definition as data (no
    part of its rules, its fingerprint or its export).

    `examples`: sample data for each trigger, for the checker to fire (valid data and the edge cases the
    guards judge; money "{below}", "{order}" or "{above}" the order amount). Each trigger's samples are kept
    to the fields it takes, and a trigger they do not name gets one sample of its required fields with the
    values they give fields of those names elsewhere, so a definition may borrow another's
    (`CheckSettings(examples=CLAIM_LIFECYCLE.check_settings.examples)`).
    `full_refund`, `partial_refund`: the states a full and a partial refund end in, which
    `full_refund_needs_return` and `refund_within_order` judge (None: the lifecycle has none).
    `party_moves`: the triggers that are the buyer's and the supplier's own, which `own_claims_only` proves
    the team never fires: declared, not derived from who may fire them, so that giving the team one of them
    is found.
    """

    examples: Mapping[str, tuple[Mapping[str, Any], ...]] = attrs.field(
        factory=dict, converter=_frozen_examples, hash=False
    )
    full_refund: str | None = None
    partial_refund: str | None = None
    party_moves: frozenset[str] = attrs.field(default=frozenset(), converter=_names)

    def problems(self, states: Iterable[str], triggers: Iterable[str]) -> Iterable[str]:
        """What these settings name that the definition does not have (examples aside: they are fitted)."""
        known_states, known_triggers = set(states), set(triggers)
        for role, state in (("full_refund", self.full_refund), ("partial_refund", self.partial_refund)):
            if state is not None and state not in known_states:
                yield f"check settings name unknown state {state!r} as {role}"
        for trigger in sorted(self.party_moves - known_triggers):
            yield f"check settings name unknown trigger {trigger!r} as a party's move"


@attrs.frozen
class Definition:
    """A whole lifecycle: validated when built, raising one DefinitionError that lists every problem.

    `views` are the detail pictures drawn beside the overview, each a phase of the lifecycle. `earlier`
    are the definitions this one replaced (kept in code, like old migrations), so that the steps claims
    took under them can still be replayed by `verify`; they are no part of this one's rules.
    `check_settings` is what `claimstate.check` fires and judges by (see `CheckSettings`); it is no part of
    the rules either, nor of the export."""

    name: str
    states: tuple[State, ...]
    transitions: tuple[Transition, ...]
    views: tuple[View, ...] = ()
    earlier: tuple[Definition, ...] = attrs.field(default=(), converter=tuple, eq=False, repr=False)
    check_settings: CheckSettings = attrs.field(factory=CheckSettings, eq=False, repr=False, kw_only=True)
    _outgoing: Mapping[tuple[str, str], tuple[Transition, ...]] = attrs.field(init=False, repr=False, eq=False)
    _by_name: Mapping[str, State] = attrs.field(init=False, repr=False, eq=False)
    _fields: Mapping[str, tuple[Field, ...]] = attrs.field(init=False, repr=False, eq=False)
    _by_trigger: Mapping[str, tuple[Transition, ...]] = attrs.field(init=False, repr=False, eq=False)
    triggers: tuple[str, ...] = attrs.field(init=False, eq=False)
    """Every trigger, in definition order."""
    creation: Transition = attrs.field(init=False, repr=False, eq=False)
    """The transition that files a claim."""

    def __attrs_post_init__(self) -> None:
        problems = list(_problems(self.states, self.transitions))
        known = {t.trigger for t in self.transitions}
        problems += [
            f"view {v.name!r} names trigger {trigger!r}, which no transition has"
            for v in self.views
            for trigger in v.triggers
            if trigger not in known
        ]
        if not isinstance(self.check_settings, CheckSettings):
            problems.append(f"check_settings must be a CheckSettings, not {type(self.check_settings).__name__}")
        else:
            problems += self.check_settings.problems((s.name for s in self.states), known)
        if problems:
            raise DefinitionError(problems)
        index: dict[tuple[str, str], list[Transition]] = defaultdict(list)
        for t in self.transitions:
            for source in t.sources or ("",):
                index[(source, t.trigger)].append(t)
        object.__setattr__(self, "_outgoing", MappingProxyType({k: tuple(v) for k, v in index.items()}))
        object.__setattr__(self, "_by_name", MappingProxyType({s.name: s for s in self.states}))
        fields = {t.trigger: t.fields for t in reversed(self.transitions)}  # the first transition's, as before
        object.__setattr__(self, "_fields", MappingProxyType(fields))
        by_trigger: dict[str, list[Transition]] = defaultdict(list)
        for t in self.transitions:
            by_trigger[t.trigger].append(t)
        object.__setattr__(self, "_by_trigger", MappingProxyType({k: tuple(v) for k, v in by_trigger.items()}))
        object.__setattr__(self, "triggers", tuple(dict.fromkeys(t.trigger for t in self.transitions)))
        object.__setattr__(self, "creation", next(t for t in self.transitions if t.creates))

    def state(self, name: str) -> State:
        try:
            return self._by_name[name]
        except KeyError:
            raise InvalidInput(f"unknown state {name!r}", field="state") from None

    def candidates(self, state: str | None, trigger: str) -> tuple[Transition, ...]:
        """The transitions `trigger` may take from `state` (None: filing), in definition order."""
        return self._outgoing.get((state or "", trigger), ())

    def label(self, source: str | None, trigger: str, dest: str) -> str:
        """The plain words of the transition `trigger` takes from `source` to `dest` (its name if none)."""
        return next((t.label for t in self.candidates(source, trigger) if t.dest == dest), trigger)

    def transitions_of(self, trigger: str) -> tuple[Transition, ...]:
        """Every transition `trigger` may take, from any state, in definition order."""
        return self._by_trigger.get(trigger, ())

    def fields(self, trigger: str) -> tuple[Field, ...]:
        """The data `trigger` takes (the same from every state: building the definition checks it)."""
        return self._fields.get(trigger, ())

    def policy(self, *, limits: Limits | None = None, **windows: timedelta) -> Policy:
        """The default windows and limits, with the given ones (windows by deadline name, e.g.
        evidence_due=) replacing them. A window is positive and at most ten years."""
        defaults = {s.deadline.name: s.deadline.window for s in self.states if s.deadline}
        if limits is not None and not isinstance(limits, Limits):
            raise InvalidInput(f"must be a Limits, not {type(limits).__name__}", field="limits")
        for name, window in windows.items():
            if name not in defaults:
                raise InvalidInput(f"no deadline is named {name!r}; known: {', '.join(sorted(defaults))}", field=name)
            if not isinstance(window, timedelta) or not timedelta(0) < window <= MAX_WINDOW:
                raise InvalidInput(f"the {name} window must be a timedelta above zero and at most {MAX_WINDOW.days}"
                                   f" days, not {window!r}", field=name)  # fmt: skip
        return Policy({**defaults, **windows}, limits or Limits())

    def fingerprint(self, policy: Policy | None = None) -> str:
        """The hash of this definition's rules under `policy` (default windows if None): see `fingerprint_of`."""
        return fingerprint_of(self.to_dict(policy))

    def json_schema(self, policy: Policy | None = None, *, currency: str | None = None) -> dict[str, Any]:
        """A JSON Schema (2020-12) document with, under `$defs`, one schema per trigger for the data it takes,
        the filing trigger's included: what a service in another language validates against or generates
        types from. Lengths come from `policy`'s limits (default policy if None). Amounts on a claim are in
        the claim's currency: give `currency` for schemas that hold a claim in it to its decimals (without
        one they allow as many decimals as any currency has). Its `$id` carries the definition's
        fingerprint, so a changed definition is a changed document."""
        policy = policy or self.policy()
        decimals = None
        if currency is not None:
            if currency not in CURRENCY_EXPONENTS:
                raise InvalidInput(f"{currency!r} is not an ISO 4217 currency code", field="currency")
            decimals = CURRENCY_EXPONENTS[currency]
        schemas = {
            trigger: trigger_schema(
                trigger,
                self.transitions_of(trigger),
                self.fields(trigger),
                policy.limits,
                decimals=None if trigger == self.creation.trigger else decimals,
                currency_field=CURRENCY_FIELD if trigger == self.creation.trigger else None,
            )
            for trigger in self.triggers
        }
        return {
            "$schema": DIALECT,
            "$id": f"urn:claimstate:definition:{quote(self.name)}:{self.fingerprint(policy)}",
            "title": f"The data of each trigger of the {self.name} lifecycle",
            "description": f"Filing a claim is {self.creation.trigger}; every other trigger fires on a claim."
            + ("" if currency is None else f" Amounts are in {currency}."),
            "$defs": schemas,
        }

    def to_dict(self, policy: Policy | None = None) -> dict[str, Any]:
        """The definition as plain JSON-ready data, for tools and diagrams, with the `fingerprint` of its rules."""
        body = self._export(policy or self.policy())
        return {**body, "fingerprint": fingerprint_of(body)}

    def _export(self, policy: Policy) -> dict[str, Any]:
        return {
            "name": self.name,
            "roles": list(ROLES),
            "limits": attrs.asdict(policy.limits),
            "states": [
                {
                    "name": s.name,
                    "title": s.title,
                    "meaning": s.meaning,
                    "note": s.note,
                    "final": s.final,
                    "outcome": s.outcome,
                    "deadline": None
                    if s.deadline is None
                    else {
                        "name": s.deadline.name,
                        "trigger": s.deadline.trigger,
                        "window_seconds": int(policy.window(s.deadline.name).total_seconds()),
                        "description": s.deadline.description,
                    },
                }
                for s in self.states
            ],
            "transitions": [
                {
                    "trigger": t.trigger,
                    "sources": list(t.sources),
                    "dest": t.dest,
                    "actors": sorted(t.actors, key=ROLES.index),
                    "label": t.label,
                    "description": t.description,
                    "guards": [
                        {"code": g.code, "kind": g.kind, "description": g.description, "refusal": g.refusal}
                        for g in t.guards
                    ],
                    "data": [{"name": f.name, "required": f.required, "description": f.description} for f in t.fields],
                    "on_deadline": t.on_deadline,
                }
                for t in self.transitions
            ],
        }
