"""Money arithmetic: exact Decimals, rounded half-up to the currency's minor unit only when shown or stored."""
from __future__ import annotations

from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal

ZERO = Decimal(0)

# ISO 4217 minor units that differ from 2; every other currency code uses 2.
_MINOR_UNITS = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
    "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    "CLF": 4, "UYW": 4,
}

#: The store keeps money in integer units of 10**-STORE_SCALE, enough for every ISO currency.
STORE_SCALE = 4


def minor_unit(currency: str) -> int:
    """Number of decimal places of the currency (2 unless ISO 4217 says otherwise)."""
    return _MINOR_UNITS.get(currency.upper(), 2)


_QUANTUM: dict[str, Decimal] = {}
#: Monthly prices of yearly and quarterly prices are carried to 12 places (engine.activation):
#: twelve months of 0.145 a year come back as 0.144999999996, which half-up rounding would turn
#: into 0.14. The cut is at most a few 1e-12 of any figure made from such prices, so amounts are
#: first brought to nine places, which restores the exact figure, then rounded to the currency.
_SNAP = Decimal("1e-9")


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Round half-up to the currency's minor unit."""
    quantum = _QUANTUM.get(currency)
    if quantum is None:  # one Decimal per currency, not one per amount (this runs millions of times)
        quantum = _QUANTUM[currency] = Decimal(1).scaleb(-minor_unit(currency))
    return amount.quantize(_SNAP, rounding=ROUND_HALF_EVEN).quantize(quantum, rounding=ROUND_HALF_UP)


def to_decimal(value: object) -> Decimal:
    """Turn a JSON number or string into an exact Decimal; floats go through their repr."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise TypeError("a boolean is not an amount")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, str):
        return Decimal(value.strip())
    raise TypeError(f"not an amount: {value!r}")
