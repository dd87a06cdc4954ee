"""Call outcomes dialplans before the outcome log parked in AstDB (switch.outcome_log now
carries every call's finish; serve drains this family once at start-up when AMI is set).

The hangup handler parks `account|status|answered ms|cause|dialled|emergency|end epoch` in
`DB(tollgate_pending/<call id>)` for every call: one AstDB write instead of a second FastAGI
session per call (that session cost the switch more CPU than the call itself), and the same
path whether tollgate is up, restarting, or its Redis unreachable. AstDB is on Asterisk's disk, so a
parked outcome survives a restart of tollgate, of Redis and of Asterisk. The collector reads
the family over AMI, settles each entry in the ledger (idempotent) and deletes it only once
settled: a failing settle is retried on the next round, with backoff, until it succeeds.

It also tells the sweeper how far it may go: a reservation may be expired only if a complete
scan of the parking lot, started after the reservation's deadline, found nothing unsettled
(else its outcome may still be waiting there)."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from redis.exceptions import RedisError

from rating.ledger import Ledger, LedgerError, Outcome
from switch.ami import AmiError, AmiSession, AmiSettings

log = logging.getLogger("tollgate.switch.parking")

PENDING_FAMILY = "tollgate_pending"
REJECTED_FAMILY = "tollgate_rejected"  # entries no ledger could ever accept
_DIALLED = re.compile(r"^\+?[0-9]{1,20}$")
_EPOCH = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,6})?$")


def parse_report(value: str, *, now: float) -> tuple[str, Outcome]:
    """`account|status|answered ms|cause|dialled|emergency|end epoch` -> (account, outcome)."""
    account, status, ms, cause, dialled, _emergency, ended = (value.split("|") + [""] * 7)[:7]
    ended_at = float(ended) if _EPOCH.match(ended) else now
    answered = status == "ANSWER"
    talk = int(ms) / 1000 if ms.isdigit() else 0.0
    return account, Outcome(
        answered=answered,
        billsec=int(talk + 0.5) if answered else 0,
        ended_at=datetime.fromtimestamp(ended_at, UTC),
        disposition=status or "NOANSWER",
        hangup_cause=cause if cause.isdigit() else "",
        answered_at=datetime.fromtimestamp(ended_at - talk, UTC) if answered else None,
        dialled=dialled if _DIALLED.match(dialled) else "",
    )


@dataclass(frozen=True)
class Scan:
    seen: int  # entries found in AstDB
    settled: int  # of which settled (or set aside as unsettleable) and deleted now
    failed: int  # left in AstDB for the next round


class ParkingLot:
    def __init__(
        self,
        ami: AmiSettings,
        ledger: Ledger,
        *,
        interval_s: float = 0.5,
        backoff_max_s: float = 30.0,
        on_scan: Callable[[Scan | None], None] | None = None,
    ) -> None:
        self.ami = ami
        self.ledger = ledger
        self.interval_s = interval_s
        self.backoff_max_s = backoff_max_s
        self.on_scan = on_scan or (lambda scan: None)
        # Epoch start of the last scan that left nothing unsettled (None: not yet).
        self.clear_since: float | None = None
        self._lock = asyncio.Lock()

    async def collect(self) -> Scan:
        """One complete round. Raises AmiError when AstDB could not be read."""
        async with self._lock:
            started = time.time()
            try:
                async with await AmiSession.open(self.ami) as ami:
                    entries = await ami.db_tree(PENDING_FAMILY)
                    settled = 0
                    for call_id, value in sorted(entries.items()):
                        verdict = await self._settle(call_id, value)
                        if verdict == "rejected":
                            # Kept for an operator, out of the way of the retries.
                            await ami.db_put(REJECTED_FAMILY, call_id, value)
                        if verdict != "retry":
                            await ami.db_del(PENDING_FAMILY, call_id)
                            settled += 1
            except AmiError:
                self.on_scan(None)
                raise
            scan = Scan(len(entries), settled, len(entries) - settled)
            if scan.failed == 0:
                self.clear_since = started
            self.on_scan(scan)
            return scan

    async def _settle(self, call_id: str, value: str) -> str:
        """ "settled", "retry" (the ledger is unreachable) or "rejected" (never will settle)."""
        account, outcome = parse_report(value, now=time.time())
        try:
            settled = await self.ledger.finish(account, call_id, outcome)
        except LedgerError as exc:
            # A malformed entry can never settle: keep it for an operator, say so loudly.
            log.error("parked outcome %s=%r cannot be settled: %s", call_id, value, exc)
            return "rejected"
        except (RedisError, OSError, ConnectionError) as exc:
            log.warning("parked outcome %s not settled yet: %s", call_id, exc)
            return "retry"
        log.info(
            "settled parked outcome of %s (%s): cost %d (%s)",
            call_id,
            account,
            settled.cost,
            settled.status,
        )
        return "settled"

    async def run(self) -> None:
        """Collect forever: every interval while all is well, backing off while it fails."""
        delay = self.interval_s
        while True:
            try:
                scan = await self.collect()
                delay = self.interval_s if scan.failed == 0 else min(delay * 2, self.backoff_max_s)
            except AmiError as exc:
                log.warning("parked outcomes unreadable: %s; retrying in %.1f s", exc, delay)
                delay = min(delay * 2, self.backoff_max_s)
            await asyncio.sleep(delay)
