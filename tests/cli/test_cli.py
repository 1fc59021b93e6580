"""The command line: every command, its JSON keys and exit codes, and nothing changed by a failure.

The promises about how the program behaves as a program (global options, usage errors, which commands
may create a database, what people read) are checked through real `python -m claimstate` processes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result
from helpers import EVIDENCE, T0, filing, query

from claimstate import CLAIM_LIFECYCLE, ClaimService, Difference, StorageError
from claimstate.cli import EXIT_CODES, cli

ROOT = Path(__file__).parents[2]
NOW = "2026-03-02T09:00:00+00:00"
LATER = "2026-03-02T10:00:00+00:00"
FILE_ARGS = ["--order", "o-1", "--buyer", "alice", "--supplier", "acme", "--amount", "25.00", "--currency", "USD",
             "--reason", "broken", "--resolution", "full_refund"]  # fmt: skip
CLAIM_KEYS = {"id", "state", "version", "order_id", "buyer_id", "supplier_id", "amount", "currency",
              "deadline_at", "deadline_trigger"}  # fmt: skip
RECORD_KEYS = {"seq", "trigger", "from_state", "to_state", "actor", "at", "data"}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "claims.db"


def run(db: Path, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["--db", str(db), *args], input=stdin)


def ok(db: Path, *args: str) -> Any:
    """Run with --json, expect exit 0, return the parsed output."""
    result = run(db, "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def filed(db: Path) -> str:
    return str(ok(db, "file", *FILE_ARGS, "--now", NOW)["id"])


def fingerprint(db: Path) -> str:
    """The database's content, whatever is still in the WAL: a checkpoint, then the file's hash."""
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return hashlib.sha256(db.read_bytes()).hexdigest()


def claimstate(cwd: Path, *calls: Sequence[str]) -> list[subprocess.CompletedProcess[str]]:
    """Each call as a real `python -m claimstate` process in `cwd` without $CLAIMSTATE_DB, all started at once
    (a process costs about 0.3 s of start-up)."""
    env = {k: v for k, v in os.environ.items() if k != "CLAIMSTATE_DB"}
    started = [
        subprocess.Popen(
            [sys.executable, "-m", "claimstate", *args], cwd=cwd, env=env, text=True,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        for args in calls
    ]  # fmt: skip
    done = []
    for process in started:
        out, err = process.communicate(timeout=60)
        done.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return done


def agreed_claim(db: Path) -> str:
    """A claim in mediation whose buyer accepted the supplier's offer of 14.00 USD, kept in `db`."""
    with ClaimService(db) as service:
        claim_id = service.file_claim(filing(resolution="partial_refund", refund_amount="10.00"), now=T0).claim.id
        service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0)
        service.fire(claim_id, "make_offer", "supplier:acme", {"kind": "partial_refund", "amount": "14.00"}, now=T0)
        service.fire(claim_id, "accept_offer", "buyer:alice", now=T0)
    return claim_id


def one_line(text: str) -> str:
    """The single line of `text` (asserting that it is one), without its newline."""
    assert len(text.splitlines()) == 1, text
    return text.rstrip("\n")


def test_file_fire_show_history_list_and_can(db: Path) -> None:
    """The everyday commands print JSON with the stable keys of a claim and of a history entry."""
    assert ok(db, "init") == {"db": str(db), "schema_version": 7}
    claim_id = filed(db)
    fired = ok(db, "fire", claim_id, "submit_evidence", "--actor", "buyer:alice", "--data",
               json.dumps({"evidence": EVIDENCE}), "--now", LATER)  # fmt: skip
    assert set(fired) >= CLAIM_KEYS
    assert (fired["state"], fired["version"]) == ("in_mediation", 2)
    assert ok(db, "show", claim_id) == fired
    entries = ok(db, "history", claim_id)
    assert [set(e) >= RECORD_KEYS for e in entries] == [True, True]
    assert entries[1]["at"] == "2026-03-02T10:00:00.000000+00:00"
    assert [c["id"] for c in ok(db, "list", "--state", "in_mediation")] == [claim_id]
    assert ok(db, "list", "--buyer", "bob") == []
    answers = {a["trigger"]: a for a in ok(db, "can", claim_id, "--actor", "supplier:acme", "--now", LATER)}
    assert answers["appeal"]["allowed"] is True
    assert answers["withdraw"]["reasons"][0]["kind"] == "permission"


def test_global_options_work_before_or_after_the_command(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--json and --db are accepted on either side of the command name; $CLAIMSTATE_DB is the default."""
    claim_id = filed(db)
    after = CliRunner().invoke(cli, ["show", claim_id, "--db", str(db), "--json"])
    assert json.loads(after.stdout)["id"] == claim_id
    monkeypatch.setenv("CLAIMSTATE_DB", str(db))
    assert json.loads(CliRunner().invoke(cli, ["--json", "show", claim_id]).stdout)["id"] == claim_id


@pytest.mark.parametrize(
    ("args", "code", "error"),
    [
        (["fire", "{id}", "accept_offer", "--actor", "buyer:alice"], 1, "TransitionRefused"),
        (["fire", "{id}", "decide_for_supplier", "--actor", "buyer:alice"], 1, "TransitionRefused"),
        (["fire", "{id}", "withdraw", "--actor", "buyer:alice", "--data", "{x"], 2, "InvalidInput"),
        (["fire", "{id}", "withdraw", "--actor", "king:arthur"], 2, "InvalidInput"),
        (["fire", "{id}", "fly", "--actor", "buyer:alice"], 2, "InvalidInput"),
        (["fire", "{id}", "withdraw", "--actor", "buyer:alice", "--now", "2026-03-02T09:00:00"], 2, "UsageError"),
        (["fire", "nope", "withdraw", "--actor", "buyer:alice"], 3, "ClaimNotFound"),
        (["fire", "{id}", "withdraw", "--actor", "buyer:alice", "--expect-version", "7"], 4, "ConcurrentModification"),
        (["file", *FILE_ARGS], 1, "TransitionRefused"),
        (["file", *FILE_ARGS[:-2]], 2, "UsageError"),
        (["list", "--state", "lost"], 2, "InvalidInput"),
        (["show", "nope"], 3, "ClaimNotFound"),
    ],
)
def test_failures_exit_with_their_code_and_change_nothing(db: Path, args: list[str], code: int, error: str) -> None:
    """Each failure: its documented exit code, one line on stderr, a JSON error on stdout, nothing written."""
    claim_id = ok(db, "file", *FILE_ARGS, "--now", NOW)["id"]
    ok(db, "fire", claim_id, "submit_evidence", "--actor", "buyer:alice", "--data", json.dumps({"evidence": EVIDENCE}),
       "--now", NOW)  # fmt: skip
    before = fingerprint(db)
    result = run(db, "--json", *[a.replace("{id}", claim_id) for a in args])
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert one_line(result.stderr).startswith("error: ")
    body = json.loads(result.stdout)
    assert (body["error"], body["exit_code"]) == (error, code)
    if error == "TransitionRefused":
        assert body["reasons"]
        assert all(r["message"] in result.stderr for r in body["reasons"])
    assert fingerprint(db) == before


def test_tick_and_verify(db: Path) -> None:
    """tick fires the due deadline at --now, once; verify is clean, then finds a hand edit and exits 5."""
    claim_id = filed(db)
    assert ok(db, "tick", "--now", "2026-03-05T00:00:00+00:00") == []
    fired = ok(db, "tick", "--now", "2026-03-10T00:00:00+00:00")
    assert [(r["claim_id"], r["trigger"], r["actor"]) for r in fired] == [(claim_id, "evidence_deadline", "system")]
    assert ok(db, "verify") == []
    assert run(db, "verify").stdout.strip() == "verify: clean"
    conn = sqlite3.connect(db)
    conn.execute("UPDATE claims SET version = 9")
    conn.commit()
    conn.close()
    result = run(db, "--json", "verify")
    assert result.exit_code == 5
    assert json.loads(result.stdout)[0]["differences"] == [{"field": "version", "stored": 9, "expected": 2}]


def test_model_and_diagram(db: Path, tmp_path: Path) -> None:
    """model prints the definition; diagram draws the lifecycle, a claim's path, or every format."""
    model = json.loads(CliRunner().invoke(cli, ["--json", "model"]).stdout)
    assert len(model["states"]) == 12
    assert "refunded_full" in CliRunner().invoke(cli, ["model"]).stdout
    assert CliRunner().invoke(cli, ["diagram"]).stdout.splitlines()[3] == "stateDiagram-v2"
    claim_id = filed(db)
    out = tmp_path / "claim.dot"
    assert ok(db, "diagram", "--claim", claim_id, "--format", "dot", "-o", str(out)) == {
        "path": str(out),
        "format": "dot",
    }
    assert "1. buyer alice: files a claim" in out.read_text()
    assert run(db, "diagram", "--claim", "nope").exit_code == 3
    assert CliRunner().invoke(cli, ["diagram", "--format", "gif"]).exit_code == 2


def script_lines(*lines: dict[str, Any]) -> str:
    return "\n".join(json.dumps(line) for line in lines) + "\n"


FILING = {
    "cmd": "file",
    "as": "c",
    "data": {"order_id": "o-9", "buyer_id": "alice", "supplier_id": "acme", "currency": "USD", "amount": "25.00",
             "reason": "broken", "resolution": "full_refund"},
    "now": NOW,
}  # fmt: skip


def fire_line(trigger: str, actor: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"cmd": "fire", "claim": "@c", "trigger": trigger, "actor": actor, "data": data or {}, "now": LATER}


MAIN_PATHS = {
    "refunded_full": [
        fire_line("submit_evidence", "buyer:alice", {"evidence": EVIDENCE}),
        fire_line("decide_full_refund", "agent:kim", {"rationale": "broken"}),
        fire_line("confirm_return_address", "supplier:acme", {"address": "1 Dock Rd"}),
        fire_line("ship_return", "buyer:alice", {"carrier": "DHL", "tracking_number": "JD1"}),
        fire_line("confirm_return_received", "supplier:acme"),
    ],
    "refunded_partial": [
        fire_line("submit_evidence", "buyer:alice", {"evidence": EVIDENCE}),
        fire_line("make_offer", "supplier:acme", {"kind": "partial_refund", "amount": "9.00"}),
        fire_line("accept_offer", "buyer:alice"),
        fire_line("cancel_claim", "buyer:alice"),
        fire_line("approve_cancellation", "agent:kim"),
    ],
    "payment_released": [{"cmd": "tick", "now": "2026-03-20T00:00:00+00:00"}],
    "under_review": [
        fire_line("submit_evidence", "buyer:alice", {"evidence": EVIDENCE}),
        fire_line("appeal", "supplier:acme", {"evidence": [{"kind": "delivery", "description": "signed"}]}),
    ],
}


@pytest.mark.parametrize("end", list(MAIN_PATHS))
def test_a_script_takes_a_claim_along_each_main_path(db: Path, end: str) -> None:
    """A JSON Lines script files a claim and walks it to the end of a main path, reporting every line."""
    result = run(
        db, "--json", "script", "-", stdin=script_lines(FILING, *MAIN_PATHS[end], {"cmd": "show", "claim": "@c"})
    )
    assert result.exit_code == 0, result.output
    reports = [json.loads(line) for line in result.stdout.splitlines()]
    assert all(r["ok"] for r in reports)
    assert reports[-1]["result"]["state"] == end
    with ClaimService(db) as service:
        assert service.verify() == []


def test_an_atomic_script_keeps_nothing_when_a_line_fails(db: Path) -> None:
    """--atomic: the refused last line undoes the filing and every fire before it; exit code 1."""
    lines = script_lines(FILING, *MAIN_PATHS["refunded_partial"][:3], fire_line("ship_return", "buyer:alice"))
    result = run(db, "--json", "script", "--atomic", "-", stdin=lines)
    assert result.exit_code == 1
    assert [json.loads(line)["ok"] for line in result.stdout.splitlines()] == [True, True, True, True, False]
    assert "nothing was kept" in result.stderr
    with ClaimService(db) as service:
        assert service.list_claims() == []


def test_a_plain_script_stops_at_the_first_failure_unless_told_to_keep_going(db: Path) -> None:
    """Without --atomic each line stands alone: the run stops at a failure, or goes on with --keep-going."""
    lines = script_lines(FILING, fire_line("ship_return", "buyer:alice"), {"cmd": "show", "claim": "@c"}, {"cmd": "x"})
    stopped = run(db, "--json", "script", "-", stdin=lines)
    assert (stopped.exit_code, len(stopped.stdout.splitlines())) == (1, 2)
    with ClaimService(db) as service:
        assert len(service.list_claims()) == 1
    going = run(db, "--json", "script", "--keep-going", "-", stdin=lines.replace('"o-9"', '"o-10"'))
    assert [json.loads(line)["ok"] for line in going.stdout.splitlines()] == [True, False, True, False]
    assert going.exit_code == 1
    assert run(db, "script", "--atomic", "--keep-going", "-", stdin=lines).exit_code == 2


def test_no_progress_bar_when_stderr_is_not_a_terminal(db: Path) -> None:
    """Scripts and ticks print no progress bar into a pipe."""
    result = run(db, "script", "-", stdin=script_lines(FILING, *MAIN_PATHS["under_review"]))
    assert result.exit_code == 0
    assert result.stderr == ""


def _commands() -> list[tuple[str, click.Command]]:
    return sorted(cli.commands.items())  # type: ignore[attr-defined]


@pytest.mark.parametrize(("name", "command"), _commands())
def test_every_command_has_help_and_is_in_the_readme(name: str, command: click.Command) -> None:
    """Each command explains itself and its options, lists the exit codes, and the docs' CLI guide documents it."""
    assert command.help and len(command.help) > 20, name
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert param.help, f"{name} {param.opts}"
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0
    assert "Exit codes: 0 done" in result.output
    assert re.search(rf"`{re.escape(name)}[` ]", (ROOT / "docs" / "guides" / "cli.md").read_text()), name


def test_the_exit_codes_of_the_help_match_the_code() -> None:
    """The documented codes are the ones the CLI uses."""
    assert sorted(EXIT_CODES.values()) == [1, 2, 3, 4, 5, 6, 7]


def test_the_console_script_in_a_real_process(tmp_path: Path) -> None:
    """Through a real process: the installed entry point, JSON on stdout, exit codes, no traceback."""
    exe = Path(sys.executable).parent / "claimstate"
    env = {**os.environ, "CLAIMSTATE_DB": str(tmp_path / "c.db")}

    def call(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(exe), *args], capture_output=True, text=True, env=env, timeout=60, check=False)

    claim = json.loads(call("--json", "file", *FILE_ARGS).stdout)
    refused = call("fire", claim["id"], "confirm_return_received", "--actor", "supplier:acme")
    assert (refused.returncode, refused.stderr.count("\n")) == (1, 1)
    missing = call("--json", "show", "nope")
    assert missing.returncode == 3
    assert json.loads(missing.stdout)["error"] == "ClaimNotFound"
    module = subprocess.run([sys.executable, "-m", "claimstate", "--help"], capture_output=True, text=True, check=True)
    assert "Exit codes" in module.stdout
    assert "Traceback" not in refused.stderr + missing.stderr


def test_the_demo_says_where_its_database_and_diagrams_are(tmp_path: Path) -> None:
    """demo writes its database and diagrams under --dir and prints both places."""
    result = CliRunner().invoke(cli, ["demo", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert f"database: {tmp_path / 'claims.db'}" in result.output
    assert f"diagrams: {tmp_path / 'diagrams'}/" in result.output
    with ClaimService(tmp_path / "claims.db") as service:
        walked = {c.id for c in service.list_claims()}
    assert {p.stem.removeprefix("claim-") for p in (tmp_path / "diagrams").glob("claim-*.md")} == walked
    assert (tmp_path / "diagrams" / "lifecycle.mmd").exists()


def test_an_explicit_db_beats_the_environment(db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """$CLAIMSTATE_DB is only the default: --db before or after the command wins, and no other file appears."""
    claim_id = filed(db)
    other = tmp_path / "other.db"
    monkeypatch.setenv("CLAIMSTATE_DB", str(other))
    for args in (["--db", str(db), "--json", "show", claim_id], ["--json", "show", claim_id, "--db", str(db)]):
        result = CliRunner().invoke(cli, args)
        assert json.loads(result.stdout)["id"] == claim_id
    assert not other.exists()


def test_files_that_cannot_be_read_or_written_are_plain_errors(db: Path, tmp_path: Path) -> None:
    """Unreadable input is invalid (exit 2); an output folder that does not exist is a storage error (5)."""
    claim_id = filed(db)
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b"\xff\xfe{}")
    for args, code in [
        (["fire", claim_id, "withdraw", "--actor", "buyer:alice", "--data-file", str(tmp_path / "nope.json")], 2),
        (["script", str(tmp_path / "nope.jsonl")], 2),
        (["script", str(latin)], 2),
        (["diagram", "--claim", claim_id, "--format", "dot", "-o", str(tmp_path / "no" / "such" / "x.dot")], 5),
        (["diagram", "--all", str(tmp_path), "--claim", claim_id], 2),
    ]:
        result = run(db, *args)
        assert result.exit_code == code, (args, result.output)
        assert "Traceback" not in result.output


def test_each_command_shows_in_its_help_only_the_global_options_it_uses() -> None:
    """--now only where time matters; model names no --db: the help leaves out what is refused."""

    def shown(name: str) -> set[str]:
        return {o for p in cli.commands[name].params if not getattr(p, "hidden", False) for o in p.opts}  # type: ignore[attr-defined]

    assert {"--now", "--db", "--json"} <= shown("fire") & shown("tick") & shown("can")
    assert "--now" not in shown("show") | shown("verify") | shown("model")
    assert "--db" not in shown("model")
    assert "--db" in shown("demo")


def test_every_command_takes_the_global_options_on_either_side_or_refuses_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--db, --json, --now and --definition before every command's name are accepted (used, or ignored by a
    command with no use for one); after the name they work, or are refused there in one line, never ignored;
    $CLAIMSTATE_DB is only a default, which commands that read no database leave alone."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CLAIMSTATE_DB", str(tmp_path / "env.db"))
    db = tmp_path / "walk.db"
    claim_id = agreed_claim(db)
    (tmp_path / "moved").mkdir()  # migrate-store's targets, apart from the databases counted at the end
    (tmp_path / "samelife.py").write_text("from claimstate import CLAIM_LIFECYCLE as LIFE\n")
    (tmp_path / "plan.json").write_text("{}")
    (tmp_path / "old.json").write_text(json.dumps(CLAIM_LIFECYCLE.to_dict()))
    evidence = json.dumps({"evidence": EVIDENCE})
    commands: dict[str, tuple[list[str], set[str]]] = {  # the command's arguments, the options it refuses
        "init": ([], {"--now"}),
        "file": ([*FILE_ARGS[2:], "--order", "o-new-{n}"], set()),
        "fire": ([claim_id, "submit_evidence", "--actor", "buyer:alice", "--data", evidence], set()),
        "show": ([claim_id], {"--now"}),
        "history": ([claim_id], {"--now"}),
        "list": ([], {"--now"}),
        "can": ([claim_id, "--actor", "supplier:acme"], set()),
        "tick": ([], set()),
        "stats": ([], set()),
        "verify": ([], {"--now"}),
        "diagram": (["--claim", claim_id, "--format", "dot", "-o", "claim.dot"], {"--now"}),
        "model": ([], {"--db", "--now"}),
        "script": (["-"], set()),
        "demo": (["--dir", "demo", "--reuse"], {"--definition"}),  # walk.db holds claims of its own
        "migrate": (["--plan", "plan.json", "--dry-run"], set()),
        "diff": (["old.json", "old.json"], {"--now", "--definition"}),
        "migrate-store": ([str(db), str(tmp_path / "moved" / "moved-{n}.db")], {"--db", "--now"}),
        "backup": ([str(tmp_path / "moved" / "backup-{n}.db")], {"--now"}),
        "events": ([], {"--now"}),
        "check": ([], {"--db", "--now"}),
    }
    assert set(commands) == set(cli.commands) - {"serve"}  # it runs until stopped: tests/http/test_serve.py
    options = {
        "--db": ["--db", str(db)], "--json": ["--json"], "--now": ["--now", LATER],
        "--definition": ["--definition", "samelife:LIFE"],
    }  # fmt: skip
    script = json.dumps({"cmd": "show", "claim": claim_id})
    every = [word for words in options.values() for word in words]
    for name, (args, refused) in commands.items():
        used = [word for option, words in options.items() if option not in refused for word in words]
        for n, argv in enumerate([[*every, name, *args], [name, *args, *used]]):
            result = CliRunner().invoke(cli, [a.replace("{n}", str(n)) for a in argv], input=script)
            assert result.exit_code == 0, (argv, result.output)
            lines = result.stdout.splitlines() if name == "events" else [result.stdout]  # JSON Lines
            body = [json.loads(line) for line in lines][-1]
            if name == "file":
                assert body["filed_at"] == "2026-03-02T10:00:00.000000+00:00"
        for option in refused:
            result = CliRunner().invoke(cli, [name, *args, *options[option]])
            assert result.exit_code == 2, (name, option, result.output)
            assert one_line(result.stderr).startswith(f"error: {name} takes no {option}: ")
    unasked = CliRunner().invoke(cli, ["--json", "demo", "--dir", "own"])  # $CLAIMSTATE_DB is not for demo claims
    assert json.loads(unasked.stdout)["db"] == str(Path("own") / "claims.db")
    assert sorted(p.name for p in tmp_path.glob("*.db")) == ["walk.db"]


def test_global_options_in_real_processes(tmp_path: Path) -> None:
    """The cases people hit: --now after show is refused by name, demo walks into a --db typed and else into
    its --dir, starting at --now, model and diagram (without --claim) read no database (refusing --db after
    their name, ignoring it before), and an option after the name is honoured."""
    claim_id = agreed_claim(tmp_path / "walk.db")
    start = "2030-01-01T00:00:00+00:00"
    show_now, demo_db, model_db, diagram_db, diagram_global, after, before, demo_now = claimstate(
        tmp_path,
        ["show", claim_id, "--db", "walk.db", "--now", LATER],
        ["--db", "x.db", "demo", "--dir", "d3"],
        ["model", "--db", "walk.db"],
        ["diagram", "--db", "walk.db"],
        ["--db", "no-such.db", "diagram"],
        ["can", claim_id, "--actor", "supplier:acme", "--now", LATER, "--db", "walk.db", "--json"],
        ["--json", "--db", "walk.db", "--now", LATER, "can", claim_id, "--actor", "supplier:acme"],
        ["--now", start, "--json", "demo", "--dir", "d4"],
    )
    assert (show_now.returncode, show_now.stdout) == (2, "")
    assert one_line(show_now.stderr) == (
        "error: show takes no --now: it prints the claim as stored (see claimstate show --help)"
    )
    assert demo_db.returncode == 0, demo_db.stderr
    assert (tmp_path / "x.db").exists() and not (tmp_path / "d3" / "claims.db").exists()
    assert model_db.returncode == diagram_db.returncode == 2
    assert one_line(model_db.stderr).startswith("error: model takes no --db: ")
    assert one_line(diagram_db.stderr).startswith("error: diagram takes no --db without --claim: ")
    assert diagram_global.returncode == 0, diagram_global.stderr
    assert "stateDiagram-v2" in diagram_global.stdout and not (tmp_path / "no-such.db").exists()
    assert after.returncode == before.returncode == 0
    assert json.loads(after.stdout) == json.loads(before.stdout)
    assert demo_now.returncode == 0, demo_now.stderr
    walked = json.loads(demo_now.stdout)
    assert walked["db"] == str(Path("d4") / "claims.db")
    assert all(c["claim"]["filed_at"].startswith("2030-01-01") for c in walked["claims"])


USAGE_ERRORS = [
    ("missing argument", ["fire", "c-1"], "Missing argument 'TRIGGER'", "claimstate fire"),
    ("missing option", ["fire", "c-1", "withdraw"], "Missing option '--actor'", "claimstate fire"),
    ("unknown option", ["show", "c-1", "--colour"], "No such option '--colour'", "claimstate show"),
    ("bad choice", ["diagram", "--format", "gif"], "Invalid value for '--format': 'gif'", "claimstate diagram"),
    ("bad --now", ["--now", "2026-03-02", "tick"], "Invalid value for '--now': a time needs a timezone", "claimstate"),
]  # fmt: skip


def test_a_usage_error_is_one_line_and_json_with_json_wherever_it_is(tmp_path: Path) -> None:
    """Each usage error: exit 2, one `error: ... (see ... --help)` line on stderr, and with --json (here after
    the point of the error) the error object on stdout, shaped like a library error's; nothing is created."""
    with_json = claimstate(tmp_path, *([*args, "--json"] for _, args, _, _ in USAGE_ERRORS))
    plain = claimstate(tmp_path, *(args for _, args, _, _ in USAGE_ERRORS[1::3]))
    for (kind, _, message, command), result in zip(USAGE_ERRORS, with_json, strict=True):
        assert result.returncode == 2, kind
        body = json.loads(result.stdout)
        assert body.keys() == {"error", "message", "exit_code"}
        assert (body["error"], body["exit_code"]) == ("UsageError", 2)
        assert body["message"].startswith(message), kind
        assert one_line(result.stderr) == f"error: {body['message']} (see {command} --help)"
    for result in plain:
        assert result.returncode == 2
        assert result.stdout == ""
        assert one_line(result.stderr).startswith("error: ")
    assert list(tmp_path.iterdir()) == []


def test_only_init_file_script_and_demo_create_a_database(tmp_path: Path) -> None:
    """A mistyped --db is exit 5 and creates nothing (no -wal or -shm either) for every command that only
    reads or changes claims; --atomic with --keep-going is refused before any file appears."""
    calls = [
        ["show", "c-1"], ["history", "c-1"], ["list"], ["can", "c-1", "--actor", "buyer:alice"],
        ["fire", "c-1", "withdraw", "--actor", "buyer:alice"], ["tick"], ["verify"], ["diagram", "--claim", "c-1"],
    ]  # fmt: skip
    *missing, both = claimstate(tmp_path, *([*c, "--db", "typo.db"] for c in calls), ["script", "--atomic",
                                "--keep-going", "--db", "new.db", "-"])  # fmt: skip
    for args, result in zip(calls, missing, strict=True):
        assert result.returncode == 5, args
        assert one_line(result.stderr).startswith("error: no database at typo.db; create it with `claimstate init`")
    assert both.returncode == 2
    assert "--atomic" in one_line(both.stderr)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(StorageError, match="no database at"):
        ClaimService(tmp_path / "typo.db", create=False)
    assert list(tmp_path.iterdir()) == []
    with ClaimService(":memory:", create=False) as service:
        assert service.list_claims() == []
    for name, args in [("init", ["init"]), ("file", ["file", *FILE_ARGS]), ("script", ["script", "-"])]:
        assert CliRunner().invoke(cli, ["--db", str(tmp_path / f"{name}.db"), *args]).exit_code == 0
        assert (tmp_path / f"{name}.db").exists()


def trigger_blocks(help_text: str, section: str) -> dict[str, str]:
    """The blocks of a triggers section, by trigger, each with its whitespace folded to single spaces."""
    lines = help_text[help_text.index(f"{section}:\n") :].splitlines()[1:]
    blocks: dict[str, list[str]] = {}
    for line in lines:
        if not line.strip():
            break
        if not line.startswith("   "):  # a trigger's first line, indented two
            blocks[line.split()[0]] = []
        blocks[list(blocks)[-1]].append(line)
    return {trigger: " ".join(" ".join(block).split()) for trigger, block in blocks.items()}


def test_model_and_fire_help_say_who_fires_each_trigger_from_where_with_what_data(tmp_path: Path) -> None:
    """model (text and JSON) and fire --help show, for every trigger of the definition, who may fire it,
    from which states, and each data field, required or optional, with its description."""
    model, model_json, fire_help = claimstate(tmp_path, ["model"], ["--json", "model"], ["fire", "--help"])
    definition = CLAIM_LIFECYCLE.to_dict()
    assert json.loads(model_json.stdout) == {**definition, "json_schema": CLAIM_LIFECYCLE.json_schema()}
    in_model = trigger_blocks(model.stdout, "Triggers, who may fire them, and their data")
    in_help = trigger_blocks(fire_help.stdout, "Triggers, who may fire them, and their --data fields")
    assert (
        "make_offer (by buyer, supplier from in_mediation) kind (required) partial_refund or full_refund"
        in (in_help["make_offer"])
    )
    assert "file_claim" not in in_help  # `claimstate file` files claims
    for transition in definition["transitions"]:
        trigger = transition["trigger"]
        fields = [f"{f['name']} ({'required' if f['required'] else 'optional'}) {f['description']}"
                  for f in transition["data"]]  # fmt: skip
        for block in [in_model[trigger], *([in_help[trigger]] if transition["sources"] else [])]:
            assert f"by {', '.join(transition['actors'])} " in block
            assert all(state in block for state in transition["sources"])
            assert all(field in block for field in fields), (block, fields)
    assert fire_help.stdout.rstrip().endswith("(migrate them).")


def test_can_shows_why_not_and_needs_in_their_own_columns(tmp_path: Path) -> None:
    """A refused trigger still says what data it needs; reasons and needs each have a column."""
    claim_id = agreed_claim(tmp_path / "walk.db")
    (can,) = claimstate(tmp_path, ["can", claim_id, "--actor", "supplier:acme", "--db", "walk.db", "--now", LATER])
    header, *rows = can.stdout.splitlines()
    assert header.split() == ["trigger", "answer", "why", "not", "needs"]
    start = header.index("needs")
    cells = {
        row.split()[0]: ([c.strip() for c in row[:start].split(maxsplit=2)[1:]], row[start:].strip()) for row in rows
    }
    assert cells["decide_partial_refund"] == (
        ["refused", "supplier may not fire decide_partial_refund here; only agent"],
        "amount, rationale",
    )
    assert cells["make_offer"] == (["allowed"], "kind, amount")
    assert cells["accept_offer"] == (["refused", "no offer is open"], "")


def test_verify_shows_each_stored_and_expected_value(tmp_path: Path) -> None:
    """verify names each differing value, stored against what the history gives: a hand-edited column of the
    claims row, or a detail edited in the details JSON."""
    db = tmp_path / "walk.db"
    edited_row = agreed_claim(db)
    with ClaimService(db) as service:
        edited_detail = service.file_claim(filing(order_id="o-2"), now=T0).claim.id
    conn = sqlite3.connect(db)
    conn.execute("UPDATE claims SET version = 9, state = 'withdrawn' WHERE id = ?", (edited_row,))
    conn.execute("UPDATE claims SET details = json_set(details, '$.reason', 'edited') WHERE id = ?", (edited_detail,))
    conn.commit()
    conn.close()
    with ClaimService(db) as service:
        found = {m.claim_id: m.differences for m in service.verify()}
    assert found == {
        edited_row: (Difference("state", "withdrawn", "in_mediation"), Difference("version", 9, 4)),
        edited_detail: (Difference("details.reason", "edited", "arrived broken"),),
    }
    human, as_json = claimstate(tmp_path, ["verify", "--db", "walk.db"], ["verify", "--db", "walk.db", "--json"])
    assert human.returncode == as_json.returncode == 5
    table = [line.split(maxsplit=3) for line in human.stdout.splitlines()]
    assert table[0] == ["claim", "field", "stored", "expected"]
    assert sorted(table[1:]) == sorted([
        [edited_row, "state", '"withdrawn"', '"in_mediation"'],
        [edited_row, "version", "9", "4"],
        [edited_detail, "details.reason", '"edited"', '"arrived broken"'],
    ])  # fmt: skip
    reported = {m["claim_id"]: m["differences"] for m in json.loads(as_json.stdout)}
    assert reported[edited_row][1] == {"field": "version", "stored": 9, "expected": 4}


def test_show_says_what_the_agreement_is(tmp_path: Path) -> None:
    """The agreement is shown as the offer agreed on, not as its bare number."""
    claim_id = agreed_claim(tmp_path / "walk.db")
    (show,) = claimstate(tmp_path, ["show", claim_id, "--db", "walk.db"])
    rows = {line.split(maxsplit=1)[0]: line.split(maxsplit=1)[1] for line in show.stdout.splitlines()}
    assert rows["agreement"] == "offer 1: partial_refund 14.00 USD by supplier"


def test_pictures_are_written_whole_and_never_through_or_over_a_symlink(tmp_path: Path) -> None:
    """diagram --all refuses a symlink planted under a file's name (exit 2): neither the link nor the file it
    points to is touched, and no temporary file is left behind."""
    folder, target = tmp_path / "pictures", tmp_path / "elsewhere.txt"
    folder.mkdir()
    target.write_text("keep me")
    (folder / "lifecycle.mmd").symlink_to(target)
    result = CliRunner().invoke(cli, ["diagram", "--all", str(folder)])
    assert result.exit_code == 2, result.output
    assert f"{folder / 'lifecycle.mmd'} is a symlink: only a regular file is replaced" in result.stderr
    assert target.read_text() == "keep me"
    assert (folder / "lifecycle.mmd").is_symlink()
    assert not list(folder.glob(".*.tmp"))


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["diagram", "-o", ""], 2, "an empty path names no file"),
        (["diagram", "--all", "{file}"], 2, "is a file"),
        (["diagram", "--all", "{file}/inside"], 5, "cannot write"),
        (["demo", "--dir", "{file}/inside"], 5, "cannot write"),
        (["diagram", "-o", "{tmp}/no/such/folder/x.mmd"], 5, "cannot write"),
    ],
)
def test_a_place_that_cannot_be_written_is_one_clear_line(
    tmp_path: Path, args: list[str], code: int, says: str
) -> None:
    """An empty path or a file given as the folder is bad input (2); a folder that cannot be made, a storage error
    (5): one line each, no traceback."""
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    result = CliRunner().invoke(cli, [a.format(file=a_file, tmp=tmp_path) for a in args])
    assert (result.exit_code, result.stdout) == (code, ""), result.output
    assert says in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_a_script_that_stops_says_what_was_kept_and_what_did_not_run(db: Path) -> None:
    """Without --atomic, lines before a failure stay applied: the summary says how many, and how many were not run."""
    claim_id = filed(db)
    withdraw = json.dumps(
        {"cmd": "fire", "claim": claim_id, "trigger": "withdraw", "actor": "buyer:alice", "now": LATER}
    )
    lines = [json.dumps({"cmd": "show", "claim": claim_id}), withdraw, withdraw, json.dumps({"cmd": "tick"})]
    result = run(db, "script", "-", stdin="\n".join(lines))
    assert result.exit_code == 1
    assert result.stdout.splitlines()[:2] == [
        f"line 1: ok {claim_id} awaiting_evidence v1",
        f"line 2: ok {claim_id} withdrawn v2",
    ]
    assert result.stderr == "error: 1 line(s) failed, first line 3; 2 line(s) applied and kept, 1 not run\n"


def test_the_history_key_comes_from_the_environment_and_verify_names_a_missing_one(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$CLAIMSTATE_HISTORY_KEY chains the history with HMAC; without it verify says the key is missing
    (exit 5) instead of calling every row forged, and with it the database verifies clean."""
    monkeypatch.setenv("CLAIMSTATE_HISTORY_KEY", "a secret of at least sixteen bytes")
    claim_id = filed(db)
    assert ok(db, "verify") == []
    monkeypatch.delenv("CLAIMSTATE_HISTORY_KEY")
    result = run(db, "--json", "verify")
    assert result.exit_code == 5
    (problem,) = json.loads(result.stdout)
    assert (problem["claim_id"], problem["kind"]) == (None, "chain_key")
    assert result.stderr == "error: verify found 1 problem(s) in 0 claim(s) (and in the database as a whole)\n"
    assert run(db, "show", claim_id).exit_code == 0  # reading needs no key


def test_reading_commands_leave_no_files_behind(db: Path) -> None:
    """show, history, list, can and verify open the database read-only: no -wal or -shm appears."""
    claim_id = filed(db)
    fingerprint(db)  # checkpointed and closed: only the database file is left
    before = sorted(p.name for p in db.parent.iterdir())
    for args in (["show", claim_id], ["history", claim_id], ["list"], ["can", claim_id, "--actor", "system"],
                 ["verify"], ["diagram", "--claim", claim_id]):  # fmt: skip
        assert run(db, *args).exit_code == 0, args
    assert sorted(p.name for p in db.parent.iterdir()) == before


# --- where commands write, and what they read: issue 21 ------------------------------------------------

EMPTY_PATHS = [
    (["--db", "", "list"], "--db"),
    (["diagram", "-o", ""], "--output"),
    (["diagram", "--all", ""], "--all"),
    (["diagram", "--diff", "", "old.json"], "--diff"),
    (["demo", "--dir", ""], "--dir"),
    (["check", "--stories", ""], "--stories"),
    (["check", "--scripts", ""], "--scripts"),
    (["model", "--export", ""], "--export"),
    (["--db", "claims.db", "migrate", "--plan", ""], "--plan"),
    (["--db", "claims.db", "fire", "c-1", "withdraw", "--actor", "buyer:alice", "--data-file", ""], "--data-file"),
    (["--db", "claims.db", "script", ""], "PATH"),
    (["diff", "", "old.json"], "OLD.json"),
    (["diff", "old.json", "old.json", "--format", "md", "-o", ""], "--output"),
    (["migrate-store", "", "new.db"], "SOURCE"),
    (["migrate-store", "claims.db", ""], "TARGET"),
]


def _listing(folder: Path) -> dict[str, str]:
    """Every file under `folder` with the hash of its content."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


@pytest.mark.parametrize(("args", "option"), EMPTY_PATHS)
def test_an_empty_path_is_refused_by_name_wherever_a_path_is_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], option: str
) -> None:
    """To the system an empty path is the current folder: every option and argument that takes a path refuses
    one by name (exit 2), and nothing in the current folder (a README.md, a database) is written."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "README.md").write_text("the project's own README\n")
    (tmp_path / "old.json").write_text(json.dumps(CLAIM_LIFECYCLE.to_dict()))
    filed(tmp_path / "claims.db")
    fingerprint(tmp_path / "claims.db")
    before = _listing(tmp_path)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert option in result.stderr and "an empty path names no file or folder" in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1
    assert _listing(tmp_path) == before


def test_only_a_regular_file_is_replaced_never_a_pipe_a_device_or_a_symlink(tmp_path: Path) -> None:
    """-o and --export replace a regular file (or write a new name), but refuse a pipe, a device (as root:
    /dev/null would be one) and a symlink (/dev/stdout is one) by name, exit 2, leaving them as they were."""
    pipe, link, regular, device = (tmp_path / name for name in ("pipe", "link", "regular.mmd", "null"))
    os.mkfifo(pipe)
    link.symlink_to(regular)
    regular.write_text("old")
    places = [(pipe, "a pipe"), (link, "a symlink")]
    if os.geteuid() == 0:  # a device of its own, never the real /dev/null, were the check ever to fail
        os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        places.append((device, "a character device"))
    for place, kind in places:
        for args in (["diagram", "-o", str(place)], ["model", "--export", str(place)]):
            result = CliRunner().invoke(cli, args)
            assert result.exit_code == 2, (args, result.output)
            assert result.stderr == f"error: path: {place} is {kind}: only a regular file is replaced\n"
    assert pipe.is_fifo() and link.is_symlink() and (os.geteuid() != 0 or device.is_char_device())
    assert regular.read_text() == "old"
    assert CliRunner().invoke(cli, ["diagram", "-o", str(regular)]).exit_code == 0
    assert regular.read_text().startswith("---")


@pytest.mark.parametrize(("umask", "mode"), [(0o077, 0o600), (0o022, 0o644)])
def test_every_file_written_follows_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    """Diagrams, exports, stories and the demo's claim pages are created with the mode the umask leaves: under
    umask 077 no one else may read the buyers' words in them."""
    previous = os.umask(umask)
    try:
        for args in (["diagram", "-o", str(tmp_path / "one.mmd")], ["model", "--export", str(tmp_path / "x.json")],
                     ["diagram", "--all", str(tmp_path / "all")], ["demo", "--dir", str(tmp_path / "demo")],
                     ["check", "--stories", str(tmp_path / "stories")]):  # fmt: skip
            result = CliRunner().invoke(cli, args)
            assert result.exit_code == 0, (args, result.output)
    finally:
        os.umask(previous)
    written = [p for p in tmp_path.rglob("*") if p.is_file() and not p.name.startswith("claims.db")]
    assert len(written) > 20 and any(p.name.startswith("claim-") for p in written)
    assert {oct(p.stat().st_mode & 0o777) for p in written} == {oct(mode)}


def test_the_demo_never_walks_into_a_database_of_real_claims(tmp_path: Path) -> None:
    """The demo refuses (exit 2, naming --dir or --db) a database that holds claims not its own, unless
    told with --reuse, and never follows a symlink from DIR/claims.db; an earlier demo's own database is
    walked into again."""
    real = tmp_path / "real.db"
    filed(real)
    before = fingerprint(real)
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "claims.db").symlink_to(real)
    through_link = CliRunner().invoke(cli, ["demo", "--dir", str(linked)])
    assert through_link.exit_code == 2, through_link.output
    assert through_link.stderr == (
        f"error: --dir: {linked / 'claims.db'} is a symlink: the demo walks into a database of its own, never"
        " through a link\n"
    )
    for args, field in ((["--db", str(real)], "--db"), ([], "--dir")):
        folder = tmp_path / "real-folder" if not args else tmp_path / "typed"
        folder.mkdir()
        if not args:
            real.rename(folder / "claims.db")
        refused = CliRunner().invoke(cli, [*args, "demo", "--dir", str(folder)])
        assert refused.exit_code == 2, refused.output
        assert refused.stderr.startswith(f"error: {field}: ") and "holds claims that are not the demo's" in (
            refused.stderr
        )
        if not args:
            (folder / "claims.db").rename(real)
    assert fingerprint(real) == before
    reused = CliRunner().invoke(cli, ["--db", str(real), "demo", "--dir", str(tmp_path / "typed"), "--reuse"])
    assert reused.exit_code in {0, 6}, reused.output
    with ClaimService(real) as service:
        assert len(service.list_claims()) == 6


def test_the_demo_walks_into_a_postgresql_database_only_once_it_is_made_and_holds_no_real_claims(
    postgres_url: str, tmp_path: Path
) -> None:
    """On a server, given as a URL or as a libpq key=value string, the demo looks read-only first: a database
    holding real claims is refused (exit 2) and one never made is left to `init` (exit 5), each left as it
    was."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo  # noqa: PLC0415 - the postgres extra

    key_value = make_conninfo(**{k: str(v) for k, v in conninfo_to_dict(postgres_url).items()})
    assert "://" not in key_value
    for target in (postgres_url, key_value):
        fresh = CliRunner().invoke(cli, ["--db", target, "demo", "--dir", str(tmp_path / "fresh")])
        assert fresh.exit_code == 5, fresh.output
        assert "claimstate init" in fresh.stderr
    assert query(postgres_url, "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()") == [(0,)]
    with ClaimService(postgres_url) as service:
        service.file_claim(filing())
    for target in (postgres_url, key_value):
        refused = CliRunner().invoke(cli, ["--db", target, "demo", "--dir", str(tmp_path / "real")])
        assert refused.exit_code == 2, refused.output
        assert "holds claims that are not the demo's" in refused.stderr
    with ClaimService(postgres_url, read_only=True) as service:
        assert len(service.list_claims()) == 1


BIG = "9" * 5_000


def test_integers_of_too_many_digits_are_refused_by_name_before_they_are_read(db: Path, tmp_path: Path) -> None:
    """A JSON integer of thousands of digits (over Python's 4,300, where it raises a bare ValueError) in --data,
    --data-file, a script line or a plan is refused by the digits it has, naming where (exit 2); nothing is
    written."""
    claim_id = filed(db)
    (tmp_path / "data.json").write_text('{"reason": "x", "n": ' + BIG + "}")
    (tmp_path / "plan.json").write_text('{"states": {}, "deadlines": "keep", "n": ' + BIG + "}")
    before = fingerprint(db)
    fire = ["fire", claim_id, "withdraw", "--actor", "buyer:alice"]
    for args, stdin, says in (
        ([*fire, "--data", '{"n": ' + BIG + "}"], None, "error: data: an integer of 5,000 digits"),
        ([*fire, "--data", '{"n": -' + "1" * 101 + "}"], None, "error: data: an integer of 101 digits"),
        ([*fire, "--data-file", str(tmp_path / "data.json")], None, "error: data: an integer of 5,000 digits"),
        (["script", "-"], '{"cmd": "tick", "n": ' + BIG + "}", "line 1: line: an integer of 5,000 digits"),
        (["migrate", "--plan", str(tmp_path / "plan.json")], None, "error: plan: an integer of 5,000 digits"),
    ):
        result = run(db, *args, stdin=stdin)
        assert result.exit_code == 2, (args, result.output)
        assert says in result.output and "Traceback" not in result.output, result.output
    assert fingerprint(db) == before


def _exports(tmp_path: Path) -> dict[str, Path]:
    """The built-in lifecycle's export, and one export out of bounds for each way an export can be."""
    good = CLAIM_LIFECYCLE.to_dict()
    text = json.dumps(good)
    window = good["states"][0]["deadline"]["window_seconds"]
    many = {**good, "states": good["states"] + [{**good["states"][1], "name": f"x{i}"} for i in range(10_000)]}
    arrows = {**good, "transitions": good["transitions"] * 20}
    variants = {
        "old": text,
        "window 1e20": text.replace(f'"window_seconds": {window}', '"window_seconds": 1e20', 1),
        "window 1e300": text.replace(f'"window_seconds": {window}', '"window_seconds": 1e300', 1),
        "window 10**400": text.replace(f'"window_seconds": {window}', '"window_seconds": 1' + "0" * 400, 1),
        "a lone surrogate": text.replace('"awaiting_evidence"', '"awaiting_\\udcffevidence"', 1),
        "a NUL": text.replace('"awaiting_evidence"', '"awaiting\\u0000evidence"', 1),
        "10,000 states": json.dumps(many),
        "many arrows": json.dumps(arrows),
    }
    for name, content in variants.items():
        (tmp_path / f"{name}.json").write_text(content)
    return {name: tmp_path / f"{name}.json" for name in variants}


@pytest.mark.parametrize(
    ("export", "says"),
    [
        ("window 1e20", "a deadline window of 1e+20 seconds; it is a whole number of seconds above zero, at most"),
        ("window 1e300", "a deadline window of 1e+300 seconds"),
        ("window 10**400", "an integer of 401 digits"),
        ("a lone surrogate", "holds a NUL or a lone surrogate"),
        ("a NUL", "holds a NUL or a lone surrogate"),
        ("10,000 states", "10,012 states and 40 arrows"),
        ("many arrows", "800 arrows"),
    ],
)
def test_exports_out_of_bounds_are_refused_by_name_before_anything_reads_them(
    tmp_path: Path, export: str, says: str
) -> None:
    """diff (in every format) and diagram --diff refuse an export whose window would overflow a time, whose
    text holds a lone surrogate or a NUL, or too large for the layout engine (which traps on 10,000 states):
    exit 2, one line naming the argument (after diagram --diff's deprecation line), never a traceback or exit 6."""
    paths = _exports(tmp_path)
    old, bad = str(paths["old"]), str(paths[export])
    for args, field in ((["diff", old, bad], "NEW.json"), (["diff", bad, old, "--format", "md"], "OLD.json"),
                        (["diff", old, bad, "--format", "html", "-o", str(tmp_path / "r.html")], "NEW.json"),
                        (["diagram", "--diff", bad, old], "--diff OLD"),
                        (["diagram", "--diff", old, bad, "--format", "html"], "--diff NEW")):  # fmt: skip
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, (args, result.output)
        said = result.stderr.splitlines()[-1]
        assert said.startswith(f"error: {field}: ") and says in said, result.stderr
        assert result.stderr.count("\n") == (2 if "--diff" in args else 1)
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize(("code", "says"), [("import sys\nsys.exit(3)\n", "SystemExit(3)"),
                                            ("raise KeyboardInterrupt\n", "KeyboardInterrupt()")])  # fmt: skip
def test_a_definition_module_that_exits_as_it_loads_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: str, says: str
) -> None:
    """A --definition module that calls sys.exit() or raises KeyboardInterrupt is a bad definition: exit 2 and
    one line naming the module, not its own exit code and silence."""
    monkeypatch.chdir(tmp_path)
    name = f"stopping_{abs(hash(code))}"
    (tmp_path / f"{name}.py").write_text(code)
    result = CliRunner().invoke(cli, ["--definition", f"{name}:LIFE", "model"])
    assert (result.exit_code, result.stderr) == (2, f"error: --definition: {name} stops as it loads: {says}\n")


ESCAPES = "\x1b]0;PWNED\x07\x1b[2J\x9b31m\r\u202e"
CONTROLS = "\x1b\x07\x9b\r\u202e"  # the characters of ESCAPES that drive a terminal
MARKUP = "<script>alert(1)</script><img src=x onerror=alert(2)>[a](javascript:x)`"


def test_claim_text_is_shown_escaped_on_the_terminal_and_in_every_page(db: Path) -> None:
    """Terminal escapes in a claim's words never reach the terminal: show, history, list, can and error lines
    print them as escapes (``\\x1b``), also when stdout is not a terminal; every page and picture of the
    claim (Mermaid, DOT, Markdown, HTML, SVG) shows them as text and holds no markup from the claim."""
    words = "cracked" + ESCAPES + MARKUP
    args = ["file", *FILE_ARGS[2:-4], "--order", "o-<script>1", "--reason", words, "--resolution", "full_refund"]
    claim_id = str(ok(db, *args, "--now", NOW)["id"])
    fired = run(db, "fire", claim_id, "withdraw", "--actor", "buyer:alice", "--now", LATER,
                "--data", json.dumps({"reason": ESCAPES + "<b>x</b>"}))  # fmt: skip
    assert fired.exit_code == 0, fired.output
    for command in (["show", claim_id], ["history", claim_id], ["list"], ["can", claim_id, "--actor", "system"],
                    ["fire", claim_id, "x" + ESCAPES, "--actor", "system"]):  # fmt: skip
        result = run(db, *command)
        assert not any(c in result.output for c in CONTROLS), (command, result.output)
    shown = run(db, "show", claim_id).stdout
    assert "cracked\\x1b]0;PWNED\\x07\\x1b[2J\\x9b31m\\r\\u202e<script>" in shown
    events = run(db, "events")  # JSON Lines, which JSON itself escapes only below U+0020
    assert events.exit_code == 0, events.output
    assert not any(c in events.stdout for c in CONTROLS), events.stdout
    assert [json.loads(line)["data"].get("reason") for line in events.stdout.splitlines()][-1] == ESCAPES + "<b>x</b>"
    for fmt in ("mermaid", "dot", "md", "html", "svg"):
        drawn = run(db, "diagram", "--claim", claim_id, "--format", fmt)
        assert drawn.exit_code == 0, drawn.output
        assert not any(c in drawn.stdout for c in CONTROLS), fmt
        assert "<script" not in drawn.stdout and "<b>" not in drawn.stdout and "<img" not in drawn.stdout, fmt


def test_diagram_all_never_replaces_a_readme_of_its_own_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`diagram --all .` in a project's folder refuses (exit 2) to replace the project's README.md, and writes
    nothing; the README it wrote itself is replaced, so regenerating diagrams/ still works."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "README.md").write_text("# My project\n")
    refused = CliRunner().invoke(cli, ["diagram", "--all", "."])
    assert refused.exit_code == 2, refused.output
    assert refused.stderr == (
        "error: folder: README.md is not the README of a diagrams folder: the lifecycle's files go in a folder of"
        " their own\n"
    )
    assert [p.name for p in tmp_path.iterdir()] == ["README.md"]
    assert CliRunner().invoke(cli, ["diagram", "--all", "pictures"]).exit_code in {0, 6}
    assert CliRunner().invoke(cli, ["diagram", "--all", "pictures"]).exit_code in {0, 6}
