"""A password in a database URL is never shown: not in an error's message or attributes, not on stdout or
stderr, with or without --json, however malformed the URL (masking reads the text before any parser)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import filing

from claimstate import ClaimService, ClaimStateError
from claimstate._store import masked
from claimstate.cli import cli

SECRETS = ("S3cret", "Pa55")  # every password below is made of these, so a fragment of one shows too
URLS = [
    "postgresql://u:S3cretPa55%@127.0.0.1:1/db",  # a stray % (libpq quotes the token)
    "postgresql://u:S3cretPa55@[::1/x",  # an unclosed [ (libpq quotes the whole URL)
    "mysql://u:S3cretPa55@h/db",  # a scheme claimstate does not know
    "PostgreSQL://u:S3cretPa55@h/db",
    "sqlite://u:S3cretPa55@h/db",
    "postgresql://u:S3cretPa55@127.0.0.1:1/db?x=%zz",
    "postgresql://u:S3cret/Pa55@127.0.0.1:1/db",  # an unescaped / ends the password where libpq reads
    "postgresql://u:S3cret@Pa55@127.0.0.1:1/db",  # and so does an unescaped @
    "postgresql://u:S3cretPa55@127.0.0.1:notaport/db",
    "postgresql://u:S3cretPa55@127.0.0.1:1/db",  # well-formed; no server there
    "postgres://u:S3cretPa55@127.0.0.1:1/db?sslmode=bogus",
    "postgresql://127.0.0.1:1/db?password=S3cretPa55",
    "postgresql://:S3cretPa55@127.0.0.1:1/db",
    "host=127.0.0.1 port=1 password=S3cretPa55",  # libpq key=value strings
    "host=127.0.0.1 port=1 password='S3cret Pa55'",
    "host=127.0.0.1 port=1 password=S3cret Pa55",  # malformed: a space unquoted
    "password=S3cretPa55 host='127.0.0.1",  # malformed: a quote unclosed
]


def _hidden(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, text


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("postgresql://u:S3cret%@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:S3cret@[::1/x", "postgresql://u:***@[::1/x"),
        ("mysql://u:S3cret@h/db", "mysql://u:***@h/db"),
        ("postgresql://u:S3cret/Pa55@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:S3cret@Pa55@h/db", "postgresql://u:***@h/db"),
        ("postgresql://h/db?password=S3cret&sslmode=require", "postgresql://h/db?password=***&sslmode=require"),
        ("host=h password='S3cret Pa55' user=u", "host=h password=*** user=u"),
        ("from postgresql://a:S3cret@h/x to mysql://b:Pa55@h/y", "from postgresql://a:***@h/x to mysql://b:***@h/y"),
        ("postgresql://u@h:5432/db?application_name=a@b", "postgresql://u@h:5432/db?application_name=a@b"),
        ("postgresql://u:S3cret@h/db?application_name=a@b", "postgresql://u:***@h/db?application_name=a@b"),
        ("postgresql://u:S3c?ret@h/db", "postgresql://u:***@h/db"),
        ("claims.db", "claims.db"),
    ],
)
def test_masking_works_on_any_text_holding_a_url(text: str, shown: str) -> None:
    """Masking needs no parser: the password of scheme://user:password@ (to the last @ before the query) and
    every password= value become ***; a URL without a password, and a file name, are left as they are."""
    assert masked(text) == shown


@pytest.mark.parametrize("url", URLS)
def test_the_library_never_shows_a_password(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ClaimService(url) on a URL it cannot use raises a ClaimStateError whose message, attributes and causes
    hold no part of the password; no file is made for it."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ClaimStateError) as raised:
        ClaimService(url, busy_timeout=1)
    error: BaseException | None = raised.value
    _hidden(json.dumps(raised.value.to_dict()), repr(vars(raised.value)))
    while error is not None:
        _hidden(str(error))
        error = error.__cause__ or error.__context__
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("url", URLS)
def test_the_command_line_never_shows_a_password(url: str, tmp_path: Path) -> None:
    """`list`, with and without --json, and `migrate-store` from or into the URL, fail with one error line and
    print no part of the password, on stdout or stderr."""
    source = tmp_path / "source.db"
    with ClaimService(source) as service:
        service.file_claim(filing())
    runs = [["--db", url, "list"], ["--db", url, "--json", "list"], ["migrate-store", url, str(tmp_path / "copy.db")],
            ["--json", "migrate-store", str(source), url]]  # fmt: skip
    for args in runs:
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 5, (args, result.output)
        assert len(result.stderr.splitlines()) == 1, result.stderr
        _hidden(result.stdout, result.stderr)
    process = subprocess.run(  # the real program, with its logging as set up by main()
        [sys.executable, "-m", "claimstate", "--db", url, "--json", "list"],
        capture_output=True, text=True, cwd=tmp_path, timeout=60, check=False,
    )  # fmt: skip
    assert process.returncode == 5, process.stderr
    _hidden(process.stdout, process.stderr)


def test_a_url_that_works_is_shown_without_its_password(postgres_url: str, tmp_path: Path) -> None:
    """A well-formed URL with a password that opens (the test server trusts its users) is shown without the
    password: the service's path, and what init, list and migrate-store print."""
    url = postgres_url.replace("postgresql://postgres@", "postgresql://postgres:S3cretPa55@", 1)
    url += ("&" if "?" in url else "?") + "application_name=svc@host1"  # an @ in the query is not the password's
    assert "S3cretPa55" in url
    with ClaimService(url) as service:
        _hidden(service.path)
    source = tmp_path / "source.db"
    with ClaimService(source) as service:
        service.file_claim(filing())
    worked = [["--db", url, "--json", "init"], ["--db", url, "list"], ["--json", "migrate-store", str(source), url]]
    for args in worked:
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        _hidden(result.stdout, result.stderr)
    refused = CliRunner().invoke(cli, ["migrate-store", str(source), url])  # the target holds claims now
    assert refused.exit_code == 5, refused.output
    assert "is not empty" in refused.stderr
    _hidden(refused.stdout, refused.stderr)
