"""Issue 22, items 1 and 2 as behaviour: the commands follow the chosen definition (its views, its filing
fields, the examples `check` fires with, shared with the library), and the global options are global
(before the command's name every command accepts them, ignoring what it has no use for; after the name a
command still refuses by name what it would ignore)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import own_lifecycle
import pytest
from changed_lifecycle import INSPECTION
from click.testing import CliRunner, Result
from helpers import EVIDENCE

from claimstate import CLAIM_LIFECYCLE, InvalidInput, check
from claimstate._check.examples import default_examples
from claimstate.cli import cli

OWN = f"{own_lifecycle.__name__}:OWN"
NOW = "2026-03-02T09:00:00+00:00"
LATER = (datetime.now(UTC) + timedelta(days=1)).isoformat()  # after any claim filed now, before its deadline
PARTIES = ["--buyer", "alice", "--supplier", "acme", "--amount", "25.00", "--currency", "USD", "--reason", "broken"]
FILE_ARGS = [*PARTIES, "--resolution", "full_refund"]


def invoke(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin, prog_name="claimstate")


def one_line(text: str) -> str:
    return " ".join(text.split())


# --- diagram --view: the chosen definition's views -----------------------------------------------------


def test_diagram_view_takes_the_chosen_definitions_views() -> None:
    """--view accepts a view of the definition named (before or after the command, even after --view itself)
    and draws it; a view of another definition is a usage error (exit 2) listing this definition's views."""
    for args in (
        ["--definition", OWN, "diagram", "--view", "intake"],
        ["diagram", "--view", "closing", "--definition", OWN, "--format", "dot"],
    ):
        drawn = invoke(*args)
        assert drawn.exit_code == 0, drawn.output
        assert drawn.stdout.strip()
    built_in_view = invoke("--definition", OWN, "diagram", "--view", "offers")
    assert built_in_view.exit_code == 2
    assert one_line(built_in_view.stderr) == (
        "error: Invalid value for '--view': 'offers' is not a view of the own claim definition; its views are"
        " intake, closing (see claimstate diagram --help)"
    )
    own_view = invoke("diagram", "--view", "intake")
    assert own_view.exit_code == 2
    assert "is not a view of the buyer claim definition; its views are offers, return, deadlines, mediation" in (
        one_line(own_view.stderr)
    )
    assert invoke("diagram", "--view", "offers").exit_code == 0


def test_diagram_view_comes_from_claimstate_definition_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """$CLAIMSTATE_DEFINITION chooses the views as --definition does."""
    monkeypatch.setenv("CLAIMSTATE_DEFINITION", OWN)
    assert invoke("diagram", "--view", "intake").exit_code == 0
    assert invoke("diagram", "--view", "offers").exit_code == 2


def test_diagram_help_names_the_chosen_definitions_views() -> None:
    """`diagram --help` ends with the views of the definition named before it (the built-in lifecycle's by
    default, and when the one named does not load), each with its title."""
    own = invoke("--definition", OWN, "diagram", "--help")
    assert own.exit_code == 0, own.output
    assert "Views of the own claim definition (for --view):" in own.stdout
    assert "intake" in own.stdout and "How the team and the clock close it" in own.stdout
    assert "mediation" not in own.stdout
    for args in (["diagram", "--help"], ["--definition", "no_such_module:X", "diagram", "--help"]):
        built_in = invoke(*args)
        assert built_in.exit_code == 0, built_in.output
        assert "Views of the buyer claim definition (for --view):" in built_in.stdout
        assert all(view.name in built_in.stdout for view in CLAIM_LIFECYCLE.views)


# --- file: the chosen definition's filing fields -------------------------------------------------------


def test_file_takes_the_chosen_definitions_filing_fields(tmp_path: Path) -> None:
    """Under a definition whose filing takes no resolution but a channel of its own, `file` files with the
    options it shares and --data for the rest; the record keeps the channel, and the claim asks a full refund."""
    db = str(tmp_path / "own.db")
    filed = invoke("--db", db, "--json", "--definition", OWN, "file", "--order", "o-1", *PARTIES,
                   "--data", '{"channel": "app"}', "--now", NOW)  # fmt: skip
    assert filed.exit_code == 0, filed.output
    claim = json.loads(filed.stdout)
    assert (claim["state"], claim["resolution"]) == ("open", "full_refund")
    history = invoke("--db", db, "--json", "--definition", OWN, "history", claim["id"])
    assert json.loads(history.stdout)[0]["data"]["channel"] == "app"
    without_channel = invoke("--db", db, "--json", "--definition", OWN, "file", "--order", "o-2", *PARTIES)
    assert without_channel.exit_code == 0, without_channel.output  # channel is optional


def test_file_refuses_what_the_chosen_definitions_filing_does_not_take(tmp_path: Path) -> None:
    """A built-in filing option the definition's filing has no field for is refused by name, saying what the
    filing takes, and a missing required field is click's missing option, both before any database is made;
    an unknown --data field is refused by the definition, naming it."""
    db = str(tmp_path / "own.db")
    resolution = invoke("--db", db, "--definition", OWN, "file", "--order", "o-1", *FILE_ARGS)
    assert resolution.exit_code == 2
    assert one_line(resolution.stderr).startswith(
        "error: Invalid value for '--resolution': the own claim definition files claims with no resolution (its"
        " filing takes order_id, buyer_id, supplier_id, currency, amount, reason, channel)"
    )
    missing = invoke("--db", db, "--definition", OWN, "file", "--order", "o-1", *PARTIES[:-2])
    assert missing.exit_code == 2
    assert one_line(missing.stderr) == "error: Missing option '--reason' (see claimstate file --help)"
    assert not Path(db).exists()
    unknown = invoke("--db", db, "--definition", OWN, "file", "--order", "o-1", *PARTIES, "--data", '{"colour": 1}')
    assert unknown.exit_code == 2
    assert "file_claim takes no colour" in unknown.stderr


def test_file_help_lists_the_chosen_definitions_filing_fields() -> None:
    """`file --help` ends with the filing fields of the definition named before it, each required or optional
    and with the option that gives it, if any, as `fire --help` lists the triggers' data."""
    own = invoke("--definition", OWN, "file", "--help")
    assert own.exit_code == 0, own.output
    assert "Filing fields of the own claim definition (file_claim), in --data or by option:" in own.stdout
    assert "channel (optional)" in own.stdout and "where the buyer filed" in own.stdout
    assert "order_id (required, or --order)" in own.stdout
    assert "resolution (" not in own.stdout
    built_in = invoke("file", "--help")
    assert "resolution (required, or --resolution)" in built_in.stdout
    assert "refund_amount (optional, or --refund-amount)" in built_in.stdout


def test_the_built_in_filing_takes_its_options_data_or_both_each_field_once(tmp_path: Path) -> None:
    """Under the built-in lifecycle the options file as before, --data (or --data-file) files the same claim
    from JSON, the two mix, and a field given both ways is a usage error naming it; a missing option is still
    click's `Missing option`."""
    db = str(tmp_path / "claims.db")
    data = {"order_id": "o-2", "buyer_id": "alice", "supplier_id": "acme", "amount": "25.00", "currency": "USD",
            "reason": "broken", "resolution": "partial_refund", "refund_amount": "10.00"}  # fmt: skip
    (tmp_path / "filing.json").write_text(json.dumps(data))
    by_options = invoke("--db", db, "--json", "file", "--order", "o-1", *FILE_ARGS)
    by_data = invoke("--db", db, "--json", "file", "--data", json.dumps(data))
    by_file = invoke("--db", db, "--json", "file", "--data-file", "-", "--order", "o-3", stdin=json.dumps(
        {k: v for k, v in data.items() if k != "order_id"}))  # fmt: skip
    for result in (by_options, by_data, by_file):
        assert result.exit_code == 0, result.output
    assert json.loads(by_data.stdout)["refund_amount"] == "10.00"
    assert json.loads(by_file.stdout)["order_id"] == "o-3"
    twice = invoke("--db", db, "file", "--order", "o-4", "--data", json.dumps(data))
    assert twice.exit_code == 2
    assert one_line(twice.stderr) == (
        "error: order_id is given twice: by --order and in the data (see claimstate file --help)"
    )
    missing = invoke("--db", db, "file", *FILE_ARGS)
    assert one_line(missing.stderr) == "error: Missing option '--order' (see claimstate file --help)"


# --- check: one default for the library and the command line -------------------------------------------


def test_the_default_examples_of_the_built_in_lifecycle_are_its_examples() -> None:
    """The default the library and the command line share is the examples a definition carries: for the
    built-in lifecycle, they are as they are; a definition borrowing them, whose filing takes no resolution,
    gets them without it."""
    assert default_examples(CLAIM_LIFECYCLE) == CLAIM_LIFECYCLE.check_settings.examples
    own = default_examples(own_lifecycle.OWN)
    assert all("resolution" not in sample and "refund_amount" not in sample for sample in own["file_claim"])
    assert own["decide_refund"] == ({"rationale": "damaged in transit"},)  # by the field's name


@pytest.mark.parametrize(
    ("name", "definition"),
    [(OWN, own_lifecycle.OWN), ("changed_lifecycle:INSPECTION", INSPECTION)],
    ids=["own", "inspection"],
)
def test_check_explores_as_many_situations_through_the_command_as_the_library(name: str, definition: Any) -> None:
    """`claimstate --definition X check` and `claimstate.check(X)` explore the same situations and
    transitions and reach the same verdicts: more than the filing alone, never 0."""
    library = check(definition)
    result = invoke("--json", "--definition", name, "check")
    assert result.exit_code == 0, result.output
    command = json.loads(result.stdout)
    assert (command["situations"], command["transitions"]) == (library.situations, library.transitions)
    assert library.situations > 1 and library.held and command["held"]
    assert command["untried"] == {}
    assert [p["held"] for p in command["properties"]] == [r.held for r in library.results]


def test_check_names_each_trigger_no_example_can_fire() -> None:
    """A trigger whose required data no default example gives is named with the fields it lacks: in the
    library's report (which then does not hold), and by the command (exit 1, NOT TRIED, `untried` in JSON)."""
    report = check(own_lifecycle.NEEDY_INSPECTION)
    assert report.untried == {"inspect": ("grade",)}
    assert report.situations > 1 and not report.held
    assert report.to_dict()["untried"] == {"inspect": ["grade"]}
    name = f"{own_lifecycle.__name__}:NEEDY_INSPECTION"
    human = invoke("--definition", name, "check")
    assert human.exit_code == 1, human.output
    assert "NOT TRIED  inspect: no example gives its grade" in human.stdout
    as_json = invoke("--json", "--definition", name, "check")
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["untried"] == {"inspect": ["grade"]}


def test_check_refuses_a_definition_no_example_can_file() -> None:
    """A filing whose required data no example gives is InvalidInput naming the trigger and the fields, in
    the library and as exit 2 on the command line, rather than an exploration of nothing."""
    with pytest.raises(InvalidInput, match="its filing trigger file_claim needs channel, which no example gives"):
        check(own_lifecycle.NEEDY)
    result = invoke("--definition", f"{own_lifecycle.__name__}:NEEDY", "check")
    assert result.exit_code == 2
    assert "its filing trigger file_claim needs channel" in result.stderr


def test_check_with_examples_given_fires_with_those() -> None:
    """Examples passed to check() replace the default: given a grade, the inspection is tried and held."""
    examples = {**default_examples(own_lifecycle.NEEDY_INSPECTION), "inspect": ({"grade": "B"},)}
    report = check(own_lifecycle.NEEDY_INSPECTION, examples)
    assert report.untried == {} and report.held
    assert any(step.trigger == "inspect" for step in report.exploration.steps)


# --- global options: before the name, every command's; after it, the command's own --------------------


@pytest.fixture
def walk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """A database with one claim (filed now) in the current folder, and a minimal valid invocation of every
    command on it (`{n}` and `{claim}` to be replaced, for the commands that make something new each run)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CLAIMSTATE_DB", "walk.db")  # the database of a command given no --db
    monkeypatch.delenv("CLAIMSTATE_DEFINITION", raising=False)
    (tmp_path / "samelife.py").write_text("from claimstate import CLAIM_LIFECYCLE as LIFE\n")
    (tmp_path / "plan.json").write_text("{}")
    (tmp_path / "old.json").write_text(json.dumps(CLAIM_LIFECYCLE.to_dict()))
    claim_id = _new_claim("o-1")
    return {
        "init": [],
        "file": ["--order", "o-new-{n}", *FILE_ARGS],
        "fire": ["{claim}", "submit_evidence", "--actor", "buyer:alice", "--data", json.dumps({"evidence": EVIDENCE})],
        "show": [claim_id],
        "history": [claim_id],
        "list": [],
        "can": [claim_id, "--actor", "supplier:acme"],
        "tick": [],
        "stats": [],
        "verify": [],
        "diagram": [],
        "model": [],
        "script": ["-"],
        "demo": ["--dir", "demo", "--reuse"],
        "migrate": ["--plan", "plan.json", "--dry-run"],
        "diff": ["old.json", "old.json"],
        "migrate-store": ["walk.db", "moved-{n}.db"],
        "backup": ["backup-{n}.db"],
        "events": [],
        "check": ["--definition", OWN],  # after the name, so the quick lifecycle is the one explored
    }


# What each command refuses after its name (the global options it has no use for there).
REFUSED_AFTER = {
    "init": {"--now"}, "show": {"--now"}, "history": {"--now"}, "list": {"--now"}, "verify": {"--now"},
    "diagram": {"--now", "--db", "--json"}, "model": {"--now", "--db"}, "demo": {"--definition"},
    "diff": {"--now", "--definition"}, "migrate-store": {"--now", "--db"}, "events": {"--now"},
    "check": {"--now", "--db"}, "backup": {"--now"},
}  # fmt: skip
GLOBAL = {"--db": ["--db", "walk.db"], "--json": ["--json"], "--now": ["--now", LATER],
          "--definition": ["--definition", "samelife:LIFE"]}  # fmt: skip


def _script() -> str:
    return json.dumps({"cmd": "tick"}) + "\n"


def _new_claim(order: str) -> str:
    """A claim filed now in walk.db (each fire gets its own, so no run comes before another's change)."""
    filed = invoke("--db", "walk.db", "--json", "file", "--order", order, *FILE_ARGS)
    assert filed.exit_code == 0, filed.output
    return str(json.loads(filed.stdout)["id"])


def _filled(args: list[str], run: str) -> list[str]:
    """`args` with `{n}` as this run's name and `{claim}` as a claim filed for it."""
    claim = _new_claim(f"o-fire-{run}") if "{claim}" in args else ""
    return [a.replace("{n}", run).replace("{claim}", claim) for a in args]


def test_every_command_accepts_each_global_option_before_its_name(walk: dict[str, list[str]]) -> None:
    """`claimstate --db X <command>` (and --json, --now, --definition, and all four at once) works for every
    command of the group, those with no use for one ignoring it: exit 0, never a refusal."""
    assert set(walk) == set(cli.commands) - {"serve"}  # it runs until stopped: tests/http/test_serve.py
    runs = 0
    for name, args in walk.items():
        for option, words in [*GLOBAL.items(), ("all", [w for ws in GLOBAL.values() for w in ws])]:
            argv = [*words, name, *_filled(args, str(runs))]
            result = invoke(*argv, stdin=_script())
            runs += 1
            assert "takes no" not in result.stderr and "takes --json only" not in result.stderr, argv
            assert result.exit_code == 0, (option, argv, result.output)


def test_a_global_option_before_the_name_is_ignored_by_a_command_with_no_use_for_it(
    walk: dict[str, list[str]],
) -> None:
    """Ignored means as if not given: diagram draws the lifecycle (not JSON, no database opened), model
    prints the definition, demo walks the built-in lifecycle and check explores the definition after its name."""
    drawn = invoke("--db", "no-such.db", "--json", "--now", LATER, "diagram")
    assert drawn.exit_code == 0 and drawn.stdout == invoke("diagram").stdout
    assert not Path("no-such.db").exists()
    model = invoke("--db", "no-such.db", "--now", LATER, "model")
    assert model.stdout == invoke("model").stdout
    checked = invoke("--json", "--db", "no-such.db", "--now", LATER, "check", *walk["check"])
    assert json.loads(checked.stdout)["situations"] == check(own_lifecycle.OWN).situations
    assert not Path("no-such.db").exists()


def test_after_its_name_a_command_refuses_only_the_global_options_it_would_ignore(
    walk: dict[str, list[str]],
) -> None:
    """`claimstate <command> --db X` is refused (exit 2, `<command> takes no --db: why`) exactly by the
    commands with no use for --db, and likewise each other global option; the others take it (exit 0)."""
    runs = 0
    for name, args in walk.items():
        for option, words in GLOBAL.items():
            argv = [name, *_filled(args, f"after-{runs}"), *words]
            result = invoke(*argv, stdin=_script())
            runs += 1
            if option in REFUSED_AFTER.get(name, set()):
                assert result.exit_code == 2, (argv, result.output)
                refusal = "takes --json only with -o or --all" if option == "--json" else f"takes no {option}"
                assert one_line(result.stderr).startswith(f"error: {name} {refusal}"), argv
            else:
                assert result.exit_code == 0, (argv, result.output)


def test_diagram_uses_db_after_its_name_with_claim(walk: dict[str, list[str]]) -> None:
    """diagram --claim takes --db after its name (it reads the claim there), and before it too."""
    claim_id = walk["show"][0]
    for argv in (
        ["diagram", "--claim", claim_id, "--db", "walk.db"],
        ["--db", "walk.db", "diagram", "--claim", claim_id],
    ):
        result = invoke(*argv)
        assert result.exit_code == 0, (argv, result.output)
