"""Parallel authorizations never reserve more than the account can pay."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from rating.deck import Deck
from rating.ledger import CallRequest, Ledger, Outcome
from runtime.services import Services, open_redis
from tests.conftest import AccountFactory


async def test_fifty_simultaneous_authorizations_share_one_minute_of_credit(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    # 0.19 PLN buys exactly 60 s at 0.19/min billed per second
    a = await make_account(balance=190_000)
    # 50 independent clients (own connections), as 50 switch workers would be
    clients = [open_redis(svc.settings) for _ in range(50)]
    ledgers = [
        Ledger(c, svc.settings.keyspace, svc.ledger.decks, svc.settings.ledger) for c in clients
    ]
    try:
        grants = await asyncio.gather(
            *(
                lg.authorize(CallRequest(a.id, f"p-{uuid.uuid4().hex[:10]}", "601234567"))
                for lg in ledgers
            )
        )
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    allowed = [g for g in grants if g.allowed]
    assert allowed, "someone must get the minute"
    assert sum(g.reserved for g in allowed) <= 190_000
    assert sum(g.max_seconds for g in allowed) <= 60
    assert {g.reason for g in grants if not g.allowed} <= {"INSUFFICIENT_CREDIT"}
    # every call talks its full grant: the debits still fit the credit
    for g in allowed:
        await svc.ledger.finish(
            a.id, g.call_id, Outcome(True, g.max_seconds, datetime.now(UTC), "ANSWER")
        )
    live = await svc.accounts.live(a.id)
    assert live.balance >= 0 and live.reserved == 0
    assert live.spent <= 190_000
