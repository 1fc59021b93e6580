"""`claimstate check`: the built-in lifecycle's rules hold over every explored situation, and each seeded
fault in a broken definition is found, with a shortest counterexample."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import pytest
from click.testing import CliRunner

from claimstate import CLAIM_LIFECYCLE, ClaimService, DefinitionError
from claimstate._check import PROPERTIES, Exploration, check
from claimstate._check.scenarios import scenarios
from claimstate._check.stories import to_html as stories_html
from claimstate._check.stories import to_markdown as stories_markdown
from claimstate._diagrams.drawing import STORIES
from claimstate._lifecycle import EXAMPLES
from claimstate._script import run_script
from claimstate.cli import cli
from claimstate.definition import Definition, Transition, guard


def test_every_rule_holds_on_the_built_in_lifecycle() -> None:
    """The exploration is complete, takes every transition, and every property holds."""
    report = check(CLAIM_LIFECYCLE, EXAMPLES)
    assert report.complete and report.held
    assert report.situations > 1_000 and report.transitions > 5_000
    assert [r.prop.name for r in report.results] == [p.name for p in PROPERTIES]


def _changed(keep: Any) -> Definition:
    """The built-in lifecycle with each transition `keep(t)` returns (None: dropped)."""
    rows = (keep(t) for t in CLAIM_LIFECYCLE.transitions)
    return Definition("broken", CLAIM_LIFECYCLE.states, tuple(t for t in rows if t is not None), CLAIM_LIFECYCLE.views)


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
    return Definition("broken", CLAIM_LIFECYCLE.states, tuple(rows), CLAIM_LIFECYCLE.views)


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


def test_the_command_prints_each_rule_and_exits_by_the_verdict() -> None:
    result = CliRunner().invoke(cli, ["--json", "check"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["held"] and report["complete"] and report["seconds"] < 60
    assert {p["property"] for p in report["properties"]} == {p.name for p in PROPERTIES}
    human = CliRunner().invoke(cli, ["check"])
    assert human.exit_code == 0 and "held  no_trap" in human.stdout
    assert CliRunner().invoke(cli, ["check", "--db", "x.db"]).exit_code == 2


# --- scenarios and stories ------------------------------------------------------------------------------

ROOT = Path(__file__).parent.parent


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
