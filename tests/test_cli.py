"""The command line: every command, its JSON keys and exit codes, and nothing changed by a failure."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result
from helpers import EVIDENCE

from claimstate import ClaimService
from claimstate._cli import EXIT_CODES, cli

ROOT = Path(__file__).parent.parent
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
    with ClaimService(db) as service:
        service._store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return hashlib.sha256(db.read_bytes()).hexdigest()


def test_file_fire_show_history_list_and_can(db: Path) -> None:
    """The everyday commands print JSON with the stable keys of a claim and of a history entry."""
    assert ok(db, "init") == {"db": str(db), "schema_version": 1}
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
        (["fire", "{id}", "withdraw", "--actor", "buyer:alice", "--now", "2026-03-02T09:00:00"], 2, None),
        (["fire", "nope", "withdraw", "--actor", "buyer:alice"], 3, "ClaimNotFound"),
        (["fire", "{id}", "withdraw", "--actor", "buyer:alice", "--expect-version", "7"], 4, "ConcurrentModification"),
        (["file", *FILE_ARGS], 1, "TransitionRefused"),
        (["file", *FILE_ARGS[:-2]], 2, None),
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
    assert len(result.stderr.strip().splitlines()) == 1 if error else result.stderr.strip()
    if error:
        body = json.loads(result.stdout)
        assert (body["error"], body["exit_code"]) == (error, code)
        assert result.stderr.startswith("error: ")
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
    assert json.loads(result.stdout)[0]["claim_id"] == claim_id


def test_model_and_diagram(db: Path, tmp_path: Path) -> None:
    """model prints the definition; diagram draws the lifecycle, a claim's path, or every format."""
    model = ok(db, "model")
    assert len(model["states"]) == 12
    assert "refunded_full" in run(db, "model").stdout
    assert run(db, "diagram").stdout.splitlines()[3] == "stateDiagram-v2"
    claim_id = filed(db)
    out = tmp_path / "claim.dot"
    assert ok(db, "diagram", "--claim", claim_id, "--format", "dot", "-o", str(out)) == {
        "path": str(out),
        "format": "dot",
    }
    assert "(1) file_claim" in out.read_text()
    assert run(db, "diagram", "--claim", "nope").exit_code == 3
    assert run(db, "diagram", "--format", "gif").exit_code == 2


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
    """Each command explains itself and its options, lists the exit codes, and the README documents it."""
    assert command.help and len(command.help) > 20, name
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert param.help, f"{name} {param.opts}"
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0
    assert "Exit codes: 0 done" in result.output
    assert f"| `{name}" in (ROOT / "README.md").read_text()


def test_the_exit_codes_of_the_help_match_the_code() -> None:
    """The documented codes are the ones the CLI uses."""
    assert sorted(EXIT_CODES.values()) == [1, 2, 3, 4, 5, 6]


def test_only_the_cli_imports_click() -> None:
    """The library never imports click (sqlite-utils loads it for its own CLI; claimstate's modules do not)."""
    importers = set()
    for module in (ROOT / "claimstate").glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(n == "click" or n.startswith("click.") for n in names):
                importers.add(module.name)
    assert importers == {"_cli.py"}


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
    assert len(list((tmp_path / "diagrams").glob("claim-*.md"))) == 4
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
        (["diagram", "--format", "dot", "-o", str(tmp_path / "no" / "such" / "x.dot")], 5),
        (["diagram", "--all", str(tmp_path), "--claim", claim_id], 2),
    ]:
        result = run(db, *args)
        assert result.exit_code == code, (args, result.output)
        assert "Traceback" not in result.output


def test_commands_offer_only_the_global_options_they_use() -> None:
    """--now only where time matters; the demo keeps its own folder and takes no --db."""

    def offered(name: str) -> set[str]:
        return {o for p in cli.commands[name].params for o in p.opts}  # type: ignore[attr-defined]

    assert "--now" in offered("fire")
    assert "--now" in offered("tick")
    assert "--now" not in offered("show")
    assert "--db" not in offered("demo")
    assert "--db" not in offered("model")
