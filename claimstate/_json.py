"""JSON as the store writes and reads it.

Writing uses orjson, several times faster than the standard library on the hot path, where every fire
encodes a whole claim: compact UTF-8 JSON that any reader reads. Reading uses the standard library,
which is exact for every integer, where orjson turns one beyond 64 bits into a float; a row edited by
hand must read back as it is, so that `verify` can show it. Edge cases of writing, handled here:
- an integer beyond 64 bits: orjson cannot encode one, so the standard library does, digit for digit;
- NaN and infinities: orjson would write null. None reaches here: the boundary checks refuse them
  (`_inputs.plain_data`) and the store's own values hold no floats.

JSON from outside (a command line, a script line, a plan or an exported definition in a file) is read
by `read_outside`, which bounds each integer literal by its digits before converting it: Python would spend time
quadratic in the digits on it, and refuses one over 4,300 digits with a bare ValueError.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from claimstate._errors import InvalidInput

MAX_DIGITS = 100  # an integer literal's digits in JSON from outside (no accepted number needs 20)
_EXACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def encode(value: Any) -> str:
    """`value` as compact JSON text; TypeError or ValueError for what JSON cannot carry."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        return _EXACT.encode(value)


decode = json.loads
"""The value of JSON text, every integer exact."""


def read_outside(text: str, field: str) -> Any:
    """The value of JSON text from outside; InvalidInput naming `field` says what is wrong with it: not
    JSON (where), nested too deeply, or an integer literal of more than MAX_DIGITS digits."""

    def whole(literal: str) -> int:
        if len(literal.lstrip("-")) > MAX_DIGITS:
            raise InvalidInput(
                f"an integer of {len(literal.lstrip('-')):,} digits; JSON read here holds at most {MAX_DIGITS}",
                field=field,
            )
        return int(literal)

    try:
        return json.loads(text, parse_int=whole)
    except json.JSONDecodeError as error:
        where = f"line {error.lineno}, column {error.colno}" if "\n" in text.strip() else f"column {error.colno}"
        raise InvalidInput(f"not JSON: {error.msg} at {where}", field=field) from None
    except RecursionError:
        raise InvalidInput("nested too deeply to read", field=field) from None
