"""Billing's domain error."""

from __future__ import annotations


class BillingError(ValueError):
    """Bad billing input, or a request billing cannot honour; `field` names the culprit."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")
        self.field = field
        self.why = why
