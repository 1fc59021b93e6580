"""The change review page (`claimstate diff --format html`, and the console's change review): the built-in
lifecycle against the test suite's changed one (tests/changed_lifecycle.py), with exactly its changes in
plain words, the open claims each touches, a plan's dry run, check's results, and both lifecycles drawn
side by side in one layout that fits a 1440-pixel screen."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
from changed_lifecycle import INSPECTION
from helpers import EVIDENCE, T0, filing, offer

from claimstate import CLAIM_LIFECYCLE, ClaimService, PlanRefused, Violation, check
from claimstate._diagrams.compact import TITLE_POINTS, to_compact_dot
from claimstate._diagrams.diff import changes
from claimstate._diagrams.graph import extract, graph_of_export
from claimstate._diagrams.page import CHANGES_PAGE, nav_html
from claimstate._diagrams.review import COLUMN_PX, MIN_TITLE_PX, SCREEN_PX, pictures, review_page, viewbox_width
from claimstate.definition import Definition

OLD, NEW = CLAIM_LIFECYCLE.to_dict(), INSPECTION.to_dict()
# How to bring a claim of the built-in lifecycle into a state, after filing: (trigger, actor, data) steps.
SUBMIT = ("submit_evidence", "buyer:alice", {"evidence": EVIDENCE})
FULL_REFUND = ("decide_full_refund", "agent:kim", {"rationale": "damaged"})
WALKS: dict[str, list[tuple[str, str, dict[str, Any] | None]]] = {
    "awaiting_evidence": [],
    "in_mediation": [SUBMIT],
    "cancellation_pending": [SUBMIT, ("make_offer", "supplier:acme", offer("partial_refund")),
                             ("accept_offer", "buyer:alice", None), ("cancel_claim", "buyer:alice", None)],
    "awaiting_return": [SUBMIT, FULL_REFUND],
    "return_in_transit": [SUBMIT, FULL_REFUND, ("confirm_return_address", "supplier:acme", {"address": "1 Dock Rd"}),
                          ("ship_return", "buyer:alice", {"carrier": "DHL", "tracking_number": "JD0001"})],
    "withdrawn": [("withdraw", "buyer:alice", None)],
}  # fmt: skip
# The open claims the seeded database holds, by state: the closed (withdrawn) one is not open.
SEEDED = {"awaiting_evidence": 1, "in_mediation": 2, "cancellation_pending": 1, "awaiting_return": 1,
          "return_in_transit": 1}  # fmt: skip


def seed(db: str) -> dict[str, list[str]]:
    """Claims filed under the built-in lifecycle and walked into states the change touches (and one it does
    not, and one closed), as SEEDED says: their ids by state."""
    ids: dict[str, list[str]] = {}
    now = T0
    with ClaimService(db) as service:
        for state, count in [*SEEDED.items(), ("withdrawn", 1)]:
            for _ in range(count):
                claim = service.file_claim(filing(order_id=f"o-{sum(map(len, ids.values()))}"), now=now).claim
                for trigger, actor, data in WALKS[state]:
                    now += timedelta(minutes=1)
                    claim = service.fire(claim.id, trigger, actor, data, now=now).claim
                assert claim.state == state
                ids.setdefault(state, []).append(claim.id)
    return ids


def keys(definition: Definition) -> set[tuple[str, tuple[str, ...], str]]:
    return {(t.trigger, t.sources, t.dest) for t in definition.transitions}


def named(key: tuple[str, tuple[str, ...], str]) -> str:
    return f"{key[0]}: {', '.join(key[1])} -> {key[2]}"


def expected_changes() -> set[tuple[str, str, str]]:
    """What changes from the built-in lifecycle to the changed one, worked out from the two definitions
    themselves: states and transitions (trigger, sources, destination) of one and not the other, and those
    of both whose exports differ."""
    old_states, new_states = ({s.name for s in d.states} for d in (CLAIM_LIFECYCLE, INSPECTION))
    exported = [{s["name"]: s for s in e["states"]} for e in (OLD, NEW)]
    moves = [{(t["trigger"], tuple(t["sources"]), t["dest"]): t for t in e["transitions"]} for e in (OLD, NEW)]
    old_keys, new_keys = keys(CLAIM_LIFECYCLE), keys(INSPECTION)
    return (
        {("removed", "state", n) for n in old_states - new_states}
        | {("added", "state", n) for n in new_states - old_states}
        | {("changed", "state", n) for n in old_states & new_states if exported[0][n] != exported[1][n]}
        | {("removed", "transition", named(k)) for k in old_keys - new_keys}
        | {("added", "transition", named(k)) for k in new_keys - old_keys}
        | {("changed", "transition", named(k)) for k in old_keys & new_keys if moves[0][k] != moves[1][k]}
    )


def items(page: str) -> dict[str, str]:
    """The page's list of changes: each item's HTML by its change's code name."""
    listed = re.search(r'<ul class="changes">(.*?)</ul>\n', page, re.S)
    assert listed is not None
    found = re.findall(r'<li class="(added|removed|changed)">(.*?)</li>', listed[1], re.S)
    by_name = {}
    for kind, item in found:
        code = re.search(r'<p class="code">(state|transition) <code>(.*?)</code> \((\w+)\)', item)
        assert code is not None and code[3] == kind
        by_name[code[2].replace("&gt;", ">")] = item
    assert len(by_name) == len(found)
    return by_name


def headline(item: str) -> str:
    found = re.search(r"<b>(.*?)</b>", item)
    assert found is not None
    return found[1].replace("&#x27;", "'")


def group(svg: str, element_id: str) -> str:
    found = re.search(rf'<g id="{re.escape(element_id)}"[^>]*>.*?</g>', svg, re.S)
    assert found is not None, element_id
    return found[0]


# --- the graph of an export ----------------------------------------------------------------------------


@pytest.mark.parametrize("definition", [CLAIM_LIFECYCLE, INSPECTION], ids=lambda d: d.name)
def test_an_export_gives_the_graph_its_definition_gives(definition: Definition) -> None:
    """`graph_of_export(d.to_dict())` is `extract(d)` (less the detail views, which an export does not carry),
    so it draws the same compact picture."""
    from_export = graph_of_export(definition.to_dict())
    assert from_export == attrs.evolve(extract(definition), views=())
    assert to_compact_dot(from_export) == to_compact_dot(extract(definition))


# --- the changes, in words -----------------------------------------------------------------------------


def test_the_page_lists_exactly_the_changes_between_the_built_in_and_the_changed_lifecycle() -> None:
    """Every change the two definitions differ by is listed once, and nothing else: each with its kind and
    code name, small, after its words."""
    expected = expected_changes()
    assert {(c.kind, c.what, c.name) for c in changes(OLD, NEW)} == expected
    listed = items(review_page(OLD, NEW))
    assert set(listed) == {name for _, _, name in expected}
    assert len(expected) == 15  # 7 added, 7 removed, 1 changed: the changed lifecycle's docstring's three changes


def test_each_change_is_said_in_plain_words() -> None:
    """Each change leads with a sentence a product owner reads (titles and labels, never a code name), the
    deadline change as the issue words it."""
    listed = items(review_page(OLD, NEW))
    assert {name: headline(item) for name, item in listed.items()} == {
        "awaiting_inspection": "New state \u201cAwaiting inspection\u201d: the return arrived; the supplier inspects"
        " the goods before the full refund.",
        "close_on_agreement: in_mediation -> awaiting_return": "New step: the buyer closes on the agreed full refund,"
        " from In mediation to Awaiting the return.",
        "close_on_agreement: in_mediation -> refunded_partial": "New step: the buyer closes on the agreed partial"
        " refund, from In mediation to Refunded in part.",
        "confirm_return_received: return_in_transit -> awaiting_inspection": "New step: the supplier confirms the"
        " return arrived, from Return on its way to Awaiting inspection.",
        "inspection_deadline: awaiting_inspection -> refunded_full": "New step: inspection time runs out, from"
        " Awaiting inspection to Refunded in full.",
        "pass_inspection: awaiting_inspection -> refunded_full": "New step: the supplier passes the inspection, from"
        " Awaiting inspection to Refunded in full.",
        "report_return_problem: return_in_transit, awaiting_inspection -> under_review": "New step: the supplier"
        " reports a return problem, from Return on its way or Awaiting inspection to Under review by the team.",
        "cancellation_pending": "Removed state \u201cCancellation being checked\u201d (the buyer cancelled the claim"
        " after an agreement; the team checks it).",
        "approve_cancellation: cancellation_pending -> awaiting_return": "Removed step: the team approves: goods go"
        " back, from Cancellation being checked to Awaiting the return.",
        "approve_cancellation: cancellation_pending -> refunded_partial": "Removed step: the team approves: partial"
        " refund, from Cancellation being checked to Refunded in part.",
        "cancel_claim: in_mediation -> cancellation_pending": "Removed step: the buyer cancels after an agreement,"
        " from In mediation to Cancellation being checked.",
        "confirm_return_received: return_in_transit -> refunded_full": "Removed step: the supplier confirms receipt,"
        " from Return on its way to Refunded in full.",
        "reject_cancellation: cancellation_pending -> in_mediation": "Removed step: the team rejects the"
        " cancellation, from Cancellation being checked to In mediation.",
        "report_return_problem: return_in_transit -> under_review": "Removed step: the supplier reports a return"
        " problem, from Return on its way to Under review by the team.",
        "awaiting_return": "Awaiting the return: the buyer has 7 days to ship the return, not 10.",
    }
    said = " ".join(re.sub(r'<p class="code">.*?</p>', "", item) for item in listed.values())
    assert not re.search(r"\b[a-z]+_[a-z_]+\b", said), "a code name in the words"
    assert (
        "It replaces \u201csupplier confirms receipt\u201d (from Return on its way to Refunded in full)."
        in (listed["confirm_return_received: return_in_transit -> awaiting_inspection"])
    )
    assert "The supplier has 3 days to inspect the returned goods." in listed["awaiting_inspection"]


def test_the_words_of_other_changes() -> None:
    """Who may act, a condition, a window in other units, a new clock: each said in words."""
    new = {**OLD, "states": [dict(s) for s in OLD["states"]], "transitions": [dict(t) for t in OLD["transitions"]]}
    for t in new["transitions"]:
        if t["trigger"] == "escalate":
            t["actors"] = ["buyer", "supplier"]
            t["guards"] = [*t["guards"], {"code": "calm", "kind": "guard", "description": "the parties are calm",
                                          "refusal": "not calm"}]  # fmt: skip
    for s in new["states"]:
        if s["name"] == "awaiting_evidence":
            s["deadline"] = {**s["deadline"], "window_seconds": 36 * 3600}
        if s["name"] == "under_review":
            s["deadline"] = {"name": "review_due", "trigger": "review_deadline", "window_seconds": 3 * 86400,
                             "description": "the team must decide"}  # fmt: skip
    said = {c.name: c.words for c in changes(OLD, new)}
    assert said["escalate: in_mediation -> under_review"] == (
        "Who may take the step \u201cbuyer escalates\u201d (from In mediation to Under review by the team): now the"
        " buyer and the supplier, before only the buyer.",
        "A new condition on \u201cbuyer escalates\u201d (from In mediation to Under review by the team): the parties"
        " are calm.",
    )
    assert said["awaiting_evidence"] == ("Awaiting evidence: the buyer has 36 hours to present evidence, not 7 days.",)
    assert said["under_review"] == ("Under review by the team now runs a clock: the team has 3 days to decide.",)


# --- the open claims, the plan, check ------------------------------------------------------------------


def test_each_change_counts_the_open_claims_it_touches(tmp_path: Path) -> None:
    """On a database seeded with claims in known states, each change says how many open claims decided under
    the old lifecycle it touches, and where; the old side's boxes say how many each holds."""
    db = str(tmp_path / "claims.db")
    seed(db)
    with ClaimService(db, read_only=True) as service:
        counts = service.open_claims(OLD["fingerprint"])
    assert counts == SEEDED
    page = review_page(OLD, NEW, open_claims=counts)
    touched = {name: re.search(r'<p class="claims">(.*?)</p>', item)[1] for name, item in items(page).items()}  # type: ignore[index]
    mediation, returning = "Touches 2 open claims, in In mediation.", "Touches 1 open claim, in Return on its way."
    cancelling = "Touches 1 open claim, in Cancellation being checked."
    assert touched == {
        "awaiting_inspection": "Touches no open claim.",
        "close_on_agreement: in_mediation -> awaiting_return": mediation,
        "close_on_agreement: in_mediation -> refunded_partial": mediation,
        "confirm_return_received: return_in_transit -> awaiting_inspection": returning,
        "inspection_deadline: awaiting_inspection -> refunded_full": "Touches no open claim.",
        "pass_inspection: awaiting_inspection -> refunded_full": "Touches no open claim.",
        "report_return_problem: return_in_transit, awaiting_inspection -> under_review": returning,
        "cancellation_pending": cancelling,
        "approve_cancellation: cancellation_pending -> awaiting_return": cancelling,
        "approve_cancellation: cancellation_pending -> refunded_partial": cancelling,
        "cancel_claim: in_mediation -> cancellation_pending": mediation,
        "confirm_return_received: return_in_transit -> refunded_full": returning,
        "reject_cancellation: cancellation_pending -> in_mediation": cancelling,
        "report_return_problem: return_in_transit -> under_review": returning,
        "awaiting_return": "Touches 1 open claim, in Awaiting the return.",
    }
    assert "Open claims decided under the old lifecycle: 6; the changes touch 5 of them." in page
    before = page[page.index('id="old"') : page.index('id="new"')]
    assert "\u25cf 2 open" in group(before, "old-state-in_mediation")
    assert "\u25cf" not in group(before, "old-state-under_review")


def test_a_plans_dry_run_says_what_would_move_and_what_cannot(tmp_path: Path) -> None:
    """A plan's dry run, on a read-only service of the new definition, is told in words: how many claims
    move from which state to which and what becomes of their deadlines; a plan that leaves claims nowhere to
    go says so, naming them by title (and by code where the plan must). The dry run writes nothing."""
    db = str(tmp_path / "claims.db")
    ids = seed(db)
    plan = {"states": {"cancellation_pending": "in_mediation"}, "deadlines": {"return_due": "recompute"}}
    with ClaimService(db, definition=INSPECTION, read_only=True) as service:
        migration = service.migrate(plan, dry_run=True, now=T0 + timedelta(days=1))
        with pytest.raises(PlanRefused) as refused:
            service.migrate({"deadlines": "keep"}, dry_run=True, now=T0 + timedelta(days=1))
    page = review_page(OLD, NEW, migration=migration)
    assert "Migration plan (dry run): would move 6 open claims, and leave none behind." in page
    said = re.search(r"<h2>The migration plan</h2>\s*<p[^>]*>(.*?)</p><ul>(.*?)</ul>", page)
    assert said is not None
    assert said[1] == "The plan would move 6 open claims onto the new lifecycle (871106216cd0), and leave none behind:"
    assert said[2].split("</li>") == [
        "<li>1 claim in Awaiting evidence stays there; its deadline stays as it was.",
        "<li>1 claim in Awaiting the return stays there; its deadline is recomputed with the new window, from when"
        " its clock started.",
        "<li>1 claim in Cancellation being checked moves to In mediation; no deadline runs there.",
        "<li>2 claims in In mediation stay there; no deadline runs there.",
        "<li>1 claim in Return on its way stays there; its deadline stays as it was.",
        "",
    ]
    refused_page = review_page(OLD, NEW, migration=refused.value)
    assert "Migration plan: it cannot be applied as written (1 problem; see below)." in refused_page
    assert (
        "1 open claim(s) in Cancellation being checked (definition 1c3d3b8a9f70) have no state to go to in the new"
        " definition: map &#x27;cancellation_pending&#x27; in the plan&#x27;s states."
    ) in refused_page
    with ClaimService(db, read_only=True) as service:
        assert service.get(ids["cancellation_pending"][0]).state == "cancellation_pending"
        assert service.open_claims(OLD["fingerprint"]) == SEEDED


def test_checks_results_for_the_new_lifecycle_are_shown() -> None:
    """check's report on the new definition: every rule held, or each one that fails with why; without a
    report, the page says it was not checked and how to check it."""
    report = check(INSPECTION)
    held = review_page(OLD, NEW, report=report.to_dict())
    assert f"Check: every rule holds in the new lifecycle ({report.situations:,} situations explored)." in held
    assert "Holds: no refund is above the order amount, and a partial refund is below it." in held
    broken = attrs.evolve(report, results=(attrs.evolve(report.results[0], violation=Violation("no shipment")),
                                           *report.results[1:]))  # fmt: skip
    failed = review_page(OLD, NEW, report=broken.to_dict())
    assert "Check: 1 rule fails in the new lifecycle (see below)." in failed
    assert (f'<li class="fails">FAILS: {report.results[0].prop.description}: no shipment.</li>') in failed
    assert "Not checked here" in review_page(OLD, NEW)
    assert "<p>why not</p>" in review_page(OLD, NEW, report="why not")


def test_the_pages_links_head_the_page() -> None:
    """`nav` (the console's links) comes first, the change review marked as the page shown."""
    nav = nav_html((), CHANGES_PAGE, served=True)
    page = review_page(OLD, NEW, nav=nav)
    assert page.index(nav) < page.index("<h1>")
    assert f'<a href="{CHANGES_PAGE}" aria-current="page">Change review</a>' in page


# --- the pictures --------------------------------------------------------------------------------------


def test_both_sides_are_one_layout_that_fits_half_the_screen() -> None:
    """The two pictures are one layout: each state drawn on both sides is in the same place, and what a side
    lacks keeps its room, hidden. Each fits its half of a 1440-pixel screen at a scale that keeps a state's
    14-point title at 11 pixels or more: the viewBox is at most COLUMN_PX * 14 / 11 points wide."""
    before, after = pictures(OLD, NEW, changes(OLD, NEW))
    assert COLUMN_PX == (SCREEN_PX - 17 - 2 * 16 - 12) // 2 - 2  # a scrollbar, the margins, the gap, the borders
    for svg in (before, after):
        width = viewbox_width(svg)
        assert TITLE_POINTS * COLUMN_PX / width >= MIN_TITLE_PX, width
        assert f"min-width:{width * MIN_TITLE_PX / TITLE_POINTS:.0f}px" in svg  # never drawn smaller than that
    assert viewbox_width(before) == viewbox_width(after)
    for state in {s["name"] for s in OLD["states"]} & {s["name"] for s in NEW["states"]}:
        place = [re.search(r'<path[^>]* d="([^"]*)"', group(svg, f"{side}-state-{state}")) for svg, side in
                 ((before, "old"), (after, "new"))]  # fmt: skip
        assert place[0] is not None and place[1] is not None and place[0][1] == place[1][1], state
    assert 'visibility="hidden"' in group(before, "old-state-awaiting_inspection")
    assert 'visibility="hidden"' in group(after, "new-state-cancellation_pending")
    assert 'visibility="hidden"' not in group(after, "new-state-awaiting_inspection")


def test_each_side_says_its_own_words_and_marks_what_changed() -> None:
    """A changed state's box says each side's deadline; a removed one is red on the old side, an added one
    green on the new side, a changed one orange on both; an arrow that does not change is grey, its words
    on hover."""
    before, after = pictures(OLD, NEW, changes(OLD, NEW))
    assert ">deadline: 10 days<" in group(before, "old-state-awaiting_return")
    assert ">deadline: 7 days<" in group(after, "new-state-awaiting_return")
    assert 'stroke="#c62828"' in group(before, "old-state-cancellation_pending")
    assert 'stroke="#2e7d32"' in group(after, "new-state-awaiting_inspection")
    for svg, side in ((before, "old"), (after, "new")):
        assert 'stroke="#ef6c00"' in group(svg, f"{side}-state-awaiting_return")
    shipping = next(m[1] for m in re.finditer(r'<g id="new-arrow-(\d+)"[^>]*><title>buyer ships the return', after))
    assert 'stroke="#9e9e9e"' in group(after, f"new-arrow-{shipping}")
    assert "<text" not in group(after, f"new-arrow-{shipping}")
