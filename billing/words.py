"""The amount due in words ("słownie"), as Polish invoices customarily print it."""

from __future__ import annotations

from decimal import Decimal

from num2words import num2words

from rating.money import MICRO


def amount_in_words(micro: int, currency: str) -> str:
    """'sto dwadzieścia trzy złote, czterdzieści pięć groszy' for 123.45 PLN; a currency
    num2words does not name in Polish gets the number in words and its code."""
    value = Decimal(abs(micro)) / MICRO
    try:
        return str(num2words(value, lang="pl", to="currency", currency=currency))
    except NotImplementedError:
        whole, cents = divmod(abs(micro) // (MICRO // 100), 100)
        return f"{num2words(whole, lang='pl')} {currency} {cents:02d}/100"
