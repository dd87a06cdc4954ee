"""The terms' number rules on the real PostgreSQL and Redis: §5.4 is told to the customer
through the notification service (a warning with the removal date, then the removal; once per
stretch of negative balance, in the customer's language), and closing an account releases its
numbers into quarantine in the same transaction, whoever closes it."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from billing.prepaid import lifecycle
from billing.settings import BillingSettings
from notify import contacts
from notify.notices import list_notices
from numbering.model import NumberStatus
from numbering.settings import NumberingSettings
from numbering.store import NumberStore, get_number
from panel_api.tokens import Role
from rating.accounts import Account, AccountStatus
from rating.keys import DID_GONE
from runtime.services import Services
from runtime.settings import Settings
from tests.conftest import AccountFactory, PanelFactory
from tests.integration.test_customers import _cli
from tests.panel import bearer, token

PLN = 1_000_000
SETTINGS = BillingSettings()
T = datetime(2027, 4, 6, 10, 0, tzinfo=UTC)  # the fee that takes the balance below zero


def _did(country: str) -> str:
    tail = random.randrange(10**6)
    return f"+4822{tail:07d}" if country == "PL" else f"+44207946{tail % 10**4:04d}"


async def _with_numbers(
    svc: Services, make_account: AccountFactory, *numbers: str, **fields: Any
) -> tuple[Account, NumberStore]:
    a = await make_account(balance=PLN, at=T - timedelta(days=30), **fields)
    assert svc.pool is not None
    store = NumberStore(svc.pool, svc.accounts, NumberingSettings())
    for n in numbers:
        await store.add(n, carrier="rig", monthly_cost=0, monthly_price=2 * PLN, at=T, actor="t")
        await store.assign(n, a.id, at=T - timedelta(days=29), actor="t")
    return a, store


async def _notices(svc: Services, account: str) -> list[tuple[str, str, str]]:
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        found = await list_notices(conn, account)
    return sorted((n.kind, n.channel, n.language) for n in found)


@pytest.mark.parametrize("language", ["pl", "en"])
async def test_foreign_numbers_are_announced_with_the_date_then_their_removal_is_told(
    svc: Services, make_account: AccountFactory, language: str
) -> None:
    foreign, home = _did("GB"), _did("PL")
    a, _ = await _with_numbers(svc, make_account, foreign, home)
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        contact = contacts.Contact(a.id, language, "jan@example.pl", "", (), ())
        await contacts.put(conn, contact, T)
    await svc.accounts.add_entry(a.id, "fee", -3 * PLN, at=T)  # -2.00 from T

    async def run(at: datetime) -> list[str]:
        account = await svc.accounts.get(a.id)
        async with svc.pool.acquire() as conn:  # type: ignore[union-attr]
            return [x.kind for x in await lifecycle(svc.accounts, conn, account, SETTINGS, at)]

    assert await run(T + timedelta(days=1)) == []
    assert await run(T + timedelta(days=2)) == []  # the warning is not repeated
    warning = ("foreign_numbers_release_warning", "email", language)
    assert await _notices(svc, a.id) == [warning]
    async with svc.pool.acquire() as conn:
        [notice] = await list_notices(conn, a.id)
    release_on = "2027-04-20"  # 14 days after T, in the account's calendar
    assert release_on in notice.subject and foreign in notice.body and home not in notice.body
    assert ("-2,00 PLN" if language == "pl" else "-2.00 PLN") in notice.body

    assert await run(T + timedelta(days=14)) == ["foreign_numbers_removed"]
    assert await run(T + timedelta(days=15)) == []
    released = ("foreign_numbers_released", "email", language)
    assert await _notices(svc, a.id) == [warning, released]
    assert (await get_number(svc.pool, foreign)).status is NumberStatus.QUARANTINED
    assert (await get_number(svc.pool, home)).account == a.id  # a Polish number stays
    async with svc.pool.acquire() as conn:
        last = (await list_notices(conn, a.id))[0]
    assert foreign in last.body and "2027-04-20" in last.body and last.status == "pending"


async def test_an_account_without_foreign_numbers_gets_no_number_warning(
    svc: Services, make_account: AccountFactory
) -> None:
    a, _ = await _with_numbers(svc, make_account, _did("PL"))
    await svc.accounts.add_entry(a.id, "fee", -3 * PLN, at=T)
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        account = await svc.accounts.get(a.id)
        await lifecycle(svc.accounts, conn, account, SETTINGS, T + timedelta(days=1))
    assert await _notices(svc, a.id) == []


async def test_closing_an_account_releases_its_numbers_into_quarantine_at_once(
    svc: Services, make_account: AccountFactory
) -> None:
    first, second = _did("PL"), _did("GB")
    a, numbers = await _with_numbers(svc, make_account, first, second)
    assert (await svc.accounts.get(a.id)).caller_id == first
    closed, released = await numbers.close_account(a.id, "customer left", at=T, actor="op")
    assert closed.status is AccountStatus.CLOSED
    assert released == sorted([first, second])
    assert (closed.numbers, closed.caller_id) == ((), None)
    assert svc.pool is not None
    for n in (first, second):
        did = await get_number(svc.pool, n)
        assert (did.status, did.account) == (NumberStatus.QUARANTINED, None)
        assert did.quarantined_until == T + timedelta(days=numbers.settings.quarantine_days)
        # calls to it answer 410 Gone while it rests
        assert await svc.redis.get(svc.settings.keyspace.did(n)) == DID_GONE.encode()
    events = await svc.pool.fetch(
        "select number, event, detail->>'reason' as why from number_events"
        " where account = $1 and event = 'released_closed' order by number",
        a.id,
    )
    assert [(e["number"], e["why"]) for e in events] == [
        (n, "account closed: customer left") for n in sorted([first, second])
    ]
    kinds = [
        r["event"]
        for r in await svc.pool.fetch(
            "select event from account_events where account = $1 order by id", a.id
        )
    ]
    assert kinds[-3:] == ["closed", "numbers_released", "closed_reason"]
    # the monthly fees end with the numbers
    fees = await svc.pool.fetch(
        "select ended_on from subscriptions where account = $1 and name like 'number %'", a.id
    )
    assert len(fees) == 2 and all(f["ended_on"] is not None for f in fees)
    # Redis no longer lists them for the account
    mirrored = await svc.redis.hmget(svc.settings.keyspace.account(a.id), ["numbers", "status"])
    assert mirrored == [b"", b"closed"]


async def test_a_close_whose_release_fails_leaves_account_and_numbers_as_they_were(
    svc: Services, make_account: AccountFactory
) -> None:
    n = _did("PL")
    a, _ = await _with_numbers(svc, make_account, n)
    assert svc.pool is not None

    async def release_then_fail(conn: Any, account: Account) -> None:
        await conn.execute("update numbers set monthly_price = 0 where e164 = $1", n)
        raise RuntimeError("the release broke")

    with pytest.raises(RuntimeError):
        await svc.accounts.set_status(
            a.id, AccountStatus.CLOSED, "test", at=T, within=release_then_fail
        )
    assert (await svc.accounts.get(a.id)).status is AccountStatus.ACTIVE
    did = await get_number(svc.pool, n)
    assert (did.status, did.monthly_price) == (NumberStatus.ASSIGNED, 2 * PLN)


async def test_the_prepaid_lifecycle_closes_with_the_numbers(
    svc: Services, make_account: AccountFactory
) -> None:
    n = _did("PL")
    a, _ = await _with_numbers(svc, make_account, n)
    await svc.accounts.add_entry(a.id, "fee", -3 * PLN, at=T)
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        account = await svc.accounts.get(a.id)
        done = await lifecycle(svc.accounts, conn, account, SETTINGS, T + timedelta(days=100))
    assert "closed_negative_balance" in [x.kind for x in done]
    assert (await get_number(svc.pool, n)).status is NumberStatus.QUARANTINED


async def test_operators_close_through_the_cli_and_the_panel_with_the_numbers(
    svc: Services, settings: Settings, make_account: AccountFactory, panel: PanelFactory
) -> None:
    by_cli, by_panel = _did("PL"), _did("PL")
    a, _ = await _with_numbers(svc, make_account, by_cli)
    b, _ = await _with_numbers(svc, make_account, by_panel)
    done = _cli(settings, "account", "close", a.id, "--reason", "asked")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert (shown["status"], shown["numbers"], shown["numbers_released"]) == (
        "closed", [], [by_cli],
    )  # fmt: skip
    op = bearer(await token(svc, Role.OPERATOR))
    client = await panel()
    # a login created in the panel is what the account's inbound calls ring
    created = await client.post(
        f"/api/v1/accounts/{b.id}/sip-logins", json={"login": "7000201"}, headers=op
    )
    assert created.status == 201, await created.text()
    ring = await svc.redis.hget(svc.settings.keyspace.account(b.id), "sip_logins")
    assert ring == b"7000201"
    closed = await client.post(
        f"/api/v1/accounts/{b.id}/close", json={"reason": "fraud"}, headers=op
    )
    assert closed.status == 200, await closed.text()
    assert (await closed.json())["numbers"] == []
    assert svc.pool is not None
    for n in (by_cli, by_panel):
        assert (await get_number(svc.pool, n)).status is NumberStatus.QUARANTINED
