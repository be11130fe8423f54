"""Money arithmetic: exact values, rounded half-up to the currency's minor unit once, when shown or stored.

Inputs (prices, quantities, credits) are Decimals. What the engine derives from them is kept
exact: a yearly price / 12 or a day's share of a month does not terminate as a decimal, so those
values are `Exact` rationals (a `Fraction` that also takes Decimal operands). `round_money` turns
an exact value (or a Decimal) into the currency's minor unit in one step, half-up; nothing is cut
to a fixed number of places before it, so 2.0049999995 rounds to 2.00 and twelve months of 0.145
a year to 0.15.

What the store holds (connector/store/types.py): money columns (`Money`) hold amounts already
rounded once to the currency's minor unit (2 places for USD, 0 for JPY, 3 for KWD), as integers
of 10**-4, which every ISO currency fits exactly, so reading them back and rounding them to the
currency again changes nothing (no second rounding). Unrounded quantities of the ledger (a
piece's monthly amount, a monthly list price) are kept exactly as text by `ExactDecimal`: a
decimal when it terminates, "numerator/denominator" when it does not (`exact_text`).
"""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from math import gcd
from typing import TYPE_CHECKING, Any, Callable, Union

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


_QUANTUM: dict[str, tuple[Decimal, int, int]] = {}


def _quantum(currency: str) -> tuple[Decimal, int, int]:
    found = _QUANTUM.get(currency)
    if found is None:  # one entry per currency, not one per amount (this runs millions of times)
        places = minor_unit(currency)
        found = _QUANTUM[currency] = (Decimal(1).scaleb(-places), places, 10 ** places)
    return found


def minor_scale(currency: str) -> tuple[int, int]:
    """(decimal places, minor units per unit) of the currency: (2, 100) for USD, (0, 1) for JPY."""
    _, places, scale = _quantum(currency)
    return places, scale


def round_money(amount: "Decimal | Fraction | int", currency: str) -> Decimal:
    """Round an exact amount half-up (away from zero) to the currency's minor unit, in one step."""
    quantum, places, scale = _quantum(currency)
    if isinstance(amount, Decimal):
        return amount.quantize(quantum, rounding=ROUND_HALF_UP)
    n, d = amount.numerator * scale, amount.denominator
    units = (2 * abs(n) + d) // (2 * d)  # floor(|x| + 1/2): half-up, on integers, exactly
    return Decimal(-units if n < 0 else units).scaleb(-places)


class Exact(Fraction):
    """An exact amount: a `Fraction` whose arithmetic also takes Decimal operands (converted exactly).

    Results stay `Exact`, so sums that start from `Decimal(0)` (or 0) and products with Decimal
    quantities never fall back to a 28-digit Decimal quotient.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Exact({self.numerator}, {self.denominator})"

    if TYPE_CHECKING:  # the arithmetic is assigned below, on integers; these are its types
        _numerator: int
        _denominator: int

        def __add__(self, other: Operand) -> Exact: ...  # type: ignore[override]
        def __radd__(self, other: Operand) -> Exact: ...  # type: ignore[override]
        def __mul__(self, other: Operand) -> Exact: ...  # type: ignore[override]
        def __rmul__(self, other: Operand) -> Exact: ...  # type: ignore[override]
        def __sub__(self, other: Operand) -> Exact: ...  # type: ignore[override]
        def __rsub__(self, other: Operand) -> Exact: ...  # type: ignore[override]
        def __truediv__(self, other: Operand) -> Exact: ...  # type: ignore[override]
        def __rtruediv__(self, other: Operand) -> Exact: ...  # type: ignore[override]
        def __neg__(self) -> Exact: ...
        def __pos__(self) -> Exact: ...
        def __abs__(self) -> Exact: ...


#: What `Exact` arithmetic takes on either side.
Operand = Union[Decimal, Fraction, int]
#: An amount the engine computes: a Decimal input, or an exact rational derived from one.
Amount = Union[Decimal, Exact]


def _make(n: int, d: int) -> Exact:
    out = object.__new__(Exact)
    out._numerator, out._denominator = n, d
    return out


def _exact(value: Fraction) -> Exact:
    return _make(value.numerator, value.denominator)


def _parts(value: object) -> tuple[int, int] | None:
    """(numerator, denominator) of an int, Fraction or Decimal operand; None for anything else."""
    kind = type(value)  # the usual operands first, by their exact type: no ABC instance check
    if kind is Exact or kind is Fraction:
        f: Fraction = value  # type: ignore[assignment]
        return f._numerator, f._denominator  # type: ignore[attr-defined]
    if kind is int:
        return value, 1  # type: ignore[return-value]
    if kind is Decimal:
        return value.as_integer_ratio()  # type: ignore[attr-defined,no-any-return]
    if isinstance(value, Fraction):
        return value.numerator, value.denominator
    if isinstance(value, Decimal):
        return value.as_integer_ratio()
    return None


# Arithmetic on integers directly (no intermediate Fraction): this runs millions of times in a backfill.
def _add(na: int, da: int, nb: int, db: int) -> Exact:
    if da == db:
        n, d = na + nb, da
    else:
        n, d = na * db + nb * da, da * db
    g = gcd(n, d)
    return _make(n // g, d // g) if g > 1 else _make(n, d)


def _mul(na: int, da: int, nb: int, db: int) -> Exact:
    g1, g2 = gcd(na, db), gcd(nb, da)
    return _make((na // g1) * (nb // g2), (da // g2) * (db // g1))


def _div(na: int, da: int, nb: int, db: int) -> Exact:
    if nb == 0:
        raise ZeroDivisionError("division by zero")
    if nb < 0:
        nb, db = -nb, -db
    return _mul(na, da, db, nb)


def _op(fn: Callable[[int, int, int, int], Exact], reflected: bool = False) -> Callable[..., Any]:
    def method(self: Exact, other: object) -> Any:
        parts = _parts(other)
        if parts is None:
            return NotImplemented
        if reflected:
            return fn(parts[0], parts[1], self._numerator, self._denominator)
        return fn(self._numerator, self._denominator, parts[0], parts[1])
    return method


def _sub(na: int, da: int, nb: int, db: int) -> Exact:
    return _add(na, da, -nb, db)


Exact.__add__ = Exact.__radd__ = _op(_add)  # type: ignore[method-assign]
Exact.__mul__ = Exact.__rmul__ = _op(_mul)  # type: ignore[method-assign]
Exact.__sub__ = _op(_sub)  # type: ignore[method-assign]
Exact.__rsub__ = _op(_sub, reflected=True)  # type: ignore[method-assign]
Exact.__truediv__ = _op(_div)  # type: ignore[method-assign]
Exact.__rtruediv__ = _op(_div, reflected=True)  # type: ignore[method-assign]


def _compare(test: Callable[[int, int], bool], fallback: Callable[..., Any]) -> Callable[..., Any]:
    """A comparison on integers (issue 11: Fraction's goes through ABC checks for every operand)."""
    def method(self: Exact, other: object) -> Any:
        try:
            parts = _parts(other)
        except (ValueError, OverflowError):  # a Decimal NaN or infinity: compared as before
            parts = None
        if parts is None:  # a float, say: Fraction's own rules
            return fallback(self, other)
        return test(self._numerator * parts[1], parts[0] * self._denominator)  # denominators are positive
    return method


Exact.__lt__ = _compare(int.__lt__, Fraction.__lt__)  # type: ignore[method-assign]
Exact.__le__ = _compare(int.__le__, Fraction.__le__)  # type: ignore[method-assign]
Exact.__gt__ = _compare(int.__gt__, Fraction.__gt__)  # type: ignore[method-assign]
Exact.__ge__ = _compare(int.__ge__, Fraction.__ge__)  # type: ignore[method-assign]
Exact.__eq__ = _compare(int.__eq__, Fraction.__eq__)  # type: ignore[method-assign]
Exact.__hash__ = Fraction.__hash__  # type: ignore[method-assign]  # equal values hash alike, as before
Exact.__neg__ = lambda self: _make(-self._numerator, self._denominator)  # type: ignore[method-assign]
Exact.__pos__ = lambda self: self  # type: ignore[method-assign]
Exact.__abs__ = lambda self: _make(abs(self._numerator), self._denominator)  # type: ignore[method-assign]


def ratio_of(value: "Decimal | Fraction | int") -> tuple[int, int]:
    """(numerator, denominator) of an amount in lowest terms, the denominator positive."""
    parts = _parts(value)
    if parts is None:
        f = Fraction(value)
        return f.numerator, f.denominator
    return parts


def exact_ratio(n: int, d: int) -> Exact:
    """n / d (d positive) as an `Exact` in lowest terms, as `Exact` arithmetic leaves every result."""
    g = gcd(n, d)
    return _make(n // g, d // g) if g > 1 else _make(n, d)


def exact(value: "Decimal | Fraction | int") -> Exact:
    """The value as an `Exact` (a Decimal converts exactly)."""
    if type(value) is Exact:
        return value
    return _make(*ratio_of(value))  # a Decimal's or Fraction's ratio is in lowest terms, its denominator positive


#: `exact_text` of the Exact values met so far, by (numerator, denominator): an import's lines have
#: a few hundred distinct monthly prices and MRRs among hundreds of thousands (issue 11); bounded
_TEXTS: dict[tuple[int, int], str] = {}
_TEXTS_MAX = 65_536


def exact_text(value: "Decimal | Fraction | int") -> str:
    """Text that keeps the value exactly: a plain decimal when it terminates, else "n/d"."""
    if type(value) is Exact:
        key = (value._numerator, value._denominator)
        text = _TEXTS.get(key)
        if text is None:
            text = _exact_text(value)
            if len(_TEXTS) < _TEXTS_MAX:
                _TEXTS[key] = text
        return text
    return _exact_text(value)


def _exact_text(value: "Decimal | Fraction | int") -> str:
    if isinstance(value, Decimal):
        return str(value)
    f = value if isinstance(value, Fraction) else Fraction(value)
    d = f.denominator
    twos = fives = 0
    while d % 2 == 0:
        d //= 2
        twos += 1
    while d % 5 == 0:
        d //= 5
        fives += 1
    if d != 1:
        return f"{f.numerator}/{f.denominator}"
    places = max(twos, fives)
    return str(Decimal(f.numerator * 10 ** places // f.denominator).scaleb(-places))


def parse_exact(text: str) -> "Decimal | Exact":
    """Inverse of `exact_text`: a Decimal, or an `Exact` for "n/d"."""
    if "/" in text:
        n, d = text.split("/")
        return _exact(Fraction(int(n), int(d)))
    return Decimal(text)


def as_decimal(value: "Decimal | Fraction | int", places: int = 12) -> Decimal:
    """A value to show in a message (not to compute with): exact when it terminates, else `places` places."""
    if isinstance(value, Decimal):
        return value
    text = exact_text(value)
    if "/" not in text:
        return Decimal(text)
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(Decimal(1).scaleb(-places))


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
