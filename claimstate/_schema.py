"""JSON Schema (2020-12) pieces for a definition's trigger data, which each field kind declares beside its
parser (`Definition.json_schema` puts them together, one object schema per trigger).

Patterns are written for both dialects a schema meets: ECMA-262, which JSON Schema names, and Python's
`re`, which Python validators use. Where the two differ (`$` also matches before a final newline in
Python; `\\s` is a different set of characters) a pattern either does not care (the newline is allowed
there anyway) or spells its characters out. `tests/engine/test_schema.py` proves by property that the
engine refuses no data a schema accepts, and that a schema refuses what the engine refuses as invalid.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from claimstate._money import CURRENCY_EXPONENTS, MAX_DIGITS

DIALECT = "https://json-schema.org/draft/2020-12/schema"
# The characters Python's str.strip() removes (str.isspace()), spelled out: ECMA's \s is another set.
WHITESPACE = r"\t\n\u000b\u000c\r\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_MAX_AMOUNT_TEXT = 2 * MAX_DIGITS + 2  # what Money.parse reads at most (blanks and leading zeros included)


def text_schema(limit: int, *, blank_ok: bool) -> dict[str, Any]:
    """Text of at most `limit` characters without NUL (PostgreSQL cannot store it); unless `blank_ok`,
    holding something besides whitespace."""
    pattern = r"^[^\u0000]*$" if blank_ok else rf"^[^\u0000]*[^\u0000{WHITESPACE}][^\u0000]*$"
    return {"type": "string", "maxLength": limit, "pattern": pattern}


def amount_schema(limit: int, decimals: int | None) -> dict[str, Any]:
    """A non-negative decimal string as `Money.parse` reads it: blanks around it, at most MAX_DIGITS whole
    digits after any leading zeros, and no more significant decimals than the currency has (trailing
    zeros are fine). `decimals` None: as many as any currency has."""
    most = max(CURRENCY_EXPONENTS.values()) if decimals is None else decimals
    fraction = r"(\.0+)?" if most == 0 else rf"(\.[0-9]{{1,{most}}}0*)?"
    blank = f"[{WHITESPACE}]*"
    return {
        "type": "string",
        "maxLength": min(limit, _MAX_AMOUNT_TEXT),
        "pattern": f"^{blank}0*[0-9]{{1,{MAX_DIGITS}}}{fraction}{blank}$",
    }


def currencies_with(decimals: int) -> list[str]:
    """The ISO 4217 codes whose amounts have `decimals` decimals."""
    return sorted(code for code, exponent in CURRENCY_EXPONENTS.items() if exponent == decimals)


def nullable(schema: Mapping[str, Any]) -> dict[str, Any]:
    """`schema` or null: an optional field may be given as null, which means not given."""
    return {"anyOf": [dict(schema), {"type": "null"}]}
