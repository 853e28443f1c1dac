"""Privacy amounts as exact decimals: parsing, limits and their text form. No Django here.

ε is kept as a Decimal with EPSILON_PLACES decimal places (a NUMERIC column), never a
float: a budget spent in 0.1 steps must reach its total exactly, and a sum of spends must
equal the balance to the last digit. δ is a probability, kept with DELTA_PLACES places.
"""
from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation

from django.utils.translation import gettext as _

from kernel.errors import InvalidInput

EPSILON_PLACES = 6
EPSILON_DIGITS = 12  # so a balance is below 10**6: absurd for ε, and exact in any column type
EPSILON_MAX = Decimal(10) ** (EPSILON_DIGITS - EPSILON_PLACES) - Decimal(1).scaleb(-EPSILON_PLACES)
DELTA_PLACES = 18
DELTA_DIGITS = 19

_EPSILON_QUANTUM = Decimal(1).scaleb(-EPSILON_PLACES)
_DELTA_QUANTUM = Decimal(1).scaleb(-DELTA_PLACES)


def _decimal(value, field: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (Decimal, int, float, str)):
        raise InvalidInput(field, _("must be a number, not %(type___name)s")
                                  % {"type___name": type(value).__name__})
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(field, _("must be a finite number, not %(value)s") % {"value": value})
        value = repr(value)  # the float's shortest form: 0.1 is "0.1", not 0.1000000000000000055…
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise InvalidInput(field, _("must be a number, not %(value)r") % {"value": value}) from None
    if not number.is_finite():
        raise InvalidInput(field, _("must be a finite number, not %(value)s") % {"value": value})
    return number


def _places(number: Decimal, quantum: Decimal, places: int, field: str) -> Decimal:
    exact = number.quantize(quantum)
    if exact != number:
        raise InvalidInput(field, _("at most %(places)s decimal places, not %(number)s")
                                  % {"places": places, "number": number})
    return exact


def epsilon(value, field: str = "epsilon") -> Decimal:
    """A positive ε amount: finite, at most EPSILON_PLACES decimals, at most EPSILON_MAX."""
    number = _decimal(value, field)
    if number <= 0:
        raise InvalidInput(field, _("must be greater than 0, not %(number)s") % {"number": number})
    if number > EPSILON_MAX:
        raise InvalidInput(field, _("must be at most %(epsilon_max)s, not %(number)s")
                                  % {"epsilon_max": EPSILON_MAX, "number": number})
    return _places(number, _EPSILON_QUANTUM, EPSILON_PLACES, field)


def delta(value, field: str = "delta") -> Decimal:
    """A δ: a probability strictly between 0 and 1, at most DELTA_PLACES decimals."""
    number = _decimal(value, field)
    if not 0 < number < 1:
        raise InvalidInput(field, _("must be between 0 and 1 (exclusive), not %(number)s")
                                  % {"number": number})
    return _places(number, _DELTA_QUANTUM, DELTA_PLACES, field)


def text(value: Decimal) -> str:
    """An ε as event payloads carry it: fixed point with every place written ("0.250000").

    A string rather than a JSON number, so a verifier elsewhere reads it without float rounding."""
    return f"{value.quantize(_EPSILON_QUANTUM):f}"


def short(value: Decimal) -> str:
    """An amount for people, and δ in payloads: no trailing zeros ("0.25", "10", "0.00001")."""
    return f"{value.normalize():f}" if value else "0"
