"""Inbound calls through the real Redis ledger and PostgreSQL: a carrier's call to an
account's number is authorized by the account's status and limits (not by the outbound-only
blocks), free by default or rated with the inbound deck, and recorded with its direction."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from abuse.events import CallEvent
from cdr.writer import CdrWriter, WriterSettings
from numbering.settings import NumberingSettings
from numbering.store import NumberStore
from rating.accounts import AccountKind, AccountStatus
from rating.ledger import CallRequest, Grant, Ledger, Outcome
from runtime.services import Services
from switch.fastagi import FastAgiAdapter
from tests.conftest import AccountFactory
from tests.integration.test_fastagi_adapter import variables
from tests.unit.test_agi_server import StartServer, start_server

__all__ = ["start_server"]  # the fixture, imported for pytest

PLN = 1_000_000
DID = "+48221234567"


async def _in(ledger: Ledger, account: str, cid: str | None = None) -> Grant:
    cid = cid or f"in-{uuid.uuid4().hex[:12]}"
    return await ledger.authorize(CallRequest(account, cid, DID, "+442079460001", inbound=True))


async def _drain(svc: Services) -> None:
    settings = WriterSettings(consumer="test-inbound")
    async with CdrWriter(svc.redis, svc.settings.keyspace, svc.settings.pg_dsn, settings) as w:
        await w.drain_once()


async def test_free_inbound_needs_no_credit_and_is_recorded_inbound(
    svc: Services, make_account: AccountFactory
) -> None:
    a = await make_account()  # zero balance
    await svc.accounts.add_entry(a.id, "adjustment", -PLN, at=datetime.now(UTC))
    grant = await _in(svc.ledger, a.id)
    assert (grant.decision.value, grant.reason, grant.reserved) == ("ALLOW", "OK", 0)
    assert grant.max_seconds == svc.ledger.settings.max_call_s
    done = await svc.ledger.finish(
        a.id, grant.call_id, Outcome(True, 60, datetime.now(UTC), "ANSWER", "16")
    )
    assert done.status == "FINISHED"
    live = await svc.accounts.live(a.id)
    assert (live.balance, live.reserved) == (-PLN, 0)
    await _drain(svc)
    assert svc.pool is not None
    row = await svc.pool.fetchrow(
        "select direction, number_class, e164, cost, billsec from cdrs where call_id = $1",
        grant.call_id,
    )
    assert row is not None
    assert dict(row) == {
        "direction": "in", "number_class": "inbound", "e164": DID, "cost": 0, "billsec": 60,
    }  # fmt: skip


async def test_outbound_only_blocks_do_not_apply_inbound_but_status_and_limits_do(
    svc: Services, make_account: AccountFactory
) -> None:
    overdue = await make_account(
        kind=AccountKind.POSTPAID, credit_limit=10 * PLN, invoice_overdue=True
    )
    assert (await _in(svc.ledger, overdue.id)).reason == "OK"
    out = await svc.ledger.authorize(CallRequest(overdue.id, "out-1", "0221112233"))
    assert out.reason == "INVOICE_OVERDUE"
    suspended = await make_account(status=AccountStatus.SUSPENDED)
    refused = await _in(svc.ledger, suspended.id)
    assert (refused.reason, refused.detail) == ("ACCOUNT_SUSPENDED", "suspended")
    busy = await make_account(max_calls=1)
    assert (await _in(svc.ledger, busy.id)).reason == "OK"
    assert (await _in(svc.ledger, busy.id)).reason == "TOO_MANY_CALLS"
    assert (await _in(svc.ledger, "nobody")).reason == "UNKNOWN_ACCOUNT"


async def test_paid_inbound_is_rated_with_the_inbound_deck(
    svc: Services, make_account: AccountFactory
) -> None:
    paid = Ledger(
        svc.redis,
        svc.settings.keyspace,
        svc.ledger.decks,
        replace(svc.ledger.settings, inbound_deck="retail"),
    )
    broke = await make_account()
    assert (await _in(paid, broke.id)).reason == "INSUFFICIENT_CREDIT"
    a = await make_account(balance=PLN)
    grant = await _in(paid, a.id)
    assert grant.reason == "OK" and grant.reserved > 0
    done = await paid.finish(
        a.id, grant.call_id, Outcome(True, 60, datetime.now(UTC), "ANSWER", "16")
    )
    assert 0 < done.cost <= grant.reserved
    assert (await svc.accounts.live(a.id)).balance == PLN - done.cost


async def _incoming(
    svc: Services, start_server: StartServer, did: str, *args: str, uid: str = ""
) -> dict[str, str]:
    adapter = FastAgiAdapter(svc.ledger)
    running = await start_server(adapter.handlers())
    client = await running.client()
    uid = uid or f"1700000000.{uuid.uuid4().int % 10**6}"
    extra = {"extension": did, "callerid": "+442079460001", "uniqueid": uid}
    await client.send_header("incoming", args=args, extra=extra)
    return variables(await client.answer_all())


async def test_incoming_calls_are_routed_by_the_numbers_assigned(
    svc: Services, make_account: AccountFactory, start_server: StartServer
) -> None:
    assert svc.pool is not None
    numbers = NumberStore(svc.pool, svc.accounts, NumberingSettings())
    now = datetime.now(UTC)
    a = await make_account()
    gone = await make_account()
    for n, account in ((DID, a.id), ("+48221234568", gone.id)):
        await numbers.add(n, carrier="orange", monthly_cost=0, monthly_price=0, at=now,
                          actor="op")  # fmt: skip
        await numbers.assign(n, account, at=now, actor="op")
    told = await _incoming(svc, start_server, "+48221234567")
    assert (told["TOLLGATE_DECISION"], told["TOLLGATE_DIAL"]) == ("ALLOW", a.id)
    assert int(told["TOLLGATE_MAX_MS"]) == svc.ledger.settings.max_call_s * 1000
    # the national form of the number reaches the same account
    assert (await _incoming(svc, start_server, "0221234567"))["TOLLGATE_DIAL"] == a.id
    unknown = await _incoming(svc, start_server, "+48221234569")
    assert (unknown["TOLLGATE_REASON"], unknown["TOLLGATE_SIP_CODE"]) == ("UNKNOWN_NUMBER", "404")
    # an AstDB mapping (older deployments) is used when tollgate has no route of its own
    mapped = await _incoming(svc, start_server, "+48221234569", "", "", a.id)
    assert mapped["TOLLGATE_DIAL"] == a.id and mapped["TOLLGATE_DECISION"] == "ALLOW"
    await svc.accounts.set_status(a.id, AccountStatus.SUSPENDED)
    suspended = await _incoming(svc, start_server, DID)
    assert (suspended["TOLLGATE_DECISION"], suspended["TOLLGATE_SIP_CODE"]) == ("DENY", "480")
    await svc.accounts.set_status(gone.id, AccountStatus.CLOSED)
    closed = await _incoming(svc, start_server, "+48221234568")
    assert closed["TOLLGATE_SIP_CODE"] == "410"
    # released: no longer routed to the account; 410 Gone while it rests in quarantine, an
    # unknown number (404) once it is back in the pool
    await svc.accounts.set_status(a.id, AccountStatus.ACTIVE)
    await numbers.release(DID, at=now, actor="op")
    rests = await _incoming(svc, start_server, DID)
    assert (rests["TOLLGATE_REASON"], rests["TOLLGATE_SIP_CODE"]) == ("NUMBER_GONE", "410")
    assert rests["TOLLGATE_DIAL"] == ""  # nothing to ring, no account to bill
    assert DID in await numbers.sweep(now + timedelta(days=numbers.settings.quarantine_days))
    assert (await _incoming(svc, start_server, DID))["TOLLGATE_SIP_CODE"] == "404"


def test_inbound_cdrs_are_not_counted_as_calls_the_account_placed() -> None:
    fields = {"call_id": "1", "account": "a", "state": "finished", "ended_at": "1700000000000"}
    assert CallEvent.from_fields(fields).counted
    assert not CallEvent.from_fields({**fields, "direction": "in"}).counted
