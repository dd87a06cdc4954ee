"""The dialplan's failover step (AGI `failover`, run only when a carrier failed with one of
TOLLGATE_FAILOVER_CODES): the call's place moves to the next carrier with room and the
dialplan is told which route of its grant to try next.

    failover -> args: call id, position (1-based) of the route that failed in the grant's
                ROUTES; sets TOLLGATE_NEXT = position of the route to dial next, 0 = none
                (no carrier left with room, or the call is no longer open)

When tollgate cannot answer, TOLLGATE_NEXT keeps the dialplan's default (the grant's next
route): the call was authorized on those routes, only the capacity count stays behind on
the carrier that failed until the call's finish."""

from __future__ import annotations

import contextlib
import logging
import re

from redis.exceptions import RedisError

from rating.failover import fail_over
from rating.ledger import CALL_ID, Ledger, LedgerError
from switch.agi import AgiChannel, AgiHangup, AgiProtocolError, AgiRequest, Handler

log = logging.getLogger("tollgate.switch.failover")
_POSITION = re.compile(r"^[1-9][0-9]{0,2}$")


def failover_handler(ledger: Ledger) -> Handler:
    async def failover(req: AgiRequest, chan: AgiChannel) -> None:
        args = [*req.args, "", ""]
        call_id, failed = args[0], args[1]
        account = req.env.get("accountcode", "")
        if not CALL_ID.match(call_id) or not _POSITION.match(failed):
            log.warning("failover for %r ignored: call id or position %r", account, failed[:8])
            return
        try:
            move = await fail_over(ledger, account, call_id, int(failed))
        except (LedgerError, RedisError, OSError, ConnectionError) as exc:
            log.warning("failover of %s: %s (the dialplan tries the grant's next route)",
                        call_id, exc)  # fmt: skip
            return
        log.info("failover of %s after route %s: %s %s", call_id, failed, move.status,
                 move.carrier or "-")  # fmt: skip
        with contextlib.suppress(AgiHangup, AgiProtocolError):
            await chan.set_variable("TOLLGATE_NEXT", str(move.position), last=True)

    return failover
