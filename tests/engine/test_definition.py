"""The lifecycle definition is plain data, checked as a whole when it is built."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from helpers import STATE_NAMES, T0, filing

import claimstate
from claimstate import CLAIM_LIFECYCLE, ClaimStateError, DefinitionError, InvalidInput
from claimstate.definition import ROLES, CheckSettings, DeadlineRule, Definition, Field, Guard, State, Transition, View

STATES, TRANSITIONS, VIEWS = CLAIM_LIFECYCLE.states, CLAIM_LIFECYCLE.transitions, CLAIM_LIFECYCLE.views

# --- small hand-made definitions ----------------------------------------------------------------------


def state(name: str, *, final: bool = False, deadline: DeadlineRule | None = None) -> State:
    return State(name=name, meaning=f"the {name} state", final=final, deadline=deadline)


def move(
    trigger: str,
    sources: tuple[str, ...],
    dest: str,
    *,
    actors: tuple[str, ...] = ("buyer",),
    guards: tuple[Guard, ...] = (),
    on_deadline: str | None = None,
) -> Transition:
    return Transition(
        trigger=trigger, sources=sources, dest=dest, actors=actors, description=f"{trigger} moves to {dest}",
        guards=guards, on_deadline=on_deadline,
    )  # fmt: skip


def guard(code: str) -> Guard:
    return Guard(code=code, description=f"{code} holds", refusal=f"{code} does not hold", check=lambda _ctx: True)


OPEN_DUE = DeadlineRule(
    name="open_due", trigger="open_deadline", window=timedelta(days=1), description="the buyer must act within a day"
)

# A tiny valid lifecycle: filing opens a claim, closing ends it.
OPEN, DONE = state("open"), state("done", final=True)
FILE = move("file", (), "open")
CLOSE = move("close", ("open",), "done")
TINY_STATES = (OPEN, DONE)
TINY_TRANSITIONS = (FILE, CLOSE)


def problems_of(states: tuple[State, ...], transitions: tuple[Transition, ...]) -> tuple[str, ...]:
    """Build the definition, expecting it to be refused, and return the problems it lists."""
    with pytest.raises(DefinitionError) as caught:
        Definition("broken", states, transitions)
    return caught.value.problems


def test_tiny_valid_definition_builds():
    """A consistent hand-made definition builds and exposes its states, triggers and filing transition."""
    d = Definition("tiny", TINY_STATES, TINY_TRANSITIONS)
    assert d.name == "tiny"
    assert d.states == TINY_STATES
    assert d.triggers == ("file", "close")
    assert d.creation == FILE
    assert d.state("done").final
    assert d.candidates(None, "file") == (FILE,)
    assert d.candidates("open", "close") == (CLOSE,)
    assert d.candidates("done", "close") == ()


def test_unknown_state_lookup_is_invalid_input():
    """Asking a definition for a state it does not have raises InvalidInput naming the state field."""
    d = Definition("tiny", TINY_STATES, TINY_TRANSITIONS)
    with pytest.raises(InvalidInput) as caught:
        d.state("nowhere")
    assert caught.value.field == "state"


def test_tiny_definition_with_deadline_and_its_trigger_builds():
    """A state that sets a deadline builds when a transition fires on that deadline, and the policy knows it."""
    states = (state("open", deadline=OPEN_DUE), DONE)
    transitions = (
        FILE,
        CLOSE,
        move("open_deadline", ("open",), "done", actors=("system",), on_deadline="open_due"),
    )
    d = Definition("with deadline", states, transitions)
    assert dict(d.policy().windows) == {"open_due": timedelta(days=1)}


BROKEN = [
    pytest.param(
        TINY_STATES,
        (*TINY_TRANSITIONS, move("escalate", ("open",), "limbo")),
        ["transition escalate names unknown state 'limbo'"],
        id="unknown-destination-state",
    ),
    pytest.param(
        TINY_STATES,
        (*TINY_TRANSITIONS, move("close", ("ghost",), "done")),
        ["transition close names unknown state 'ghost'"],
        id="unknown-source-state",
    ),
    pytest.param(
        (*TINY_STATES, state("orphan")),
        (*TINY_TRANSITIONS, move("close", ("orphan",), "done")),
        ["state orphan is unreachable from filing"],
        id="unreachable-state",
    ),
    pytest.param(
        (*TINY_STATES, state("stuck")),
        (*TINY_TRANSITIONS, move("jam", ("open",), "stuck")),
        ["non-final state stuck has no way out"],
        id="non-final-state-without-way-out",
    ),
    pytest.param(
        TINY_STATES,
        (*TINY_TRANSITIONS, move("reopen", ("done",), "open")),
        ["final state done has a way out: reopen"],
        id="final-state-with-way-out",
    ),
    pytest.param(
        (*TINY_STATES, state("ping"), state("pong")),
        (
            *TINY_TRANSITIONS,
            move("bounce", ("open",), "ping"),
            move("bounce", ("ping",), "pong"),
            move("bounce", ("pong",), "ping"),
        ),
        ["state ping cannot reach any final state", "state pong cannot reach any final state"],
        id="cycle-without-exit",
    ),
    pytest.param(
        (state("open", deadline=OPEN_DUE), DONE),
        TINY_TRANSITIONS,
        ["state open sets deadline open_due but has no open_deadline transition for it"],
        id="deadline-without-trigger",
    ),
    pytest.param(
        (state("open", deadline=OPEN_DUE), DONE),
        (*TINY_TRANSITIONS, move("open_deadline", ("open",), "done", actors=("system",))),
        ["state open sets deadline open_due but has no open_deadline transition for it"],
        id="deadline-trigger-not-marked-on-deadline",
    ),
    pytest.param(
        TINY_STATES,
        (*TINY_TRANSITIONS, move("open_deadline", ("open",), "done", actors=("system",), on_deadline="open_due")),
        ["transition open_deadline fires on deadline open_due that state open does not set"],
        id="fires-on-deadline-the-state-does-not-set",
    ),
    pytest.param(
        (*TINY_STATES, state("also_done", final=True)),
        (*TINY_TRANSITIONS, move("close", ("open",), "also_done")),
        ["trigger close from open has transitions to done and also_done whose guards cannot tell them apart"],
        id="duplicate-trigger-source-without-guards",
    ),
    pytest.param(
        (*TINY_STATES, state("also_done", final=True)),
        (
            FILE,
            move("close", ("open",), "done", guards=(guard("paid"),)),
            move("close", ("open",), "also_done", guards=(guard("paid"),)),
        ),
        ["trigger close from open has transitions to done and also_done whose guards cannot tell them apart"],
        id="duplicate-trigger-source-same-guard",
    ),
    pytest.param(
        (*TINY_STATES, state("also_done", final=True)),
        (
            FILE,
            move("close", ("open",), "done", guards=(guard("paid"), guard("shipped"))),
            move("close", ("open",), "also_done", guards=(guard("paid"),)),
        ),
        ["trigger close from open has transitions to done and also_done whose guards cannot tell them apart"],
        id="duplicate-trigger-source-guards-overlap",
    ),
    pytest.param(
        TINY_STATES,
        (CLOSE,),
        ["no transition files a claim (one with no sources)"],
        id="no-filing-transition",
    ),
    pytest.param(
        (*TINY_STATES, state("open")),
        TINY_TRANSITIONS,
        ["state 'open' is defined twice"],
        id="state-defined-twice",
    ),
    pytest.param(
        (state("open"), state("not done", final=True)),
        (FILE, move("close", ("open",), "not done")),
        ["state name 'not done' is not a plain token"],
        id="state-name-not-a-token",
    ),
    pytest.param(
        TINY_STATES,
        (FILE, move("close", ("open",), "done", actors=("boss",))),
        ["transition close names unknown actor role 'boss'"],
        id="unknown-actor-role",
    ),
    pytest.param(
        TINY_STATES,
        (FILE, move("close", ("open",), "done", actors=())),
        ["transition close permits no actor"],
        id="no-actor",
    ),
]


@pytest.mark.parametrize(("states", "transitions", "expected"), BROKEN)
def test_broken_definition_names_its_problem(states, transitions, expected):
    """Each inconsistent definition is refused with a DefinitionError whose problems name the inconsistency."""
    problems = problems_of(states, transitions)
    for text in expected:
        assert text in problems, problems


def test_transitions_of_one_trigger_must_declare_the_same_data_fields():
    """Two transitions of one trigger with different data fields are a definition problem."""
    note = Field(name="note", description="why", parse=lambda value, _parsed, _claim: value)
    states = (*TINY_STATES, state("also_done", final=True))
    transitions = (
        FILE,
        move("close", ("open",), "done", guards=(guard("paid"),)),
        Transition(
            trigger="close",
            sources=("open",),
            dest="also_done",
            actors="buyer",
            description="close",
            guards=(guard("unpaid"),),
            fields=(note,),
        ),
    )
    assert "transitions of trigger close declare different data fields" in problems_of(states, transitions)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(("buyer",), ("buyer",), id="distinct-guards"),
        pytest.param(("buyer",), ("supplier",), id="distinct-guards-distinct-actors"),
    ],
)
def test_same_trigger_and_source_told_apart_by_distinct_guards_builds(first, second):
    """Two transitions sharing trigger and source build when each has a guard the other lacks."""
    states = (*TINY_STATES, state("also_done", final=True))
    paid = move("close", ("open",), "done", actors=first, guards=(guard("paid"),))
    unpaid = move("close", ("open",), "also_done", actors=second, guards=(guard("unpaid"),))
    d = Definition("guarded", states, (FILE, paid, unpaid))
    assert d.candidates("open", "close") == (paid, unpaid)


def test_same_trigger_and_source_told_apart_by_who_fires_builds():
    """Two unguarded transitions sharing trigger and source build when different roles fire them."""
    states = (*TINY_STATES, state("also_done", final=True))
    by_buyer = move("close", ("open",), "done", actors=("buyer",))
    by_agent = move("close", ("open",), "also_done", actors=("agent",))
    d = Definition("by role", states, (FILE, by_buyer, by_agent))
    assert d.candidates("open", "close") == (by_buyer, by_agent)


def test_every_problem_is_reported_at_once():
    """A definition with several problems raises one DefinitionError listing all of them."""
    states = (
        state("open", deadline=OPEN_DUE),  # no open_deadline transition
        DONE,
        state("stuck"),  # reached, but no way out
        state("orphan"),  # never reached
    )
    transitions = (
        FILE,
        CLOSE,
        move("jam", ("open",), "stuck"),
        move("leave", ("orphan",), "done"),
        move("reopen", ("done",), "open"),  # out of a final state
        move("escalate", ("open",), "limbo"),  # unknown state
    )
    problems = problems_of(states, transitions)
    expected = [
        "transition escalate names unknown state 'limbo'",
        "final state done has a way out: reopen",
        "non-final state stuck has no way out",
        "state open sets deadline open_due but has no open_deadline transition for it",
        "state orphan is unreachable from filing",
    ]
    assert len(problems) >= 3
    for text in expected:
        assert text in problems, problems


@pytest.mark.parametrize("window", [timedelta(0), timedelta(days=-1)], ids=["zero", "negative"])
def test_non_positive_default_deadline_window_is_a_problem(window):
    """A deadline rule whose default window is not positive is a definition problem, as it is for policy()."""
    rule = DeadlineRule(name="open_due", trigger="open_deadline", window=window, description="never really open")
    states = (state("open", deadline=rule), DONE)
    transitions = (
        FILE,
        CLOSE,
        move("open_deadline", ("open",), "done", actors=("system",), on_deadline="open_due"),
    )
    assert problems_of(states, transitions)


def test_one_deadline_name_with_two_different_rules_is_a_problem():
    """Two states declaring deadline rules of one name with different windows is a definition problem."""
    short = DeadlineRule(name="due", trigger="clock", window=timedelta(days=1), description="short")
    long = DeadlineRule(name="due", trigger="clock", window=timedelta(days=9), description="long")
    states = (state("open", deadline=short), state("later", deadline=long), DONE)
    transitions = (
        FILE,
        move("clock", ("open",), "later", actors=("system",), on_deadline="due"),
        move("clock", ("later",), "done", actors=("system",), on_deadline="due"),
    )
    assert problems_of(states, transitions)


def test_two_filing_transitions_that_cannot_be_told_apart_are_a_problem():
    """Two filing transitions of one trigger without distinguishing guards are ambiguous, like any other pair."""
    states = (*TINY_STATES, state("elsewhere"))
    transitions = (*TINY_TRANSITIONS, move("file", (), "elsewhere"), move("close", ("elsewhere",), "done"))
    assert any("cannot tell them apart" in p for p in problems_of(states, transitions))


def test_definition_error_is_a_claimstate_error_listing_problems_in_its_message():
    """DefinitionError is a ClaimStateError whose message counts and lists every problem."""
    with pytest.raises(ClaimStateError) as caught:
        Definition("broken", TINY_STATES, (CLOSE, move("reopen", ("done",), "open")))
    error = caught.value
    assert isinstance(error, DefinitionError)
    assert f"has {len(error.problems)} problem(s)" in str(error)
    for problem in error.problems:
        assert f"- {problem}" in str(error)


def test_rebuilding_the_builtin_tables_gives_an_equal_definition():
    """The built-in STATES, TRANSITIONS and VIEWS tables build a definition equal to CLAIM_LIFECYCLE."""
    rebuilt = Definition(CLAIM_LIFECYCLE.name, STATES, TRANSITIONS, VIEWS)
    assert rebuilt == CLAIM_LIFECYCLE


def test_a_view_naming_an_unknown_trigger_is_refused() -> None:
    """A detail view must draw transitions the definition has."""
    bad = View(name="typo", title="Typo", triggers=("make_ofer",))
    with pytest.raises(DefinitionError, match="view 'typo' names trigger 'make_ofer', which no transition has"):
        Definition(CLAIM_LIFECYCLE.name, STATES, TRANSITIONS, (bad,))


def test_check_settings_naming_what_the_definition_lacks_are_problems() -> None:
    """The states and moves `check` judges by must be the definition's own; every such problem is listed
    (examples are not: they are fitted to the definition, so one may borrow another's)."""
    settings = CheckSettings(
        examples={"no_such_trigger": ({"x": 1},)}, full_refund="refunded", partial_refund="refunded_partial",
        party_moves={"make_ofer", "withdraw"},
    )  # fmt: skip
    with pytest.raises(DefinitionError) as caught:
        Definition(CLAIM_LIFECYCLE.name, STATES, TRANSITIONS, VIEWS, check_settings=settings)
    assert caught.value.problems == (
        "check settings name unknown state 'refunded' as full_refund",
        "check settings name unknown trigger 'make_ofer' as a party's move",
    )


def test_check_settings_are_no_part_of_the_rules_the_export_or_equality() -> None:
    """A definition's check settings change neither its fingerprint nor its export (what is stored with
    claims and compared between definitions), nor whether it equals another."""
    bare = Definition(CLAIM_LIFECYCLE.name, STATES, TRANSITIONS, VIEWS)
    assert bare.check_settings == CheckSettings()
    assert bare.fingerprint() == CLAIM_LIFECYCLE.fingerprint()
    assert bare.to_dict() == CLAIM_LIFECYCLE.to_dict()
    assert bare == CLAIM_LIFECYCLE
    assert CLAIM_LIFECYCLE.check_settings.full_refund == "refunded_full"
    assert CLAIM_LIFECYCLE.check_settings.partial_refund == "refunded_partial"
    assert "file_claim" in CLAIM_LIFECYCLE.check_settings.party_moves


def test_dropping_a_builtin_transition_is_caught():
    """Removing the evidence deadline from the built-in tables makes the definition refuse to build."""
    transitions = tuple(t for t in TRANSITIONS if t.trigger != "evidence_deadline")
    problems = problems_of(STATES, transitions)
    assert (
        "state awaiting_evidence sets deadline evidence_due but has no evidence_deadline transition for it" in problems
    )


# --- the built-in claim lifecycle --------------------------------------------------------------------------

SPEC_FINAL = {"refunded_full", "refunded_partial", "payment_released", "withdrawn"}
SPEC_TRIGGERS = [
    "file_claim",
    "submit_evidence",
    "evidence_deadline",
    "make_offer",
    "accept_offer",
    "reject_offer",
    "cancel_claim",
    "approve_cancellation",
    "reject_cancellation",
    "request_buyer_response",
    "request_supplier_response",
    "respond",
    "response_deadline",
    "appeal",
    "escalate",
    "decide_full_refund",
    "decide_partial_refund",
    "decide_for_supplier",
    "confirm_return_address",
    "ship_return",
    "return_deadline",
    "confirm_return_received",
    "report_return_problem",
    "receipt_deadline",
    "withdraw",
]
B, S, A, SYS = "buyer", "supplier", "agent", "system"
MEDIATING = ("in_mediation", "under_review")
# The specification's transitions table: (trigger, sources, dest, roles); no sources files a claim.
SPEC_TRANSITIONS = [
    ("file_claim", (), "awaiting_evidence", {B}),
    ("submit_evidence", ("awaiting_evidence",), "in_mediation", {B}),
    ("submit_evidence", ("in_mediation",), "in_mediation", {B, S}),
    ("submit_evidence", ("under_review",), "under_review", {B, S}),
    ("evidence_deadline", ("awaiting_evidence",), "payment_released", {SYS}),
    ("make_offer", ("in_mediation",), "in_mediation", {B, S}),
    ("accept_offer", ("in_mediation",), "in_mediation", {B, S}),
    ("reject_offer", ("in_mediation",), "in_mediation", {B, S}),
    ("cancel_claim", ("in_mediation",), "cancellation_pending", {B}),
    ("approve_cancellation", ("cancellation_pending",), "refunded_partial", {A}),
    ("approve_cancellation", ("cancellation_pending",), "awaiting_return", {A}),
    ("reject_cancellation", ("cancellation_pending",), "in_mediation", {A}),
    ("request_buyer_response", MEDIATING, "awaiting_buyer_response", {A}),
    ("request_supplier_response", MEDIATING, "awaiting_supplier_response", {A}),
    ("respond", ("awaiting_buyer_response",), "in_mediation", {B}),
    ("respond", ("awaiting_supplier_response",), "in_mediation", {S}),
    ("response_deadline", ("awaiting_buyer_response",), "payment_released", {SYS}),
    ("response_deadline", ("awaiting_supplier_response",), "awaiting_return", {SYS}),
    ("response_deadline", ("awaiting_supplier_response",), "refunded_partial", {SYS}),
    ("appeal", ("in_mediation",), "under_review", {S}),
    ("escalate", ("in_mediation",), "under_review", {B}),
    ("decide_full_refund", MEDIATING, "awaiting_return", {A}),
    ("decide_full_refund", ("under_review",), "refunded_full", {A}),
    ("decide_partial_refund", MEDIATING, "refunded_partial", {A}),
    ("decide_for_supplier", MEDIATING, "payment_released", {A}),
    ("confirm_return_address", ("awaiting_return",), "awaiting_return", {S}),
    ("ship_return", ("awaiting_return",), "return_in_transit", {B}),
    ("return_deadline", ("awaiting_return",), "payment_released", {SYS}),
    ("confirm_return_received", ("return_in_transit",), "refunded_full", {S}),
    ("report_return_problem", ("return_in_transit",), "under_review", {S}),
    ("receipt_deadline", ("return_in_transit",), "under_review", {SYS}),
    (
        "withdraw",
        ("awaiting_evidence", "in_mediation", "awaiting_buyer_response", "awaiting_supplier_response"),
        "withdrawn",
        {B},
    ),
]


def edges(rows):
    """One (trigger, source, dest, roles) per source; None stands for filing."""
    return {
        (trigger, source, dest, frozenset(roles))
        for trigger, sources, dest, roles in rows
        for source in (sources or (None,))
    }


def test_builtin_state_names_are_the_specifications():
    """CLAIM_LIFECYCLE has exactly the states the specification names (docs/reference/lifecycle.md), each once."""
    assert sorted(s.name for s in CLAIM_LIFECYCLE.states) == sorted(STATE_NAMES)


def test_builtin_trigger_names_are_the_specifications():
    """CLAIM_LIFECYCLE has exactly the triggers the specification names (docs/reference/lifecycle.md)."""
    assert sorted(CLAIM_LIFECYCLE.triggers) == sorted(SPEC_TRIGGERS)
    assert len(CLAIM_LIFECYCLE.triggers) == len(SPEC_TRIGGERS)


def test_builtin_final_states():
    """The final states are exactly refunded_full, refunded_partial, payment_released and withdrawn."""
    assert {s.name for s in CLAIM_LIFECYCLE.states if s.final} == SPEC_FINAL


def test_builtin_transitions_match_the_specification_table():
    """Every (trigger, source, destination, role) of the built-in definition is a row of the spec, and vice versa."""
    built = edges((t.trigger, t.sources, t.dest, t.actors) for t in CLAIM_LIFECYCLE.transitions)
    assert built == edges(SPEC_TRANSITIONS)


def test_builtin_files_claims_with_file_claim():
    """The built-in filing transition is file_claim, into awaiting_evidence, by the buyer."""
    creation = CLAIM_LIFECYCLE.creation
    assert (creation.trigger, creation.dest, creation.actors) == ("file_claim", "awaiting_evidence", {"buyer"})


def test_refunded_full_is_reached_only_through_a_recorded_return():
    """Every way into refunded_full needs a recorded return shipment, and only ship_return records one.

    The supplier confirms receipt, or the team decides on the recorded shipment from under_review.
    """
    into_full = {
        (t.trigger, t.sources, tuple(g.code for g in t.guards))
        for t in CLAIM_LIFECYCLE.transitions
        if t.dest == "refunded_full"
    }
    into_transit = {(t.trigger, t.sources) for t in CLAIM_LIFECYCLE.transitions if t.dest == "return_in_transit"}
    assert into_full == {
        ("confirm_return_received", ("return_in_transit",), ("return_shipment_recorded",)),
        ("decide_full_refund", ("under_review",), ("return_shipment_recorded",)),
    }
    assert into_transit == {("ship_return", ("awaiting_return",))}


@pytest.mark.parametrize(
    ("state_name", "deadline", "trigger", "days"),
    [
        ("awaiting_evidence", "evidence_due", "evidence_deadline", 7),
        ("awaiting_buyer_response", "response_due", "response_deadline", 5),
        ("awaiting_supplier_response", "response_due", "response_deadline", 5),
        ("awaiting_return", "return_due", "return_deadline", 10),
        ("return_in_transit", "receipt_due", "receipt_deadline", 15),
    ],
)
def test_builtin_deadline_states(state_name, deadline, trigger, days):
    """Each deadline state sets the spec's deadline, fired by its clock trigger after the default window."""
    rule = CLAIM_LIFECYCLE.state(state_name).deadline
    assert rule is not None
    assert (rule.name, rule.trigger, rule.window) == (deadline, trigger, timedelta(days=days))


def test_only_the_specs_deadline_states_set_deadlines():
    """States without a deadline in the spec set none."""
    with_deadline = {s.name for s in CLAIM_LIFECYCLE.states if s.deadline is not None}
    assert with_deadline == {
        "awaiting_evidence",
        "awaiting_buyer_response",
        "awaiting_supplier_response",
        "awaiting_return",
        "return_in_transit",
    }


def test_default_policy_windows():
    """policy() gives the spec's default windows: 7, 5, 10 and 15 days."""
    policy = CLAIM_LIFECYCLE.policy()
    assert dict(policy.windows) == {
        "evidence_due": timedelta(days=7),
        "response_due": timedelta(days=5),
        "return_due": timedelta(days=10),
        "receipt_due": timedelta(days=15),
    }
    assert policy.window("evidence_due") == timedelta(days=7)


def test_policy_override_replaces_one_window():
    """policy(evidence_due=3 days) replaces that window only and leaves the defaults untouched."""
    policy = CLAIM_LIFECYCLE.policy(evidence_due=timedelta(days=3))
    assert policy.window("evidence_due") == timedelta(days=3)
    assert policy.window("response_due") == timedelta(days=5)
    assert policy.window("return_due") == timedelta(days=10)
    assert policy.window("receipt_due") == timedelta(days=15)
    assert CLAIM_LIFECYCLE.policy().window("evidence_due") == timedelta(days=7)


def test_policy_windows_cannot_be_changed_after_building():
    """A policy's windows are read-only."""
    policy = CLAIM_LIFECYCLE.policy()
    with pytest.raises(TypeError):
        policy.windows["evidence_due"] = timedelta(days=1)  # type: ignore[index]


def test_engine_uses_the_overridden_window():
    """An engine built with an overridden policy sets that window on the deadline of a new claim."""
    now = T0
    engine = claimstate.Engine(policy=CLAIM_LIFECYCLE.policy(evidence_due=timedelta(days=3)))
    data = filing()
    claim = engine.file_claim("c-1", "buyer:alice", data, now).claim
    assert claim.deadline is not None
    assert (claim.deadline.name, claim.deadline.due) == ("evidence_due", now + timedelta(days=3))


@pytest.mark.parametrize(
    "windows",
    [
        pytest.param({"filing_due": timedelta(days=3)}, id="unknown-name"),
        pytest.param({"evidence": timedelta(days=3)}, id="trigger-like-name"),
        pytest.param({"evidence_due": timedelta(0)}, id="zero"),
        pytest.param({"evidence_due": timedelta(days=-1)}, id="negative"),
        pytest.param({"response_due": timedelta(microseconds=-1)}, id="slightly-negative"),
        pytest.param({"return_due": 10}, id="not-a-timedelta"),
    ],
)
def test_policy_refuses_unknown_names_and_non_positive_windows(windows):
    """An unknown deadline name or a window that is not a positive timedelta raises InvalidInput."""
    with pytest.raises(InvalidInput):
        CLAIM_LIFECYCLE.policy(**windows)


def test_to_dict_is_json_serialisable():
    """to_dict() survives a JSON round trip unchanged."""
    data = CLAIM_LIFECYCLE.to_dict()
    assert json.loads(json.dumps(data)) == data


def test_to_dict_lists_every_state():
    """to_dict() lists every state with its finality and deadline window in seconds."""
    data = CLAIM_LIFECYCLE.to_dict()
    assert data["name"] == CLAIM_LIFECYCLE.name
    assert [s["name"] for s in data["states"]] == [s.name for s in CLAIM_LIFECYCLE.states]
    assert sorted(s["name"] for s in data["states"]) == sorted(STATE_NAMES)
    assert {s["name"] for s in data["states"] if s["final"]} == SPEC_FINAL
    by_name = {s["name"]: s for s in data["states"]}
    assert by_name["awaiting_evidence"]["deadline"]["name"] == "evidence_due"
    assert by_name["awaiting_evidence"]["deadline"]["trigger"] == "evidence_deadline"
    assert by_name["awaiting_evidence"]["deadline"]["window_seconds"] == 7 * 86400
    assert by_name["in_mediation"]["deadline"] is None


def test_to_dict_follows_the_given_policy():
    """to_dict(policy) reports the policy's windows, not the defaults."""
    data = CLAIM_LIFECYCLE.to_dict(CLAIM_LIFECYCLE.policy(evidence_due=timedelta(days=3)))
    by_name = {s["name"]: s for s in data["states"]}
    assert by_name["awaiting_evidence"]["deadline"]["window_seconds"] == 3 * 86400
    assert by_name["awaiting_return"]["deadline"]["window_seconds"] == 10 * 86400


def test_to_dict_lists_every_transition_with_guards_and_data():
    """to_dict() lists every transition with its sources, destination, roles, guards and data fields."""
    data = CLAIM_LIFECYCLE.to_dict()
    assert len(data["transitions"]) == len(CLAIM_LIFECYCLE.transitions)
    listed = edges((t["trigger"], tuple(t["sources"]), t["dest"], t["actors"]) for t in data["transitions"])
    assert listed == edges(SPEC_TRANSITIONS)
    for entry, transition in zip(data["transitions"], CLAIM_LIFECYCLE.transitions, strict=True):
        assert [g["code"] for g in entry["guards"]] == [g.code for g in transition.guards]
        assert [f["name"] for f in entry["data"]] == [f.name for f in transition.fields]
        for g in entry["guards"]:
            assert set(g) == {"code", "kind", "description", "refusal"}
            assert g["kind"] in {"permission", "guard"}
            assert g["description"]
            assert g["refusal"]
        for f in entry["data"]:
            assert set(f) == {"name", "required", "description"}
            assert isinstance(f["required"], bool)


def test_to_dict_tells_the_two_approvals_apart_by_guard():
    """The two approve_cancellation transitions carry the agreement_is_partial and agreement_is_full guards."""
    data = CLAIM_LIFECYCLE.to_dict()
    approvals = {
        t["dest"]: [g["code"] for g in t["guards"]]
        for t in data["transitions"]
        if t["trigger"] == "approve_cancellation"
    }
    assert approvals == {"refunded_partial": ["agreement_is_partial"], "awaiting_return": ["agreement_is_full"]}


def test_to_dict_marks_clock_transitions_with_their_deadline():
    """Clock transitions are fired by the system role and name the deadline they stand for."""
    data = CLAIM_LIFECYCLE.to_dict()
    clock = {(t["trigger"], t["on_deadline"]) for t in data["transitions"] if t["on_deadline"] is not None}
    assert clock == {
        ("evidence_deadline", "evidence_due"),
        ("response_deadline", "response_due"),
        ("return_deadline", "return_due"),
        ("receipt_deadline", "receipt_due"),
    }
    assert all(t["actors"] == ["system"] for t in data["transitions"] if t["on_deadline"] is not None)


# The spec's data column: every trigger's data items, optional ones marked False.
SPEC_DATA = {
    "file_claim": {
        "order_id": True,
        "buyer_id": True,
        "supplier_id": True,
        "amount": True,
        "currency": True,
        "reason": True,
        "resolution": True,
        "refund_amount": False,
    },
    "submit_evidence": {"evidence": True},
    "evidence_deadline": {},
    "make_offer": {"kind": True, "amount": True},
    "accept_offer": {},
    "reject_offer": {"note": False},
    "cancel_claim": {},
    "approve_cancellation": {},
    "reject_cancellation": {"reason": True},
    "request_buyer_response": {"question": True},
    "request_supplier_response": {"question": True},
    "respond": {"message": True, "evidence": False},
    "response_deadline": {},
    "appeal": {"evidence": True},
    "escalate": {"note": False},
    "decide_full_refund": {"rationale": True},
    "decide_partial_refund": {"amount": True, "rationale": True},
    "decide_for_supplier": {"rationale": True},
    "confirm_return_address": {"address": True},
    "ship_return": {"carrier": True, "tracking_number": True, "shipping_cost": False},
    "return_deadline": {},
    "confirm_return_received": {},
    "report_return_problem": {"description": True, "evidence": True},
    "receipt_deadline": {},
    "withdraw": {"reason": False},
}


@pytest.mark.parametrize(("trigger", "fields"), SPEC_DATA.items(), ids=list(SPEC_DATA))
def test_to_dict_data_fields_follow_the_specification(trigger, fields):
    """Each transition lists the spec's data items for its trigger, required unless the spec says optional."""
    entries = [t for t in CLAIM_LIFECYCLE.to_dict()["transitions"] if t["trigger"] == trigger]
    assert entries
    for entry in entries:
        assert {f["name"]: f["required"] for f in entry["data"]} == fields


def _readme_lifecycle() -> str:
    return (Path(__file__).parents[2] / "docs" / "reference" / "lifecycle.md").read_text(encoding="utf-8")


def test_the_readme_lifecycle_section_names_every_state_and_who_fires_each_trigger():
    """The docs' lifecycle page, the specification a maintainer reads, matches the definition.

    Its states table names every state, and its actors table gives each role exactly its triggers.
    """
    section = _readme_lifecycle()
    states_table = section[section.index("**States.**") : section.index("**The rules.**")]
    states = re.findall(r"^\| `(\w+)`(?: \(final\))? \|", states_table, flags=re.MULTILINE)
    assert states == [s.name for s in CLAIM_LIFECYCLE.states]
    actors_table = section[: section.index("**States.**")]
    rows = re.findall(r"^\| `(\w+)(?::<id>)?` \| [^|]+ \| ([\w, ]+) \|$", actors_table, flags=re.MULTILINE)
    written = {role: set(triggers.split(", ")) for role, triggers in rows}
    defined = {role: {t.trigger for t in CLAIM_LIFECYCLE.transitions if role in t.actors} for role in ROLES}
    assert written == defined
