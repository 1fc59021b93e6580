"""The domain values: money, actors, and claims that survive a round trip through plain data."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from helpers import T0, filing

from claimstate import Actor, Claim, Engine, InvalidInput, Money, Offer

# --- Money -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("25.00", "USD", 2500),
        ("25", "USD", 2500),
        ("25.5", "USD", 2550),
        ("0.01", "USD", 1),
        ("0", "USD", 0),
        ("1234567.89", "EUR", 123456789),
        ("100", "JPY", 100),
        ("1.234", "KWD", 1234),
        ("1.5", "KWD", 1500),
        ("7", "KWD", 7000),
        ("1.2345", "CLF", 12345),
    ],
)
def test_money_parses_decimal_strings_into_minor_units(text, currency, minor):
    """A decimal string becomes a whole number of the currency's minor units."""
    money = Money.parse(text, currency)
    assert money == Money(minor, currency)
    assert money.minor == minor
    assert money.currency == currency


@pytest.mark.parametrize(
    ("text", "currency", "field"),
    [
        pytest.param(25.0, "USD", "amount", id="float"),
        pytest.param(25, "USD", "amount", id="int"),
        pytest.param(Decimal("25.00"), "USD", "amount", id="decimal-object"),
        pytest.param(None, "USD", "amount", id="none"),
        pytest.param("NaN", "USD", "amount", id="nan"),
        pytest.param("Infinity", "USD", "amount", id="infinity"),
        pytest.param("-1.00", "USD", "amount", id="negative"),
        pytest.param("1.234", "USD", "amount", id="too-many-decimals-usd"),
        pytest.param("1.5", "JPY", "amount", id="decimals-in-jpy"),
        pytest.param("1.2345", "KWD", "amount", id="too-many-decimals-kwd"),
        pytest.param("1e3", "USD", "amount", id="exponent"),
        pytest.param("", "USD", "amount", id="empty"),
        pytest.param("   ", "USD", "amount", id="blank"),
        pytest.param("1,000.00", "USD", "amount", id="thousands-separator"),
        pytest.param("25.00 USD", "USD", "amount", id="with-currency"),
        pytest.param("0x10", "USD", "amount", id="hex"),
        pytest.param("1" * 16, "USD", "amount", id="sixteen-digits"),
        pytest.param("1" * 4400, "USD", "amount", id="4400-digits"),
        pytest.param("10", "XXX", "currency", id="unknown-currency"),
        pytest.param("10", "usd", "currency", id="lowercase-currency"),
        pytest.param("10", "", "currency", id="empty-currency"),
        pytest.param("10", None, "currency", id="no-currency"),
    ],
)
def test_money_parse_refuses_malformed_amounts(text, currency, field):
    """Floats, NaN, negatives, excess decimals, exponents, blanks, unknown currencies: InvalidInput naming the field."""
    with pytest.raises(InvalidInput) as caught:
        Money.parse(text, currency)
    assert caught.value.field == field


def test_money_parse_takes_fifteen_digits_and_says_why_not_more():
    """Up to 15 whole digits are exact; more are refused saying so, and a huge text is not echoed whole."""
    assert Money.parse("9" * 15 + ".99", "USD").minor == 10**17 - 1
    with pytest.raises(InvalidInput, match="more than 15 digits"):
        Money.parse("1" * 16, "USD")
    with pytest.raises(InvalidInput) as caught:
        Money.parse("1" * 4400, "USD")
    assert "(4400 characters)" in str(caught.value)
    assert len(str(caught.value)) < 200


def test_money_parse_names_the_callers_field():
    """A refused amount names the field the caller passed, e.g. refund_amount."""
    with pytest.raises(InvalidInput) as caught:
        Money.parse("-5", "USD", field="refund_amount")
    assert caught.value.field == "refund_amount"


@pytest.mark.parametrize(
    ("minor", "currency"),
    [
        pytest.param(-1, "USD", id="negative"),
        pytest.param(True, "USD", id="bool"),
        pytest.param(1, "XXX", id="currency"),
    ],
)
def test_money_constructor_refuses_invalid_values(minor, currency):
    """Money itself refuses a negative or boolean amount and an unknown currency."""
    with pytest.raises(InvalidInput) as caught:
        Money(minor, currency)
    assert caught.value.field in {"amount", "currency"}


@pytest.mark.parametrize(
    ("money", "text", "formatted", "amount"),
    [
        (Money(2500, "USD"), "25.00", "25.00 USD", Decimal("25.00")),
        (Money(5, "USD"), "0.05", "0.05 USD", Decimal("0.05")),
        (Money(0, "EUR"), "0.00", "0.00 EUR", Decimal("0.00")),
        (Money(100, "JPY"), "100", "100 JPY", Decimal(100)),
        (Money(1234, "KWD"), "1.234", "1.234 KWD", Decimal("1.234")),
        (Money(12345, "CLF"), "1.2345", "1.2345 CLF", Decimal("1.2345")),
    ],
)
def test_money_str_and_format(money, text, formatted, amount):
    """str() gives the currency's own decimals, format() adds the code, amount is the exact Decimal."""
    assert str(money) == text
    assert money.format() == formatted
    assert money.amount == amount
    assert Money.parse(str(money), money.currency) == money


def test_money_comparisons_within_one_currency():
    """Amounts of one currency compare by value and are equal when their minor units are."""
    small, large = Money.parse("9.99", "USD"), Money.parse("10", "USD")
    assert small < large
    assert small <= large
    assert large > small
    assert large >= small
    assert small <= Money(999, "USD")
    assert small >= Money(999, "USD")
    assert small == Money(999, "USD")
    assert small != large
    assert sorted([large, small]) == [small, large]
    assert len({Money(999, "USD"), Money.parse("9.99", "USD")}) == 1


def test_money_of_different_currencies_are_not_equal():
    """The same minor units in two currencies are not equal."""
    assert Money(2500, "USD") != Money(2500, "EUR")


@pytest.mark.parametrize(
    "compare",
    [
        pytest.param(lambda a, b: a < b, id="lt"),
        pytest.param(lambda a, b: a <= b, id="le"),
        pytest.param(lambda a, b: a > b, id="gt"),
        pytest.param(lambda a, b: a >= b, id="ge"),
    ],
)
def test_money_ordering_across_currencies_is_refused(compare):
    """Ordering amounts of two currencies raises InvalidInput naming the currency."""
    with pytest.raises(InvalidInput) as caught:
        compare(Money(2500, "USD"), Money(2500, "EUR"))
    assert caught.value.field == "currency"


# --- Actor -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "role", "ident"),
    [
        ("buyer:alice", "buyer", "alice"),
        ("supplier:acme", "supplier", "acme"),
        ("agent:kim", "agent", "kim"),
        ("system", "system", None),
        ("buyer:alice.b+claims@example.com", "buyer", "alice.b+claims@example.com"),
    ],
)
def test_actor_parses_role_and_id(text, role, ident):
    """role:id strings (and the bare system) parse into an Actor that prints back as the same text."""
    actor = Actor.parse(text)
    assert (actor.role, actor.id) == (role, ident)
    assert str(actor) == text
    assert Actor.parse(actor) is actor


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("system:x", id="system-with-id"),
        pytest.param("system:", id="system-with-empty-id"),
        pytest.param("boss:x", id="unknown-role"),
        pytest.param("Buyer:alice", id="capitalised-role"),
        pytest.param("buyer:", id="empty-id"),
        pytest.param("buyer", id="no-id"),
        pytest.param("buyer:al ice", id="space-in-id"),
        pytest.param("buyer:alice:x", id="colon-in-id"),
        pytest.param(":alice", id="no-role"),
        pytest.param("", id="empty"),
        pytest.param(42, id="int"),
        pytest.param(None, id="none"),
    ],
)
def test_actor_parse_refuses_malformed_actors(text):
    """Malformed actors raise InvalidInput naming the actor field."""
    with pytest.raises(InvalidInput) as caught:
        Actor.parse(text)
    assert caught.value.field == "actor"


# --- Claim round trip --------------------------------------------------------------------------------------

PLUS_TWO = timezone(timedelta(hours=2))
BUYER, SUPPLIER, AGENT, SYSTEM = "buyer:alice", "supplier:acme", "agent:kim", "system"


Step = tuple[str, str, dict[str, Any] | None, timedelta]

# A full refund settled by agreement: evidence from both sides, a rejected then an accepted offer, the
# return address, the shipment with its cost, the deadlines it sets, and the refund.
FULL_REFUND_STEPS: list[Step] = [
    (
        "submit_evidence",
        BUYER,
        {"evidence": [{"kind": "photo", "description": "cracked lid", "document": "lid.jpg"}]},
        timedelta(hours=1),
    ),
    (
        "submit_evidence",
        SUPPLIER,
        {"evidence": [{"kind": "shipping", "description": "packed with care"}]},
        timedelta(hours=2),
    ),
    ("make_offer", SUPPLIER, {"kind": "partial_refund", "amount": "5.00"}, timedelta(hours=3)),
    ("reject_offer", BUYER, {"note": "too little"}, timedelta(hours=4)),
    ("make_offer", BUYER, {"kind": "full_refund", "amount": "25.00"}, timedelta(hours=5)),
    ("accept_offer", SUPPLIER, None, timedelta(hours=6)),
    ("cancel_claim", BUYER, None, timedelta(hours=7)),
    ("approve_cancellation", AGENT, None, timedelta(days=1)),
    ("confirm_return_address", SUPPLIER, {"address": "1 Dock Rd, Shenzhen"}, timedelta(days=2)),
    (
        "ship_return",
        BUYER,
        {"carrier": "DHL", "tracking_number": "JD0001", "shipping_cost": "4.50"},
        timedelta(days=3),
    ),
    ("confirm_return_received", SUPPLIER, None, timedelta(days=10)),
]

# A partial refund in a three-decimal currency, paid by the clock when the supplier does not respond.
PARTIAL_REFUND_STEPS: list[Step] = [
    ("submit_evidence", BUYER, {"evidence": [{"kind": "order", "description": "order page"}]}, timedelta(hours=1)),
    ("request_supplier_response", AGENT, {"question": "tracking?"}, timedelta(hours=2)),
    ("response_deadline", SYSTEM, None, timedelta(hours=2, days=5)),
]


def walk(filing_data: dict[str, Any], steps: list[Step]) -> list[Claim]:
    """File a claim and fire each step at T0 + its offset (given in UTC+2); return every version."""
    engine = Engine()
    claims = [engine.file_claim("c-1", BUYER, filing_data, T0.astimezone(PLUS_TWO)).claim]
    for trigger, actor, data, offset in steps:
        claims.append(engine.fire(claims[-1], trigger, actor, data, (T0 + offset).astimezone(PLUS_TWO)).claim)
    return claims


SCENARIOS = {
    "full-refund-usd": (filing(), FULL_REFUND_STEPS),
    "partial-refund-kwd": (
        filing(currency="KWD", amount="12.500", resolution="partial_refund", refund_amount="5.250"),
        PARTIAL_REFUND_STEPS,
    ),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_claim_round_trips_through_plain_data_at_every_step(scenario):
    """Every version of a claim walked through the engine survives to_dict -> JSON -> from_dict unchanged."""
    filing_data, steps = SCENARIOS[scenario]
    claims = walk(filing_data, steps)
    assert [c.version for c in claims] == list(range(1, len(steps) + 2))
    for claim in claims:
        data = claim.to_dict()
        assert json.loads(json.dumps(data)) == data
        restored = Claim.from_dict(json.loads(json.dumps(data)))
        assert restored == claim
        assert restored.to_dict() == data


def test_full_refund_claim_carries_every_detail_through_the_round_trip():
    """Evidence, offers, agreement, return address, shipment, deadline and refund all come back from plain data."""
    claims = walk(filing(), FULL_REFUND_STEPS)
    in_transit = Claim.from_dict(claims[-2].to_dict())
    assert in_transit.state == "return_in_transit"
    assert in_transit.deadline is not None
    assert (in_transit.deadline.name, in_transit.deadline.trigger) == ("receipt_due", "receipt_deadline")
    assert in_transit.deadline.due == T0 + timedelta(days=3) + timedelta(days=15)

    final = Claim.from_dict(claims[-1].to_dict())
    assert final.state == "refunded_full"
    assert final.deadline is None
    assert final.refund == Money(2500, "USD")
    assert [(e.by, e.kind, e.document) for e in final.evidence] == [
        ("buyer", "photo", "lid.jpg"),
        ("supplier", "shipping", None),
    ]
    assert [(o.number, o.by, o.kind, o.amount, o.status) for o in final.offers] == [
        (1, "supplier", "partial_refund", Money(500, "USD"), "rejected"),
        (2, "buyer", "full_refund", Money(2500, "USD"), "accepted"),
    ]
    assert final.agreement == Offer(2, "buyer", "full_refund", Money(2500, "USD"), T0 + timedelta(hours=5), "accepted")
    assert final.return_address == "1 Dock Rd, Shenzhen"
    assert final.shipment is not None
    assert (final.shipment.carrier, final.shipment.tracking_number) == ("DHL", "JD0001")
    assert final.shipment.shipping_cost == Money(450, "USD")
    assert final.shipment.shipped_at == T0 + timedelta(days=3)


def test_claim_to_dict_uses_decimal_strings_and_utc_times():
    """to_dict() writes amounts as decimal strings and times as ISO 8601 in UTC, whatever zone they came in."""
    data = walk(filing(), FULL_REFUND_STEPS)[-1].to_dict()
    assert (data["amount"], data["currency"], data["refund"]) == ("25.00", "USD", "25.00")
    assert data["agreement"] == 2
    assert data["filed_at"] == "2026-03-02T09:00:00.000000+00:00"
    assert data["updated_at"] == "2026-03-12T09:00:00.000000+00:00"
    assert data["shipment"] == {
        "carrier": "DHL",
        "tracking_number": "JD0001",
        "shipping_cost": "4.50",
        "shipped_at": "2026-03-05T09:00:00.000000+00:00",
    }
    assert [o["amount"] for o in data["offers"]] == ["5.00", "25.00"]
    assert (data["deadline_name"], data["deadline_trigger"], data["deadline_at"]) == (None, None, None)


def test_partial_refund_claim_keeps_three_decimal_amounts():
    """A KWD claim refunded by the response deadline keeps its amounts exact through the round trip."""
    claims = walk(*SCENARIOS["partial-refund-kwd"])
    asked = Claim.from_dict(claims[-2].to_dict())
    assert asked.state == "awaiting_supplier_response"
    assert asked.deadline is not None
    assert asked.deadline.due == T0 + timedelta(hours=2, days=5)
    final = Claim.from_dict(claims[-1].to_dict())
    assert final.state == "refunded_partial"
    assert final.amount == Money(12500, "KWD")
    assert final.refund_amount == Money(5250, "KWD")
    assert final.refund == Money(5250, "KWD")
    assert final.to_dict()["refund"] == "5.250"


@pytest.mark.parametrize(
    "now",
    [
        pytest.param(datetime(2026, 3, 2, 10, 0), id="naive"),
        pytest.param("2026-03-02T10:00:00+00:00", id="string"),
        pytest.param(None, id="none"),
    ],
)
def test_engine_fire_needs_a_timezone_aware_time(now):
    """Firing with a naive datetime (or no datetime at all) raises InvalidInput naming the now field."""
    claim = Engine().file_claim("c-1", BUYER, filing(), T0).claim
    with pytest.raises(InvalidInput) as caught:
        Engine().fire(claim, "submit_evidence", BUYER, {"evidence": [{"kind": "other", "description": "x"}]}, now)
    assert caught.value.field == "now"


def test_engine_file_needs_a_timezone_aware_time():
    """Filing with a naive datetime raises InvalidInput naming the now field."""
    with pytest.raises(InvalidInput) as caught:
        Engine().file_claim("c-1", BUYER, filing(), datetime(2026, 3, 2, 9, 0))
    assert caught.value.field == "now"


def test_claim_from_dict_refuses_naive_times():
    """A stored claim whose time has no timezone is refused rather than guessed."""
    data = Engine().file_claim("c-1", BUYER, filing(), T0).claim.to_dict()
    data["filed_at"] = "2026-03-02T09:00:00"
    with pytest.raises(InvalidInput):
        Claim.from_dict(data)
