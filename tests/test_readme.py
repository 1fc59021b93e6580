"""The README's promises: its two commands are the real ones, the demo they run works, and the docs pages it
links to exist (what the README said before it became a landing page is checked on those pages now)."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from claimstate import CLAIM_LIFECYCLE, ClaimService
from claimstate.cli import cli

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def readme_commands() -> list[str]:
    """The commands of the README's first code block, without their comments."""
    block = re.search(r"```sh\n(.*?)```", README, re.S)
    assert block is not None
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_the_readme_opens_with_the_demo_and_the_test_commands() -> None:
    """The first code block holds exactly two commands: the main job (the demo), then the tests."""
    demo, tests = readme_commands()
    assert demo.endswith("claimstate demo")
    assert tests.endswith("pytest")
    assert README.index("```sh") < 40


def test_ci_runs_the_readme_test_command_word_for_word() -> None:
    """.ci/run runs the README's test command, so the README cannot drift from what CI proves."""
    _, tests = readme_commands()
    assert tests in (ROOT / ".ci" / "run").read_text().splitlines()


def test_the_demo_walks_claims_to_their_final_states(tmp_path: Path) -> None:
    """The main job ends five claims in the final states its scenarios promise, on SQLite, twice over."""
    result = CliRunner().invoke(cli, ["demo", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert f"database: {tmp_path / 'claims.db'} (verify: clean)" in result.output
    again = CliRunner().invoke(cli, ["demo", "--dir", str(tmp_path)])
    assert again.exit_code == 0, again.output
    with ClaimService(tmp_path / "claims.db") as service:
        assert len(service.list_claims()) == 10
        assert service.verify() == []
    finals = re.findall(r"final state (\w+), refund ([\w. ]+), version (\d+)", result.output)
    assert [f[0] for f in finals] == [
        "payment_released",
        "refunded_partial",
        "refunded_full",
        "refunded_full",
        "payment_released",
    ]
    assert finals[2][1] == finals[3][1] == "49.90 USD"
    assert all(s.final for s in CLAIM_LIFECYCLE.states if s.name in {f[0] for f in finals})
    assert "ship_return" in result.output
    assert "confirm_return_received" in result.output
    assert "receipt_deadline" in result.output


def test_the_readme_links_to_every_docs_page_and_each_exists() -> None:
    """The landing page links only to docs pages that exist, and to every page of the site."""
    linked = set(re.findall(r"\]\((docs/[\w/.-]+\.md)\)", README))
    assert linked, "the README links to no docs page"
    assert all((ROOT / link).is_file() for link in linked), sorted(linked)
    pages = {str(page.relative_to(ROOT)) for page in (ROOT / "docs").rglob("*.md")}
    assert pages == linked
