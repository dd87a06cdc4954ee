"""Routes inside the authorization, on the real Redis and PostgreSQL: the grant carries the
carriers to try (cheapest first), margin refusals are ledger decisions (recorded, replayed,
with their SIP code), carriers' max calls are counted in the same script as the account's
reservation (parallel calls cannot exceed it) and a finished call frees its place."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime

from cdr.model import Cdr
from rating.carrier_store import CarrierStore
from rating.carriers import Carrier
from rating.deck import Deck
from rating.ledger import CallRequest, Outcome, Reason
from rating.route_rules import RouteRule
from runtime.services import Services
from switch.fastagi import GRANT_FIELDS, ROUTED_GRANT_FIELDS, FastAgiAdapter, parse_grant
from tests.conftest import AccountFactory, install_deck
from tests.integration.test_carriers import buy

PLN = 1_000_000
WARSAW, MOBILE = "221234567", "601234567"  # retail sells 0.045-0.09/min and 0.19/min


async def _carriers(svc: Services, cheap_max: int = 0) -> CarrierStore:
    assert svc.pool is not None
    store = CarrierStore(svc.pool, svc.redis, svc.settings.keyspace)
    await install_deck(svc, buy("b-cheap", "4822,Warsaw,0,0.0200,60,1,0,*\n"
                                           "4860,Mobile,0,0.2500,60,1,0,*\n"))  # fmt: skip
    await install_deck(svc, buy("b-mid", "48,Poland,0,0.0400,60,1,0,*\n"))
    now = datetime.now(UTC)
    await store.create(Carrier("cheap", "b-cheap", trunk="trunk-a", max_calls=cheap_max),
                       at=now, actor="test")  # fmt: skip
    await store.create(Carrier("mid", "b-mid", trunk="trunk-b"), at=now, actor="test")
    return store


def _out(billsec: int = 30) -> Outcome:
    return Outcome(answered=True, billsec=billsec, ended_at=datetime.now(UTC),
                   disposition="ANSWER", hangup_cause="16")  # fmt: skip


async def test_the_grant_carries_routes_and_capacity_is_held_until_the_finish(
    svc: Services, make_account: AccountFactory
) -> None:
    a = await make_account(balance=50 * PLN)
    await _carriers(svc, cheap_max=1)
    adapter = FastAgiAdapter(svc.ledger)
    first = await svc.ledger.authorize(CallRequest(a.id, "c1", WARSAW))
    assert (first.reason, first.routes) == (Reason.OK, ("trunk-a", "trunk-b"))
    grant = parse_grant(adapter.grant_value(first), ROUTED_GRANT_FIELDS)
    assert grant["TOLLGATE_ROUTES"] == "trunk-a|trunk-b"
    assert grant["TOLLGATE_DIAL"] == "+48221234567"
    call = await svc.ledger.call(a.id, "c1")
    assert (call["carrier"], call["routes"]) == ("cheap", "cheap,mid")
    # cheap holds one call: the next parallel call skips it
    second = await svc.ledger.authorize(CallRequest(a.id, "c2", WARSAW))
    assert second.routes == ("trunk-b",)
    assert (await svc.ledger.authorize(CallRequest(a.id, "c1", WARSAW))).routes == first.routes
    await svc.ledger.finish(a.id, "c1", _out())
    await svc.ledger.finish(a.id, "c1", _out())  # a repeated finish frees nothing more
    third = await svc.ledger.authorize(CallRequest(a.id, "c3", WARSAW))
    assert third.routes == ("trunk-a", "trunk-b")
    assert await svc.redis.zcard(svc.settings.keyspace.carrier_open("cheap")) == 1


async def test_margin_refusal_is_a_recorded_decision_with_its_sip_code(
    svc: Services, make_account: AccountFactory
) -> None:
    a = await make_account(balance=50 * PLN)
    store = await _carriers(svc)
    await store.update("mid", {"disabled": True}, at=datetime.now(UTC), actor="test")
    adapter = FastAgiAdapter(svc.ledger)
    refused = await svc.ledger.authorize(CallRequest(a.id, "m1", MOBILE))
    assert (refused.allowed, refused.reason) == (False, Reason.NO_PROFITABLE_ROUTE)
    assert parse_grant(adapter.grant_value(refused))["TOLLGATE_SIP_CODE"] == "403"
    assert (await svc.accounts.live(a.id)).reserved == 0
    again = await svc.ledger.authorize(CallRequest(a.id, "m1", MOBILE))
    assert (again.replay, again.reason) == (True, Reason.NO_PROFITABLE_ROUTE)
    # the operator accepts a loss on this account's mobile calls
    await store.set_rule(RouteRule(a.id, "4860", allow_loss=True), at=datetime.now(UTC),
                         actor="test")  # fmt: skip
    lossy = await svc.ledger.authorize(CallRequest(a.id, "m2", MOBILE))
    assert (lossy.reason, lossy.routes) == (Reason.OK, ("trunk-a",))
    # Germany: no carrier has a rate
    nobody = await svc.ledger.authorize(CallRequest(a.id, "d1", "+493012345678"))
    assert nobody.reason == Reason.NO_ROUTE
    assert parse_grant(adapter.grant_value(nobody))["TOLLGATE_SIP_CODE"] == "404"


async def test_parallel_calls_never_exceed_a_carriers_max_calls(
    svc: Services, make_account: AccountFactory
) -> None:
    a = await make_account(balance=500 * PLN)
    store = await _carriers(svc, cheap_max=3)
    await store.update("mid", {"disabled": True}, at=datetime.now(UTC), actor="test")
    grants = await asyncio.gather(
        *(svc.ledger.authorize(CallRequest(a.id, f"p{i}", WARSAW)) for i in range(12))
    )
    reasons = sorted(g.reason for g in grants)
    assert reasons == [Reason.CARRIERS_BUSY] * 9 + [Reason.OK] * 3
    assert await svc.redis.zcard(svc.settings.keyspace.carrier_open("cheap")) == 3


async def test_without_carriers_the_single_trunk_grant_is_unchanged(
    svc: Services, make_account: AccountFactory, retail: Deck
) -> None:
    a = await make_account(balance=50 * PLN)
    grant = await svc.ledger.authorize(CallRequest(a.id, "s1", MOBILE))
    assert (grant.reason, grant.routes) == (Reason.OK, ())
    value = FastAgiAdapter(svc.ledger).grant_value(grant)
    assert len(value.split(",")) == len(GRANT_FIELDS)


async def test_the_finish_records_the_carrier_used_and_failed_attempts(
    svc: Services, make_account: AccountFactory
) -> None:
    a = await make_account(balance=50 * PLN)
    await _carriers(svc)
    await svc.ledger.authorize(CallRequest(a.id, "f1", WARSAW))
    done = replace(_out(), endpoint="trunk-b", attempts="trunk-a:503;")
    await svc.ledger.finish(a.id, "f1", done)
    call = await svc.ledger.call(a.id, "f1")
    assert (call["routes"], call["carrier_used"], call["attempts"]) == (
        "cheap,mid", "mid", "cheap:503;",
    )  # fmt: skip
    [(_, entries)] = await svc.redis.xread(
        {svc.settings.keyspace.cdr_stream(svc.settings.keyspace.tag(a.id)): "0"}
    )
    cdr = Cdr.from_stream({k.decode(): v.decode() for k, v in entries[-1][1].items()})
    assert (cdr.routes, cdr.carrier, cdr.attempts) == ("cheap,mid", "mid", "cheap:503;")
    # 30 s on mid's deck at 0.04/min, per second; the margin is what the sale adds
    assert (cdr.buy_deck, cdr.buy_cost) == ("b-mid", 20_000)
    assert cdr.cost - cdr.buy_cost in (45_000 - 20_000, 22_500 - 20_000)  # day or evening


async def test_a_lost_carriers_copy_never_opens_the_single_trunk(
    svc: Services, make_account: AccountFactory
) -> None:
    from runtime.recovery import catch_up

    a = await make_account(balance=50 * PLN)
    store = await _carriers(svc)
    await store.update("mid", {"disabled": True}, at=datetime.now(UTC), actor="test")
    first = await svc.ledger.authorize(CallRequest(a.id, "l1", MOBILE))
    assert first.reason == Reason.NO_PROFITABLE_ROUTE
    keys = svc.settings.keyspace
    await svc.redis.delete(keys.carriers())  # Redis lost it: the last copy still decides
    again = await svc.ledger.authorize(CallRequest(a.id, "l2", MOBILE))
    assert again.reason == Reason.NO_PROFITABLE_ROUTE
    done = await catch_up(svc)  # start-up (and the repair loop) write it again
    assert done.carriers == 2 and await svc.redis.exists(keys.carriers())


async def test_a_carrier_over_its_calls_per_second_is_skipped(
    svc: Services, make_account: AccountFactory
) -> None:
    a = await make_account(balance=500 * PLN)
    store = await _carriers(svc)
    await store.update("cheap", {"cps": 1}, at=datetime.now(UTC), actor="test")
    grants = await asyncio.gather(
        *(svc.ledger.authorize(CallRequest(a.id, f"r{i}", WARSAW)) for i in range(6))
    )
    firsts = [g.routes[0] for g in grants]
    # one call a second on cheap (a burst of one): the others of this instant go to mid
    assert firsts.count("trunk-a") >= 1 and "trunk-b" in firsts
    assert all(g.reason == Reason.OK for g in grants)
