"""`claimstate diff OLD.json NEW.json`: one command for reviewing a definition change, in three formats
(text, md, html), written with -o like `diagram -o`, counting with --db the open claims each change touches."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from claimstate import CLAIM_LIFECYCLE
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


def test_text_is_the_default_and_unchanged(exports: tuple[Path, Path]) -> None:
    """`diff` and `diff --format text` print the same lines (and --json the same list) as before the formats."""
    old, new = (str(p) for p in exports)
    plain, text = invoke("diff", old, new), invoke("diff", old, new, "--format", "text")
    assert plain.exit_code == 0 and plain.stdout == text.stdout
    assert plain.stdout == (
        "removed transition report_return_problem: return_in_transit -> under_review\n"
        f"changed state {FILED}\n"
        f'    meaning: {_meaning(exports[0])!r} -> "waiting for the buyer\'s evidence"\n'
    )
    listed = json.loads(invoke("diff", old, new, "--json").stdout)
    assert [(c["kind"], c["what"]) for c in listed] == [("removed", "transition"), ("changed", "state")]
    assert "open_claims" not in listed[0]


def test_md_and_html_are_the_review_and_the_picture(exports: tuple[Path, Path]) -> None:
    """--format md is the Markdown review, --format html the page with the change drawn; no count without --db."""
    old, new = (str(p) for p in exports)
    md = invoke("diff", old, new, "--format", "md")
    assert md.exit_code == 0 and md.stderr == ""
    assert md.stdout.startswith("# Lifecycle changes: buyer claim -> buyer claim\n\n## Removed\n\n")
    assert "- transition `report_return_problem: return_in_transit -> under_review`\n" in md.stdout
    assert "open claim" not in md.stdout
    html = invoke("diff", old, new, "--format", "html")
    assert html.exit_code == 0 and html.stdout.startswith("<!DOCTYPE html>") and "<svg" in html.stdout
    assert "(removed)" in html.stdout and "open claim" not in html.stdout


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
    assert text.stdout.splitlines()[:2] == [
        "removed transition report_return_problem: return_in_transit -> under_review  [0 open claim(s)]",
        f"changed state {FILED}  [1 open claim(s)]",
    ]
    md = invoke("diff", old, new, "--format", "md", "--db", db)
    assert md.exit_code == 0, md.output
    assert "In parentheses: the open claims decided under the old definition each change touches." in md.stdout
    assert f"- state `{FILED}` (1 open claim(s))\n" in md.stdout
    assert "- transition `report_return_problem: return_in_transit -> under_review` (0 open claim(s))\n" in md.stdout
    html = invoke("--db", db, "diff", old, new, "--format", "html")
    assert html.exit_code == 0 and f"<code>{FILED}</code> (1 open claim(s))" in html.stdout


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
