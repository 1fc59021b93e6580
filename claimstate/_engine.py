"""The engine: fires triggers on claims through a `transitions` machine built once per definition.

The machine holds no claim. Each fire sets up a throwaway carrier holding only a state name, lets the
machine pick the transition whose guards pass, and builds a new immutable claim from it; the input
claim is never touched, and a refusal has nothing to undo. Who may fire is checked before the machine
runs, so a refused trigger never reaches a guard or an effect.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from functools import partial
from typing import Any, cast
from weakref import finalize, ref

import attrs
from transitions import EventData, Machine

from claimstate._actor import DECIDERS, Actor
from claimstate._claim import Claim, Deadline, TransitionRecord
from claimstate._definition import WITHIN_LIMITS, Context, Definition, Policy, Transition
from claimstate._errors import InvalidInput, Refusal, TransitionRefused
from claimstate._inputs import identifier, plain_data
from claimstate._lifecycle import CLAIM_LIFECYCLE
from claimstate._time import aware, within_range

NOT_IN_STATE, ACTOR_NOT_PERMITTED = "not_in_state", "actor_not_permitted"  # the engine's own refusal codes
REFUSAL_CODES = frozenset({NOT_IN_STATE, ACTOR_NOT_PERMITTED, WITHIN_LIMITS})
"""The codes a trigger can be refused with whatever its guards: the claim's state, who fires, the limits."""
_FILING = "(filing)"  # the machine's start, standing for "no claim yet"; never stored


@attrs.frozen
class Fired:
    """The result of an applied transition: the new claim and the history record that says how.

    `replayed` is True when the service returned the first result of a request repeated under its
    idempotency key (nothing was applied this time: an API answers 200 and `Idempotent-Replayed`, not 201).
    It does not take part in equality: a replay equals the first result.
    """

    claim: Claim
    record: TransitionRecord
    replayed: bool = attrs.field(default=False, eq=False)


@attrs.frozen
class Availability:
    """Whether an actor may fire `trigger` now, and why not; `needs` lists the data it requires when fired."""

    trigger: str
    allowed: bool
    reasons: tuple[Refusal, ...] = ()
    needs: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "trigger": self.trigger,
            "allowed": self.allowed,
            "reasons": [r.to_dict() for r in self.reasons],
            "needs": list(self.needs),
        }


class _Carrier:
    """The only object the `transitions` machine ever sees: a state name, the context, and what fired."""

    __slots__ = ("context", "permitted", "state", "taken")

    def __init__(self, state: str, context: Context, permitted: tuple[Transition, ...]) -> None:
        self.state = state
        self.context = context
        self.permitted = permitted
        self.taken: Transition | None = None


def _admits(transition: Transition, event: EventData) -> bool:
    """The machine's condition: the actor may fire `transition` and its guards pass. `transitions` takes
    the first transition whose conditions pass, so the one admitted here is the one taken."""
    carrier = cast(_Carrier, event.model)
    if transition in carrier.permitted and all(g.check(carrier.context) for g in transition.guards):
        carrier.taken = transition
        return True
    return False


def _copy(value: Any) -> Any:
    """A deep copy of plain JSON data (checked by `_parse`: nested at most MAX_DEPTH), lists for tuples."""
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_copy(item) for item in value]
    return value  # text, numbers, booleans and None cannot change


class _Built:
    """What every engine of one definition object shares: its machine, which holds no claim (so threads and
    engines can share it), and its fingerprint under each set of deadline windows."""

    def __init__(self, definition: Definition) -> None:
        self.definition = ref(definition)
        self.machine = Machine(
            model=None,
            states=[_FILING, *(s.name for s in definition.states)],
            initial=_FILING,
            auto_transitions=False,
            send_event=True,
        )
        for t in definition.transitions:
            for source in t.sources or (_FILING,):
                self.machine.add_transition(t.trigger, source, t.dest, conditions=[partial(_admits, t)])
        self._fingerprints: dict[tuple[tuple[str, Any], ...], str] = {}

    def fingerprint(self, policy: Policy) -> str:
        """The definition's fingerprint under `policy`, which only its deadline windows change."""
        windows = tuple(sorted(policy.windows.items()))
        if windows not in self._fingerprints:
            definition = self.definition()
            assert definition is not None  # an engine of it is being made
            self._fingerprints[windows] = definition.fingerprint(policy)
        return self._fingerprints[windows]


_BUILT: dict[int, _Built] = {}  # by the definition object's id (equal definitions may hold different guards)


def _built(definition: Definition) -> _Built:
    """The shared parts of `definition`'s engines, built on the first (a service opens engines often: for
    itself, and for verify and migrations, one per definition its database holds); dropped with it."""
    key = id(definition)
    found = _BUILT.get(key)
    if found is None or found.definition() is not definition:
        _BUILT[key] = found = _Built(definition)
        finalize(definition, _BUILT.pop, key, None)
    return found


class Engine:
    """Decides and applies transitions of one definition under one policy; pure, no I/O, no wall clock."""

    def __init__(self, definition: Definition = CLAIM_LIFECYCLE, policy: Policy | None = None) -> None:
        if not isinstance(definition, Definition):
            raise InvalidInput(f"must be a Definition, not {type(definition).__name__}", field="definition")
        if policy is not None and not isinstance(policy, Policy):
            raise InvalidInput(
                f"must be a Policy (made by the definition's policy()), not {type(policy).__name__}", field="policy"
            )
        self.definition = definition
        defaults = definition.policy()
        self.policy = policy or defaults
        unknown = set(self.policy.windows) ^ set(defaults.windows)
        if unknown:
            raise InvalidInput(f"the policy does not fit the definition: {', '.join(sorted(unknown))}", field="policy")
        built = _built(definition)
        self.fingerprint = built.fingerprint(self.policy)
        """The hash of the rules this engine decides by (see `claimstate.definition.fingerprint_of`)."""
        self._machine = built.machine

    def file_claim(
        self,
        claim_id: str,
        actor: Actor | str,
        data: Mapping[str, Any],
        now: datetime,
        *,
        order_has_open_claim: bool = False,
    ) -> Fired:
        """File a new claim with the definition's filing trigger."""
        return self._apply(
            None,
            claim_id=identifier(claim_id, "claim_id"),
            trigger=self.definition.creation.trigger,
            actor=actor,
            data=data,
            now=now,
            order_has_open_claim=order_has_open_claim,
        )

    def fire(
        self, claim: Claim, trigger: str, actor: Actor | str, data: Mapping[str, Any] | None, now: datetime
    ) -> Fired:
        """Apply `trigger` to `claim` as `actor`, or raise TransitionRefused / InvalidInput having changed nothing."""
        if not isinstance(claim, Claim):
            raise InvalidInput(f"must be a Claim, not {type(claim).__name__}", field="claim")
        if trigger == self.definition.creation.trigger:
            raise InvalidInput(f"{trigger} files a new claim; it cannot be fired on claim {claim.id}", field="trigger")
        return self._apply(
            claim, claim_id=claim.id, trigger=trigger, actor=actor, data={} if data is None else data, now=now
        )

    def available(self, claim: Claim, actor: Actor | str, now: datetime) -> tuple[Availability, ...]:
        """Every trigger of the definition, allowed or refused for `actor` now, with the reasons.

        Guards that judge the trigger's data are left for the fire itself; `needs` names the data each
        trigger requires, allowed now or not.
        """
        if not isinstance(claim, Claim):
            raise InvalidInput(f"must be a Claim, not {type(claim).__name__}", field="claim")
        actor, now = Actor.parse(actor), aware(now)
        context = Context(claim.id, claim, actor, {}, now, self.policy)
        answers = []
        for trigger in self.definition.triggers:
            if trigger == self.definition.creation.trigger:
                continue
            candidates = self.definition.candidates(claim.state, trigger)
            reasons = self._refusals(claim, trigger, actor, candidates, context, with_data=False)
            needs = tuple(f.name for f in self.definition.fields(trigger) if f.required)
            answers.append(Availability(trigger, not reasons, reasons, needs))
        return tuple(answers)

    def _apply(
        self,
        claim: Claim | None,
        *,
        claim_id: str,
        trigger: str,
        actor: Actor | str,
        data: Mapping[str, Any],
        now: datetime,
        order_has_open_claim: bool = False,
    ) -> Fired:
        actor, now = Actor.parse(actor), aware(now)
        if not isinstance(trigger, str) or trigger not in self.definition.triggers:
            raise InvalidInput(
                f"unknown trigger {trigger!r}; known: {', '.join(self.definition.triggers)}", field="trigger"
            )
        state = None if claim is None else claim.state
        if claim is not None:
            self.definition.state(claim.state)
            if now < claim.updated_at:
                raise InvalidInput(f"{now} is before the claim's last change ({claim.updated_at})", field="now")
        candidates = self.definition.candidates(state, trigger)
        permitted = tuple(t for t in candidates if self._permits(t, actor, claim))
        if not permitted:
            bare = Context(claim_id, claim, actor, {}, now, self.policy)
            raise TransitionRefused(
                trigger,
                state,
                self._refusals(claim, trigger, actor, candidates, bare, with_data=False),
                claim_id=claim_id,
            )
        parsed = self._parse(permitted[0], data, claim)
        context = Context(claim_id, claim, actor, parsed, now, self.policy, order_has_open_claim)
        carrier = _Carrier(state or _FILING, context, permitted)
        if not self._machine.events[trigger].trigger(carrier) or carrier.taken is None:
            raise TransitionRefused(
                trigger,
                state,
                self._refusals(claim, trigger, actor, candidates, context, with_data=True),
                claim_id=claim_id,
            )
        return self._result(carrier.taken, context, data, trigger)

    def _result(self, taken: Transition, context: Context, data: Mapping[str, Any], trigger: str) -> Fired:
        before = context.claim
        changed = taken.effect(context) if taken.effect else context.current
        dest = self.definition.state(taken.dest)
        decisive = dest.final or context.actor.role in DECIDERS
        past_limits = self.policy.limits.exceeded(before, changed, decisive=decisive)
        if past_limits:
            raise TransitionRefused(trigger, None if before is None else before.state, past_limits, claim_id=changed.id)
        stays = before is not None and taken.dest == before.state
        if stays:
            deadline = changed.deadline
        elif dest.deadline is None:
            deadline = None
        else:
            rule = dest.deadline
            deadline = Deadline(rule.name, rule.trigger, within_range(context.now, self.policy.window(rule.name)))
        version = 1 if before is None else before.version + 1
        claim = attrs.evolve(changed, state=taken.dest, version=version, updated_at=context.now, deadline=deadline)
        # a copy: the record must not change when the caller later changes its own data
        given = {f.name: _copy(data[f.name]) for f in taken.fields if f.name in data}
        record = TransitionRecord(
            claim.id,
            version,
            trigger,
            None if before is None else before.state,
            taken.dest,
            context.actor,
            given,
            context.now,
        )
        return Fired(claim, record)

    @staticmethod
    def _permits(transition: Transition, actor: Actor, claim: Claim | None) -> bool:
        """The role may fire it, and a buyer or supplier only on their own claim."""
        if actor.role not in transition.actors:
            return False
        return claim is None or claim.party_id(actor.role) is None or claim.is_party(actor)

    def _parse(self, transition: Transition, data: Mapping[str, Any], claim: Claim | None) -> dict[str, Any]:
        """Turn the caller's JSON data into domain values, refusing unknown, missing or oversized items by name."""
        if not isinstance(data, Mapping):
            raise InvalidInput(f"the data must be an object, not {type(data).__name__}", field="data")
        known = {f.name for f in transition.fields}
        unknown = sorted(set(data) - known, key=str)
        if unknown:
            expected = ", ".join(sorted(known)) or "no data"
            raise InvalidInput(
                f"{transition.trigger} takes no {', '.join(map(str, unknown))} (it takes {expected})", field="data"
            )
        plain_data(dict(data), "data", max_text=self.policy.limits.text)
        parsed: dict[str, Any] = {}
        for f in transition.fields:
            if f.name in data and data[f.name] is not None:
                parsed[f.name] = f.parse(data[f.name], parsed, claim)
            elif f.required:
                raise InvalidInput(f"{transition.trigger} needs {f.name} ({f.description})", field=f.name)
        return parsed

    def _refusals(
        self,
        claim: Claim | None,
        trigger: str,
        actor: Actor,
        candidates: tuple[Transition, ...],
        context: Context,
        *,
        with_data: bool,
    ) -> tuple[Refusal, ...]:
        """Why `trigger` cannot fire: the state, else who fires, else each failing guard (empty: it can)."""
        state = None if claim is None else claim.state
        if not candidates:
            final = state is not None and self.definition.state(state).final
            message = (
                f"the claim is closed ({state} is final)"
                if final
                else f"{trigger} is not possible in state {state or 'before filing'}"
            )
            return (Refusal("state", NOT_IN_STATE, message),)
        permitted = [t for t in candidates if self._permits(t, actor, claim)]
        if not permitted:
            roles = sorted({r for t in candidates for r in t.actors})
            if claim is not None and actor.role in roles:
                message = f"{actor} is not this claim's {actor.role}"
            else:
                message = f"{actor.role} may not fire {trigger} here; only {', '.join(roles)}"
            return (Refusal("permission", ACTOR_NOT_PERMITTED, message),)
        if any(self._passes(t, context, with_data) for t in permitted):
            return ()
        failing = {
            g.code: g.refused(context)
            for t in permitted
            for g in t.guards
            if (with_data or not g.uses_data) and not g.check(context)
        }
        return tuple(failing.values())

    @staticmethod
    def _passes(transition: Transition, context: Context, with_data: bool) -> bool:
        return all(g.check(context) for g in transition.guards if with_data or not g.uses_data)
