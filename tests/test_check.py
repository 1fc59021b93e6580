"""`claimstate check`: the built-in lifecycle's rules hold over every explored situation, and each seeded
fault in a broken definition is found, with a shortest counterexample."""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest
from click.testing import CliRunner

from claimstate import CLAIM_LIFECYCLE, DefinitionError
from claimstate._check import PROPERTIES, check
from claimstate._lifecycle import EXAMPLES
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
    # a decided partial refund no longer bounded by the order amount
    ("refund_within_order", _without_guard("decide_partial_refund", "refunded_partial", "decided_amount_in_range")),
]


@pytest.mark.parametrize(("rule", "definition"), BROKEN, ids=[rule for rule, _ in BROKEN])
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
