"""`claimstate diff OLD.json NEW.json`: one command for reviewing a definition change, in three formats
(text, md, html: the change review page), written with -o like `diagram -o`, counting with --db the open
claims each change touches; the page also shows check's results (--new-definition) and a migration plan's
dry run (--plan)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from changed_lifecycle import INSPECTION
from click.testing import CliRunner, Result
from helpers import EVIDENCE, T0, filing, offer

from claimstate import CLAIM_LIFECYCLE, ClaimService
from claimstate.cli import cli

NOW = "2026-03-02T09:00:00+00:00"
FILED = "awaiting_evidence"  # the state `file` puts a claim in
FILE_ARGS = ["--order", "o-1", "--buyer", "alice", "--supplier", "acme", "--amount", "25.00", "--currency", "USD",
             "--reason", "broken", "--resolution", "full_refund"]  # fmt: skip


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def exports(tmp_path: Path) -> tuple[Path, Path]:
    """The built-in lifecycle's export, and one with a transition removed and the filing state's meaning changed."""
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    data: dict[str, Any] = CLAIM_LIFECYCLE.to_dict()
    old.write_text(json.dumps(data))
    data["transitions"] = [t for t in data["transitions"] if t["trigger"] != "report_return_problem"]
    for state in data["states"]:
        if state["name"] == FILED:
            state["meaning"] = "waiting for the buyer's evidence"
    new.write_text(json.dumps(data))
    return old, new


def test_text_is_the_default_and_says_each_change_in_words(exports: tuple[Path, Path]) -> None:
    """`diff` and `diff --format text` print the same lines: each change, its words, then its details as the
    fields name them (and --json the same list, the words in it)."""
    old, new = (str(p) for p in exports)
    plain, text = invoke("diff", old, new), invoke("diff", old, new, "--format", "text")
    assert plain.exit_code == 0 and plain.stdout == text.stdout
    assert plain.stdout == (
        "removed transition report_return_problem: return_in_transit -> under_review\n"
        "    Removed step: the supplier reports a return problem, from Return on its way to Under review by the team.\n"
        f"changed state {FILED}\n"
        f"    Awaiting evidence now means: waiting for the buyer's evidence (before: {_meaning(exports[0])}).\n"
        f'    meaning: {_meaning(exports[0])!r} -> "waiting for the buyer\'s evidence"\n'
    )
    listed = json.loads(invoke("diff", old, new, "--json").stdout)
    assert [(c["kind"], c["what"]) for c in listed] == [("removed", "transition"), ("changed", "state")]
    assert listed[0]["words"] == [
        "Removed step: the supplier reports a return problem, from Return on its way to Under review by the team."
    ]
    assert "open_claims" not in listed[0]


def test_md_and_html_are_the_review_and_the_page(exports: tuple[Path, Path]) -> None:
    """--format md is the Markdown review (each change's words, then its details), --format html the change
    review page, both lifecycles drawn; no count without --db, and check not run without --new-definition."""
    old, new = (str(p) for p in exports)
    md = invoke("diff", old, new, "--format", "md")
    assert md.exit_code == 0 and md.stderr == ""
    assert md.stdout.startswith("# Lifecycle changes: buyer claim -> buyer claim\n\n## Removed\n\n")
    assert (
        "- transition `report_return_problem: return_in_transit -> under_review`\n"
        "  - Removed step: the supplier reports a return problem, from Return on its way to Under review by the"
        " team.\n"
    ) in md.stdout
    assert "open claim" not in md.stdout
    html = invoke("diff", old, new, "--format", "html")
    assert html.exit_code == 0 and html.stdout.startswith("<!DOCTYPE html>") and html.stdout.count("<svg") == 2
    assert "<b>Removed step: the supplier reports a return problem" in html.stdout
    assert (
        "transition <code>report_return_problem: return_in_transit -&gt; under_review</code> (removed)" in html.stdout
    )
    assert "Touches" not in html.stdout and "Open claims decided" not in html.stdout
    assert "Not checked here" in html.stdout and "Migration plan: none given." in html.stdout


def test_db_counts_the_open_claims_each_change_touches_in_every_format(
    tmp_path: Path, exports: tuple[Path, Path]
) -> None:
    """With --db every format says how many open claims decided under OLD each change touches: the filed claim
    sits in the state whose meaning changed; the removed transition leaves from a state no claim is in."""
    db = str(tmp_path / "claims.db")
    filed = invoke("--db", db, "--json", "file", *FILE_ARGS, "--now", NOW)
    assert filed.exit_code == 0 and json.loads(filed.stdout)["state"] == FILED, filed.output
    old, new = (str(p) for p in exports)
    text = invoke("--db", db, "diff", old, new)
    assert [line for line in text.stdout.splitlines() if not line.startswith(" ")] == [
        "removed transition report_return_problem: return_in_transit -> under_review  [0 open claim(s)]",
        f"changed state {FILED}  [1 open claim(s)]",
    ]
    md = invoke("diff", old, new, "--format", "md", "--db", db)
    assert md.exit_code == 0, md.output
    assert "In parentheses: the open claims decided under the old definition each change touches." in md.stdout
    assert f"- state `{FILED}` (1 open claim(s))\n" in md.stdout
    assert "- transition `report_return_problem: return_in_transit -> under_review` (0 open claim(s))\n" in md.stdout
    html = invoke("--db", db, "diff", old, new, "--format", "html")
    assert html.exit_code == 0, html.output
    assert (
        f'<p class="claims">Touches 1 open claim, in Awaiting evidence.</p><p class="code">state <code>{FILED}</code>'
        in (html.stdout)
    )
    assert "Touches no open claim." in html.stdout


def test_o_writes_the_review_as_diagram_o_does(tmp_path: Path, exports: tuple[Path, Path]) -> None:
    """-o writes what the format prints (text too) and prints the path, or {"path", "format"} with --json; it
    refuses a folder by name, as `diagram -o` does."""
    old, new = (str(p) for p in exports)
    for fmt in ("text", "md", "html"):
        target = tmp_path / f"review.{fmt}"
        written = invoke("diff", old, new, "--format", fmt, "-o", str(target))
        assert written.exit_code == 0 and written.stdout == f"{target}\n", written.output
        assert target.read_text() == invoke("diff", old, new, "--format", fmt).stdout
        reported = invoke("diff", old, new, "--format", fmt, "-o", str(target), "--json")
        assert json.loads(reported.stdout) == {"path": str(target), "format": fmt}
    folder = invoke("diff", old, new, "--format", "md", "-o", str(tmp_path))
    assert folder.exit_code == 2 and "--output" in folder.stderr


def test_json_after_the_name_with_md_or_html_needs_o(exports: tuple[Path, Path]) -> None:
    """--json after `diff` with --format md or html and no -o is refused by name (it prints the review itself);
    before the name it is the program's, and ignored."""
    old, new = (str(p) for p in exports)
    refused = invoke("diff", old, new, "--format", "md", "--json")
    assert refused.exit_code == 2 and "diff takes --json with --format md only with -o" in refused.stderr
    ignored = invoke("--json", "diff", old, new, "--format", "md")
    assert ignored.exit_code == 0 and ignored.stdout == invoke("diff", old, new, "--format", "md").stdout


def test_an_unknown_format_is_a_usage_error(exports: tuple[Path, Path]) -> None:
    """`diff --format png` is refused (exit 2), naming the formats it takes."""
    result = invoke("diff", *(str(p) for p in exports), "--format", "png")
    assert result.exit_code == 2 and "'text', 'md', 'html'" in result.stderr


def _meaning(path: Path) -> str:
    data = json.loads(path.read_text())
    return str(next(s["meaning"] for s in data["states"] if s["name"] == FILED))


# --- the review page's check and migration dry run ------------------------------------------------------

CHANGED = "changed_lifecycle:INSPECTION"
STEPS: dict[str, list[tuple[str, str, dict[str, Any] | None]]] = {
    "in_mediation": [("submit_evidence", "buyer:alice", {"evidence": EVIDENCE})],
    "cancellation_pending": [("submit_evidence", "buyer:alice", {"evidence": EVIDENCE}),
                             ("make_offer", "supplier:acme", offer("partial_refund")),
                             ("accept_offer", "buyer:alice", None), ("cancel_claim", "buyer:alice", None)],
    "awaiting_return": [("submit_evidence", "buyer:alice", {"evidence": EVIDENCE}),
                        ("decide_full_refund", "agent:kim", {"rationale": "damaged"})],
}  # fmt: skip


@pytest.fixture
def changed(tmp_path: Path) -> tuple[str, str, str]:
    """A database with one open claim in each of three states the changed lifecycle touches (filed under the
    built-in one), and the exports of the built-in lifecycle and the changed one: their paths."""
    db, old, new = str(tmp_path / "claims.db"), tmp_path / "old.json", tmp_path / "new.json"
    with ClaimService(db) as service:
        for n, (state, steps) in enumerate(STEPS.items()):
            claim = service.file_claim(filing(order_id=f"o-{n}"), now=T0).claim
            for trigger, actor, data in steps:
                claim = service.fire(claim.id, trigger, actor, data, now=T0).claim
            assert claim.state == state
    old.write_text(json.dumps(CLAIM_LIFECYCLE.to_dict()))
    new.write_text(json.dumps(INSPECTION.to_dict()))
    return db, str(old), str(new)


def test_the_page_shows_check_and_a_plans_dry_run(tmp_path: Path, changed: tuple[str, str, str]) -> None:
    """With --new-definition (the definition NEW.json exports) the page shows what check finds in it; with
    --plan and --db, what the plan's dry run would move, or what stops it. The dry run writes nothing."""
    db, old, new = changed
    plan, stuck, page = tmp_path / "plan.json", tmp_path / "stuck.json", tmp_path / "review.html"
    plan.write_text(json.dumps({"states": {"cancellation_pending": "in_mediation"}, "deadlines": "recompute"}))
    stuck.write_text(json.dumps({"deadlines": "recompute"}))
    with ClaimService(db, read_only=True) as service:
        before = service.open_claims(json.loads(Path(old).read_text())["fingerprint"])
    written = invoke("--db", db, "diff", old, new, "--format", "html", "--new-definition", CHANGED, "--plan",
                     str(plan), "-o", str(page))  # fmt: skip
    assert written.exit_code == 0 and written.stdout == f"{page}\n", written.output
    review = page.read_text()
    assert "Check: every rule holds in the new lifecycle (" in review
    assert "Migration plan (dry run): would move 3 open claims, and leave none behind." in review
    assert "<li>1 claim in Cancellation being checked moves to In mediation; no deadline runs there.</li>" in review
    assert "Open claims decided under the old lifecycle: 3; the changes touch 3 of them." in review
    refused = invoke("--db", db, "diff", old, new, "--format", "html", "--new-definition", CHANGED, "--plan",
                     str(stuck))  # fmt: skip
    assert refused.exit_code == 0, refused.output
    assert "Migration plan: it cannot be applied as written (1 problem; see below)." in refused.stdout
    assert "1 open claim(s) in Cancellation being checked (definition" in refused.stdout
    with ClaimService(db, read_only=True) as service:
        assert service.open_claims(json.loads(Path(old).read_text())["fingerprint"]) == before == {
            "in_mediation": 1, "cancellation_pending": 1, "awaiting_return": 1}  # fmt: skip
    checked = invoke("diff", old, new, "--format", "html", "--new-definition", CHANGED)
    assert checked.exit_code == 0 and "Check: every rule holds" in checked.stdout
    assert "Migration plan: none given." in checked.stdout


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--format", "md", "--new-definition", CHANGED], "error: --new-definition and --plan go with --format html"),
        (["--plan", "{plan}"], "error: --new-definition and --plan go with --format html"),
        (["--format", "html", "--plan", "{plan}"], "error: --plan needs --new-definition"),
        (["--format", "html", "--new-definition", "claimstate:CLAIM_LIFECYCLE"],
         "error: --new-definition: claimstate:CLAIM_LIFECYCLE is not the definition NEW.json exports: its fingerprint"
         " is 1c3d3b8a9f70, and NEW.json holds fingerprint 871106216cd0"),
        (["--format", "html", "--new-definition", "no_such_module:X"], "error: --new-definition: cannot import"),
        (["--format", "html", "--new-definition", CHANGED, "--plan", "{list}", "--db", "{db}"],
         "error: --plan: expected a JSON object, not list"),
        (["--format", "html", "--new-definition", CHANGED, "--plan", "{none}", "--db", "{db}"],
         "error: --plan: cannot read"),
    ],
)  # fmt: skip
def test_the_new_options_are_refused_where_they_do_not_fit(
    tmp_path: Path, changed: tuple[str, str, str], args: list[str], said: str
) -> None:
    """--new-definition and --plan go with --format html only; --plan needs --new-definition and a database;
    --new-definition must be NEW.json's definition; a plan must be a readable JSON object. Each refusal is one
    line on stderr, exit 2, and nothing is written."""
    db, old, new = changed
    (tmp_path / "plan.json").write_text("{}")
    (tmp_path / "list.json").write_text("[1]")
    names = {"plan": str(tmp_path / "plan.json"), "list": str(tmp_path / "list.json"), "db": db,
             "none": str(tmp_path / "none.json")}  # fmt: skip
    target = tmp_path / "review.out"
    result = invoke("diff", old, new, *(a.format(**names) for a in args), "-o", str(target))
    assert result.exit_code == 2 and result.stderr.startswith(said), result.output
    assert result.stderr.count("\n") == 1 and result.stdout == "" and not target.exists()


def test_the_plan_needs_a_database(changed: tuple[str, str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """--plan without --db (or $CLAIMSTATE_DB) is refused by name: its dry run reads the open claims."""
    monkeypatch.delenv("CLAIMSTATE_DB", raising=False)
    _, old, new = changed
    result = invoke("diff", old, new, "--format", "html", "--new-definition", CHANGED, "--plan", old)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --plan needs a database (--db or $CLAIMSTATE_DB)")


def test_every_new_option_has_help() -> None:
    """`diff --help` says what --new-definition and --plan do."""
    shown = " ".join(invoke("diff", "--help").stdout.split())
    assert (
        "--new-definition MODULE:NAME With --format html: the lifecycle Definition NEW.json was exported from" in shown
    )
    assert "--plan PLAN.json With --format html, --new-definition and a database (--db): a migration plan" in shown
