"""The ledger's rules, in order, against the real Redis (and PostgreSQL for accounts)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from rating.accounts import AccountKind, AccountStatus
from rating.deck import Deck
from rating.ledger import CallRequest, Grant, Ledger, Outcome
from runtime.services import Services
from tests.conftest import AccountFactory

PLN = 1_000_000


def call_id() -> str:
    return f"c-{uuid.uuid4().hex[:12]}"


async def authorize(svc: Services, account: str, to: str, cid: str | None = None) -> Grant:
    return await svc.ledger.authorize(CallRequest(account, cid or call_id(), to, "600100200"))


async def finish(svc: Services, account: str, cid: str, billsec: int, to: str = "") -> int:
    s = await svc.ledger.finish(
        account, cid, Outcome(billsec > 0, billsec, datetime.now(UTC), "ANSWER", "16", dialled=to)
    )
    return s.cost


async def live(svc: Services, account: str) -> dict[str, int]:
    return (await svc.accounts.live(account)).as_dict()


async def test_allowed_call_reserves_then_debits_exact_cost(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    a = await make_account(balance=1 * PLN)
    g = await authorize(svc, a.id, "0601234567")  # mobile, 0.19/min per second
    assert (g.decision.value, g.reason) == ("ALLOW", "OK")
    assert g.max_seconds == 315  # 315 s * 0.19/60 = 0.9975 <= 1.00 < 316 s
    assert (await live(svc, a.id))["reserved"] == g.reserved == 997_500
    cost = await finish(svc, a.id, g.call_id, 100)
    assert cost == 316_700  # 100 * 0.19 / 60 = 0.316666.. rounded up to 0.3167
    after = await live(svc, a.id)
    assert after["balance"] == PLN - cost and after["reserved"] == 0 and after["open_calls"] == 0


async def test_authorize_and_finish_are_idempotent(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    a = await make_account(balance=1 * PLN)
    cid = call_id()
    first = await authorize(svc, a.id, "0601234567", cid)
    again = await authorize(svc, a.id, "0601234567", cid)
    assert again.replay and (again.max_seconds, again.reserved) == (
        first.max_seconds,
        first.reserved,
    )
    assert (await live(svc, a.id))["reserved"] == first.reserved
    assert await finish(svc, a.id, cid, 60) == 190_000
    dup = await svc.ledger.finish(a.id, cid, Outcome(True, 300, datetime.now(UTC), "ANSWER", "16"))
    assert dup.status == "DUPLICATE" and dup.cost == 190_000
    assert (await live(svc, a.id))["balance"] == PLN - 190_000
    # a late repeat of authorize after finish changes nothing either
    assert (await authorize(svc, a.id, "0601234567", cid)).replay
    assert (await live(svc, a.id))["reserved"] == 0


@pytest.mark.parametrize(
    ("setup", "number", "reason"),
    [
        ({"status": AccountStatus.SUSPENDED}, "0601234567", "ACCOUNT_SUSPENDED"),
        ({"status": AccountStatus.CLOSED}, "0601234567", "ACCOUNT_SUSPENDED"),
        (
            {"kind": AccountKind.POSTPAID, "credit_limit": 100 * PLN, "invoice_overdue": True},
            "0601234567",
            "INVOICE_OVERDUE",
        ),
        ({}, "12345", "INVALID_NUMBER"),
        ({}, "+48 701 234 567", "PREMIUM_BLOCKED"),
        ({}, "0048703123456", "PREMIUM_BLOCKED"),
        ({}, "+979123456789", "PREMIUM_BLOCKED"),
        ({}, "+88213456789", "DESTINATION_BLOCKED"),
        ({"blocked_prefixes": ("4860",)}, "601234567", "DESTINATION_BLOCKED"),
        ({}, "+33123456789", "NO_RATE"),
        ({"deck": None}, "601234567", "NO_RATE"),
    ],
)
async def test_denials_carry_their_reason(
    svc: Services,
    retail: Deck,
    make_account: AccountFactory,
    setup: dict[str, object],
    number: str,
    reason: str,
) -> None:
    a = await make_account(balance=10 * PLN, **setup)
    g = await authorize(svc, a.id, number)
    assert (g.decision.value, g.reason, g.max_seconds) == ("DENY", reason, 0)
    assert (await live(svc, a.id))["reserved"] == 0


async def test_checks_apply_in_the_documented_order(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    # suspended beats overdue beats invalid beats premium beats no-rate beats credit
    a = await make_account(
        kind=AccountKind.POSTPAID, invoice_overdue=True, status=AccountStatus.SUSPENDED
    )
    assert (await authorize(svc, a.id, "701234567")).reason == "ACCOUNT_SUSPENDED"
    await svc.accounts.set_status(a.id, AccountStatus.ACTIVE)
    assert (await authorize(svc, a.id, "701234567")).reason == "INVOICE_OVERDUE"
    await svc.accounts.update(a.id, invoice_overdue=False)
    assert (await authorize(svc, a.id, "7012")).reason == "INVALID_NUMBER"
    assert (await authorize(svc, a.id, "701234567")).reason == "PREMIUM_BLOCKED"
    assert (await authorize(svc, a.id, "+33123456789")).reason == "NO_RATE"
    assert (await authorize(svc, a.id, "601234567")).reason == "INSUFFICIENT_CREDIT"


async def test_unknown_account(svc: Services, retail: Deck) -> None:
    g = await authorize(svc, "nobody", "601234567")
    assert (g.decision.value, g.reason) == ("DENY", "UNKNOWN_ACCOUNT")


@pytest.mark.parametrize("status", [AccountStatus.SUSPENDED, AccountStatus.ACTIVE])
async def test_emergency_always_allowed_and_free(
    svc: Services, retail: Deck, make_account: AccountFactory, status: AccountStatus
) -> None:
    a = await make_account(balance=0, status=status, blocked_prefixes=("1",))
    for code in ("112", "997", "998", "999"):
        g = await authorize(svc, a.id, code)
        assert (g.decision.value, g.reason) == ("ALLOW", "EMERGENCY")
        assert await finish(svc, a.id, g.call_id, 600) == 0
    g = await authorize(svc, "not-a-customer", "112")
    assert g.allowed
    assert (await live(svc, a.id))["balance"] == 0


async def test_emergency_reported_only_at_finish_is_recorded_free(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    a = await make_account(balance=PLN)
    cid = call_id()
    assert await finish(svc, a.id, cid, 120, to="112") == 0
    call = await svc.ledger.call(a.id, cid)
    assert call["reason"] == "EMERGENCY" and call["state"] == "finished"


async def test_zero_and_negative_balance_refused(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    a = await make_account(balance=0)
    assert (await authorize(svc, a.id, "601234567")).reason == "INSUFFICIENT_CREDIT"
    await svc.accounts.add_entry(a.id, "adjustment", -PLN, note="correction", at=datetime.now(UTC))
    assert (await live(svc, a.id))["balance"] == -PLN
    assert (await authorize(svc, a.id, "601234567")).reason == "INSUFFICIENT_CREDIT"
    # too little for the first 60 s block of a 60/60 destination
    b = await make_account(balance=100_000)  # 0.10 < 0.12 per started minute
    assert (await authorize(svc, b.id, "0581234567")).reason == "INSUFFICIENT_CREDIT"


async def test_postpaid_uses_credit_limit(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    a = await make_account(kind=AccountKind.POSTPAID, credit_limit=1 * PLN)
    g = await authorize(svc, a.id, "0601234567")
    assert g.allowed and g.max_seconds == 315
    cost = await finish(svc, a.id, g.call_id, 315)
    assert (await live(svc, a.id))["balance"] == -cost
    assert (await authorize(svc, a.id, "0601234567")).reason == "INSUFFICIENT_CREDIT"


async def test_grant_is_capped_by_max_call_length(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    a = await make_account(balance=1000 * PLN)
    g = await authorize(svc, a.id, "601234567")
    assert g.max_seconds == svc.settings.ledger.max_call_s
    sliced = await svc.ledger.authorize(CallRequest(a.id, call_id(), "601234567", cap_s=300))
    assert sliced.max_seconds == 300 and sliced.reserved == 950_000


async def test_concurrent_call_limit(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    a = await make_account(balance=100 * PLN, max_calls=2)
    g1, g2, g3 = [await authorize(svc, a.id, "601234567") for _ in range(3)]
    assert g1.allowed and g2.allowed and g3.reason == "TOO_MANY_CALLS"
    await finish(svc, a.id, g1.call_id, 10)
    assert (await authorize(svc, a.id, "601234567")).allowed
    # emergency is never limited
    assert (await authorize(svc, a.id, "112")).allowed


async def test_calls_per_second_limit(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    a = await make_account(balance=1000 * PLN, cps=3)
    grants = await asyncio.gather(*(authorize(svc, a.id, "601234567") for _ in range(6)))
    assert sum(g.allowed for g in grants) == 3
    assert {g.reason for g in grants if not g.allowed} == {"RATE_LIMITED"}
    # the limiter's clock is kept to the microsecond, not rounded by Lua's number printing
    tat = await svc.redis.hget(svc.settings.keyspace.account(a.id), "cps_tat")
    assert tat is not None and tat.isdigit() and len(tat) >= 16
    await asyncio.sleep(1.1)
    assert (await authorize(svc, a.id, "601234567")).allowed


async def test_daily_spend_cap(svc: Services, retail: Deck, make_account: AccountFactory) -> None:
    a = await make_account(balance=100 * PLN, daily_cap=PLN)
    g = await authorize(svc, a.id, "601234567")
    assert g.allowed and g.reserved <= PLN
    await finish(svc, a.id, g.call_id, g.max_seconds)
    refused = await authorize(svc, a.id, "601234567")
    assert (refused.reason, refused.detail) == ("RATE_LIMITED", "daily_spend_cap")


async def test_global_blocked_prefixes(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    a = await make_account(balance=10 * PLN)
    ledger = Ledger(
        svc.redis,
        svc.settings.keyspace,
        svc.ledger.decks,
        svc.settings.ledger.__class__(blocked_prefixes=("4851",), switch_host="t"),
    )
    g = await ledger.authorize(CallRequest(a.id, call_id(), "511234567"))
    assert (g.reason, g.detail) == ("DESTINATION_BLOCKED", "global")


async def test_high_risk_allowed_only_when_enabled(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    a = await make_account(balance=100 * PLN, allow_high_risk=True)
    g = await authorize(svc, a.id, "+88213456789")
    assert g.allowed and g.max_seconds > 0


async def test_deck_change_reaches_running_processes(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    from rating.deck import build_deck
    from tests.conftest import install_deck

    a = await make_account(balance=10 * PLN)
    before = await authorize(svc, a.id, "601234567")
    await finish(svc, a.id, before.call_id, 0)
    cheaper = build_deck(
        {"name": "retail", "currency": "PLN", "rates": "r.csv"},
        b"prefix,name,connect_fee,rate,rate_unit_s,increment_s,from_s,band\n"
        b"48,PL,0,0.01,60,60,0,*\n",
        manifest_file="t.toml",
        rates_file="r.csv",
    )
    stored = await install_deck(svc, cheaper)
    assert stored.version == retail.version + 1
    after = await authorize(svc, a.id, "601234567")
    assert before.max_seconds == 3157  # 10 PLN at 0.19/min
    assert after.max_seconds == svc.settings.ledger.max_call_s  # 0.01/min: capped
    call = await svc.ledger.call(a.id, after.call_id)
    assert call["deck_version"] == str(stored.version)


async def test_account_settings_change_is_seen_at_once(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    a = await make_account(balance=10 * PLN, deck=None)
    assert (await authorize(svc, a.id, "601234567")).reason == "NO_RATE"
    await svc.accounts.update(a.id, deck="retail")
    assert (await authorize(svc, a.id, "601234567")).allowed


async def test_every_decision_leaves_a_cdr_in_the_stream(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    a = await make_account(balance=PLN)
    denied = await authorize(svc, a.id, "701234567")
    ok = await authorize(svc, a.id, "601234567")
    await finish(svc, a.id, ok.call_id, 42)
    await finish(svc, a.id, ok.call_id, 42)  # duplicate: no second CDR
    stream = svc.settings.keyspace.cdr_stream(svc.settings.keyspace.tag(a.id))
    entries = await svc.redis.xrange(stream)
    cdrs = [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]
    mine = [c for c in cdrs if c["account"] == a.id]
    assert [(c["call_id"], c["state"]) for c in mine] == [
        (denied.call_id, "denied"),
        (ok.call_id, "finished"),
    ]
    done = mine[1]
    assert done["e164"] == "+48601234567" and done["class"] == "mobile"
    assert done["billsec"] == "42" and done["cost"] == "133000" and done["prefix"] == "4860"
    assert done["deck"] == "retail" and done["deck_version"] == str(retail.version)


async def test_sweeper_releases_orphans_and_a_late_finish_still_bills_once(
    svc: Services, retail: Deck, make_account: AccountFactory, ledger_settings: object
) -> None:
    from rating.ledger import LedgerSettings

    a = await make_account(balance=10 * PLN)
    quick = Ledger(
        svc.redis,
        svc.settings.keyspace,
        svc.ledger.decks,
        LedgerSettings(ring_window_s=0, grace_s=0, switch_host="t"),
    )
    g = await quick.authorize(CallRequest(a.id, call_id(), "601234567", cap_s=1))
    assert g.allowed and (await live(svc, a.id))["reserved"] > 0
    assert await quick.sweep() == 0  # not yet due
    await asyncio.sleep(1.2)
    assert await quick.sweep() == 1
    assert (await live(svc, a.id))["reserved"] == 0
    assert (await quick.call(a.id, g.call_id))["state"] == "expired"
    assert await quick.sweep() == 0
    # the late finish comes from the call's own switch ("t")
    cost = (await quick.finish(a.id, g.call_id, Outcome(True, 1, datetime.now(UTC)))).cost
    assert cost == 3_200  # 1 s * 0.19 / 60, rounded up
    assert (await live(svc, a.id))["balance"] == 10 * PLN - cost
    assert (
        await quick.finish(a.id, g.call_id, Outcome(True, 1, datetime.now(UTC)))
    ).status == "DUPLICATE"


async def test_finish_never_charges_more_than_was_reserved(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    a = await make_account(balance=PLN)
    g = await authorize(svc, a.id, "601234567")
    # the switch reports 10 s more than granted (it failed to cut): the customer pays the grant
    cost = await finish(svc, a.id, g.call_id, g.max_seconds + 10)
    assert cost == g.reserved
    assert (await live(svc, a.id))["balance"] >= 0


async def test_forwarded_legs_carry_the_redirecting_number_into_the_cdr(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    a = await make_account(balance=PLN)
    g = await svc.ledger.authorize(CallRequest(a.id, call_id(), "601234567", rdnis="221234567"))
    await finish(svc, a.id, g.call_id, 10)
    stream = svc.settings.keyspace.cdr_stream(svc.settings.keyspace.tag(a.id))
    [(_, fields)] = await svc.redis.xrange(stream)
    assert fields[b"rdnis"] == b"221234567"
    from cdr.writer import CdrWriter

    async with CdrWriter(svc.redis, svc.settings.keyspace, svc.settings.pg_dsn) as writer:
        assert await writer.drain_once() == 1
    assert svc.pool is not None
    assert await svc.pool.fetchval("select rdnis from cdrs where call_id = $1", g.call_id) == (
        "221234567"
    )
