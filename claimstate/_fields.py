"""Ready-made data fields for a definition's triggers: text, a choice among words, an amount of money.

Each parses the caller's JSON value into a domain value, or raises InvalidInput naming the field, and
declares beside its parser the JSON Schema of the values it accepts (`claimstate._schema`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from claimstate._claim import Claim
from claimstate._definition import CURRENCY_FIELD, Field, Limits
from claimstate._errors import InvalidInput
from claimstate._money import CURRENCY_EXPONENTS, Money, parse_currency
from claimstate._schema import amount_schema, text_schema


def checked_text(value: object, name: str) -> str:
    """`value` if it is a string (the engine has already bounded its length and checked its Unicode)."""
    if not isinstance(value, str):
        raise InvalidInput(f"expected text, not {value!r}", field=name)
    return value


def text(name: str, description: str, *, required: bool = True, blank_ok: bool = False) -> Field:
    """A text field; unless `blank_ok`, it must say something (blank ones are judged by a guard instead)."""

    def parse(value: object, _parsed: Mapping[str, Any], _claim: Claim | None) -> str:
        result = checked_text(value, name)
        if not blank_ok and not result.strip():
            raise InvalidInput("must not be empty", field=name)
        return result

    def schema(limits: Limits, _decimals: int | None) -> dict[str, Any]:
        return text_schema(limits.text, blank_ok=blank_ok)

    return Field(name=name, description=description, parse=parse, required=required, schema=schema)


def choice(name: str, description: str, options: tuple[str, ...]) -> Field:
    """One of `options`."""

    def parse(value: object, _parsed: Mapping[str, Any], _claim: Claim | None) -> str:
        if value not in options:
            raise InvalidInput(f"{value!r} is not one of {', '.join(options)}", field=name)
        return str(value)

    return Field(name=name, description=description, parse=parse,
                 schema=lambda _limits, _decimals: {"type": "string", "enum": list(options)})  # fmt: skip


def money(name: str, description: str, *, required: bool = True) -> Field:
    """A decimal string in the claim's currency (while filing, the `currency` field's)."""

    def parse(value: object, parsed: Mapping[str, Any], claim: Claim | None) -> Money:
        currency = claim.amount.currency if claim is not None else parsed.get(CURRENCY_FIELD, "")
        return Money.parse(value, currency, field=name)

    def schema(limits: Limits, decimals: int | None) -> dict[str, Any]:
        return amount_schema(limits.text, decimals)

    return Field(name=name, description=description, parse=parse, required=required, schema=schema, in_currency=True)


def currency(name: str, description: str) -> Field:
    """An ISO 4217 currency code."""
    return Field(name=name, description=description, parse=lambda value, _parsed, _claim: parse_currency(value),
                 schema=lambda _limits, _decimals: {"type": "string", "enum": sorted(CURRENCY_EXPONENTS)})  # fmt: skip
