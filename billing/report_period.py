"""The month a report covers (margin, carriers' quality): the period's bounds in the zone
asked for, else in the operator's billing zone (TOLLGATE_BILLING_TIMEZONE), so the panel
and the CLI count the same calls for the same period."""

from __future__ import annotations

from datetime import datetime

from billing.period import Period
from billing.settings import BillingSettings


def report_bounds(
    period: Period, zone: str | None, billing: BillingSettings
) -> tuple[datetime, datetime]:
    """[start, end) as UTC instants of `period` in `zone`, or in the billing zone if None."""
    return period.bounds(zone or billing.timezone)
