"""The JSON Schema of each trigger's data and the engine agree, both ways.

Data drawn from a trigger's schema is never refused by the engine as invalid input; data the engine refuses
as invalid input is refused by the schema; and what the schema refuses the engine refuses too. Schemas are
judged by jsonschema-rs, which reads patterns as ECMA-262 (the dialect JSON Schema names), and drawn by a
small generator below that reads nothing but the schema.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema_rs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claimstate import CLAIM_LIFECYCLE, Claim, Engine, InvalidInput, TransitionRefused
from claimstate._check.examples import default_examples
from claimstate._check.explore import explore
from claimstate._schema import WHITESPACE

ENGINE = Engine(CLAIM_LIFECYCLE)
FILING = CLAIM_LIFECYCLE.creation.trigger
ACTORS = ("buyer:alice", "supplier:acme", "agent:kim", "system")
BASE = {"order_id": "o-1", "buyer_id": "alice", "supplier_id": "acme", "currency": "USD", "amount": "49.90",
        "reason": "arrived broken", "resolution": "full_refund"}  # fmt: skip
SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                          HealthCheck.filter_too_much])  # fmt: skip


@functools.cache
def schema_of(trigger: str, currency: str | None = None) -> dict[str, Any]:
    return CLAIM_LIFECYCLE.json_schema(currency=currency)["$defs"][trigger]


@functools.cache
def validator(trigger: str, currency: str | None = None) -> Any:
    return jsonschema_rs.validator_for(schema_of(trigger, currency))


# --- drawing values from a schema: only the keywords the definition's schemas use, the others refused ---

_READ = {"type", "enum", "pattern", "maxLength", "items", "maxItems", "properties", "required",
         "additionalProperties", "anyOf", "allOf", "description", "title"}  # fmt: skip


def drawn(schema: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    unknown = set(schema) - _READ
    assert not unknown, f"the generator does not read {unknown}: teach it before trusting it"
    if "anyOf" in schema:
        return st.one_of([drawn(branch) for branch in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "null":
        return st.none()
    if kind == "string":
        text = st.from_regex(schema["pattern"]) if "pattern" in schema else st.text()
        return text.filter(lambda s: len(s) <= schema.get("maxLength", sys.maxsize))
    if kind == "array":
        return st.lists(drawn(schema["items"]), max_size=min(schema.get("maxItems", 5), 5))
    assert kind == "object", schema
    properties = schema["properties"]
    required = set(schema["required"])
    whole = st.fixed_dictionaries(
        {k: drawn(v) for k, v in properties.items() if k in required},
        optional={k: drawn(v) for k, v in properties.items() if k not in required},
    )
    return whole.flatmap(lambda value: _conditioned(value, schema.get("allOf", ())))


def _conditioned(value: dict[str, Any], clauses: Any) -> st.SearchStrategy[dict[str, Any]]:
    """Where an `if` holds of the drawn object, its `then` properties drawn again from the `then` schemas."""
    for clause in clauses:
        assert set(clause) == {"if", "then"}, clause
        if jsonschema_rs.is_valid(clause["if"], value):
            then = clause["then"]["properties"]
            again = {k: drawn(v) for k, v in then.items() if k in value}
            return st.fixed_dictionaries(again).map(lambda redrawn: {**value, **redrawn})
    return st.just(value)


@functools.cache
def from_schema(trigger: str, currency: str | None = None) -> st.SearchStrategy[dict[str, Any]]:
    return drawn(schema_of(trigger, currency)).filter(validator(trigger, currency).is_valid)


# --- the claims each trigger is fired on: every situation `check` reaches, in three currencies ---


@functools.cache
def explored() -> list[Claim]:
    """Every situation `check` reaches, from filings in USD, JPY (no decimals) and KWD (three)."""
    examples = default_examples(CLAIM_LIFECYCLE)
    usd = examples[FILING]
    found: list[Claim] = []
    for currency, amounts in (("USD", {}), ("JPY", {"amount": "2500", "refund_amount": "1000"}),
                              ("KWD", {"amount": "25.000", "refund_amount": "10.000"})):  # fmt: skip
        examples[FILING] = tuple({**f, "currency": currency, **{k: v for k, v in amounts.items() if k in f}}
                                 for f in usd)  # fmt: skip
        found += explore(CLAIM_LIFECYCLE, examples).claims
    return found


@functools.cache
def firings() -> dict[str, list[tuple[Claim, str]]]:
    """For each trigger, (claim, actor) pairs where `actor` may fire it on the claim as far as state and
    permission go: one per state, currency and actor."""
    found: dict[str, list[tuple[Claim, str]]] = {}
    seen = set()
    for claim in explored():
        for actor in ACTORS:
            for a in ENGINE.available(claim, actor, claim.updated_at + timedelta(minutes=1)):
                key = (a.trigger, claim.state, claim.amount.currency, actor)
                if key not in seen and not {r.kind for r in a.reasons} & {"state", "permission"}:
                    seen.add(key)
                    found.setdefault(a.trigger, []).append((claim, actor))
    return found


def claims_taking(trigger: str) -> list[tuple[Claim, str]]:
    return firings().get(trigger, [])


def engine_verdict(trigger: str, data: Any, claim: Claim | None = None, actor: str | None = None) -> str:
    """ "ok", "invalid" (InvalidInput) or "refused" (TransitionRefused: a rule, not the data's form)."""
    try:
        if claim is None:
            buyer = data.get("buyer_id") if isinstance(data, dict) else None
            filer = f"buyer:{buyer}" if isinstance(buyer, str) and buyer.isalnum() else "buyer:alice"
            ENGINE.file_claim("c-1", filer, data, BASE_TIME)
        else:
            assert actor is not None
            ENGINE.fire(claim, trigger, actor, data, claim.updated_at + timedelta(minutes=1))
    except InvalidInput:
        return "invalid"
    except TransitionRefused:
        return "refused"
    return "ok"


BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)


# --- the seven probes of the issue: where hand-written schemas and the engine disagreed ---

PROBES = [
    ({"amount": "49.901"}, False),  # more decimals than USD has
    ({"currency": "JPY", "amount": "100.50"}, False),  # the yen has none
    ({"currency": "XYZ"}, False),  # no ISO 4217 code
    ({"reason": "   "}, False),  # blank
    ({"amount": " 49.90 "}, True),  # blanks around an amount are read away
    ({"resolution": "partial_refund", "refund_amount": None}, True),  # null: an optional field not given
    ({}, True),  # a plain, valid filing
]


@pytest.mark.parametrize(("change", "valid"), PROBES)
def test_the_seven_probes_agree(change: dict[str, Any], valid: bool) -> None:
    data = {**BASE, **change}
    assert validator(FILING).is_valid(data) is valid
    assert (engine_verdict(FILING, data) != "invalid") is valid


def test_a_claims_currency_sets_its_amounts_decimals() -> None:
    offer = {"kind": "partial_refund", "amount": "10.5"}
    assert validator("make_offer", "USD").is_valid(offer)
    assert not validator("make_offer", "JPY").is_valid(offer)
    assert validator("make_offer", "JPY").is_valid({**offer, "amount": "10.0"})
    assert validator("make_offer", "KWD").is_valid({**offer, "amount": "10.125"})
    assert validator("make_offer").is_valid({**offer, "amount": "10.1250"})  # any currency: up to 4 decimals
    with pytest.raises(InvalidInput, match="XYZ"):
        CLAIM_LIFECYCLE.json_schema(currency="XYZ")


def test_the_whitespace_spelled_out_is_what_python_strips() -> None:
    import re  # noqa: PLC0415

    spelled = re.compile(f"[{WHITESPACE}]")
    assert all(bool(spelled.fullmatch(chr(c))) == chr(c).isspace() for c in range(sys.maxunicode + 1))


def test_each_trigger_has_claims_to_fire_on() -> None:
    empty = [t for t in CLAIM_LIFECYCLE.triggers if t != FILING and not claims_taking(t)]
    assert not empty
    currencies = {
        claim.amount.currency for t in CLAIM_LIFECYCLE.triggers if t != FILING for claim, _ in claims_taking(t)
    }
    assert currencies == {"USD", "JPY", "KWD"}


@SETTINGS
@given(data=from_schema(FILING))
def test_filing_data_from_the_schema_is_never_invalid_to_the_engine(data: dict[str, Any]) -> None:
    assert engine_verdict(FILING, data) != "invalid", data


FIRED = [t for t in CLAIM_LIFECYCLE.triggers if t != FILING]


@pytest.mark.parametrize("trigger", FIRED)
@SETTINGS
@given(pick=st.data())
def test_trigger_data_from_the_schema_is_never_invalid_to_the_engine(trigger: str, pick: st.DataObject) -> None:
    claim, actor = pick.draw(st.sampled_from(claims_taking(trigger)))
    data = pick.draw(from_schema(trigger, claim.amount.currency))
    assert engine_verdict(trigger, data, claim, actor) != "invalid", data


# --- the other way: data near valid data, changed anyhow; the two judge it alike ---

_ODD = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12), st.sampled_from(["", " ", "\n", "49.90", "1.5", "USD", "JPY", "photo", "alice\n", "\x00"]),
    st.from_regex(f"[{WHITESPACE}]{{0,2}}[0-9]{{1,3}}(\\.[0-9]{{1,5}})?[{WHITESPACE}]{{0,2}}", fullmatch=True),
    st.lists(st.fixed_dictionaries({"kind": st.sampled_from(["photo", "x"]), "description": st.text(max_size=4)}),
             max_size=2),
)  # fmt: skip


def changed(valid: st.SearchStrategy[dict[str, Any]], names: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """A valid object with one field given an odd value, removed, or an unknown one added."""

    def change(value: dict[str, Any], how: str, name: str, odd: Any) -> dict[str, Any]:
        if how == "drop":
            return {k: v for k, v in value.items() if k != name}
        if how == "extra":
            return {**value, "unknown": odd}
        return {**value, name: odd}

    return st.builds(change, valid, st.sampled_from(["set", "set", "set", "drop", "extra"]), st.sampled_from(names),
                     _ODD)  # fmt: skip


def agree(schema_ok: bool, verdict: str, data: dict[str, Any], limit: int) -> None:
    if verdict == "invalid":
        assert not schema_ok, f"the engine refuses as invalid what the schema accepts: {data}"
    if not schema_ok:
        too_many = len(data.get("evidence") or ()) > limit if isinstance(data.get("evidence"), list) else False
        assert verdict == "invalid" or too_many, f"the schema refuses what the engine reads: {data} ({verdict})"


@SETTINGS
@given(data=changed(from_schema(FILING), list(schema_of(FILING)["properties"])))
def test_filing_data_the_engine_refuses_is_refused_by_the_schema(data: dict[str, Any]) -> None:
    agree(validator(FILING).is_valid(data), engine_verdict(FILING, data), data, sys.maxsize)


@pytest.mark.parametrize("trigger", [t for t in FIRED if CLAIM_LIFECYCLE.fields(t)])
@SETTINGS
@given(pick=st.data())
def test_trigger_data_the_engine_refuses_is_refused_by_the_schema(trigger: str, pick: st.DataObject) -> None:
    claim, actor = pick.draw(st.sampled_from(claims_taking(trigger)))
    currency = claim.amount.currency
    names = list(schema_of(trigger)["properties"])
    data = pick.draw(changed(from_schema(trigger, currency), names))
    limit = ENGINE.policy.limits.evidence_per_fire
    agree(validator(trigger, currency).is_valid(data), engine_verdict(trigger, data, claim, actor), data, limit)
