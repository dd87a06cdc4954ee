"""A failed-over call moves its place from the carrier that failed to the next one with
room, on the real Redis: atomically (parallel failovers never exceed the next carrier's max
calls), idempotently (a repeated report moves nothing twice) and released at the finish
from the carrier actually used."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from rating.failover import Move, fail_over
from rating.ledger import CallRequest, Reason
from runtime.services import Services
from tests.conftest import AccountFactory
from tests.integration.test_carrier_grants import WARSAW, _carriers, _out

PLN = 1_000_000


async def _open(svc: Services, name: str) -> int:
    return int(await svc.redis.zcard(svc.settings.keyspace.carrier_open(name)))


async def test_a_failover_moves_the_place_to_the_next_carrier_once(
    svc: Services, make_account: AccountFactory
) -> None:
    a = await make_account(balance=50 * PLN)
    store = await _carriers(svc, cheap_max=1)
    await store.update("mid", {"max_calls": 1}, at=datetime.now(UTC), actor="test")
    grant = await svc.ledger.authorize(CallRequest(a.id, "f1", WARSAW))
    assert (grant.reason, grant.routes) == (Reason.OK, ("trunk-a", "trunk-b"))
    assert (await _open(svc, "cheap"), await _open(svc, "mid")) == (1, 0)

    moved = await fail_over(svc.ledger, a.id, "f1", 1)
    assert moved == Move("MOVED", 2, "mid", "trunk-b")
    assert (await _open(svc, "cheap"), await _open(svc, "mid")) == (0, 1)
    # the switch asks again (a retried AGI, a replayed ARI event): same answer, no move
    again = await fail_over(svc.ledger, a.id, "f1", 1)
    assert (again.status, again.position, again.endpoint) == ("REPEAT", 2, "trunk-b")
    assert (await _open(svc, "cheap"), await _open(svc, "mid")) == (0, 1)
    # cheap is free again for the next call; mid is full
    other = await svc.ledger.authorize(CallRequest(a.id, "f2", WARSAW))
    assert other.routes == ("trunk-a",)

    call = await svc.ledger.call(a.id, "f1")
    assert (call["carrier"], call["carrier_held"]) == ("mid", "1")
    await svc.ledger.finish(a.id, "f1", _out())
    assert await _open(svc, "mid") == 0  # released from the carrier actually used
    assert (await fail_over(svc.ledger, a.id, "f1", 2)).status == "GONE"


async def test_the_last_carriers_failure_releases_the_place(
    svc: Services, make_account: AccountFactory
) -> None:
    a = await make_account(balance=50 * PLN)
    await _carriers(svc, cheap_max=2)
    await svc.ledger.authorize(CallRequest(a.id, "l1", WARSAW))
    assert (await fail_over(svc.ledger, a.id, "l1", 1)).position == 2
    # mid (the last) failed too: nothing left to try, nothing held any more
    assert await fail_over(svc.ledger, a.id, "l1", 2) == Move("NONE", 0)
    # a late report of the first failure moves nothing back
    assert (await fail_over(svc.ledger, a.id, "l1", 1)).position == 2
    assert (await _open(svc, "cheap"), await _open(svc, "mid")) == (0, 0)
    assert (await svc.ledger.call(a.id, "l1"))["carrier_held"] == "0"


async def test_parallel_failovers_never_exceed_the_next_carriers_max_calls(
    svc: Services, make_account: AccountFactory
) -> None:
    a = await make_account(balance=500 * PLN)
    store = await _carriers(svc, cheap_max=8)
    await store.update("mid", {"max_calls": 3}, at=datetime.now(UTC), actor="test")
    calls = [f"p{i}" for i in range(8)]
    for call_id in calls:
        assert (await svc.ledger.authorize(CallRequest(a.id, call_id, WARSAW))).routes[0] == (
            "trunk-a"
        )
    assert await _open(svc, "cheap") == 8
    # every call's first carrier fails at once, and each failure is reported twice
    moves = await asyncio.gather(
        *(fail_over(svc.ledger, a.id, c, 1) for c in calls + calls[::-1])
    )
    by_call: dict[str, set[int]] = {}
    for call_id, move in zip(calls + calls[::-1], moves, strict=True):
        by_call.setdefault(call_id, set()).add(move.position)
    assert all(len(p) == 1 for p in by_call.values())  # both reports agree
    positions = sorted(p for ps in by_call.values() for p in ps)
    assert positions == [0] * 5 + [2] * 3
    assert [m.status for m in moves].count("MOVED") == 3
    assert (await _open(svc, "cheap"), await _open(svc, "mid")) == (0, 3)


async def test_the_cdr_keeps_each_attempts_times_and_the_carrier_actually_used(
    svc: Services, make_account: AccountFactory
) -> None:
    from dataclasses import replace

    from cdr.model import Cdr

    a = await make_account(balance=50 * PLN)
    await _carriers(svc)
    await svc.ledger.authorize(CallRequest(a.id, "t1", WARSAW))
    await svc.ledger.touch(a.id, "t1", control="ari")
    assert (await fail_over(svc.ledger, a.id, "t1", 1)).carrier == "mid"
    # a Stasis call's outcome line names no endpoint before the controller set one: the
    # carrier is the one the call moved its place to
    done = replace(_out(), attempts="trunk-a:503:1000:120;", timing="1500:800")
    await svc.ledger.finish(a.id, "t1", done)
    [(_, entries)] = await svc.redis.xread(
        {svc.settings.keyspace.cdr_stream(svc.settings.keyspace.tag(a.id)): "0"}
    )
    cdr = Cdr.from_stream({k.decode(): v.decode() for k, v in entries[-1][1].items()})
    assert (cdr.carrier, cdr.attempts, cdr.carrier_timing) == (
        "mid", "cheap:503:1000:120;", "1500:800",
    )  # fmt: skip
    assert cdr.buy_deck == "b-mid"
