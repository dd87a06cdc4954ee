"""Faults on the switch side (issue 11, items 2 and 3), with the real Redis and PostgreSQL:
late authorizations, finishes during a Redis outage, the sweeper's evidence, CDR times."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from rating.deck import Deck
from rating.ledger import CallRequest, Ledger, LedgerSettings, Outcome, Swept
from runtime.services import Services
from switch.agi import AgiSettings, FastAgiServer
from switch.ari import AriClient, AriSettings
from switch.fastagi import FastAgiAdapter, parse_grant
from switch.sessions import ControlSettings, Session, SessionController
from tests.conftest import AccountFactory
from tests.e2e.proxy import CuttableProxy

PLN = 1_000_000
MOBILE = "601234567"  # 0.19 PLN/min, per second


def call_id() -> str:
    return f"c-{uuid.uuid4().hex[:12]}"


async def agi_request(port: int, env: dict[str, str]) -> dict[str, str]:
    """Play Asterisk: send one FastAGI request, accept every command; the variables set."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    header = "".join(f"agi_{k}: {v}\n" for k, v in env.items()) + "\n"
    writer.write(header.encode())
    await writer.drain()
    seen: dict[str, str] = {}
    while line := (await reader.readline()).decode().strip():
        if line.startswith("SET VARIABLE "):
            name, _, value = line.removeprefix("SET VARIABLE ").partition(" ")
            seen[name] = value.strip('"')
        writer.write(b"200 result=1\n")
        await writer.drain()
    writer.close()
    if "TOLLGATE_GRANT" in seen:  # the dialplan splits it with ARRAY()
        seen.update(parse_grant(seen.pop("TOLLGATE_GRANT")))
    return seen


async def open_reserved(svc: Services, account: str) -> int:
    return (await svc.accounts.live(account)).reserved


async def test_authorize_read_past_its_budget_is_refused_without_reserving(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    a = await make_account(balance=100 * PLN)
    server = FastAgiServer(FastAgiAdapter(svc.ledger).handlers(), AgiSettings(port=0, budget_s=5.0))
    await server.start()
    try:

        def request(asked: float, cid: str) -> dict[str, str]:
            return {
                "network_script": "authorize",
                "accountcode": a.id,
                "uniqueid": cid,
                "extension": MOBILE,
                "arg_1": f"{asked:.3f}",
                "arg_2": "2",
            }

        # asked 5 s ago with a 2 s budget: the dialplan refused it long ago
        late_id = call_id()
        late = await agi_request(server.port, request(time.time() - 5, late_id))
        assert (late["TOLLGATE_DECISION"], late["TOLLGATE_REASON"]) == ("DENY", "AUTHORIZE_TIMEOUT")
        assert late["TOLLGATE_SIP_CODE"] == "503"
        assert await open_reserved(svc, a.id) == 0
        assert await svc.ledger.call(a.id, late_id) == {}  # the ledger never saw it
        # the same request in time is granted: the refusal above is the budget's doing
        fresh_id = call_id()
        fresh = await agi_request(server.port, request(time.time(), fresh_id))
        assert fresh["TOLLGATE_DECISION"] == "ALLOW"
        assert await open_reserved(svc, a.id) > 0
    finally:
        await server.close()


async def test_cdr_times_are_monotonic_when_the_outcome_predates_the_authorization(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    a = await make_account(balance=100 * PLN)
    cid = call_id()
    g = await svc.ledger.authorize(CallRequest(a.id, cid, MOBILE))
    assert g.allowed
    # a frozen tollgate authorized it after the call had already ended
    ended = datetime.now(UTC) - timedelta(seconds=30)
    await svc.ledger.finish(
        a.id, cid, Outcome(True, 5, ended, "ANSWER", "16", answered_at=ended - timedelta(seconds=5))
    )
    call = await svc.ledger.call(a.id, cid)
    started, answered, finished = (
        int(call["authorized_at"]),
        int(call["answered_at"]),
        int(call["ended_at"]),
    )
    assert started <= answered <= finished


async def test_finish_reports_the_dialplans_hangup_time_not_when_it_was_read(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    a = await make_account(balance=100 * PLN)
    cid = call_id()
    assert (await svc.ledger.authorize(CallRequest(a.id, cid, MOBILE))).allowed
    hung_up = time.time() + 0.5  # after the authorization, before this report is read
    await asyncio.sleep(1.0)
    server = FastAgiServer(FastAgiAdapter(svc.ledger).handlers(), AgiSettings(port=0))
    await server.start()
    try:
        args = [cid, "ANSWER", "3000", "16", MOBILE, "0", f"{hung_up:.3f}"]
        env = {"network_script": "finish", "accountcode": a.id, "uniqueid": cid}
        env.update({f"arg_{i}": v for i, v in enumerate(args, 1)})
        assert (await agi_request(server.port, env))["TOLLGATE_FINISHED"] == "1"
    finally:
        await server.close()
    call = await svc.ledger.call(a.id, cid)
    # (float epoch -> ms may round either way by one)
    assert abs(int(call["ended_at"]) - round(hung_up * 1000)) <= 1


def quick_ledger(svc: Services, redis: Redis | None = None) -> Ledger:
    return Ledger(
        redis or svc.redis,
        svc.settings.keyspace,
        svc.ledger.decks,
        LedgerSettings(ring_window_s=0, grace_s=0, switch_host=svc.ledger.settings.switch_host),
    )


async def test_sweeper_charges_an_answered_call_its_reservation_and_a_late_outcome_replaces_it(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    a = await make_account(balance=10 * PLN)
    quick = quick_ledger(svc)
    cid = call_id()
    g = await quick.authorize(CallRequest(a.id, cid, MOBILE, cap_s=1))
    assert g.allowed and g.reserved > 0
    await quick.answer(a.id, cid, datetime.now(UTC))  # the session controller saw it answered
    await asyncio.sleep(1.2)
    # a parking lot that was never read clean: the outcome may still come, nothing expires
    assert await quick.sweep(due_before_ms=0) == 0
    swept = await quick.sweep_counted()
    assert (swept.released, swept.estimated) == (1, 1)
    call = await quick.call(a.id, cid)
    assert (call["state"], call["disposition"]) == ("expired", "EXPIRED_ESTIMATED")
    assert (call["answered"], int(call["cost"])) == ("1", g.reserved)
    live = await svc.accounts.live(a.id)
    assert (live.balance, live.reserved) == (10 * PLN - g.reserved, 0)
    # the real outcome arrives later: it replaces the estimate, money moves once
    ended = datetime.now(UTC)
    s = await quick.finish(a.id, cid, Outcome(False, 0, ended, "NOANSWER", "16"))
    assert s.status == "FINISHED"
    assert (await svc.accounts.live(a.id)).balance == 10 * PLN - s.cost


async def test_sweeper_releases_a_call_never_seen_answered_at_cost_zero(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    a = await make_account(balance=10 * PLN)
    quick = quick_ledger(svc)
    cid = call_id()
    assert (await quick.authorize(CallRequest(a.id, cid, MOBILE, cap_s=1))).allowed
    await asyncio.sleep(1.2)
    assert await quick.sweep_counted() == Swept(1, 0)
    call = await quick.call(a.id, cid)
    assert (call["disposition"], call["cost"]) == ("EXPIRED", "0")
    assert (await svc.accounts.live(a.id)).balance == 10 * PLN


async def test_controller_finish_during_a_redis_outage_is_retried_until_settled(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    a = await make_account(balance=10 * PLN)
    cid = call_id()
    assert (await svc.ledger.authorize(CallRequest(a.id, cid, MOBILE, cap_s=60))).allowed
    answered = time.time()
    await svc.ledger.answer(a.id, cid, datetime.fromtimestamp(answered, UTC))
    host, port = "127.0.0.1", int(svc.settings.redis_url.split(":")[-1].split("/")[0])
    proxy = CuttableProxy(port, host).start()
    redis = Redis(
        host=host, port=proxy.port, db=int(svc.settings.redis_url.rsplit("/", 1)[-1] or 0)
    )
    ari = AriClient(AriSettings(url="http://127.0.0.1:1", request_timeout_s=0.5))
    events: list[str] = []
    controller = SessionController(
        ari,
        quick_ledger(svc, redis),
        ControlSettings(),
        on_event=events.append,
        finish_backoff_max_s=0.5,
    )
    try:
        s = Session(cid, a.id, "chan-a", "+48601234567", 60, b_chan="chan-b")
        s.answered_at = answered
        controller._register(s)
        proxy.cut()  # Redis is gone when the call ends
        await asyncio.sleep(2)
        await controller.end(s, "phone hung up")  # must not raise
        assert "finish_deferred" in events
        assert (await svc.ledger.call(a.id, cid))["state"] == "open"
        retry = controller.unsettled[cid]
        proxy.restore()  # Redis is back: the retry settles the call, billed
        await asyncio.wait_for(retry, 15)
        call = await svc.ledger.call(a.id, cid)
        assert call["state"] == "finished" and int(call["billsec"]) >= 2
        assert int(call["cost"]) > 0
    finally:
        await ari.close()
        await redis.aclose()
        proxy.stop()
