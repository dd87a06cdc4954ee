"""What the detectors see: one call as the ledger wrote it to its CDR stream, or one inbound
call fed by the switch adapter. Parsed leniently but strictly typed: a field that is missing
reads as its zero value, a field that is garbage makes the entry a BadEvent."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rating.keys import call_ref

# Denials the customer's traffic did not cause: not attempts the account could place.
NOT_TRAFFIC = frozenset(
    {
        "ACCOUNT_SUSPENDED",
        "UNKNOWN_ACCOUNT",
        "INVOICE_OVERDUE",
        "CUSTOMER_UNVERIFIED",
        "SERVICE_UNAVAILABLE",
    }
)
NOT_FORWARDED = frozenset({"", "0", "no", "false"})
FOREIGN_CLASSES = frozenset({"international", "high_risk"})


class BadEvent(ValueError):
    """A stream entry the detectors cannot use; `field` names the culprit."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")
        self.field = field
        self.why = why


@dataclass(frozen=True, slots=True)
class CallEvent:
    call_id: str  # switch/call id (call_ref): ids are unique per switch only
    account: str
    state: str  # denied | expired | finished
    reason: str
    e164: str
    number_class: str
    caller: str
    at_ms: int  # when the call was attempted (authorized), epoch ms
    end_ms: int
    billsec: int = 0
    answered: bool = False
    cost: int = 0  # micro-units charged
    emergency: bool = False
    forwarded: bool = False  # a forwarded leg (RDNIS / SIP Diversion present)
    inbound: bool = False  # a carrier's call to the account's number, not one it placed

    @property
    def placed(self) -> bool:
        """Reached the network (was not refused by tollgate)."""
        return self.state != "denied"

    @property
    def counted(self) -> bool:
        """Emergency calls are never counted; nor are refusals the customer did not cause, nor
        calls to its numbers (they reach the detectors as inbound events, from the switch)."""
        return not self.emergency and not self.inbound and self.reason not in NOT_TRAFFIC

    @property
    def digits(self) -> str:
        return self.e164[1:] if self.e164.startswith("+") else ""

    @classmethod
    def from_fields(cls, f: Mapping[str, str]) -> CallEvent:
        call_id = f.get("call_id", "")
        account = f.get("account", "")
        if not call_id or not account:
            raise BadEvent("call_id" if not call_id else "account", "missing")
        end_ms = _int(f, "ended_at")
        billsec = _int(f, "billsec")
        at_ms = _int(f, "authorized_at") or end_ms - billsec * 1000
        if end_ms <= 0 and at_ms <= 0:
            raise BadEvent("ended_at", "missing")
        number_class = f.get("class", "")
        return cls(
            call_id=call_ref(f.get("switch", ""), call_id),
            account=account,
            state=f.get("state", ""),
            reason=f.get("reason", ""),
            e164=f.get("e164", ""),
            number_class=number_class,
            caller=f.get("caller", ""),
            at_ms=at_ms,
            end_ms=end_ms or at_ms,
            billsec=billsec,
            answered=f.get("answered", "") == "1",
            cost=_int(f, "cost"),
            emergency=f.get("emergency", "") == "1" or number_class == "emergency",
            forwarded=(f.get("rdnis", "") or f.get("forwarded", "")).lower() not in NOT_FORWARDED,
            inbound=f.get("direction", "") == "in",
        )


@dataclass(frozen=True, slots=True)
class InboundEvent:
    id: str  # the inbound stream's entry id: unique, so the event counts once
    account: str
    caller: str  # as fed; detectors normalise it with the account's home country
    duration_s: int
    at_ms: int

    @classmethod
    def from_fields(cls, entry_id: str, f: Mapping[str, str]) -> InboundEvent:
        account = f.get("account", "")
        if not account:
            raise BadEvent("account", "missing")
        at_ms = _int(f, "ts")
        if at_ms <= 0:
            raise BadEvent("ts", "missing")
        return cls(entry_id, account, f.get("caller", ""), _int(f, "duration"), at_ms)


def _int(f: Mapping[str, str], name: str) -> int:
    text = f.get(name, "")
    if text == "":
        return 0
    if not text.isascii() or not text.isdigit():
        raise BadEvent(name, f"{text[:40]!r} is not a non-negative integer")
    return int(text)
