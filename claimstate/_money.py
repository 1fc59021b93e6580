"""Money as integer minor units with an ISO 4217 currency, so no amount is ever a float."""

from __future__ import annotations

import re
from decimal import Decimal

import attrs

from claimstate._errors import InvalidInput

# ISO 4217 active codes by the number of minor-unit digits; every code not listed under 0, 3 or 4
# has 2. Kept as data here: a currency table is small and stable, not worth a dependency.
_EXPONENT_0 = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_EXPONENT_3 = "BHD IQD JOD KWD LYD OMR TND"
_EXPONENT_4 = "CLF UYW"
_EXPONENT_2 = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP BYN"
    " BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP"
    " GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP"
    " LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR"
    " NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN"
    " SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED VES WST XCD XCG YER ZAR"
    " ZMW ZWG"
)
CURRENCY_EXPONENTS: dict[str, int] = {
    code: exponent
    for exponent, codes in ((0, _EXPONENT_0), (2, _EXPONENT_2), (3, _EXPONENT_3), (4, _EXPONENT_4))
    for code in codes.split()
}
_SCALES = {exponent: 10**exponent for exponent in set(CURRENCY_EXPONENTS.values())}
_DECIMAL = re.compile(r"(?P<units>[0-9]+)(?:\.(?P<fraction>[0-9]+))?")
MAX_DIGITS = 15  # whole units: far above any order, and exact as an integer anywhere


def parse_currency(code: object) -> str:
    """Return an ISO 4217 code, or refuse it by name."""
    if not isinstance(code, str) or code not in CURRENCY_EXPONENTS:
        raise InvalidInput(f"{code!r} is not an ISO 4217 currency code", field="currency")
    return code


@attrs.frozen(order=False)
class Money:
    """An amount as a whole number of the currency's minor units (cents for USD, yen for JPY)."""

    minor: int = attrs.field()
    currency: str = attrs.field(converter=parse_currency)

    @minor.validator
    def _whole_and_not_negative(self, _attribute: object, value: object) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InvalidInput(f"minor units must be a whole number of at least 0, not {value!r}", field="amount")

    @classmethod
    def parse(cls, text: object, currency: str, *, field: str = "amount") -> Money:
        """Parse a decimal string such as ``"25.00"``; floats, NaN, negatives and excess decimals are refused."""
        currency = parse_currency(currency)
        exponent = CURRENCY_EXPONENTS[currency]
        if isinstance(text, str) and text.isascii():  # the form str() writes, which every stored amount has
            units, point, fraction = text.partition(".")
            if (
                units.isdigit()
                and len(units) <= MAX_DIGITS
                and (fraction.isdigit() and len(fraction) == exponent if point else not exponent)
            ):
                return cls(int(units + fraction), currency)
        if not isinstance(text, str):
            raise InvalidInput(
                f"give the amount as a decimal string like '25.00', not {type(text).__name__} {text!r}",
                field=field,
            )
        match = _DECIMAL.fullmatch(text.strip()) if len(text) <= 2 * MAX_DIGITS + 2 else None
        if match is None:
            shown = text if len(text) <= 40 else f"{text[:20]}... ({len(text)} characters)"
            raise InvalidInput(f"{shown!r} is not a non-negative decimal amount", field=field)
        if len(match["units"].lstrip("0")) > MAX_DIGITS:
            raise InvalidInput(f"{text!r} has more than {MAX_DIGITS} digits before the point", field=field)
        fraction = (match["fraction"] or "").rstrip("0")
        if len(fraction) > exponent:
            raise InvalidInput(f"{text!r} has more decimals than {currency} allows ({exponent})", field=field)
        return cls(int(match["units"]) * 10**exponent + int(fraction.ljust(exponent, "0") or 0), currency)

    @property
    def amount(self) -> Decimal:
        """The value in major units, exact."""
        return Decimal(self.minor).scaleb(-CURRENCY_EXPONENTS[self.currency])

    def __str__(self) -> str:
        """The decimal string with the currency's own number of decimals, e.g. ``"25.00"``."""
        exponent = CURRENCY_EXPONENTS[self.currency]
        if not exponent:
            return str(self.minor)
        units, fraction = divmod(self.minor, _SCALES[exponent])
        return f"{units}.{fraction:0{exponent}d}"

    def format(self) -> str:
        """For people: ``"25.00 USD"``."""
        return f"{self} {self.currency}"

    def _minor_of(self, other: object) -> int:
        """The other amount's minor units, refusing another currency; TypeError for what is not Money."""
        if not isinstance(other, Money):
            raise TypeError(f"cannot compare Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise InvalidInput(f"cannot compare {self.currency} with {other.currency}", field="currency")
        return other.minor

    def __lt__(self, other: object) -> bool:
        return self.minor < self._minor_of(other)

    def __le__(self, other: object) -> bool:
        return self.minor <= self._minor_of(other)

    def __gt__(self, other: object) -> bool:
        return self.minor > self._minor_of(other)

    def __ge__(self, other: object) -> bool:
        return self.minor >= self._minor_of(other)
