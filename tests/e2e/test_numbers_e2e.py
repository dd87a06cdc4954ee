"""Customers' numbers through the real Asterisk: the outbound caller id is the account's own
number (the one the phone presented if the account owns it, else its default), a phone
presenting a number its account does not own goes out with the account's number instead
(or withheld when it owns none), and an unverified customer's phone is refused."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from customers.model import Customer
from customers.store import CustomerStore
from numbering.settings import NumberingSettings
from numbering.store import NumberStore
from rating.accounts import AccountStatus
from tests.e2e.conftest import E2E

PLN = 1_000_000
GEO, GEO2 = "+48221234567", "+48221234568"


async def _numbers(e2e: E2E, account: str, *numbers: str) -> None:
    assert e2e.svc.pool is not None
    store = NumberStore(e2e.svc.pool, e2e.svc.accounts, NumberingSettings())
    now = datetime.now(UTC)
    for n in numbers:
        await store.add(n, carrier="rig", monthly_cost=0, monthly_price=0, at=now, actor="e2e")
        await store.assign(n, account, at=now, actor="e2e")


async def test_outbound_caller_id_is_an_owned_number(e2e: E2E) -> None:
    # Two calls of phone-a at once, each granted up to 3 h: 10 PLN did not cover both when the
    # 3 h ran from the evening rate into the day rate (early morning), and one was refused.
    a = await e2e.account("phone-a", balance=100 * PLN)
    await e2e.account("phone-b", balance=10 * PLN)  # owns no number
    await _numbers(e2e, a.id, GEO, GEO2)  # GEO is the default caller id
    own, spoofed, none = await asyncio.gather(
        e2e.call("221112233", "phone-a", hangup_after_ms=500, caller=GEO2),
        e2e.call("221112234", "phone-a", hangup_after_ms=500, caller="+48601999999"),
        e2e.call("221112235", "phone-b", hangup_after_ms=500, caller=GEO),
    )
    assert own.answered and spoofed.answered and none.answered
    calls = {c.number: c.caller for c in e2e.carrier.wait_for_calls(e2e.carrier_seen + 3)}
    assert calls["+48221112233"] == GEO2  # its own number, as presented
    assert calls["+48221112234"] == GEO  # not its number: the account's caller id instead
    assert calls["+48221112235"] not in (GEO, "phone")  # owns none: withheld, never spoofed
    assert calls["+48221112235"].lower() == "anonymous"


async def test_unverified_customer_is_refused_with_403(e2e: E2E) -> None:
    a = await e2e.account("phone-c", balance=10 * PLN)
    assert e2e.svc.pool is not None
    customers = CustomerStore(e2e.svc.pool, e2e.svc.accounts)
    pending = Customer(id="e2e-cust", legal_name="Jan Kowalski", email="jan@example.pl")
    await customers.create(pending, at=datetime.now(UTC), actor="e2e", accounts=(a.id,))
    refused = await e2e.call("221112236", "phone-c")
    assert refused.status == 403 and not refused.answered
    [cdr] = await e2e.cdrs("phone-c", 1)
    assert cdr["reason"] == "CUSTOMER_UNVERIFIED"
    assert e2e.new_carrier_calls() == []


async def test_carrier_call_to_an_assigned_number_is_routed_rated_and_listed(e2e: E2E) -> None:
    """The rig's accounts have no phone to ring: the call rings at the account until the
    carrier gives up. Its CDR is inbound, free, on the account's statement."""
    a = await e2e.account("phone-d", balance=0)  # inbound is free: no credit needed
    suspended = await e2e.account("phone-e", balance=PLN)
    await _numbers(e2e, a.id, "+48221000011")
    await _numbers(e2e, suspended.id, "+48221000012")
    await e2e.svc.accounts.set_status(suspended.id, AccountStatus.SUSPENDED)
    completed, failed = await e2e.ring_once("+48221000011", ["+442079460001"], ring_ms=1500)
    assert (completed, failed) == (1, 0)
    [cdr] = await e2e.cdrs("phone-d", 1)
    assert (cdr["decision"], cdr["class"], cdr["e164"], cdr["cost"]) == (
        "ALLOW", "inbound", "+48221000011", "0",
    )  # fmt: skip
    assert e2e.svc.pool is not None
    direction = await e2e.svc.pool.fetchval("select direction from cdrs where account = $1", a.id)
    assert direction == "in"
    refused = await e2e.call("+48221000012", "127.0.0.10")  # the carrier's gateway
    assert refused.status == 480 and not refused.answered
    unknown = await e2e.call("+48221000013", "127.0.0.10")
    assert unknown.status == 404
    assert (await e2e.svc.accounts.live(a.id)).reserved == 0
