"""The data of a notice about money booked on an account (a plan's fee, an outage's
compensation): whose account, in which currency, how much, and the kind's own fields."""

from __future__ import annotations

from typing import Any


def money_data(account: str, currency: str, amount_micro: int, **fields: Any) -> dict[str, Any]:
    """`amount_micro` is formatted by the template in `currency` (`{amount}`), as every
    `*_micro` field is."""
    return {"account": account, "currency": currency, **fields, "amount_micro": amount_micro}
