"""What names a database, and how it may be shown: no password ever leaves in a message, a log or --json.

Masking reads the text itself, before any parser does, so a URL no parser takes (a stray %, an unclosed
[, a scheme claimstate does not know) is masked too: whatever follows ``user:`` in ``scheme://user:...@``,
up to the segment's last @ (a malformed password may hold an @ or a /), and the value of every
``password=`` (a libpq key=value string, or a URL's query).
"""

from __future__ import annotations

import itertools
import re

from claimstate._errors import StorageError

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_PASSWORD_KEY = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'?|[^\s&#]*)", re.IGNORECASE)
_REST_AFTER_PASSWORD_KEY = re.compile(r"(password\s*=\s*).*", re.IGNORECASE | re.DOTALL)
# A libpq key=value string starts with one of its usual keys, or holds a password anywhere.
_CONNINFO = re.compile(
    r"\s*(?:host|hostaddr|port|dbname|user|password|passfile|service|sslmode|options|connect_timeout)\s*="
    r"|(?:.*\s)?password\s*=",
    re.IGNORECASE | re.DOTALL,
)


def masked(text: str, *, malformed: bool = False) -> str:
    """`text` with every password in it replaced by ***; in text a parser refused (`malformed`), a password=
    value runs to the end, since an unquoted space or an unclosed quote may be where it was cut."""
    if malformed:
        text = _REST_AFTER_PASSWORD_KEY.sub(r"\1***", text)
    bounds = [*(match.start() for match in _SCHEME.finditer(text)), len(text)]
    pieces = [text[: bounds[0]]]
    for begin, end in itertools.pairwise(bounds):
        url = text[begin:end]
        secret = _password_span(url)
        pieces.append(url if secret is None else f"{url[: secret[0]]}***{url[secret[1] :]}")
    return _PASSWORD_KEY.sub(r"\1***", "".join(pieces))


def _password_span(url: str) -> tuple[int, int] | None:
    """Where the password of ``scheme://user:password@...`` lies in `url`: from after the first : to the last
    @ before the query (an @ in ``?application_name=a@b`` is not the password's end), or to the very last @
    where none comes before it, when that : comes before the first @ (else the : is a port's, and there is
    no password)."""
    after_scheme = url.index("://") + 3
    first_at = url.find("@", after_scheme)
    query = min((at for at in (url.find("?", after_scheme), url.find("#", after_scheme)) if at >= 0), default=len(url))
    last_at = url.rfind("@", after_scheme, query)
    if last_at < 0:
        last_at = url.rfind("@")
    colon = url.find(":", after_scheme, max(first_at, after_scheme))
    return None if first_at < 0 or colon < 0 else (colon + 1, last_at)


def is_conninfo(text: str) -> bool:
    """Whether `text` is meant as a libpq key=value connection string (``host=db dbname=claims``), even a
    malformed one, rather than a file name (which would then be made, the password in its name)."""
    return _CONNINFO.match(text) is not None


def checked_url(target: str) -> None:
    """Refuse a URL whose password holds an unescaped / or @, before libpq reads it: libpq would end the
    password there and read the rest as the host, the port or the database, which its errors then print."""
    if not target.startswith(POSTGRES_SCHEMES):
        return
    span = _password_span(target)
    if span is not None and any(mark in target[span[0] : span[1]] for mark in "/@"):
        shown = masked(target)
        raise StorageError(
            f"{shown} is not a URL libpq reads as meant: a / or @ in the password (or after it, in the query) must"
            " be percent-encoded (%2F, %40)",
            path=shown,
        )


def parse_failure(error: Exception) -> str:
    """What libpq found wrong with a connection string, without the excerpts it quotes (which may hold part
    of the password): the text before its first colon, every quoted part but a lone = or ] elided."""
    first = " ".join(str(error).split()).split(":", 1)[0]
    return re.sub(r'"[^"]*"', lambda quoted: quoted[0] if quoted[0] in ('"="', '"]"') else '"..."', first)
