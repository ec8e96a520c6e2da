"""The syndication endpoint's ``token``: JavaScript number formatting, reproduced exactly.

The token is ``((Number(id) / 1e15) * Math.PI).toString(36).replace(/(0+|\\.)/g, '')``.
Python floats are the same IEEE doubles as JavaScript numbers, so the arithmetic carries over as
is; the subtle part is ``toString(36)`` of a non-integer, which prints only as many base-36 digits
as the double's precision justifies and rounds the last one. A naive "multiply by 36 and take
the integer part twelve times" port disagrees in the last digit for many IDs. The stand-in is the
reference a crawler is checked against, so this is tested against node when node is installed.
"""

from __future__ import annotations

import math

DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_TWO_53 = 2.0**53
_TINY = math.nextafter(0.0, 1.0)


def js_radix_string(value: float, radix: int = 36) -> str:
    """``Number.prototype.toString(radix)`` as JavaScript engines print a finite double."""
    if not 2 <= radix <= 36:
        raise ValueError("radix must be between 2 and 36")
    if math.isnan(value) or math.isinf(value):
        raise ValueError("only finite numbers have digits")
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    value = abs(value)
    whole = math.floor(value)
    frac = value - whole
    fraction = _fraction_digits(value, frac, radix)
    if fraction and fraction[0] == -1:  # rounding carried into the integer part
        whole += 1
        fraction = []
    return sign + _integer_digits(whole, radix) + ("." if fraction else "") + _text(fraction)


def _fraction_digits(value: float, frac: float, radix: int) -> list[int]:
    """Digits after the point, up to the precision ``value`` carries.

    ``delta`` is half the gap to the next double: digits below it say nothing about the value.
    Digit generation stops once the remainder is under ``delta``; the last digit is rounded up
    (half to even) when the remainder plus the uncertainty passes one unit, carrying leftwards.
    A carry past the first digit is reported as ``[-1]``.
    """
    delta = max(0.5 * (math.nextafter(value, math.inf) - value), _TINY)
    digits: list[int] = []
    if frac < delta:
        return digits
    while True:
        frac *= radix
        delta *= radix
        digit = int(frac)
        digits.append(digit)
        frac -= digit
        if (frac > 0.5 or (frac == 0.5 and digit & 1)) and frac + delta > 1:
            while digits and digits[-1] + 1 == radix:
                digits.pop()
            if not digits:
                return [-1]
            digits[-1] += 1
            return digits
        if frac < delta:
            return digits


def _integer_digits(whole: float, radix: int) -> str:
    """Digits before the point; places below the double's precision print as ``0``."""
    zeros = 0
    while whole / radix >= _TWO_53:
        whole /= radix
        zeros += 1
    out: list[int] = []
    while True:
        rest = math.fmod(whole, radix)
        out.append(int(rest))
        whole = (whole - rest) / radix
        if whole <= 0:
            break
    return _text(out[::-1]) + "0" * zeros


def _text(digits: list[int]) -> str:
    return "".join(DIGITS[d] for d in digits)


def syndication_token(tweet_id: str | int) -> str:
    """The ``token`` react-tweet sends for ``tweet_id`` (``Number(id)`` rounds to a double)."""
    value = float(int(tweet_id)) / 1e15 * math.pi
    return js_radix_string(value, 36).replace("0", "").replace(".", "")
