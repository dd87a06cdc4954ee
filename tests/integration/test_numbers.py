"""Numbers (DIDs) against the real PostgreSQL and Redis: the inventory, assignment and its
monthly fee (billed by billing's fee run), caller id with spoofing protection through the
Redis authorization and the FastAGI grant, release into quarantine and back to the pool,
and the terms' porting rules (§4.5-4.6)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from billing.fees import fee_reference
from billing.period import Period
from billing.run import bill_run
from billing.settings import BillingSettings
from numbering.model import NumberError, NumberNotFound, NumberStatus, NumberType
from numbering.settings import NumberingSettings
from numbering.store import NumberStore, fee_name, get_number, list_numbers
from rating.ledger import CallRequest, Grant
from runtime.services import Services
from switch.fastagi import FastAgiAdapter, parse_grant
from tests.conftest import AccountFactory

PLN = 1_000_000
T0 = datetime(2026, 10, 31, 23, 30, tzinfo=UTC)  # already 1 November in Warsaw
GEO, GEO2, MOBILE, UK = "+48221234567", "+48221234568", "+48601234567", "+442079460001"


def _store(svc: Services, **changes: object) -> NumberStore:
    assert svc.pool is not None
    settings = NumberingSettings(**changes)  # type: ignore[arg-type]
    return NumberStore(svc.pool, svc.accounts, settings)


async def _stock(store: NumberStore, *numbers: str, price: int = 5 * PLN) -> None:
    for n in numbers:
        await store.add(n, carrier="orange", monthly_cost=PLN, monthly_price=price, at=T0,
                        actor="op")  # fmt: skip


async def test_inventory_classifies_and_refuses_bad_numbers(svc: Services) -> None:
    store = _store(svc)
    geo = await store.add("22 123 45 67", carrier="orange", monthly_cost=PLN,
                          monthly_price=5 * PLN, at=T0, actor="op")  # fmt: skip
    assert (geo.e164, geo.country, geo.type, geo.status) == (
        GEO, "PL", NumberType.GEOGRAPHIC, NumberStatus.FREE,
    )  # fmt: skip
    mobile = await store.add(MOBILE, carrier="play", monthly_cost=0, monthly_price=0, at=T0,
                             actor="op")  # fmt: skip
    assert mobile.type is NumberType.MOBILE
    uk = await store.add(UK, carrier="bt", monthly_cost=PLN, monthly_price=9 * PLN, at=T0,
                         actor="op")  # fmt: skip
    assert (uk.country, uk.type) == ("GB", NumberType.FOREIGN)
    for text, field in (("12", "number"), (GEO, "number"), ("+48 22 000", "number")):
        with pytest.raises(NumberError) as err:
            await store.add(text, carrier="orange", monthly_cost=0, monthly_price=0, at=T0,
                            actor="op")  # fmt: skip
        assert err.value.field == field
    with pytest.raises(NumberError) as err:
        await store.add("+48221234569", carrier="orange", monthly_cost=-1, monthly_price=0,
                        at=T0, actor="op")  # fmt: skip
    assert err.value.field == "monthly_cost"
    with pytest.raises(NumberError) as err:
        await store.add("+48221234569", carrier="orange", monthly_cost=0, monthly_price=0,
                        at=T0, actor="op", type=NumberType.FOREIGN)  # fmt: skip
    assert err.value.field == "type"
    assert svc.pool is not None
    assert [d.e164 for d in await list_numbers(svc.pool)] == sorted([GEO, MOBILE, UK])


async def test_assignment_sets_numbers_caller_id_and_monthly_fee(
    svc: Services, make_account: AccountFactory
) -> None:
    store = _store(svc)
    await _stock(store, GEO, GEO2)
    a = await make_account(balance=100 * PLN, at=T0)
    did = await store.assign(GEO, a.id, at=T0, actor="op")
    assert (did.status, did.account) == (NumberStatus.ASSIGNED, a.id)
    await store.assign("0221234568", a.id, at=T0, actor="op")  # national form, same number
    account = await svc.accounts.get(a.id)
    assert account.numbers == (GEO, GEO2) and account.caller_id == GEO  # the first one
    key = svc.ledger.keys.account(a.id)
    assert await svc.redis.hmget(key, ["numbers", "caller_id"]) == [
        f"{GEO},{GEO2}".encode(), GEO.encode(),
    ]  # fmt: skip
    b = await make_account()
    with pytest.raises(NumberError) as err:
        await store.assign(GEO, b.id, at=T0, actor="op")
    assert err.value.field == "number"
    with pytest.raises(NumberNotFound):
        await store.assign("+48221234569", b.id, at=T0, actor="op")
    # billed like a subscription: from the account's local day (1 November in Warsaw)
    assert svc.pool is not None
    row = await svc.pool.fetchrow(
        "select * from subscriptions where account = $1 and name = $2", a.id, fee_name(GEO)
    )
    assert row is not None and row["started_on"] == date(2026, 11, 1)
    nov = Period(2026, 11)
    report = await bill_run(
        svc.accounts, nov, BillingSettings(), datetime(2026, 12, 1, 6, tzinfo=UTC)
    )
    assert sorted((e.reference, e.amount) for e in report.fees) == [
        (fee_reference(nov, fee_name(GEO)), -5 * PLN),
        (fee_reference(nov, fee_name(GEO2)), -5 * PLN),
    ]


async def _call(svc: Services, account: str, caller: str) -> Grant:
    cid = f"c-{uuid.uuid4().hex[:12]}"
    return await svc.ledger.authorize(CallRequest(account, cid, "0221112233", caller))


async def test_caller_id_is_an_owned_number_never_a_spoofed_one(
    svc: Services, make_account: AccountFactory
) -> None:
    store = _store(svc)
    await _stock(store, GEO, GEO2)
    a = await make_account(balance=100 * PLN)
    nobody = await make_account(balance=100 * PLN)
    await store.assign(GEO, a.id, at=T0, actor="op")
    await store.assign(GEO2, a.id, at=T0, actor="op")
    assert (await _call(svc, a.id, GEO2)).caller_id == GEO2  # its own: presented
    assert (await _call(svc, a.id, "022 123 45 68")).caller_id == GEO2  # same, national form
    assert (await _call(svc, a.id, "+48 601 999 999")).caller_id == GEO  # spoofed: replaced
    assert (await _call(svc, a.id, "phone-a")).caller_id == GEO
    assert (await _call(svc, nobody.id, GEO)).caller_id == ""  # owns none: withheld
    await store.set_caller_id(a.id, GEO2, at=T0)
    assert (await _call(svc, a.id, "")).caller_id == GEO2
    with pytest.raises(NumberError) as err:
        await store.set_caller_id(nobody.id, GEO, at=T0)
    assert err.value.field == "caller_id"
    # what the dialplan receives: the CLI field of the one grant variable
    adapter = FastAgiAdapter(svc.ledger)
    grant = await _call(svc, a.id, "+48601999999")
    assert parse_grant(adapter.grant_value(grant))["TOLLGATE_CLI"] == GEO2
    refused = await _call(svc, "no-such-account", GEO)
    assert parse_grant(adapter.grant_value(refused))["TOLLGATE_CLI"] == ""


async def test_release_quarantines_then_returns_to_the_pool(
    svc: Services, make_account: AccountFactory
) -> None:
    store = _store(svc, quarantine_days=30)
    await _stock(store, GEO, GEO2)
    a = await make_account(balance=100 * PLN, at=T0)
    await store.assign(GEO, a.id, at=T0, actor="op")
    await store.assign(GEO2, a.id, at=T0, actor="op")
    at = T0 + timedelta(days=40)
    did = await store.release(GEO, at=at, actor="op", reason="customer asked")
    assert did.status is NumberStatus.QUARANTINED and did.account is None
    assert did.quarantined_until == at + timedelta(days=30)
    account = await svc.accounts.get(a.id)
    assert account.numbers == (GEO2,) and account.caller_id == GEO2
    assert (await _call(svc, a.id, GEO)).caller_id == GEO2  # no longer its number
    assert svc.pool is not None
    ended = await svc.pool.fetchval(
        "select ended_on from subscriptions where account = $1 and name = $2", a.id, fee_name(GEO)
    )
    assert ended == date(2026, 12, 11)  # 00:30 on the 11th in Warsaw
    with pytest.raises(NumberError):
        await store.assign(GEO, a.id, at=at, actor="op")  # quarantined: not free
    assert await store.sweep(at + timedelta(days=29)) == []
    assert await store.sweep(at + timedelta(days=30)) == [GEO]
    assert (await get_number(svc.pool, GEO)).status is NumberStatus.FREE


async def test_porting_out_needs_a_topup_and_a_positive_balance_then_no_new_numbers(
    svc: Services, make_account: AccountFactory
) -> None:
    store = _store(svc)
    await _stock(store, GEO, GEO2, MOBILE)
    a = await make_account(at=T0)
    await store.assign(GEO, a.id, at=T0, actor="op")
    with pytest.raises(NumberError, match="never topped up"):
        await store.port_out(GEO, at=T0, actor="op")
    await svc.accounts.add_entry(a.id, "topup", 10 * PLN, at=T0)
    await svc.accounts.add_entry(a.id, "adjustment", -10 * PLN, at=T0)
    with pytest.raises(NumberError, match="not positive"):
        await store.port_out(GEO, at=T0, actor="op")
    await svc.accounts.add_entry(a.id, "topup", 1 * PLN, at=T0)
    await store.assign(GEO2, a.id, at=T0, actor="op")
    ported = await store.port_out(GEO, at=T0 + timedelta(days=1), actor="op")
    assert ported.status is NumberStatus.PORTED_OUT and ported.account is None
    assert (await svc.accounts.get(a.id)).numbers == (GEO2,)
    with pytest.raises(NumberError, match="ported a number out"):
        await store.assign(MOBILE, a.id, at=T0 + timedelta(days=2), actor="op")
    assert svc.pool is not None
    history = await svc.pool.fetch("select event from number_events where number = $1", GEO)
    assert [h["event"] for h in history] == ["added", "assigned", "ported_out"]


async def test_cli_numbers(svc: Services, make_account: AccountFactory) -> None:
    from tests.integration.test_customers import _cli

    a = await make_account(balance=10 * PLN)
    added = _cli(svc.settings, "number", "add", "+48 22 123 45 67", "--carrier", "orange",
                 "--cost", "1.00", "--price", "5.00")  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["monthly_price"] == "5.00"
    bad = _cli(svc.settings, "number", "add", "+48 22", "--carrier", "orange", "--cost", "1",
               "--price", "x")  # fmt: skip
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assigned = _cli(svc.settings, "number", "assign", GEO, a.id, "--caller-id")
    assert assigned.returncode == 0, assigned.stderr
    shown = json.loads(_cli(svc.settings, "number", "show", GEO).stdout)
    assert shown["account"] == a.id
    assert [h["event"] for h in shown["history"]] == ["added", "assigned"]
    listed = json.loads(_cli(svc.settings, "number", "list", "--account", a.id).stdout)
    assert [d["e164"] for d in listed] == [GEO]
    released = _cli(svc.settings, "number", "release", GEO, "--reason", "test")
    assert json.loads(released.stdout)["status"] == "quarantined"


async def test_foreign_numbers_of_a_prepaid_account_negative_14_days_are_released(
    svc: Services, make_account: AccountFactory
) -> None:
    """§5.4 as the lifecycle applies it by default: the numbers go, calls are not blocked."""
    from billing.prepaid import FOREIGN, NOTICE

    store = _store(svc)
    await _stock(store, GEO, UK, price=0)
    a = await make_account(balance=10 * PLN, at=T0)
    await store.assign(GEO, a.id, at=T0, actor="op")
    await store.assign(UK, a.id, at=T0, actor="op")
    went_negative = T0 + timedelta(days=3)
    await svc.accounts.add_entry(a.id, "adjustment", -11 * PLN, at=went_negative)
    period = Period(2026, 10)
    settings = BillingSettings()
    early = await bill_run(svc.accounts, period, settings, went_negative + timedelta(days=13))
    assert early.lifecycle == []
    report = await bill_run(svc.accounts, period, settings, went_negative + timedelta(days=14))
    [action] = report.lifecycle
    assert action.kind == FOREIGN
    assert action.detail == {"numbers_released": [UK], "blocked_prefixes_added": []}
    assert svc.pool is not None
    assert (await get_number(svc.pool, UK)).status is NumberStatus.QUARANTINED
    assert (await get_number(svc.pool, GEO)).account == a.id
    account = await svc.accounts.get(a.id)
    assert account.numbers == (GEO,) and account.blocked_prefixes == ()
    german = await svc.ledger.authorize(CallRequest(a.id, "c-de-1", "+4930123456"))
    assert german.reason == "INSUFFICIENT_CREDIT"  # negative, but not blocked by prefix
    notice = await svc.pool.fetchval(
        "select detail from account_events where account = $1 and event = $2", a.id, NOTICE
    )
    assert json.loads(notice)["numbers"] == [UK]
    again = await bill_run(svc.accounts, period, settings, went_negative + timedelta(days=20))
    assert again.lifecycle == []
