"""The fast paths of a fire (issue 10) decide exactly as the full checks they stand in front of.

Each quick path is compared with a reference over many generated inputs: the JSON coder with the
standard library, Money's quick parse with its written rule, and the benchmark's floor and contender
with the rows the service writes.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claimstate import ClaimService, InvalidInput
from claimstate._json import decode, encode
from claimstate._money import CURRENCY_EXPONENTS, MAX_DIGITS, Money

sys.path.insert(0, str(Path(__file__).parent))
import bench_store  # a script beside the tests, not a package

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
JSON = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
)


@given(JSON)
def test_encode_decode_round_trips_every_json_value_exactly(value):
    text = encode(value)
    assert decode(text) == json.loads(text) == value


def test_integers_beyond_64_bits_are_encoded_exactly():
    """orjson refuses them; the standard library writes them, digit for digit."""
    value = {"n": 2**70, "m": -(2**64), "edge": 2**63 - 1}
    text = encode(value)
    assert text == '{"n":1180591620717411303424,"m":-18446744073709551616,"edge":9223372036854775807}'
    assert json.loads(text) == value


def test_integers_beyond_64_bits_read_back_exactly():
    """A row edited by hand may hold one; it must read as written (orjson would read a float)."""
    assert decode('{"version": 123456789012345678901234567890}') == {"version": 123456789012345678901234567890}


def test_stored_json_is_compact_readable_utf8():
    assert encode({"reason": "écran cassé", "n": [1, 2]}) == '{"reason":"écran cassé","n":[1,2]}'


AMOUNTS = st.text(alphabet="0123456789. -+e", max_size=2 * MAX_DIGITS + 4)


def _written_rule(text: str, currency: str) -> int | None:
    """Money.parse's rule in words: digits, optionally a point and digits, surrounding blanks allowed, at
    most MAX_DIGITS significant whole digits and at most the currency's decimals (trailing zeros aside)."""
    stripped = text.strip()
    units, point, fraction = stripped.partition(".")
    if not units.isdigit() or (point and not fraction.isdigit()) or len(units.lstrip("0")) > MAX_DIGITS:
        return None
    exponent = CURRENCY_EXPONENTS[currency]
    if len(fraction.rstrip("0")) > exponent:
        return None
    return int(Decimal(stripped).scaleb(exponent))


@settings(max_examples=500)
@given(AMOUNTS, st.sampled_from(["JPY", "USD", "BHD", "CLF"]))
def test_money_parse_follows_its_written_rule(text, currency):
    expected = _written_rule(text, currency)
    if expected is None:
        with pytest.raises(InvalidInput):
            Money.parse(text, currency)
    else:
        assert Money.parse(text, currency) == Money(expected, currency)


@given(st.integers(min_value=0, max_value=10 ** (MAX_DIGITS + 2) - 1), st.sampled_from(["JPY", "USD", "BHD"]))
def test_money_reads_back_what_it_writes(minor, currency):
    money = Money(minor, currency)
    if len(str(minor // 10 ** CURRENCY_EXPONENTS[currency])) > MAX_DIGITS:
        with pytest.raises(InvalidInput):
            Money.parse(str(money), currency)
    else:
        assert Money.parse(str(money), currency) == money


def _without_ids(text: str) -> dict[str, object]:
    """A JSON object of a row, but the claim's id and order (the floor writes one claim's bytes for all)."""
    return {k: v for k, v in json.loads(text).items() if k not in ("id", "order_id")}


def _rows(path: Path) -> tuple[list[tuple[object, ...]], ...]:
    """Every claims row (details decoded, ids left out), history row (the hash left out) and event row (its
    position and when it entered the feed left out; the claim decoded, ids left out)."""
    conn = sqlite3.connect(path)
    try:
        claims = [
            (*row[:-1], _without_ids(row[-1]))
            for row in conn.execute(
                "SELECT state, version, closed, order_id, updated_at, deadline_at, deadline_trigger, details"
                " FROM claims ORDER BY id"
            )
        ]
        history = conn.execute(
            "SELECT claim_id, seq, trigger, from_state, to_state, actor, at, data, deadline_at FROM transitions"
            " ORDER BY claim_id, seq"
        ).fetchall()
        events = [
            (*row[:-1], _without_ids(row[-1]))
            for row in conn.execute(
                "SELECT lane, lane_seq, claim_id, seq, trigger, from_state, to_state, actor, at, data, claim"
                " FROM events WHERE entered_at IS NOT NULL ORDER BY lane, lane_seq"
            )
        ]
    finally:
        conn.close()
    return claims, [(*row[:7], json.loads(row[7]), row[8]) for row in history], events


@pytest.mark.parametrize("batched", [False, True])
def test_the_benchmark_floor_and_contender_write_the_rows_the_service_writes(tmp_path, batched):
    """Their ratios mean something only if all three do the same work on the database: the claims row, the
    history row and the event row of every transition."""
    written = {}
    for name, walk in (
        ("raw", bench_store.raw_walk),
        ("contender", bench_store.contender_walk),
        ("service", bench_store.service_walk),
    ):
        path = tmp_path / f"{name}.db"
        ids = bench_store.seed(path, 3, filed=True)
        assert walk(path, ids, batched=batched) > 0
        written[name] = _rows(path)
    assert written["raw"] == written["contender"] == written["service"]
    claims, history, events = written["service"]
    assert [c[0] for c in claims] == ["refunded_partial"] * 3
    assert len(history) == 3 * (1 + len(bench_store.PATH))
    assert len(events) == 3 * len(bench_store.PATH)  # the seeded filings have none: only the walk's
    assert {e[-1]["closed"] for e in events} == {False, True}
    with ClaimService(tmp_path / "service.db") as service:
        assert service.verify() == []
