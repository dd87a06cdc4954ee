"""Numbers from outside (CLI arguments, API fields, CSV cells): plain ASCII decimals only.

The check is syntactic and bounded and comes before any conversion, so no input can make a
conversion slow or raise anything but NumberError."""

from __future__ import annotations

import re
from decimal import Decimal

# A plain decimal: ASCII digits, at most one dot with digits after it, an optional sign.
# Checked before Decimal() sees the text: an exponent ('1e300000' takes seconds to convert,
# '1e999999' overflows), '_' separators and non-ASCII digits never reach the conversion.
_PLAIN = re.compile(r"([+-]?)([0-9]{1,24})(?:\.([0-9]{1,24}))?", re.ASCII)
_WHOLE = re.compile(r"[+-]?[0-9]{1,18}", re.ASCII)


class NumberError(ValueError):
    """A number from outside could not be parsed; `text` is what was given."""

    def __init__(self, text: str, why: str) -> None:
        super().__init__(f"{why}: {text!r}")
        self.text = text
        self.why = why


def parse_decimal(text: str, *, allow_negative: bool = False) -> Decimal:
    """The one way numbers from outside (CLI, API, deck cells) become Decimal.

    Only plain decimals ('12', '-0.5', '+3.25') pass; the check is syntactic and bounded,
    so no input can make the conversion slow or raise anything but NumberError."""
    raw = text.strip()
    if not raw:
        raise NumberError(text, "empty amount")
    m = _PLAIN.fullmatch(raw)
    if m is None:
        raise NumberError(
            text, "not a plain decimal number (ASCII digits, optionally one '.' and decimals)"
        )
    value = Decimal(raw)
    if m[1] == "-" and value != 0 and not allow_negative:
        raise NumberError(text, "negative amount")
    return value


def parse_whole(text: str, *, low: int, high: int) -> int:
    """A whole number written in ASCII digits (no '_', no exponent), within [low, high]."""
    raw = text.strip()
    if _WHOLE.fullmatch(raw) is None:
        raise NumberError(text, "not a whole number (ASCII digits only)")
    value = int(raw)
    if not low <= value <= high:
        raise NumberError(text, f"must be between {low} and {high}")
    return value
