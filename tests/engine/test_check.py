"""`claimstate check`: the built-in lifecycle's rules hold over every explored situation, and each seeded
fault in a broken definition is found, with a shortest counterexample."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import attrs
import pytest
from click.testing import CliRunner

from claimstate import CLAIM_LIFECYCLE, ClaimService, DefinitionError
from claimstate._check import PROPERTIES, Exploration, check
from claimstate._check.properties import _components
from claimstate._check.scenarios import scenarios
from claimstate._check.stories import to_html as stories_html
from claimstate._check.stories import to_markdown as stories_markdown
from claimstate._diagrams.drawing import STORIES
from claimstate._script import run_script
from claimstate.cli import cli
from claimstate.definition import CheckSettings, Definition, State, Transition, View, guard

EXAMPLES = CLAIM_LIFECYCLE.check_settings.examples


def _settings(rows: tuple[Transition, ...]) -> CheckSettings:
    """The built-in lifecycle's check settings, less the party moves none of `rows` has any more."""
    built_in = CLAIM_LIFECYCLE.check_settings
    return attrs.evolve(built_in, party_moves=built_in.party_moves & {t.trigger for t in rows})


def test_every_rule_holds_on_the_built_in_lifecycle() -> None:
    """The exploration is complete, takes every transition, and every property holds."""
    report = check(CLAIM_LIFECYCLE, EXAMPLES)
    assert report.complete and report.held
    assert report.situations > 1_000 and report.transitions > 5_000
    assert [r.prop.name for r in report.results] == [p.name for p in PROPERTIES]


def _changed(keep: Any) -> Definition:
    """The built-in lifecycle with each transition `keep(t)` returns (None: dropped)."""
    rows = tuple(t for t in (keep(t) for t in CLAIM_LIFECYCLE.transitions) if t is not None)
    return Definition("broken", CLAIM_LIFECYCLE.states, rows, CLAIM_LIFECYCLE.views, check_settings=_settings(rows))


def _without_guard(trigger: str, dest: str, code: str) -> Definition:
    def keep(t: Transition) -> Transition:
        if t.trigger == trigger and t.dest == dest:
            return attrs.evolve(t, guards=tuple(g for g in t.guards if g.code != code))
        return t

    return _changed(keep)


OFFER_OPEN = next(g for t in CLAIM_LIFECYCLE.transitions for g in t.guards if g.code == "offer_open")


def _paid_at_once() -> Definition:
    always = guard("always", "always", "never")(lambda _ctx: True)
    rows = list(CLAIM_LIFECYCLE.transitions)
    paid = next(i for i, t in enumerate(rows) if t.trigger == "decide_full_refund" and t.dest == "refunded_full")
    first = next(i for i, t in enumerate(rows) if t.trigger == "decide_full_refund")
    rows.insert(first, attrs.evolve(rows.pop(paid), guards=(always,)))
    return Definition(
        "broken", CLAIM_LIFECYCLE.states, tuple(rows), CLAIM_LIFECYCLE.views, check_settings=_settings(tuple(rows))
    )


def test_dropping_the_return_guard_is_refused_when_the_definition_is_built() -> None:
    """The simplest form of the fault never runs: two rows of one trigger that no guard tells apart."""
    with pytest.raises(DefinitionError, match="whose guards cannot tell them apart"):
        _without_guard("decide_full_refund", "refunded_full", "return_shipment_recorded")


BROKEN = [
    # the team's full refund pays at once from review, whatever the return: its return guard swapped for
    # one that always holds, and the row tried first (dropped alone, the definition refuses to build)
    ("full_refund_needs_return", _paid_at_once()),
    # the evidence deadline may fire before it is due
    ("clock_when_due", _without_guard("evidence_deadline", "payment_released", "deadline_reached")),
    # the team's ways out of a pending cancellation need an open offer, which an agreement never leaves:
    # the definition still builds (each state has a way out on paper), but claims wait there for ever
    (
        "no_trap",
        _changed(
            lambda t: (
                attrs.evolve(t, guards=(*t.guards, OFFER_OPEN))
                if t.trigger in {"approve_cancellation", "reject_cancellation"}
                else t
            )
        ),
    ),
    # an offer above the order amount accepted, then approved: a "partial" refund above what was paid
    ("refund_within_order", _without_guard("make_offer", "in_mediation", "offer_amount_valid")),
    # a filing asking the whole amount as a partial refund, paid when the supplier stays silent
    ("refund_within_order", _without_guard("file_claim", "awaiting_evidence", "requested_refund_valid")),
    # the team may make offers itself
    (
        "own_claims_only",
        _changed(lambda t: attrs.evolve(t, actors=t.actors | {"agent"}) if t.trigger == "make_offer" else t),
    ),
    # a decided partial refund no longer bounded by the order amount
    ("refund_within_order", _without_guard("decide_partial_refund", "refunded_partial", "decided_amount_in_range")),
]


@pytest.mark.parametrize(("rule", "definition"), BROKEN, ids=[f"{n}-{rule}" for n, (rule, _) in enumerate(BROKEN)])
def test_each_seeded_fault_is_found_with_a_shortest_counterexample(rule: str, definition: Definition) -> None:
    report = check(definition, EXAMPLES)
    result = next(r for r in report.results if r.prop.name == rule)
    assert not result.held and not report.held
    assert result.path, result.violation
    assert result.path[0].trigger == "file_claim"  # a whole story, from the filing
    assert all(
        s.before is not None and s.before.state == p.after.state
        for p, s in zip(result.path, result.path[1:], strict=False)
    )
    report_dict = report.to_dict()
    assert any(not p["held"] for p in report_dict["properties"])


def test_the_properties_judge_by_the_states_and_moves_the_definition_names() -> None:
    """The refund states and the parties' moves are data of the definition (`check_settings`), not of the
    checker: naming the partial refund's state as the full refund's makes its refunds, paid with no return,
    a violation; dropping a move from the parties' own lets the team make it; and a definition that names
    none is judged by neither rule."""
    built_in = CLAIM_LIFECYCLE.check_settings
    misnamed = attrs.evolve(CLAIM_LIFECYCLE, check_settings=attrs.evolve(built_in, full_refund=built_in.partial_refund))
    result = next(r for r in check(misnamed).results if r.prop.name == "full_refund_needs_return")
    assert result.violation is not None and result.path[-1].after.state == "refunded_partial"
    team_offers = next(d for rule, d in BROKEN if rule == "own_claims_only")
    undeclared = attrs.evolve(
        team_offers, check_settings=attrs.evolve(built_in, party_moves=built_in.party_moves - {"make_offer"})
    )
    assert next(r for r in check(undeclared).results if r.prop.name == "own_claims_only").held
    bare = attrs.evolve(team_offers, check_settings=CheckSettings(examples=built_in.examples))
    judged = {r.prop.name: r.held for r in check(bare).results}
    assert judged["own_claims_only"] and judged["full_refund_needs_return"] and judged["refund_within_order"]


def test_the_command_prints_each_rule_and_exits_by_the_verdict() -> None:
    result = CliRunner().invoke(cli, ["--json", "check"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["held"] and report["complete"] and report["seconds"] < 60
    assert {p["property"] for p in report["properties"]} == {p.name for p in PROPERTIES}
    human = CliRunner().invoke(cli, ["check"])
    assert human.exit_code == 0 and "held  no_trap" in human.stdout and "held  no_stall" in human.stdout
    assert CliRunner().invoke(cli, ["check", "--db", "x.db"]).exit_code == 2


# --- no silent party stalls a claim ---------------------------------------------------------------------


def _rebuilt(states: tuple[State, ...], rows: tuple[Transition, ...]) -> Definition:
    """A definition of `states` and `rows`, with the built-in views less the triggers no row has any more."""
    known = {t.trigger for t in rows}
    views = tuple(View(name=v.name, title=v.title, triggers=tuple(t for t in v.triggers if t in known))
                  for v in CLAIM_LIFECYCLE.views)  # fmt: skip
    return Definition("stalled", states, rows, views, check_settings=_settings(rows))


def _deadline_back(trigger: str, source: str) -> Definition:
    """The clock's `trigger` sends a claim back into `source`, the state it was waiting in."""
    return _changed(lambda t: attrs.evolve(t, dest=source) if (t.trigger, t.sources) == (trigger, (source,)) else t)


def _no_window(state: str) -> Definition:
    """`state` sets no deadline any more, and its deadline rows are dropped: nothing ends the wait there."""
    states = tuple(attrs.evolve(s, deadline=None) if s.name == state else s for s in CLAIM_LIFECYCLE.states)
    rows = tuple(t for t in CLAIM_LIFECYCLE.transitions if not (t.on_deadline and t.sources == (state,)))
    return _rebuilt(states, rows)


def _silence_asks_the_buyer() -> Definition:
    """A silent supplier no longer lets the full refund go ahead: the clock moves the claim into a new state,
    awaiting_buyer_confirmation, which only the buyer leaves (escalating or withdrawing), with no deadline."""
    asking = State(name="awaiting_buyer_confirmation", meaning="the supplier was silent: the buyer confirms the refund")
    states = (*CLAIM_LIFECYCLE.states, asking)

    def keep(t: Transition) -> Transition:
        if t.trigger == "response_deadline" and t.dest == "awaiting_return":
            return attrs.evolve(t, dest=asking.name)
        if t.trigger in {"escalate", "withdraw"}:
            return attrs.evolve(t, sources=(*t.sources, asking.name))
        return t

    return _rebuilt(states, tuple(keep(t) for t in CLAIM_LIFECYCLE.transitions))


def _review_needs_the_supplier() -> Definition:
    """Under review, the team may neither decide nor ask anyone anything until the supplier has given
    evidence: a claim the buyer escalated waits there on the supplier, though the team is in charge."""
    heard = guard("supplier_heard", "the supplier gave evidence", "the supplier has given no evidence")(
        lambda ctx: any(e.by == "supplier" for e in ctx.current.evidence)
    )
    rows: list[Transition] = []
    for t in CLAIM_LIFECYCLE.transitions:
        if "agent" not in t.actors or "under_review" not in t.sources:
            rows.append(t)
            continue
        rows.append(attrs.evolve(t, sources=("under_review",), guards=(*t.guards, heard)))
        elsewhere = tuple(s for s in t.sources if s != "under_review")
        if elsewhere:
            rows.append(attrs.evolve(t, sources=elsewhere))
    return _rebuilt(CLAIM_LIFECYCLE.states, tuple(rows))


def _team_only_in_time() -> Definition:
    """The receipt deadline sends the claim back into return_in_transit, where the team may decide for the
    supplier, but only before the deadline: once it has passed, only the supplier ends the wait. (The
    exploration merges the claim with its deadline passed into the one first reached; judged apart, it
    stalls.)"""
    looped = _deadline_back("receipt_deadline", "return_in_transit")
    decide = next(t for t in CLAIM_LIFECYCLE.transitions if t.trigger == "decide_for_supplier")
    in_time = next(g for t in CLAIM_LIFECYCLE.transitions for g in t.guards if g.code == "before_deadline")
    early = attrs.evolve(decide, sources=("return_in_transit",), guards=(in_time,))
    return _rebuilt(looped.states, (*looped.transitions, early))


# Each way a silent party could hold a claim open, the state and the party the claim would wait on for
# ever there, and the shortest story into that state.
STALLS = [
    # the receipt deadline sends the claim back into return_in_transit: only the supplier ends the wait
    (_deadline_back("receipt_deadline", "return_in_transit"), "return_in_transit", "supplier",
     ["file_claim", "submit_evidence", "decide_full_refund", "confirm_return_address", "ship_return",
      "receipt_deadline"]),
    # the buyer's response deadline sends the claim back to wait on the buyer again
    (_deadline_back("response_deadline", "awaiting_buyer_response"), "awaiting_buyer_response", "buyer",
     ["file_claim", "submit_evidence", "request_buyer_response", "response_deadline"]),
    # the team asks the buyer to respond, with no response window at all
    (_no_window("awaiting_buyer_response"), "awaiting_buyer_response", "buyer",
     ["file_claim", "submit_evidence", "request_buyer_response"]),
    # a decided full refund with no return window: the supplier may never confirm the return address
    (_no_window("awaiting_return"), "awaiting_return", "supplier",
     ["file_claim", "submit_evidence", "decide_full_refund"]),
    # a deadline into a state the team cannot act in, that only the buyer can leave
    (_silence_asks_the_buyer(), "awaiting_buyer_confirmation", "buyer",
     ["file_claim", "submit_evidence", "request_supplier_response", "response_deadline"]),
    # as the first, but the team may close the claim there before the deadline (only before it)
    (_team_only_in_time(), "return_in_transit", "supplier",
     ["file_claim", "submit_evidence", "decide_full_refund", "confirm_return_address", "ship_return",
      "receipt_deadline"]),
    # the team's every move under review waits for the supplier's evidence
    (_review_needs_the_supplier(), "under_review", "supplier", ["file_claim", "submit_evidence", "escalate"]),
]  # fmt: skip


@pytest.mark.parametrize(("definition", "state", "party", "story"), STALLS,
                         ids=[f"{n}-{state}" for n, (_, state, _, _) in enumerate(STALLS)])  # fmt: skip
def test_each_seeded_stall_is_found_with_its_state_party_and_shortest_story(
    definition: Definition, state: str, party: str, story: list[str]
) -> None:
    """`no_stall` finds each seeded stall, and only it: every other rule still holds, since a final state
    stays reachable if the party acts. Its counterexample is the shortest story into the state the claim
    would wait in for ever, and its reason names that state and the party it waits on."""
    report = check(definition, EXAMPLES)
    assert report.complete and not report.held
    assert {r.prop.name for r in report.results if not r.held} == {"no_stall"}
    result = next(r for r in report.results if r.prop.name == "no_stall")
    assert result.violation is not None
    assert [s.trigger for s in result.path] == story
    assert result.path[-1].after.state == state
    assert all(
        s.before is not None and s.before.state == p.after.state
        for p, s in zip(result.path, result.path[1:], strict=False)
    )
    assert result.violation.reason.startswith(f"a claim in {state} ")
    assert f" waits for ever on the {party} (" in result.violation.reason
    assert "or the" not in result.violation.reason  # only that party, not the other


def test_the_reason_says_what_the_clock_and_the_team_do_there() -> None:
    """A deadline back into its waiting state: the claim waits there with the deadline passed (so the buyer
    can no longer respond, only withdraw), and the clock leads only back. No window: nothing runs."""
    reasons = {
        name: next(r for r in check(definition, EXAMPLES).results if r.prop.name == "no_stall").violation
        for name, definition in [
            ("receipt", _deadline_back("receipt_deadline", "return_in_transit")),
            ("response", _deadline_back("response_deadline", "awaiting_buyer_response")),
            ("no window", _no_window("awaiting_buyer_response")),
        ]
    }
    assert {name: None if v is None else v.reason for name, v in reasons.items()} == {
        "receipt": "a claim in return_in_transit past its receipt_due deadline waits for ever on the supplier"
        " (confirm_return_received, report_return_problem) if they stay silent: the clock's receipt_deadline"
        " leads back to return_in_transit, and never on to a final state",
        "response": "a claim in awaiting_buyer_response past its response_due deadline waits for ever on the buyer"
        " (withdraw) if they stay silent: the clock's response_deadline leads back to awaiting_buyer_response,"
        " and never on to a final state",
        "no window": "a claim in awaiting_buyer_response waits for ever on the buyer (respond, withdraw) if they stay"
        " silent: no deadline runs there and the team cannot act",
    }


def test_a_trap_is_a_stall_too() -> None:
    """A claim no one can move (the seeded trap: a pending cancellation the team can neither approve nor
    reject) waits for ever as well: `no_stall` reports it beside `no_trap`, saying no one can move it."""
    trap = next(definition for rule, definition in BROKEN if rule == "no_trap")
    report = check(trap, EXAMPLES)
    assert {r.prop.name for r in report.results if not r.held} == {"no_trap", "no_stall"}
    result = next(r for r in report.results if r.prop.name == "no_stall")
    assert result.violation is not None and result.path[-1].after.state == "cancellation_pending"
    assert result.violation.reason == (
        "a claim in cancellation_pending waits for ever, and no one can move it: no deadline runs there and the"
        " team cannot act"
    )


def test_the_clock_fires_only_the_running_deadline_once_due() -> None:
    """A trigger the system may fire but no deadline stands for is never fired by `tick`, so it ends no
    wait: a stall that only such a step would leave is still found."""
    sweep = attrs.evolve(
        next(t for t in CLAIM_LIFECYCLE.transitions if t.trigger == "withdraw"),
        trigger="sweep", actors=frozenset({"system"}), sources=("awaiting_buyer_response",), fields=(),
        description="the system closes the claim", label="the system closes the claim",
    )  # fmt: skip
    broken = _no_window("awaiting_buyer_response")
    definition = _rebuilt(broken.states, (*broken.transitions, sweep))
    report = check(definition, EXAMPLES)
    result = next(r for r in report.results if r.prop.name == "no_stall")
    assert not result.held and result.path[-1].after.state == "awaiting_buyer_response"
    assert any(s.trigger == "sweep" for s in report.exploration.steps)  # the step exists; it is not the clock's


def test_the_components_group_nodes_that_reach_each_other() -> None:
    """The stall's waiting place is found among groups of situations that lead to each other: a cycle is
    one group, and a node on the way into it a group of its own."""
    ahead = defaultdict(set, {1: {2}, 2: {3}, 3: {2, 4}, 4: {2}, 5: {5}, 6: set()})
    group = _components([1, 2, 3, 4, 5, 6], ahead)
    assert group[2] == group[3] == group[4] and len({group[1], group[2], group[5], group[6]}) == 4


STALLED_RECEIPT = STALLS[0][0]


def test_the_command_reports_a_stall_with_its_counterexample() -> None:
    """`claimstate check` on a stalling definition exits 1, prints the rule as violated with its reason
    and its story step by step, and reports the same in --json."""
    named = f"{__name__}:STALLED_RECEIPT"
    human = CliRunner().invoke(cli, ["--definition", named, "check"])
    assert human.exit_code == 1, human.output
    assert "VIOLATED  no_stall: no silent party stalls a claim" in human.stdout
    assert (
        "    a claim in return_in_transit past its receipt_due deadline waits for ever on the supplier" in human.stdout
    )
    assert "    5. buyer:alice fires ship_return" in human.stdout
    assert (
        "    6. system fires receipt_deadline" in human.stdout
        and "return_in_transit -> return_in_transit" in human.stdout
    )
    assert "held  no_trap" in human.stdout
    result = CliRunner().invoke(cli, ["--json", "--definition", named, "check"])
    assert result.exit_code == 1, result.output
    (stall,) = [p for p in json.loads(result.stdout)["properties"] if p["property"] == "no_stall"]
    assert not stall["held"] and "return_in_transit" in stall["reason"] and "supplier" in stall["reason"]
    assert [s["trigger"] for s in stall["counterexample"]] == STALLS[0][3]
    assert stall["counterexample"][-1]["to"] == "return_in_transit"


# --- scenarios and stories ------------------------------------------------------------------------------

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def explored() -> Exploration:
    return check(CLAIM_LIFECYCLE, EXAMPLES).exploration


def test_every_scenario_script_runs_green_and_reaches_its_state(explored: Exploration, tmp_path: Path) -> None:
    """The shortest path into every state and through every transition, as a `claimstate script`, runs
    against a fresh SQLite store line by line and leaves the claim in the state the scenario claims."""
    found = scenarios(explored)
    rows = {(t.trigger, s, t.dest) for t in CLAIM_LIFECYCLE.transitions for s in t.sources or (None,)}
    covered = {(s.trigger, None if s.before is None else s.before.state, s.after.state) for x in found for s in x.steps}
    assert covered == rows
    assert {x.ends_in for x in found} | {s.after.state for x in found for s in x.steps} >= {
        s.name for s in CLAIM_LIFECYCLE.states
    }
    for number, scenario in enumerate(found):
        with ClaimService(tmp_path / f"s{number}.db") as service:
            report = run_script(service, scenario.script().splitlines(), atomic=False, keep_going=False, now=None)
            assert not report.failures, (scenario.title, report.failures[0].error)
            (claim,) = service.list_claims()
            assert claim.state == scenario.ends_in, scenario.title


def test_the_committed_stories_page_is_fresh(explored: Exploration) -> None:
    """diagrams/stories.md and .html are what the exploration tells now: one story per outcome."""
    assert (ROOT / "diagrams" / "stories.md").read_text() == stories_markdown(explored), f"run `{STORIES}`"
    assert (ROOT / "diagrams" / "stories.html").read_text() == stories_html(explored), f"run `{STORIES}`"
    finals = [s.title for s in CLAIM_LIFECYCLE.states if s.final]
    assert [line[3:] for line in stories_markdown(explored).splitlines() if line.startswith("## ")] == finals
