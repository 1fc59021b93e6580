"""A changed lifecycle, as a marketplace might deploy it while claims are open (the tests and the README's
"Changing the lifecycle" use it; `claimstate --definition changed_lifecycle:INSPECTION` loads it):

- a new state, ``awaiting_inspection``, between ``return_in_transit`` and ``refunded_full``: the supplier
  inspects the returned goods before the refund, within 3 days, or the refund goes out anyway;
- a removed state, ``cancellation_pending``: a buyer closing a claim on an agreed offer now closes it at
  once, without the team approving;
- a shortened deadline: the buyer has 7 days to ship a return, not 10.
"""

from __future__ import annotations

from datetime import timedelta

import attrs

from claimstate import CLAIM_LIFECYCLE
from claimstate.definition import DeadlineRule, Definition, State, Transition

_BY_TRIGGER = {(t.trigger, t.dest): t for t in CLAIM_LIFECYCLE.transitions}
_GUARDS = {g.code: g for t in CLAIM_LIFECYCLE.transitions for g in t.guards}
_REMOVED = {"cancel_claim", "approve_cancellation", "reject_cancellation"}

INSPECTION_DUE = DeadlineRule(
    name="inspection_due",
    trigger="inspection_deadline",
    window=timedelta(days=3),
    description="the supplier has 3 days to inspect the returned goods",
)


def _state(state: State) -> State:
    if state.name == "awaiting_return" and state.deadline is not None:
        return attrs.evolve(state, deadline=attrs.evolve(state.deadline, window=timedelta(days=7)))
    return state


def _transition(t: Transition) -> Transition:
    if t.trigger == "confirm_return_received":
        return attrs.evolve(t, dest="awaiting_inspection", effect=None, label="supplier confirms the return arrived")
    if t.trigger == "report_return_problem":
        return attrs.evolve(t, sources=("return_in_transit", "awaiting_inspection"))
    return t


STATES = (
    *(_state(s) for s in CLAIM_LIFECYCLE.states if s.name != "cancellation_pending"),
    State(
        name="awaiting_inspection",
        meaning="the return arrived; the supplier inspects the goods before the full refund",
        deadline=INSPECTION_DUE,
    ),
)
TRANSITIONS = (
    *(_transition(t) for t in CLAIM_LIFECYCLE.transitions if t.trigger not in _REMOVED),
    Transition(
        trigger="close_on_agreement",
        sources=("in_mediation",),
        dest="refunded_partial",
        actors="buyer",
        description="the buyer closes the claim on the partial refund both parties agreed",
        guards=(_GUARDS["agreement_exists"], _GUARDS["agreement_is_partial"]),
        effect=_BY_TRIGGER["approve_cancellation", "refunded_partial"].effect,
        label="buyer closes on the agreed partial refund",
    ),
    Transition(
        trigger="close_on_agreement",
        sources=("in_mediation",),
        dest="awaiting_return",
        actors="buyer",
        description="the buyer closes the claim on the full refund both parties agreed, returning the goods",
        guards=(_GUARDS["agreement_exists"], _GUARDS["agreement_is_full"]),
        label="buyer closes on the agreed full refund",
    ),
    Transition(
        trigger="pass_inspection",
        sources=("awaiting_inspection",),
        dest="refunded_full",
        actors="supplier",
        description="the supplier finds the returned goods as described; the buyer is refunded in full",
        guards=(_GUARDS["return_shipment_recorded"],),
        effect=_BY_TRIGGER["confirm_return_received", "refunded_full"].effect,
        label="supplier passes the inspection",
    ),
    Transition(
        trigger="inspection_deadline",
        sources=("awaiting_inspection",),
        dest="refunded_full",
        actors="system",
        description="the supplier did not inspect in time; the buyer is refunded in full",
        guards=(_GUARDS["deadline_reached"], _GUARDS["return_shipment_recorded"]),
        effect=_BY_TRIGGER["confirm_return_received", "refunded_full"].effect,
        on_deadline="inspection_due",
        label="inspection time runs out",
    ),
)
INSPECTION = Definition(
    name="buyer-claims, with inspection",
    states=STATES,
    transitions=TRANSITIONS,
    earlier=(CLAIM_LIFECYCLE,),
    # for `check`: the built-in settings, less the moves removed and with the parties' new ones
    check_settings=attrs.evolve(
        CLAIM_LIFECYCLE.check_settings,
        party_moves=(CLAIM_LIFECYCLE.check_settings.party_moves - _REMOVED) | {"close_on_agreement", "pass_inspection"},
    ),
)
