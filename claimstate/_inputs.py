"""Checks at the boundary: what a caller passes in is refused by name before anything uses it.

Ids and keys are non-blank text of bounded length; every text is valid Unicode (no lone surrogates,
which cannot be stored as UTF-8); trigger data is plain JSON of bounded depth and size, so nothing a
caller sends can exhaust the stack, overflow a number, or grow a claim without bound.
"""

from __future__ import annotations

import math

from claimstate._errors import InvalidInput

MAX_ID = 200
MAX_DEPTH = 16
_MAX_INT = 2**63 - 1  # what SQLite and every JSON reader hold exactly


def valid_text(value: object, field: str, *, limit: int) -> str:
    """`value` if it is a string of valid Unicode with at most `limit` characters."""
    if not isinstance(value, str):
        raise InvalidInput(f"expected text, not {type(value).__name__}", field=field)
    if len(value) > limit:
        raise InvalidInput(f"longer than {limit} characters", field=field)
    if "\x00" in value:
        raise InvalidInput("holds a NUL character, which PostgreSQL cannot store in text", field=field)
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInput("is not valid Unicode text (it holds a lone surrogate)", field=field) from None
    return value


def identifier(value: object, field: str) -> str:
    """An id or key: non-blank text of at most MAX_ID characters, without control characters."""
    text = valid_text(value, field, limit=MAX_ID)
    if not text.strip():
        raise InvalidInput("must not be blank", field=field)
    if not text.isprintable():
        raise InvalidInput("must not hold control characters", field=field)
    return text


def whole_number(value: object, field: str, *, least: int = 1) -> int:
    """An int (not a bool) from `least` up to the largest SQLite integer."""
    if not isinstance(value, int) or isinstance(value, bool) or not least <= value <= _MAX_INT:
        raise InvalidInput(f"must be a whole number from {least} to {_MAX_INT}, not {value!r}", field=field)
    return value


def plain_data(data: object, field: str, *, max_text: int) -> None:
    """Refuse what is not plain JSON: non-text keys, other types, non-finite or huge numbers, text over
    `max_text`, or nesting deeper than MAX_DEPTH. Iterative, so a deep document cannot exhaust the stack."""
    pending: list[tuple[object, str, int]] = [(data, field, 0)]
    while pending:
        value, where, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise InvalidInput(f"nested deeper than {MAX_DEPTH} levels", field=field)
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise InvalidInput(f"object keys must be text, not {key!r}", field=where)
                valid_text(key, where, limit=MAX_ID)
                pending.append((item, f"{where}.{key}", depth + 1))
        elif isinstance(value, list | tuple):
            pending.extend((item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value))
        else:
            _scalar(value, where, max_text)


def _scalar(value: object, where: str, max_text: int) -> None:
    if isinstance(value, str):
        valid_text(value, where, limit=max_text)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if abs(value) > _MAX_INT:
            raise InvalidInput("holds a number too large to store exactly", field=where)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(f"holds {value}, which JSON cannot carry", field=where)
    else:
        raise InvalidInput(f"holds a {type(value).__name__}, which is not a JSON value", field=where)
