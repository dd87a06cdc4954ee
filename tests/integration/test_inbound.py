"""Inbound calls through the real Redis ledger and PostgreSQL: a carrier's call to an
account's number is authorized by the account's status and limits (not by the outbound-only
blocks), free by default or rated with the inbound deck, and recorded with its direction."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime

from cdr.writer import CdrWriter, WriterSettings
from rating.accounts import AccountKind, AccountStatus
from rating.ledger import CallRequest, Grant, Ledger, Outcome
from runtime.services import Services
from tests.conftest import AccountFactory

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
