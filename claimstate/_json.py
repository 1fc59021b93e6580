"""JSON as the store writes and reads it.

Writing uses orjson, several times faster than the standard library on the hot path, where every fire
encodes a whole claim: compact UTF-8 JSON that any reader reads. Reading uses the standard library,
which is exact for every integer, where orjson turns one beyond 64 bits into a float; a row edited by
hand must read back as it is, so that `verify` can show it. Edge cases of writing, handled here:
- an integer beyond 64 bits: orjson cannot encode one, so the standard library does, digit for digit;
- NaN and infinities: orjson would write null. None reaches here: the boundary checks refuse them
  (`_checks.plain_data`) and the store's own values hold no floats.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_EXACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def encode(value: Any) -> str:
    """`value` as compact JSON text; TypeError or ValueError for what JSON cannot carry."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        return _EXACT.encode(value)


decode = json.loads
"""The value of JSON text, every integer exact."""
