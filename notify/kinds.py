"""The kinds of notice and whether a customer may opt out of each.

Notices about the service itself (blocking, suspension, invoices, price changes, complaint
answers) inform of the contract's state and must reach the customer; only reminders that are
a convenience may be switched off."""

from __future__ import annotations

from dataclasses import dataclass

from notify.errors import NotifyError


@dataclass(frozen=True, slots=True)
class Kind:
    name: str
    optional: bool  # the customer may opt out


LOW_BALANCE = Kind("low_balance", optional=True)
BALANCE_NEGATIVE = Kind("balance_negative", optional=False)

COMPLAINT_RECEIVED = Kind("complaint_received", optional=False)
COMPLAINT_ANSWERED = Kind("complaint_answered", optional=False)

# §5.4: foreign numbers of an account negative for 14 days are removed; told before (with
# the date) and when it happened.
NUMBERS_RELEASE_WARNING = Kind("foreign_numbers_release_warning", optional=False)
NUMBERS_RELEASED = Kind("foreign_numbers_released", optional=False)
ABUSE_WARNING = Kind("abuse_warning", optional=False)  # terms §5.1: a call to stop
ABUSE_SUSPENDED = Kind("abuse_suspended", optional=False)
ABUSE_RESUMED = Kind("abuse_resumed", optional=False)
OUTAGE_COMPENSATION = Kind("outage_compensation", optional=False)  # terms §9.7
# the other provider's terms §10c: a month of subscription per started 12 h past a day
OUTAGE_COMPENSATION_MONTHS = Kind("outage_compensation_months", optional=False)
TRIAL_ENDING = Kind("trial_ending", optional=False)
TRIAL_BLOCKED = Kind("trial_blocked", optional=False)
TRIAL_CLOSING = Kind("trial_closing", optional=False)
PRICE_CHANGE = Kind("price_change", optional=False)  # terms §7.1
PLAN_FEE = Kind("plan_fee", optional=False)  # terms §7.2: a plan's fee charged in advance

KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        LOW_BALANCE,
        BALANCE_NEGATIVE,
        COMPLAINT_RECEIVED,
        COMPLAINT_ANSWERED,
        NUMBERS_RELEASE_WARNING,
        NUMBERS_RELEASED,
        ABUSE_WARNING,
        ABUSE_SUSPENDED,
        ABUSE_RESUMED,
        OUTAGE_COMPENSATION,
        OUTAGE_COMPENSATION_MONTHS,
        TRIAL_ENDING,
        TRIAL_BLOCKED,
        TRIAL_CLOSING,
        PRICE_CHANGE,
        PLAN_FEE,
    )
}


def kind(name: str) -> Kind:
    found = KINDS.get(name)
    if found is None:
        raise NotifyError("kind", f"unknown {name!r}; known: {', '.join(sorted(KINDS))}")
    return found


def check_opt_out(names: list[str]) -> list[str]:
    """The kinds as given, refusing unknown ones and those the customer must receive."""
    for name in names:
        if not kind(name).optional:
            raise NotifyError(
                "opt_out", f"{name!r} is a notice the customer must receive", "OPT_OUT_NOT_ALLOWED"
            )
    return sorted(set(names))
