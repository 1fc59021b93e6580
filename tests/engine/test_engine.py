"""The engine: decides before it changes anything, explains refusals, and keeps no claim alive."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import attrs
import pytest
import transitions
from helpers import EVIDENCE, T0, Walker, filing

import claimstate
from claimstate import CLAIM_LIFECYCLE, Claim, ClaimStateError, Engine, InvalidInput, Money, Offer, TransitionRefused
from claimstate.definition import (
    Context,
    DeadlineRule,
    Definition,
    Field,
    Guard,
    Limits,
    Policy,
    State,
    Transition,
    guard,
)


def test_the_machine_is_built_once_and_holds_no_claim(walker: Walker) -> None:
    """One transitions machine per engine, reused by every fire, with no model ever attached to it."""
    machine = walker.engine._machine
    walker.reach("refunded_full")
    walker.reach("payment_released")
    assert walker.engine._machine is machine
    assert machine.models == []


def test_transitions_fires_events_on_objects_it_never_attached() -> None:
    """Pins the transitions behaviour the engine relies on: Event.trigger works on an unattached object."""

    class Carrier:
        state = "a"

    machine = transitions.Machine(model=None, states=["a", "b"], initial="a", auto_transitions=False)
    machine.add_transition("go", "a", "b")
    carrier = Carrier()
    assert machine.events["go"].trigger(carrier) is True
    assert carrier.state == "b"
    assert machine.models == []


def test_firing_returns_a_new_claim_and_leaves_the_input_alone(walker: Walker) -> None:
    """The input claim is untouched; the new one has version + 1 and a record of the step."""
    claim = walker.reach("awaiting_evidence")
    before = Claim.from_dict(claim.to_dict())
    fired = walker.engine.fire(claim, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, T0)
    assert claim == before
    assert fired.claim is not claim
    assert (fired.claim.version, fired.record.seq) == (2, 2)
    assert fired.record.data == {"evidence": EVIDENCE}
    assert fired.claim.evidence[0].by == "buyer"


def _spy_definition(calls: list[str]) -> Definition:
    """A two-step lifecycle whose guard and effect record that they ran."""

    def effect(ctx: Context) -> Claim:
        calls.append("effect")
        return ctx.current

    def check(ctx: Context) -> bool:
        calls.append("guard")
        return bool(ctx.data.get("ok"))

    builtin = CLAIM_LIFECYCLE
    ok = Field(name="ok", description="yes or no", parse=lambda v, _p, _c: bool(v), required=False)
    return Definition(
        "spy",
        (State(name="open", meaning="open"), State(name="done", meaning="done", final=True)),
        (
            Transition(trigger=builtin.creation.trigger, sources=(), dest="open", actors="buyer", description="file",
                       fields=builtin.creation.fields, effect=builtin.creation.effect),
            Transition(trigger="close", sources=("open",), dest="done", actors="agent", description="close",
                       guards=(Guard(code="ok", description="ok", refusal="not ok", check=check),), fields=(ok,),
                       effect=effect),
        ),
    )  # fmt: skip


def test_a_refused_actor_never_reaches_a_guard_or_an_effect() -> None:
    """Permission is checked before the machine runs: neither guard nor effect sees a refused actor."""
    calls: list[str] = []
    engine = Engine(_spy_definition(calls))
    claim = engine.file_claim("c-1", "buyer:alice", filing(), T0).claim
    with pytest.raises(TransitionRefused) as refused:
        engine.fire(claim, "close", "buyer:alice", {"ok": True}, T0)
    assert refused.value.kinds == {"permission"}
    assert calls == []


def test_a_failing_guard_stops_the_effect() -> None:
    """A guard that fails refuses the trigger before the effect runs; a passing one lets it run once."""
    calls: list[str] = []
    engine = Engine(_spy_definition(calls))
    claim = engine.file_claim("c-1", "buyer:alice", filing(), T0).claim
    with pytest.raises(TransitionRefused):
        engine.fire(claim, "close", "agent:kim", {"ok": False}, T0)
    assert "effect" not in calls
    calls.clear()
    assert engine.fire(claim, "close", "agent:kim", {"ok": True}, T0).claim.state == "done"
    assert calls == ["guard", "effect"]


@pytest.mark.parametrize(
    ("trigger", "actor", "data", "field"),
    [
        ("fly_away", "buyer:alice", {}, "trigger"),
        ("submit_evidence", "buyer:alice", {"evidence": EVIDENCE, "mood": "bad"}, "data"),
        ("submit_evidence", "buyer:alice", {}, "evidence"),
        ("submit_evidence", "buyer:alice", {"evidence": "a photo"}, "evidence"),
        ("submit_evidence", "buyer:alice", {"evidence": [{"kind": "selfie", "description": "x"}]}, "evidence[0]"),
        ("submit_evidence", "buyer:alice", {"evidence": [{"kind": "photo"}]}, "evidence[0]"),
        ("submit_evidence", "buyer alice", {"evidence": EVIDENCE}, "actor"),
        ("submit_evidence", "king:arthur", {"evidence": EVIDENCE}, "actor"),
        ("file_claim", "buyer:alice", filing(), "trigger"),
    ],
)
def test_malformed_input_is_refused_by_name(walker: Walker, trigger: str, actor: str, data: Any, field: str) -> None:
    """Unknown triggers, unknown or missing data, bad values and bad actors raise InvalidInput naming the field."""
    claim = walker.reach("awaiting_evidence")
    with pytest.raises(InvalidInput) as invalid:
        walker.engine.fire(claim, trigger, actor, data, T0)
    assert invalid.value.field == field


def test_a_time_without_a_zone_is_refused(walker: Walker) -> None:
    """A naive datetime would be a guess about the zone, so it is refused."""
    claim = walker.reach("awaiting_evidence")
    with pytest.raises(InvalidInput, match="timezone"):
        walker.engine.fire(claim, "withdraw", "buyer:alice", None, datetime(2026, 3, 2, 9, 0))


def test_filing_data_is_checked_field_by_field(engine: Engine) -> None:
    """A filing with a bad currency, a float amount or a missing reason is refused naming that field."""
    for changes, field in [
        ({"currency": "usd"}, "currency"),
        ({"amount": 25.0}, "amount"),
        ({"reason": None}, "reason"),
        ({"resolution": "store_credit"}, "resolution"),
        ({"amount": "25.001"}, "amount"),
    ]:
        with pytest.raises(InvalidInput) as invalid:
            engine.file_claim("c-1", "buyer:alice", filing(**changes), T0)
        assert invalid.value.field == field, changes


def test_available_lists_every_trigger_with_reasons(walker: Walker) -> None:
    """What the supplier may do in mediation: appeal, offer, evidence; the rest refused with reasons."""
    claim = walker.reach("in_mediation")
    answers = {a.trigger: a for a in walker.engine.available(claim, "supplier:acme", walker.now)}
    assert set(answers) == set(CLAIM_LIFECYCLE.triggers) - {"file_claim"}
    assert {t for t, a in answers.items() if a.allowed} == {"submit_evidence", "make_offer", "appeal"}
    assert answers["appeal"].needs == ("evidence",)
    assert [r.code for r in answers["accept_offer"].reasons] == ["offer_open"]
    assert answers["withdraw"].reasons[0].kind == "permission"
    assert answers["ship_return"].reasons[0].kind == "state"


def test_available_tells_the_clock_when_a_deadline_is_due(walker: Walker) -> None:
    """The system may fire evidence_deadline only once the deadline has come."""
    claim = walker.reach("awaiting_evidence")
    assert claim.deadline is not None

    def allowed(at: datetime) -> bool:
        (answer,) = [a for a in walker.engine.available(claim, "system", at) if a.trigger == "evidence_deadline"]
        return answer.allowed

    assert not allowed(claim.deadline.due - timedelta(microseconds=1))
    assert allowed(claim.deadline.due)


def test_a_closed_claim_refuses_everything_and_says_it_is_closed(walker: Walker) -> None:
    """A final state has no way out; the reason says the claim is closed."""
    claim = walker.reach("withdrawn")
    answers = walker.engine.available(claim, "agent:kim", walker.now)
    assert not any(a.allowed for a in answers)
    assert "closed" in answers[0].reasons[0].message


def test_policy_windows_set_the_deadlines(walker: Walker) -> None:
    """A deployment's policy replaces the default windows; the FAQ's seven days is the default."""
    engine = Engine(policy=CLAIM_LIFECYCLE.policy(evidence_due=timedelta(days=3)))
    claim = engine.file_claim("c-1", "buyer:alice", filing(), T0).claim
    assert claim.deadline is not None
    assert (claim.deadline.name, claim.deadline.due) == ("evidence_due", T0 + timedelta(days=3))


def test_staying_in_a_state_keeps_its_deadline(walker: Walker) -> None:
    """Confirming the return address does not restart the return window; shipping sets the receipt one."""
    claim = walker.reach("awaiting_return")
    assert claim.deadline is not None
    due = claim.deadline.due
    claim = walker.step(claim, "confirm_return_address", "supplier", {"address": "1 Dock Rd"})
    assert claim.deadline is not None and claim.deadline.due == due
    shipped = walker.step(claim, "ship_return", "buyer", {"carrier": "DHL", "tracking_number": "JD1"})
    assert shipped.deadline is not None and shipped.deadline.name == "receipt_due"
    assert shipped.deadline.due == walker.now + timedelta(days=15)
    done = walker.step(shipped, "confirm_return_received", "supplier")
    assert done.deadline is None
    assert done.refund == done.amount


def test_the_model_is_data_a_new_definition_runs_unchanged() -> None:
    """A hand-made definition with its own state, guard and deadline runs through the same engine."""
    builtin = CLAIM_LIFECYCLE
    deadline_reached = next(g for t in builtin.transitions for g in t.guards if g.code == "deadline_reached")
    rule = DeadlineRule(name="look_due", trigger="timeout", window=timedelta(hours=1), description="someone must look")
    definition = Definition(
        "tiny",
        (State(name="waiting", meaning="waiting", deadline=rule), State(name="closed", meaning="closed", final=True)),
        (
            Transition(trigger=builtin.creation.trigger, sources=(), dest="waiting", actors="buyer", description="file",
                       fields=builtin.creation.fields, effect=builtin.creation.effect),
            Transition(trigger="timeout", sources=("waiting",), dest="closed", actors="system", description="time out",
                       guards=(deadline_reached,), on_deadline="look_due"),
        ),
    )  # fmt: skip
    engine = Engine(definition)
    claim = engine.file_claim("c-1", "buyer:alice", filing(), T0).claim
    assert claim.deadline is not None and claim.deadline.due == T0 + timedelta(hours=1)
    with pytest.raises(TransitionRefused):
        engine.fire(claim, "timeout", "system", None, T0)
    assert engine.fire(claim, "timeout", "system", None, T0 + timedelta(hours=1)).claim.state == "closed"


def test_a_policy_for_another_definition_is_refused() -> None:
    """A policy whose windows do not match the definition's deadlines is invalid input."""
    with pytest.raises(InvalidInput, match="does not fit"):
        Engine(policy=Policy({"evidence_due": timedelta(days=1)}))


def test_nothing_of_transitions_leaks_into_the_public_api() -> None:
    """Every public name is claimstate's own, and every error is a ClaimStateError."""
    for name in claimstate.__all__:
        value = getattr(claimstate, name)
        assert not getattr(value, "__module__", "claimstate").startswith("transitions"), name
    errors = [getattr(claimstate, n) for n in claimstate.__all__ if n.endswith(("Error", "Refused", "Input"))]
    errors += [claimstate.ClaimNotFound, claimstate.ConcurrentModification]
    assert all(issubclass(e, ClaimStateError) for e in errors)


def test_the_public_surface_is_small_and_the_definition_vocabulary_has_one_home() -> None:
    """The top level holds the service, the engine, values and errors; lifecycles are written with
    claimstate.definition."""
    assert not {"State", "Transition", "Guard", "Field", "DeadlineRule", "Policy", "Context"} & set(claimstate.__all__)
    for name in claimstate.definition.__all__:
        assert getattr(claimstate.definition, name) is not None, name
    assert claimstate.definition.CLAIM_LIFECYCLE is claimstate.CLAIM_LIFECYCLE


def test_a_guard_written_with_the_public_vocabulary_refuses_in_its_own_words() -> None:
    """guard() and text() from claimstate.definition build a lifecycle the engine runs, refusals worded."""

    @guard("polite", "the note says please", "say please", uses_data=True)
    def polite(ctx: Context) -> bool:
        return "please" in ctx.data["note"]

    builtin = CLAIM_LIFECYCLE
    definition = Definition(
        "polite",
        (State(name="open", meaning="open"), State(name="done", meaning="done", final=True)),
        (
            Transition(trigger=builtin.creation.trigger, sources=(), dest="open", actors="buyer", description="file",
                       fields=builtin.creation.fields, effect=builtin.creation.effect),
            Transition(trigger="close", sources=("open",), dest="done", actors="agent", description="close",
                       guards=(polite,), fields=(claimstate.definition.text("note", "a polite note"),)),
        ),
    )  # fmt: skip
    engine = Engine(definition)
    claim = engine.file_claim("c-1", "buyer:alice", filing(), T0).claim
    with pytest.raises(TransitionRefused) as refused:
        engine.fire(claim, "close", "agent:kim", {"note": "close it"}, T0)
    assert [(r.kind, r.code, r.message) for r in refused.value.reasons] == [("guard", "polite", "say please")]
    assert engine.fire(claim, "close", "agent:kim", {"note": "close it, please"}, T0).claim.state == "done"


def test_available_names_the_data_of_every_trigger_allowed_or_not(walker: Walker) -> None:
    """`needs` lists a trigger's required data even when the actor may not fire it now."""
    claim = walker.reach("awaiting_evidence")
    answers = {a.trigger: a for a in walker.engine.available(claim, "supplier:acme", walker.now)}
    assert answers["make_offer"].allowed is False
    assert answers["make_offer"].needs == ("kind", "amount")
    assert answers["ship_return"].needs == ("carrier", "tracking_number")
    assert answers["accept_offer"].needs == ()


def _full(claim: Claim, *, offers: int = 0, evidence: int = 0) -> Claim:
    """The claim as if `offers` offers had been made and rejected, and `evidence` items presented."""
    rejected = Offer(1, "supplier", "partial_refund", Money.parse("1.00", "USD"), T0, "rejected")
    return attrs.evolve(
        claim,
        offers=tuple(attrs.evolve(rejected, number=n) for n in range(1, offers + 1)),
        evidence=(claim.evidence * evidence)[:evidence] if evidence else claim.evidence,
    )


@pytest.mark.parametrize(
    ("evidence_held", "given", "message"),
    [
        (1, 21, "21 evidence items at once; at most 20 per step"),
        (100, 1, "the claim would hold 101 evidence items; at most 100 per claim"),
    ],
)
def test_evidence_past_the_limits_is_refused_saying_which_limit(
    walker: Walker, evidence_held: int, given: int, message: str
) -> None:
    """Evidence is bounded per step and per claim (policy limits, any lifecycle), and the refusal says which."""
    claim = _full(walker.reach("in_mediation"), evidence=evidence_held)
    with pytest.raises(TransitionRefused) as refused:
        walker.engine.fire(claim, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE * given}, walker.now)
    assert [(r.kind, r.code, r.message) for r in refused.value.reasons] == [("guard", "within_limits", message)]


def test_offers_past_the_limit_are_refused_and_the_limits_are_policy(walker: Walker) -> None:
    """A claim holds at most limits.offers_per_claim offers; a deployment may set its own limits, and a
    claim already holding more than a lowered limit still moves on by steps that add nothing."""
    claim = _full(walker.reach("in_mediation"), offers=50)
    offer = {"kind": "partial_refund", "amount": "5.00"}
    with pytest.raises(TransitionRefused) as refused:
        walker.engine.fire(claim, "make_offer", "buyer:alice", offer, walker.now)
    assert [r.message for r in refused.value.reasons] == ["the claim would hold 51 offers; at most 50 per claim"]
    roomy = Engine(policy=CLAIM_LIFECYCLE.policy(limits=Limits(offers_per_claim=60)))
    assert len(roomy.fire(claim, "make_offer", "buyer:alice", offer, walker.now).claim.offers) == 51
    tight = Engine(policy=CLAIM_LIFECYCLE.policy(limits=Limits(offers_per_claim=10)))
    assert tight.fire(claim, "escalate", "buyer:alice", None, walker.now).claim.state == "under_review"


def test_the_record_keeps_its_own_copy_of_the_data(walker: Walker) -> None:
    """Changing the caller's data after a fire does not change the history record."""
    claim = walker.reach("awaiting_evidence")
    items = [dict(EVIDENCE[0])]
    fired = walker.engine.fire(claim, "submit_evidence", "buyer:alice", {"evidence": items}, T0)
    items[0]["description"] = "changed afterwards"
    assert fired.record.data["evidence"] == EVIDENCE
