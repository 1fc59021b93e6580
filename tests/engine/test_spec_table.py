"""The built-in lifecycle equals the specification (the README's lifecycle section), cell by cell and guard by guard.

The expected tables are written out here by hand from the specification, not read from the
definition, so that a change to either shows up as a failure.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import attrs
import pytest
from helpers import ACTORS, EVIDENCE, GOOD_DATA, STATE_NAMES, T0, Walker, filing, offer

from claimstate import CLAIM_LIFECYCLE, Claim, Engine, TransitionRefused

B, S, A, SYS = "buyer", "supplier", "agent", "system"
MEDIATING = ("in_mediation", "under_review")

# (state, trigger) -> (roles that may fire it, where it leads with the walker's default claim)
SPEC: dict[tuple[str, str], tuple[set[str], str]] = {
    ("awaiting_evidence", "submit_evidence"): ({B}, "in_mediation"),
    ("awaiting_evidence", "evidence_deadline"): ({SYS}, "payment_released"),
    ("awaiting_evidence", "withdraw"): ({B}, "withdrawn"),
    ("in_mediation", "submit_evidence"): ({B, S}, "in_mediation"),
    ("in_mediation", "make_offer"): ({B, S}, "in_mediation"),
    ("in_mediation", "accept_offer"): ({B, S}, "in_mediation"),
    ("in_mediation", "reject_offer"): ({B, S}, "in_mediation"),
    ("in_mediation", "cancel_claim"): ({B}, "cancellation_pending"),
    ("in_mediation", "appeal"): ({S}, "under_review"),
    ("in_mediation", "escalate"): ({B}, "under_review"),
    ("in_mediation", "withdraw"): ({B}, "withdrawn"),
    ("under_review", "submit_evidence"): ({B, S}, "under_review"),
    **{
        (state, trigger): ({A}, dest)
        for state in MEDIATING
        for trigger, dest in [
            ("request_buyer_response", "awaiting_buyer_response"),
            ("request_supplier_response", "awaiting_supplier_response"),
            ("decide_full_refund", "awaiting_return"),
            ("decide_partial_refund", "refunded_partial"),
            ("decide_for_supplier", "payment_released"),
        ]
    },
    ("awaiting_buyer_response", "respond"): ({B}, "in_mediation"),
    ("awaiting_buyer_response", "response_deadline"): ({SYS}, "payment_released"),
    ("awaiting_buyer_response", "withdraw"): ({B}, "withdrawn"),
    ("awaiting_supplier_response", "respond"): ({S}, "in_mediation"),
    ("awaiting_supplier_response", "response_deadline"): ({SYS}, "awaiting_return"),
    ("awaiting_supplier_response", "withdraw"): ({B}, "withdrawn"),
    ("cancellation_pending", "approve_cancellation"): ({A}, "refunded_partial"),
    ("cancellation_pending", "reject_cancellation"): ({A}, "in_mediation"),
    ("awaiting_return", "confirm_return_address"): ({S}, "awaiting_return"),
    ("awaiting_return", "ship_return"): ({B}, "return_in_transit"),
    ("awaiting_return", "return_deadline"): ({SYS}, "payment_released"),
    ("return_in_transit", "confirm_return_received"): ({S}, "refunded_full"),
    ("return_in_transit", "report_return_problem"): ({S}, "under_review"),
    ("return_in_transit", "receipt_deadline"): ({SYS}, "under_review"),
}
STATES = STATE_NAMES
TRIGGERS = sorted({trigger for _, trigger in SPEC})


def prepared(walker: Walker, state: str, trigger: str, role: str) -> Claim:
    """A claim in `state` on which `role` firing `trigger` meets every guard, if the role may fire it."""
    claim = walker.reach(state)
    if (state, trigger) == ("in_mediation", "accept_offer") or (state, trigger) == ("in_mediation", "reject_offer"):
        claim = walker.step(claim, "make_offer", S if role == B else B, offer("partial_refund"))
    elif (state, trigger) == ("in_mediation", "cancel_claim"):
        claim = walker.step(claim, "make_offer", S, offer("partial_refund"))
        claim = walker.step(claim, "accept_offer", B)
    elif (state, trigger) == ("awaiting_return", "ship_return"):
        claim = walker.step(claim, "confirm_return_address", S, GOOD_DATA["confirm_return_address"])
    if role == SYS and claim.deadline is not None:
        walker.now = claim.deadline.due
    return claim


CELLS = [(state, trigger, role) for state in STATES for trigger in TRIGGERS for role in ACTORS]


@pytest.mark.parametrize(("state", "trigger", "role"), CELLS)
def test_every_cell_is_allowed_or_refused_as_specified(walker: Walker, state: str, trigger: str, role: str) -> None:
    """Each (state, trigger, role) is allowed, refused for the state, or refused for the role, as specified."""
    claim = prepared(walker, state, trigger, role)
    roles, dest = SPEC.get((state, trigger), (set(), ""))
    walker.now += timedelta(minutes=1)
    fire = lambda: walker.engine.fire(claim, trigger, ACTORS[role], GOOD_DATA.get(trigger), walker.now)  # noqa: E731
    if role in roles:
        fired = fire()
        assert (fired.claim.state, fired.claim.version) == (dest, claim.version + 1)
        assert (fired.record.source, fired.record.dest, fired.record.trigger) == (state, dest, trigger)
        return
    with pytest.raises(TransitionRefused) as refused:
        fire()
    expected_kind = "permission" if roles else "state"
    assert [r.kind for r in refused.value.reasons] == [expected_kind]
    assert (refused.value.trigger, refused.value.state, refused.value.claim_id) == (trigger, state, claim.id)


PARTY_CELLS = [
    (state, trigger, role) for (state, trigger), (roles, _) in SPEC.items() for role in sorted(roles & {B, S})
]


@pytest.mark.parametrize(("state", "trigger", "role"), PARTY_CELLS)
def test_a_buyer_or_supplier_of_another_claim_is_refused(walker: Walker, state: str, trigger: str, role: str) -> None:
    """A buyer or supplier who is not a party of this claim is refused, with who they are in the reason."""
    claim = prepared(walker, state, trigger, role)
    stranger = f"{role}:mallory"
    with pytest.raises(TransitionRefused) as refused:
        walker.engine.fire(claim, trigger, stranger, GOOD_DATA.get(trigger), walker.now + timedelta(minutes=1))
    (reason,) = refused.value.reasons
    assert (reason.kind, reason.code) == ("permission", "actor_not_permitted")
    assert stranger in reason.message


def test_the_specification_table_covers_the_definition() -> None:
    """The hand-written tables name exactly the definition's (state, trigger, destination) and roles, but filing."""
    defined = {(source, t.trigger, t.dest): t.actors for t in CLAIM_LIFECYCLE.transitions for source in t.sources}
    written = {(state, trigger, dest): frozenset(roles) for (state, trigger), (roles, dest) in SPEC.items()}
    written |= {(state, trigger, dest): frozenset(roles) for (state, trigger), (roles, dest) in AFTER_RETURN.items()}
    branches = {(source, t.trigger, t.dest) for source, t in BRANCHES}
    assert set(defined) - branches == set(written)
    assert [s.name for s in CLAIM_LIFECYCLE.states] == STATES


# Where a claim whose return shipment is recorded goes differently, after a return problem or a missed
# receipt confirmation put it under review: the team's full refund pays at once on the recorded shipment.
AFTER_RETURN: dict[tuple[str, str], tuple[set[str], str]] = {
    ("under_review", "decide_full_refund"): ({A}, "refunded_full"),
}
# Transitions taken only on a claim unlike the walker's default one (tested on their own below).
BRANCHES = [
    (source, t)
    for t in CLAIM_LIFECYCLE.transitions
    for source in t.sources
    if (t.trigger, t.dest) in {("approve_cancellation", "awaiting_return"), ("response_deadline", "refunded_partial")}
]


@pytest.mark.parametrize("via", ["report_return_problem", "receipt_deadline"])
@pytest.mark.parametrize("role", ACTORS)
def test_a_full_refund_decided_on_a_recorded_return_pays_at_once(walker: Walker, via: str, role: str) -> None:
    """Goods shipped back but lost, damaged or never confirmed: the team's full refund goes to refunded_full.

    Only an agent may decide it; the claim is refunded the order amount, and the record says where it went.
    """
    claim = walker.returned_then("under_review", via=via)
    roles, dest = AFTER_RETURN[("under_review", "decide_full_refund")]
    walker.now += timedelta(minutes=1)
    if role not in roles:
        with pytest.raises(TransitionRefused) as refused:
            walker.engine.fire(claim, "decide_full_refund", ACTORS[role], GOOD_DATA["decide_full_refund"], walker.now)
        assert [r.kind for r in refused.value.reasons] == ["permission"]
        return
    fired = walker.engine.fire(claim, "decide_full_refund", ACTORS[role], GOOD_DATA["decide_full_refund"], walker.now)
    assert (fired.record.source, fired.record.dest) == ("under_review", dest)
    assert fired.claim.refund == fired.claim.amount
    assert fired.claim.shipment == claim.shipment


# --- guards, both ways --------------------------------------------------------------------------------


def refusal_codes(excinfo: pytest.ExceptionInfo[TransitionRefused]) -> dict[str, str]:
    return {r.code: r.message for r in excinfo.value.reasons}


def guard_refusal(code: str) -> str:
    """The plain words the definition gives for guard `code` failing."""
    return next(g.refusal for t in CLAIM_LIFECYCLE.transitions for g in t.guards if g.code == code)


FILING_CASES = [
    ("files_own_claim", "buyer:bob", {}, False),
    ("order_amount_positive", "buyer:alice", {"amount": "0.00"}, False),
    ("buyer_is_not_supplier", "buyer:alice", {"supplier_id": "alice"}, False),
    ("requested_refund_valid", "buyer:alice", {"resolution": "partial_refund", "refund_amount": "25.00"}, False),
    ("requested_refund_valid", "buyer:alice", {"resolution": "partial_refund"}, False),
    ("requested_refund_valid", "buyer:alice", {"resolution": "full_refund", "refund_amount": "5.00"}, False),
    ("no_open_claim_on_order", "buyer:alice", {}, True),
]


@pytest.mark.parametrize(("code", "actor", "changes", "open_claim"), FILING_CASES)
def test_filing_guards_refuse_with_their_reason(
    engine: Engine, code: str, actor: str, changes: dict[str, Any], open_claim: bool
) -> None:
    """Each filing guard refuses bad filings by code and in its own words; a good filing passes them all."""
    with pytest.raises(TransitionRefused) as refused:
        engine.file_claim("c-1", actor, filing(**changes), T0, order_has_open_claim=open_claim)
    assert refusal_codes(refused) == {code: guard_refusal(code)}
    assert refused.value.state is None


def test_a_good_filing_passes_every_filing_guard(engine: Engine) -> None:
    """Full and partial filings that meet the guards are accepted, with the evidence deadline set."""
    full = engine.file_claim("c-1", "buyer:alice", filing(), T0).claim
    partial = engine.file_claim(
        "c-2", "buyer:alice", filing(resolution="partial_refund", refund_amount="24.99"), T0
    ).claim
    assert (full.state, full.version, full.refund_amount) == ("awaiting_evidence", 1, None)
    assert str(partial.refund_amount) == "24.99"
    assert full.deadline is not None and full.deadline.due == T0 + timedelta(days=7)


def evolve(claim: Claim, **changes: Any) -> Claim:
    return attrs.evolve(claim, **changes)


# (guard code, state, trigger, role, data, how to spoil the claim or clock) — each must refuse with the code
SPOILED: list[tuple[str, str, str, str, dict[str, Any], str]] = [
    ("evidence_given", "awaiting_evidence", "submit_evidence", B, {"evidence": []}, ""),
    ("before_deadline", "awaiting_evidence", "submit_evidence", B, GOOD_DATA["submit_evidence"], "late"),
    ("deadline_reached", "awaiting_evidence", "evidence_deadline", SYS, {}, "early"),
    ("no_evidence", "awaiting_evidence", "evidence_deadline", SYS, {}, "with_evidence"),
    ("no_open_offer", "in_mediation", "make_offer", B, offer("partial_refund"), "open_offer"),
    ("offer_amount_valid", "in_mediation", "make_offer", B, {"kind": "partial_refund", "amount": "25.00"}, ""),
    ("offer_amount_valid", "in_mediation", "make_offer", B, {"kind": "partial_refund", "amount": "0"}, ""),
    ("offer_amount_valid", "in_mediation", "make_offer", S, {"kind": "full_refund", "amount": "24.00"}, ""),
    ("offer_open", "in_mediation", "accept_offer", B, {}, ""),
    ("offer_open", "in_mediation", "reject_offer", S, {}, ""),
    ("answers_other_party", "in_mediation", "accept_offer", B, {}, "own_offer"),
    ("agreement_exists", "in_mediation", "cancel_claim", B, {}, ""),
    ("message_given", "awaiting_buyer_response", "respond", B, {"message": "  "}, ""),
    ("before_deadline", "awaiting_supplier_response", "respond", S, {"message": "late"}, "late"),
    ("deadline_reached", "awaiting_buyer_response", "response_deadline", SYS, {}, "early"),
    ("evidence_given", "in_mediation", "appeal", S, {"evidence": []}, ""),
    ("decided_amount_in_range", "under_review", "decide_partial_refund", A, {"amount": "30.00", "rationale": "x"}, ""),
    ("decided_amount_in_range", "in_mediation", "decide_partial_refund", A, {"amount": "0.00", "rationale": "x"}, ""),
    ("return_address_confirmed", "awaiting_return", "ship_return", B, GOOD_DATA["ship_return"], ""),
    ("shipment_given", "awaiting_return", "ship_return", B, {"carrier": "DHL", "tracking_number": " "}, "address"),
    ("before_deadline", "awaiting_return", "ship_return", B, GOOD_DATA["ship_return"], "address_late"),
    ("deadline_reached", "awaiting_return", "return_deadline", SYS, {}, "early"),
    ("return_shipment_recorded", "return_in_transit", "confirm_return_received", S, {}, "no_shipment"),
    ("no_return_shipment", "in_mediation", "decide_full_refund", A, GOOD_DATA["decide_full_refund"], "returned"),
    (
        "problem_described",
        "return_in_transit",
        "report_return_problem",
        S,
        {"description": "", "evidence": EVIDENCE},
        "",
    ),
    ("problem_described", "return_in_transit", "report_return_problem", S, {"description": "x", "evidence": []}, ""),
    ("deadline_reached", "return_in_transit", "receipt_deadline", SYS, {}, "early"),
]


def spoil(walker: Walker, claim: Claim, how: str) -> Claim:
    """Make the claim or the clock fail one guard, the way it happens in use where it can."""
    due = claim.deadline.due if claim.deadline else walker.now
    if how in {"address", "address_late"}:
        claim = walker.step(claim, "confirm_return_address", S, GOOD_DATA["confirm_return_address"])
    if how in {"late", "address_late"}:
        walker.now = due + timedelta(seconds=1)
    elif how == "early":
        walker.now = due - timedelta(seconds=2)
    elif how == "with_evidence":  # not reachable through the lifecycle: only a hand-edited claim has it
        claim = evolve(claim, evidence=walker.step(claim, "submit_evidence", B, GOOD_DATA["submit_evidence"]).evidence)
        walker.now = due
    elif how in {"open_offer", "own_offer"}:
        claim = walker.step(claim, "make_offer", B, offer("partial_refund"))
    elif how == "no_shipment":  # likewise: return_in_transit always has a shipment
        claim = evolve(claim, shipment=None)
    elif how == "returned":  # back in mediation after a return problem: the goods are already on their way back
        claim = walker.returned_then(claim.state)
    return claim


@pytest.mark.parametrize(("code", "state", "trigger", "role", "data", "how"), SPOILED)
def test_each_guard_refuses_with_its_reason(
    walker: Walker, code: str, state: str, trigger: str, role: str, data: dict[str, Any], how: str
) -> None:
    """A failing guard refuses the trigger, naming the guard and saying why in the definition's words."""
    claim = spoil(walker, walker.reach(state), how)
    at = walker.now if how in {"late", "early", "with_evidence", "address_late"} else walker.now + timedelta(seconds=1)
    with pytest.raises(TransitionRefused) as refused:
        walker.engine.fire(claim, trigger, ACTORS[role], data, at)
    assert code in refusal_codes(refused)
    if code in EXPLAINED:  # worded with the claim's own facts: tested below
        assert re.search(r"\d", refusal_codes(refused)[code]), refusal_codes(refused)[code]
    else:
        assert refusal_codes(refused)[code] == guard_refusal(code)


EXPLAINED = {g.code for t in CLAIM_LIFECYCLE.transitions for g in t.guards if g.explain is not None}


def test_every_guard_of_the_definition_is_tested_failing() -> None:
    """No guard of the built-in lifecycle escapes the table above (shared-trigger guards are tested below)."""
    tested = {case[0] for case in SPOILED} | {case[0] for case in FILING_CASES}
    branch_guards = {"agreement_is_partial", "agreement_is_full", "buyer_asked_partial", "buyer_asked_full"}
    defined = {g.code for t in CLAIM_LIFECYCLE.transitions for g in t.guards}
    assert defined == tested | branch_guards


@pytest.mark.parametrize(
    ("agreement", "dest", "refund"),
    [("partial_refund", "refunded_partial", "10.00"), ("full_refund", "awaiting_return", None)],
)
def test_approve_cancellation_follows_the_agreement(walker: Walker, agreement: str, dest: str, refund: str) -> None:
    """The agreement's kind picks the way: a partial refund is paid at once, a full one awaits the return."""
    claim = walker.reach("cancellation_pending", agreement=agreement)
    approved = walker.step(claim, "approve_cancellation", A)
    assert approved.state == dest
    assert (None if approved.refund is None else str(approved.refund)) == refund


def test_approve_cancellation_without_an_agreement_names_both_branch_guards(walker: Walker) -> None:
    """With no agreement (a hand-edited claim), neither branch's guard holds and both are named."""
    claim = walker.reach("cancellation_pending")
    claim = evolve(claim, offers=())
    with pytest.raises(TransitionRefused) as refused:
        walker.engine.fire(claim, "approve_cancellation", "agent:kim", None, walker.now)
    assert set(refusal_codes(refused)) == {"agreement_is_partial", "agreement_is_full"}


@pytest.mark.parametrize(
    ("resolution", "dest", "refund"),
    [("full_refund", "awaiting_return", None), ("partial_refund", "refunded_partial", "10.00")],
)
def test_supplier_silence_grants_what_the_buyer_asked(walker: Walker, resolution: str, dest: str, refund: str) -> None:
    """response_deadline on the supplier gives the buyer the resolution asked, at the amount asked."""
    claim = walker.reach("awaiting_supplier_response", resolution=resolution)
    assert claim.deadline is not None
    after = walker.engine.fire(claim, "response_deadline", "system", None, claim.deadline.due).claim
    assert after.state == dest
    assert (None if after.refund is None else str(after.refund)) == refund


def test_supplier_silence_without_a_known_request_is_refused(walker: Walker) -> None:
    """A claim whose requested resolution is neither (a hand-edited one) names both branch guards."""
    claim = evolve(walker.reach("awaiting_supplier_response"), resolution="store_credit")
    assert claim.deadline is not None
    with pytest.raises(TransitionRefused) as refused:
        walker.engine.fire(claim, "response_deadline", "system", None, claim.deadline.due)
    assert set(refusal_codes(refused)) == {"buyer_asked_partial", "buyer_asked_full"}
