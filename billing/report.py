"""What a bill run did: fees, documents, flags, lifecycle actions, repairs and failures."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from billing.documents import Document
from billing.period import Period
from billing.prepaid import LifecycleAction
from rating.account_store import LedgerEntry
from rating.money import format_micro
from rating.repair import Repair


@dataclass
class RunReport:
    period: Period
    now: datetime
    fees: list[LedgerEntry] = field(default_factory=list)
    documents: list[Document] = field(default_factory=list)
    overdue_set: list[str] = field(default_factory=list)
    overdue_cleared: list[str] = field(default_factory=list)
    lifecycle: list[LifecycleAction] = field(default_factory=list)
    not_over: list[str] = field(default_factory=list)  # the period still runs in their zone
    repaired: list[Repair] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # account -> what went wrong
    skipped: int = 0  # accounts a clean mark let the run leave alone (billing/marks.py)

    @property
    def changed(self) -> bool:
        return bool(
            self.fees
            or self.documents
            or self.overdue_set
            or self.overdue_cleared
            or self.lifecycle
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "period": str(self.period),
            "now": self.now.isoformat(),
            "fees": [{**e.as_dict(), "amount": format_micro(e.amount)} for e in self.fees],
            "documents": [
                {
                    "number": d.number,
                    "kind": d.kind.value,
                    "account": d.account,
                    "gross": format_micro(d.gross, 2),
                }
                for d in self.documents
            ],
            "overdue_set": self.overdue_set,
            "overdue_cleared": self.overdue_cleared,
            "lifecycle": [a.as_dict() for a in self.lifecycle],
            "period_not_over": self.not_over,
            "repaired": [r.as_dict() for r in self.repaired],
            "failed": [{"account": a, "error": e} for a, e in sorted(self.failed.items())],
        }
