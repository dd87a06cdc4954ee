"""Random interleavings of authorize / finish / renew / top-up against the real Redis.

Invariants after every step: reservations in the account equal the sum of open calls'
reservations; the balance equals entries minus committed costs; no call is charged more
than it reserved; no duplicate finish moves money; available credit never goes negative."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from rating.accounts import Account
from rating.deck import Deck, load_deck
from rating.deck_store import import_deck, publish
from rating.keys import call_ref
from rating.ledger import CallRequest, Outcome
from rating.plan_store import PlanStore
from rating.plans import Allowance, Plan
from rating.tariff import rate_call
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


def settings_for_machine(
    machine: type[RuleBasedStateMachine], examples: int = 40, steps: int = 25
) -> Any:
    test = machine.TestCase
    test.settings = settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    return lambda: test().runTest()


# -- bundles -----------------------------------------------------------------------------------

# Two months (deck versions take effect when imported, now: both lie after it).
PERIODS = {
    "2027-01": datetime.fromisoformat("2027-01-20T12:00:00+01:00"),
    "2027-02": datetime.fromisoformat("2027-02-10T12:00:00+01:00"),
}
BUNDLE_NUMBERS = ["601234567", "0121234567", "221234567", "+4930123456", "112"]


class BundleMachine(RuleBasedStateMachine):
    """Parallel authorizes, finishes, replays and sweeper expiries of an account on a plan
    (rules draw the same way whatever the grants were: parallel calls race for real, so the
    state a draw lands on may differ between runs, never the shape of the draws)
    whose bundle covers Polish numbers (per-second and 30/6 s increments) but not Germany.

    Invariants: a bundle's consumed + reserved seconds never exceed its allowance and equal
    what the open and settled calls hold; the balance's reservation invariant as above; every
    call costs exactly the deck's price less the price of its bundle seconds."""

    loop: asyncio.AbstractEventLoop
    svc: Services
    deck: Deck

    def __init__(self) -> None:
        super().__init__()
        self.account = f"hb-{uuid.uuid4().hex[:10]}"
        self.open: dict[str, tuple[int, str, str]] = {}  # call -> reserved, period, bundle key
        self.bundle_open: dict[str, int] = {}  # call -> bundle seconds reserved
        self.used: dict[str, int] = {}  # bundle key -> seconds consumed
        self.finished: dict[str, int] = {}
        self.expired: set[str] = set()
        self.entries = self.committed = self.calls = 0
        self.late = 0  # charged by late finishes of calls whose reservation was released
        self.allowance = 0

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    @initialize(balance=st.integers(0, 2_000_000), allowance=st.sampled_from([45, 300, 1200]))
    def create(self, balance: int, allowance: int) -> None:
        self.allowance = allowance
        start = datetime.fromisoformat("2027-01-01T00:00:00+01:00")
        self.run(self.svc.accounts.create(Account(self.account, deck="retail", cps=0, max_calls=0)))
        plans = PlanStore(self.svc.accounts)
        name = f"p-{self.account}"
        plan = Plan(name, 0, "PLN", (Allowance(allowance, (), ("48",)),))
        self.run(plans.create(plan, at=start, actor="t"))
        self.run(plans.assign(self.account, name, start, at=start, actor="t"))
        if balance:
            self.topup(balance)

    @rule(amount=st.integers(1, 1_000_000))
    def topup(self, amount: int) -> None:
        self.run(self.svc.accounts.add_entry(self.account, "topup", amount, at=datetime.now(UTC)))
        self.entries += amount

    @rule(
        numbers=st.lists(st.sampled_from(BUNDLE_NUMBERS), min_size=1, max_size=4),
        period=st.sampled_from(sorted(PERIODS)),
        cap=st.sampled_from([None, 20, 90]),
    )
    def authorize_parallel(self, numbers: list[str], period: str, cap: int | None) -> None:
        ids = []
        for _ in numbers:
            self.calls += 1
            ids.append(f"bcall-{self.calls}")
        at = PERIODS[period]

        async def together() -> list[Any]:
            return await asyncio.gather(*(
                self.svc.ledger.authorize(CallRequest(self.account, c, n, cap_s=cap, at=at))
                for c, n in zip(ids, numbers, strict=True)
            ))  # fmt: skip

        grants = self.run(together())
        for g in grants:
            if not g.allowed:
                assert g.reserved == 0 and g.max_seconds == 0
                continue
            record = self.run(self.svc.ledger.call(self.account, g.call_id))
            key = record.get("bundle", "")
            assert key == "" or key.endswith(":" + period)
            self.open[g.call_id] = (g.reserved, period, key)
            self.bundle_open[g.call_id] = int(record.get("bundle_res") or 0)

    @rule(index=st.integers(0, 63), share=st.integers(0, 120))
    def finish(self, index: int, share: int) -> None:
        if not self.open:
            return
        cid = list(self.open)[index % len(self.open)]
        reserved, _, key = self.open.pop(cid)
        bres = self.bundle_open.pop(cid)
        record = self.run(self.svc.ledger.call(self.account, cid))
        granted = int(record["granted"])
        billsec = (granted or 60) * share // 100
        ended = datetime.now(UTC)
        s = self.run(self.svc.ledger.finish(
            self.account, cid, Outcome(billsec > 0, billsec, ended, "ANSWER")
        ))  # fmt: skip
        assert s.status == "FINISHED"
        expected, b = self._expected(record, billsec, ended, bres, reserved)
        assert s.cost == expected
        estimate = int(record.get("cost") or 0) if record.get("state") == "expired" else 0
        taken = int(record.get("bundle_seconds") or 0)
        if record.get("state") == "expired" and estimate == 0:
            # released by the sweeper: the money it released may be spent by other calls by
            # now (as before bundles)
            self.late += s.cost
        if key and record.get("state") == "expired" and taken == 0:
            # and only what they left of the bundle is taken
            held = sum(self.bundle_open[c] for c, (_, _, k) in self.open.items()
                       if k == key and c not in self.expired)  # fmt: skip
            b = min(b, max(0, self.allowance - self.used.get(key, 0) - held))
        if key:  # an expired call's late finish replaces the sweeper's estimate
            self.used[key] = self.used.get(key, 0) + b - taken
        self.finished[cid] = s.cost
        self.committed += s.cost - estimate

    def _expected(
        self, record: dict[str, str], billsec: int, ended: datetime, bres: int, reserved: int
    ) -> tuple[int, int]:
        """The call's cost by the deck, independently of the scripts: (cost, bundle seconds)."""
        if record.get("emergency") == "1" or billsec <= 0 or not record.get("prefix"):
            return 0, 0
        # as the ledger keeps it: never before the authorization
        started = datetime.fromtimestamp(int(record["authorized_at"]) / 1000, UTC)
        answered = min(max(ended - timedelta(seconds=billsec), started), ended)
        r = rate_call(self.deck, record["e164"].lstrip("+"), answered, billsec)
        b = min(bres, r.billable_seconds)
        cost = r.cost
        if b > 0:
            cost = max(0, cost - rate_call(self.deck, record["e164"].lstrip("+"), answered, b).cost)
        return min(cost, int(record.get("reserved") or 0)), b

    @rule(index=st.integers(0, 63), answered=st.booleans())
    def expire(self, index: int, answered: bool) -> None:
        """The sweeper settles a call whose outcome never came (its deadline moved to now)."""
        live = [c for c in self.open if c not in self.expired]
        if not live:
            return
        cid = live[index % len(live)]
        self.expired.add(cid)
        keys = self.svc.settings.keyspace
        ref = call_ref(self.svc.ledger.settings.switch_host, cid)
        if answered:
            self.run(self.svc.ledger.answer(self.account, cid))
        self.run(self.svc.redis.zadd(keys.expiry(keys.tag(self.account)),
                                     {f"{self.account}|{ref}": 0}))  # fmt: skip
        # only what is due at epoch 1 ms: this call, not other examples' calls now due
        swept = self.run(self.svc.ledger.sweep(due_before_ms=1))
        reserved, _, key = self.open[cid]
        record = self.run(self.svc.ledger.call(self.account, cid))
        assert swept == 1, (swept, record)
        assert record["state"] == "expired"
        cost = int(record["cost"])
        assert cost == (reserved if answered else 0)
        self.committed += cost
        if key:
            taken = int(record.get("bundle_seconds") or 0)
            assert taken == (self.bundle_open[cid] if answered else 0)
            self.used[key] = self.used.get(key, 0) + taken
        # still finishable once: stays in `open` for the late finish, with its estimate
        self.open[cid] = (reserved, self.open[cid][1], key)

    @rule(index=st.integers(0, 63))
    def finish_again(self, index: int) -> None:
        if not self.finished:
            return
        cid = list(self.finished)[index % len(self.finished)]
        s = self.run(self.svc.ledger.finish(
            self.account, cid, Outcome(True, 999, datetime.now(UTC), "ANSWER")
        ))  # fmt: skip
        assert s.status == "DUPLICATE" and s.cost == self.finished[cid]

    @invariant()
    def bundles_and_books_balance(self) -> None:
        if not hasattr(self, "svc") or not self.allowance:
            return
        raw = self.run(self.svc.redis.hgetall(self.svc.settings.keyspace.account(self.account)))
        fields = {k.decode(): int(v) for k, v in raw.items() if k[:3] in (b"bu:", b"br:")}
        for period in PERIODS:
            used = sum(v for k, v in fields.items() if k.startswith("bu:") and k.endswith(period))
            held = sum(v for k, v in fields.items() if k.startswith("br:") and k.endswith(period))
            assert 0 <= used + held <= self.allowance
            assert used == sum(v for k, v in self.used.items() if k.endswith(period))
            assert held == sum(
                self.bundle_open[c] for c, (_, p, _) in self.open.items()
                if p == period and self._is_open(c)
            )
        live = self.run(self.svc.accounts.live(self.account))
        open_calls = self.run(self.svc.ledger.open_calls(self.account))
        assert live.reserved == sum(open_calls.values())
        assert live.balance == self.entries - self.committed
        assert live.balance == live.entries_total - live.spent
        assert live.available + self.late >= 0

    def _is_open(self, cid: str) -> bool:
        return self.run(self.svc.ledger.call(self.account, cid)).get("state") == "open"


def test_bundle_invariants_hold_under_random_interleavings(settings: Settings) -> None:
    loop = asyncio.new_event_loop()

    async def open_services() -> tuple[Services, Any, Deck]:
        await _truncate(settings.pg_dsn)
        cm = services(settings)
        svc = await cm.__aenter__()
        assert svc.pool is not None
        retail = load_deck(RETAIL)
        async with svc.pool.acquire() as conn:
            deck, _ = await import_deck(conn, retail, "test")
        await publish(svc.redis, settings.keyspace, deck)
        return svc, cm, deck

    svc, cm, deck = loop.run_until_complete(open_services())
    BundleMachine.loop = loop
    BundleMachine.svc = svc
    BundleMachine.deck = deck
    try:
        settings_for_machine(BundleMachine, examples=60, steps=30)()
    finally:
        loop.run_until_complete(drop_prefix(svc.redis, settings.keyspace.prefix))
        loop.run_until_complete(cm.__aexit__(None, None, None))
        loop.close()
