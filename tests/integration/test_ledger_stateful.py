"""Random interleavings of authorize / finish / renew / top-up against the real Redis.

Invariants after every step: reservations in the account equal the sum of open calls'
reservations; the balance equals entries minus committed costs; no call is charged more
than it reserved; no duplicate finish moves money; available credit never goes negative."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from rating.accounts import Account
from rating.deck import load_deck
from rating.deck_store import import_deck, publish
from rating.ledger import CallRequest, Outcome
from runtime.services import Services, services
from runtime.settings import Settings
from tests.conftest import RETAIL, _truncate, drop_prefix

NUMBERS = ["601234567", "0121234567", "221234567", "800123456", "701234567", "112", "+4930123"]


def pick(calls: dict[str, Any], data: st.DataObject) -> str:
    """Choose a call by position: draws must not depend on ids or grants (external state)."""
    keys = list(calls)
    return keys[data.draw(st.integers(0, 63)) % len(keys)]


class LedgerMachine(RuleBasedStateMachine):
    loop: asyncio.AbstractEventLoop
    svc: Services

    def __init__(self) -> None:
        super().__init__()
        self.account = f"h-{uuid.uuid4().hex[:10]}"
        self.open: dict[str, tuple[int, int, bool]] = {}  # call -> granted s, reserved, emergency
        self.finished: dict[str, int] = {}
        self.entries = 0
        self.committed = 0
        self.calls = 0

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    @initialize(balance=st.integers(0, 3_000_000))
    def create(self, balance: int) -> None:
        self.run(self.svc.accounts.create(Account(self.account, deck="retail", cps=0, max_calls=0)))
        if balance:
            self.topup(balance)

    @rule(amount=st.integers(1, 2_000_000))
    def topup(self, amount: int) -> None:
        self.run(self.svc.accounts.add_entry(self.account, "topup", amount, at=datetime.now(UTC)))
        self.entries += amount

    @rule(number=st.sampled_from(NUMBERS), cap=st.sampled_from([None, 30, 300]))
    def authorize(self, number: str, cap: int | None) -> None:
        self.calls += 1
        cid = f"call-{self.calls}"
        g = self.run(self.svc.ledger.authorize(CallRequest(self.account, cid, number, cap_s=cap)))
        if g.allowed:
            assert g.max_seconds > 0 or g.reason == "EMERGENCY"
            self.open[cid] = (g.max_seconds, g.reserved, g.reason == "EMERGENCY")
        else:
            assert g.reserved == 0 and g.max_seconds == 0

    @precondition(lambda self: bool(self.open))
    @rule(data=st.data())
    def renew(self, data: st.DataObject) -> None:
        cid = pick(self.open, data)
        granted, reserved, emergency = self.open[cid]
        target = granted + data.draw(st.sampled_from([30, 300]))
        self.run(self.svc.ledger.answer(self.account, cid))
        g = self.run(self.svc.ledger.renew(self.account, cid, target))
        if g.allowed and not emergency:
            assert g.max_seconds >= granted and g.reserved >= reserved
            self.open[cid] = (g.max_seconds, g.reserved, emergency)

    @precondition(lambda self: bool(self.open))
    @rule(data=st.data())
    def finish(self, data: st.DataObject) -> None:
        cid = pick(self.open, data)
        granted, reserved, emergency = self.open.pop(cid)
        # a share of the grant, sometimes past it (a switch that failed to cut)
        billsec = (granted or 600) * data.draw(st.integers(0, 110)) // 100
        s = self.run(
            self.svc.ledger.finish(
                self.account, cid, Outcome(billsec > 0, billsec, datetime.now(UTC), "ANSWER")
            )
        )
        assert s.status == "FINISHED"
        assert 0 <= s.cost <= reserved or (emergency and s.cost == 0)
        self.finished[cid] = s.cost
        self.committed += s.cost

    @precondition(lambda self: bool(self.finished))
    @rule(data=st.data())
    def finish_again(self, data: st.DataObject) -> None:
        cid = pick(self.finished, data)
        s = self.run(
            self.svc.ledger.finish(
                self.account, cid, Outcome(True, 999, datetime.now(UTC), "ANSWER")
            )
        )
        assert s.status == "DUPLICATE" and s.cost == self.finished[cid]

    @invariant()
    def books_balance(self) -> None:
        if not hasattr(self, "svc") or (not self.entries and not self.open and not self.finished):
            return
        live = self.run(self.svc.accounts.live(self.account))
        open_calls = self.run(self.svc.ledger.open_calls(self.account))
        assert live.reserved == sum(r for _, r, _ in self.open.values()) == sum(open_calls.values())
        assert live.balance == self.entries - self.committed
        assert live.balance == live.entries_total - live.spent
        assert live.available >= 0


def test_ledger_invariants_hold_under_random_interleavings(settings: Settings) -> None:
    loop = asyncio.new_event_loop()

    async def open_services() -> tuple[Services, Any]:
        await _truncate(settings.pg_dsn)
        cm = services(settings)
        svc = await cm.__aenter__()
        assert svc.pool is not None
        async with svc.pool.acquire() as conn:
            deck, _ = await import_deck(conn, load_deck(RETAIL), "test")
        await publish(svc.redis, settings.keyspace, deck)
        return svc, cm

    svc, cm = loop.run_until_complete(open_services())
    LedgerMachine.loop = loop
    LedgerMachine.svc = svc
    try:
        run = settings_for_machine(LedgerMachine)
        run()
    finally:
        loop.run_until_complete(drop_prefix(svc.redis, settings.keyspace.prefix))
        loop.run_until_complete(cm.__aexit__(None, None, None))
        loop.close()


def settings_for_machine(machine: type[RuleBasedStateMachine]) -> Any:
    test = machine.TestCase
    test.settings = settings(
        max_examples=40,
        stateful_step_count=25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    return lambda: test().runTest()
