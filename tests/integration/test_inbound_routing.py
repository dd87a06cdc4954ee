"""Where inbound calls ring and how many are let in, on the real PostgreSQL and Redis: the
grant names the account's active SIP logins (kept by the database, mirrored to Redis), and
the account's inbound limits (concurrent calls, calls per second) are counted in the same
Redis authorization as everything else, released when the call ends or is swept."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from customers import sip
from numbering.settings import NumberingSettings
from numbering.store import NumberStore
from rating.keys import expiry_member
from rating.ledger import CallRequest, Grant, Ledger, Outcome
from runtime.services import Services
from switch.fastagi import INCOMING_GRANT_FIELDS, incoming_grant_value, parse_grant
from tests.conftest import AccountFactory
from tests.integration.test_inbound import _incoming
from tests.integration.test_sip_logins import SETTINGS
from tests.unit.test_agi_server import StartServer, start_server

__all__ = ["start_server"]  # the fixture, imported for pytest

DID = "+48221239001"


async def _in(ledger: Ledger, account: str) -> Grant:
    cid = f"in-{uuid.uuid4().hex[:12]}"
    return await ledger.authorize(CallRequest(account, cid, DID, "+442079460001", inbound=True))


def _told(grant: Grant, account: str) -> dict[str, str]:
    return parse_grant(incoming_grant_value(grant, account), INCOMING_GRANT_FIELDS)


async def test_an_inbound_call_rings_the_accounts_active_sip_logins(
    svc: Services, make_account: AccountFactory, start_server: StartServer
) -> None:
    assert svc.pool is not None
    a = await make_account()
    plain = await make_account()  # no SIP login: rings the endpoint named as the account
    numbers = NumberStore(svc.pool, svc.accounts, NumberingSettings())
    now = datetime.now(UTC)
    for n, owner in ((DID, a.id), ("+48221239002", plain.id)):
        await numbers.add(n, carrier="rig", monthly_cost=0, monthly_price=0, at=now, actor="t")
        await numbers.assign(n, owner, at=now, actor="t")
    async with svc.pool.acquire() as c1, svc.pool.acquire() as c2:
        # two logins created at once for one account: both are in its list
        await asyncio.gather(
            sip.create(c1, SETTINGS, a.id, "7000101"), sip.create(c2, SETTINGS, a.id, "7000102")
        )
        await sip.create(c1, SETTINGS, a.id, "7000103")
        await sip.set_status(c1, SETTINGS, "7000103", "locked", "test")
    assert (await svc.accounts.get(a.id)).sip_logins == ("7000101", "7000102")
    await sip.publish(svc.accounts, a.id)

    told = await _incoming(svc, start_server, DID)
    assert (told["TOLLGATE_DECISION"], told["TOLLGATE_DIAL"]) == ("ALLOW", a.id)
    # the 9th field the dialplan's ARRAY() reads: the endpoints to ring (never a locked one)
    grant = await _in(svc.ledger, a.id)
    assert grant.ring == ("7000101", "7000102")
    assert _told(grant, a.id)["TOLLGATE_RING"] == "7000101&7000102"
    # a repeated request (same call id) names the same targets
    again = await svc.ledger.authorize(
        CallRequest(a.id, grant.call_id, DID, "+442079460001", inbound=True)
    )
    assert again.replay and again.ring == grant.ring

    fallback = await _in(svc.ledger, plain.id)
    assert fallback.ring == () and _told(fallback, plain.id)["TOLLGATE_RING"] == plain.id

    # a login deleted or disabled stops ringing once the account is mirrored again
    async with svc.pool.acquire() as conn:
        assert await sip.delete(conn, "7000101") == a.id
        await sip.set_status(conn, SETTINGS, "7000102", "disabled", "test")
    await sip.publish(svc.accounts, a.id)
    gone = await _in(svc.ledger, a.id)
    assert gone.ring == () and _told(gone, a.id)["TOLLGATE_RING"] == a.id
    async with svc.pool.acquire() as conn:
        await sip.set_status(conn, SETTINGS, "7000102", "active")
    await sip.publish(svc.accounts, a.id)
    assert (await _in(svc.ledger, a.id)).ring == ("7000102",)
    # a refused call rings nothing
    refused = _told(await _in(svc.ledger, "nobody"), "nobody")
    assert refused["TOLLGATE_DECISION"] == "DENY" and refused["TOLLGATE_RING"] == ""


async def test_inbound_concurrency_limit_counts_only_inbound_calls_until_they_end(
    svc: Services, make_account: AccountFactory
) -> None:
    a = await make_account(balance=10_000_000, inbound_max_calls=2, inbound_cps=0)
    first, second = await _in(svc.ledger, a.id), await _in(svc.ledger, a.id)
    assert first.allowed and second.allowed
    third = await _in(svc.ledger, a.id)
    assert (third.reason, third.detail) == ("TOO_MANY_CALLS", "inbound")
    assert _told(third, a.id)["TOLLGATE_SIP_CODE"] == "486"
    # outbound calls are not inbound ones: the account may still call out
    out = await svc.ledger.authorize(CallRequest(a.id, f"out-{uuid.uuid4().hex[:8]}", "601234567"))
    assert out.allowed
    keys = svc.settings.keyspace
    assert await svc.redis.hlen(keys.open_inbound(a.id)) == 2
    # a finished inbound call frees its place
    end = Outcome(True, 30, datetime.now(UTC), "ANSWER", "16")
    await svc.ledger.finish(a.id, first.call_id, end)
    fourth = await _in(svc.ledger, a.id)
    assert fourth.allowed
    # and so does one the sweeper settles (its outcome never came): made due now
    for g in (second, fourth):
        member = expiry_member(a.id, svc.ledger.switch_of(), g.call_id)
        await svc.redis.zadd(keys.expiry(keys.tag(a.id)), {member: 0})
    assert await svc.ledger.sweep() >= 2
    assert await svc.redis.hlen(keys.open_inbound(a.id)) == 0
    assert (await _in(svc.ledger, a.id)).allowed
    # finishing twice does not free a place twice
    await svc.ledger.finish(a.id, first.call_id, end)
    assert await svc.redis.hlen(keys.open_inbound(a.id)) == 1


async def test_inbound_calls_per_second_limit(svc: Services, make_account: AccountFactory) -> None:
    a = await make_account(inbound_cps=3)
    grants = await asyncio.gather(*(_in(svc.ledger, a.id) for _ in range(6)))
    assert sum(g.allowed for g in grants) == 3
    refused = [g for g in grants if not g.allowed]
    assert {(g.reason, g.detail) for g in refused} == {("RATE_LIMITED", "inbound_cps")}
    assert _told(refused[0], a.id)["TOLLGATE_SIP_CODE"] == "503"
    # the outbound limiter is a separate one
    b = await make_account(balance=10_000_000, cps=1, inbound_cps=0)
    assert all(g.allowed for g in await asyncio.gather(*(_in(svc.ledger, b.id) for _ in range(5))))
    out = await svc.ledger.authorize(CallRequest(b.id, f"out-{uuid.uuid4().hex[:8]}", "601234567"))
    assert out.allowed


async def test_inbound_limits_are_settings_of_the_account(
    svc: Services, make_account: AccountFactory
) -> None:
    a = await make_account()
    assert (a.inbound_max_calls, a.inbound_cps) == (0, 5)  # defaults
    updated = await svc.accounts.update(a.id, inbound_max_calls=4, inbound_cps=0)
    assert (updated.inbound_max_calls, updated.inbound_cps) == (4, 0)
    fields = await svc.redis.hmget(
        svc.settings.keyspace.account(a.id), ["inbound_max_calls", "inbound_cps"]
    )
    assert fields == [b"4", b"0"]
