"""Customer records against the real PostgreSQL and Redis: validation (NIP and VAT checksums,
addresses, e-mail, phone), verification with who and when, the accounts' flag in Redis,
contract start (first top-up and verification), and the `tollgate customer` CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from customers.model import Customer, CustomerError, CustomerKind, Verification
from customers.privacy import anonymise, export_personal_data
from customers.store import (
    CustomerStore,
    accounts_of,
    customer_of_account,
    get_customer,
    list_customers,
)
from rating.accounts import AccountStatus
from rating.ledger import CallRequest, Decision, Grant, Ledger
from runtime.services import Services
from runtime.settings import Settings, SettingsError
from tests.conftest import AccountFactory

T0 = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # the night Warsaw moves its clocks
NIP = "526-025-02-74"  # a valid NIP (checksum)


def _store(svc: Services) -> CustomerStore:
    assert svc.pool is not None
    return CustomerStore(svc.pool, svc.accounts)


def acme(**changes: object) -> Customer:
    base = Customer(
        id="acme",
        legal_name="  ACME   sp. z o.o. ",
        email="billing@acme.example.pl",
        kind=CustomerKind.BUSINESS,
        tax_id=NIP,
        street="ul. Węglowa 1/3",
        postal_code="60-122",
        city="Poznań",
        phone="61 250 40 01",
    )
    return Customer(**{**base.__dict__, **changes})  # type: ignore[arg-type]


async def test_record_is_stored_in_canonical_form(svc: Services) -> None:
    created = await _store(svc).create(acme(), at=T0, actor="op-anna")
    assert created.tax_id == "5260250274"
    assert created.legal_name == "ACME sp. z o.o."
    assert created.phone == "+48612504001"
    assert created.verification is Verification.PENDING
    assert created.verification_at is None and created.contract_started_at is None
    assert created.created_at == T0
    assert svc.pool is not None
    assert await get_customer(svc.pool, "acme") == created


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"tax_id": "526-025-02-75"}, "tax_id"),  # checksum
        ({"tax_id": None}, "tax_id"),  # a Polish business needs its NIP
        ({"vat_id": "PL1234567890"}, "vat_id"),
        ({"vat_id": "PL7740001454"}, "vat_id"),  # valid, but another company's
        ({"country": "DE", "vat_id": None}, "tax_id"),  # a NIP is Polish
        ({"postal_code": "60122"}, "postal_code"),
        ({"email": "billing at acme"}, "email"),
        ({"phone": "12"}, "phone"),
        ({"language": "polish"}, "language"),
        ({"country": "XX"}, "country"),
        ({"legal_name": "   "}, "legal_name"),
        ({"kind": "company"}, "kind"),
        ({"id": "a/b"}, "id"),
    ],
)
async def test_bad_fields_are_named_and_nothing_is_written(
    svc: Services, changes: dict[str, object], field: str
) -> None:
    with pytest.raises(CustomerError) as err:
        await _store(svc).create(acme(**changes), at=T0, actor="op")
    assert err.value.field == field
    assert svc.pool is not None
    assert await list_customers(svc.pool) == []


async def test_foreign_business_needs_a_valid_eu_vat_id(svc: Services) -> None:
    store = _store(svc)
    de = acme(id="gmbh", country="DE", tax_id=None, postal_code="10115", phone=None)
    with pytest.raises(CustomerError) as err:
        await store.create(de, at=T0, actor="op")
    assert err.value.field == "vat_id"
    created = await store.create(
        Customer(**{**de.__dict__, "vat_id": "DE 136 695 976"}), at=T0, actor="op"
    )
    assert created.vat_id == "DE136695976" and created.tax_id is None


async def test_verification_records_who_and_when_and_drives_the_accounts_flag(
    svc: Services, make_account: AccountFactory
) -> None:
    store = _store(svc)
    a = await make_account()
    b = await make_account()
    await store.create(acme(), at=T0, actor="op", accounts=(a.id,))
    await store.attach("acme", b.id, at=T0, actor="op")
    key = svc.ledger.keys.account(a.id)
    assert (await svc.accounts.get(a.id)).unverified
    assert await svc.redis.hget(key, "unverified") == b"1"
    assert await svc.redis.hget(svc.ledger.keys.account(b.id), "unverified") == b"1"

    later = T0 + timedelta(hours=5)
    verified = await store.verify("acme", Verification.VERIFIED, at=later, actor="op-anna")
    assert (verified.verification_by, verified.verification_at) == ("op-anna", later)
    for acct in (a.id, b.id):
        assert not (await svc.accounts.get(acct)).unverified
        assert await svc.redis.hget(svc.ledger.keys.account(acct), "unverified") == b"0"

    rejected = await store.verify(
        "acme", Verification.REJECTED, at=later, actor="op-ben", note="fake NIP"
    )
    assert rejected.verification_note == "fake NIP"
    assert await svc.redis.hget(key, "unverified") == b"1"
    assert svc.pool is not None
    assert await customer_of_account(svc.pool, a.id) == rejected
    assert await accounts_of(svc.pool, "acme") == sorted([a.id, b.id])
    events = await svc.pool.fetch(
        "select event, actor from customer_events where customer = 'acme' order by id"
    )
    assert [(e["event"], e["actor"]) for e in events][-2:] == [
        ("verification_verified", "op-anna"),
        ("verification_rejected", "op-ben"),
    ]


async def test_an_account_of_another_customer_is_not_taken(
    svc: Services, make_account: AccountFactory
) -> None:
    store = _store(svc)
    a = await make_account()
    await store.create(acme(), at=T0, actor="op", accounts=(a.id,))
    other = acme(id="other", tax_id="774-000-14-54")
    with pytest.raises(CustomerError) as err:
        await store.create(other, at=T0, actor="op", accounts=(a.id,))
    assert err.value.field == "account"
    assert svc.pool is not None
    assert [c.id for c in await list_customers(svc.pool)] == ["acme"]


@pytest.mark.parametrize("topup_first", [True, False])
async def test_contract_starts_at_first_topup_and_verification(
    svc: Services, make_account: AccountFactory, topup_first: bool
) -> None:
    store = _store(svc)
    a = await make_account()
    await store.create(acme(), at=T0, actor="op", accounts=(a.id,))
    topup_at, verified_at = T0 + timedelta(days=1), T0 + timedelta(days=2)
    if not topup_first:
        topup_at, verified_at = verified_at, topup_at
    steps = sorted([("topup", topup_at), ("verify", verified_at)], key=lambda s: s[1])
    for step, at in steps:
        if step == "topup":
            await svc.accounts.add_entry(a.id, "topup", 10_000_000, at=at)
        else:
            await store.verify("acme", Verification.VERIFIED, at=at, actor="op")
    await svc.accounts.add_entry(a.id, "topup", 5_000_000, at=T0 + timedelta(days=9))
    assert svc.pool is not None
    c = await get_customer(svc.pool, "acme")
    assert c.first_topup_at == topup_at
    assert c.verification_at == verified_at
    assert c.contract_started_at == max(topup_at, verified_at)


async def test_a_topup_before_the_account_was_attached_counts(
    svc: Services, make_account: AccountFactory
) -> None:
    store = _store(svc)
    a = await make_account(balance=1_000_000, at=T0)
    await store.create(acme(), at=T0 + timedelta(days=1), actor="op")
    await store.verify("acme", Verification.VERIFIED, at=T0 + timedelta(days=2), actor="op")
    await store.attach("acme", a.id, at=T0 + timedelta(days=3), actor="op")
    assert svc.pool is not None
    c = await get_customer(svc.pool, "acme")
    assert c.first_topup_at == T0
    assert c.contract_started_at == T0 + timedelta(days=2)


async def test_customer_may_change_contact_data_only(svc: Services) -> None:
    store = _store(svc)
    await store.create(acme(), at=T0, actor="op")
    own = ("street", "postal_code", "city", "email", "phone", "language")
    with pytest.raises(CustomerError) as err:
        await store.update("acme", at=T0, actor="customer", allowed=own, legal_name="Other")
    assert err.value.field == "legal_name"
    updated = await store.update(
        "acme", at=T0, actor="customer", allowed=own, email="faktury@acme.example.pl"
    )
    assert updated.email == "faktury@acme.example.pl"
    with pytest.raises(CustomerError) as err:
        await store.update("acme", at=T0, actor="customer", allowed=own, email="nope")
    assert err.value.field == "email"
    assert svc.pool is not None
    assert (await get_customer(svc.pool, "acme")).email == "faktury@acme.example.pl"


def _cli(settings: Settings, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {
        "TOLLGATE_PG_DSN": settings.pg_dsn,
        "TOLLGATE_REDIS_URL": settings.redis_url,
        "TOLLGATE_REDIS_PREFIX": settings.keyspace.prefix,
        "TOLLGATE_SHARDS": str(settings.keyspace.shards),
        "PATH": "/usr/bin:/bin",
    }
    return subprocess.run(
        [sys.executable, "-m", "tollgate.cli", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


async def test_cli_create_show_update_verify_list(
    svc: Services, settings: Settings, make_account: AccountFactory
) -> None:
    a = await make_account()
    out = _cli(
        settings, "customer", "create", "acme", "--name", "ACME sp. z o.o.", "--kind",
        "business", "--nip", NIP, "--email", "billing@acme.example.pl", "--account", a.id,
        "--postal-code", "60-122", "--city", "Poznań",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["accounts"] == [a.id]
    bad = _cli(settings, "customer", "create", "x", "--name", "X", "--email", "x@y.pl",
               "--kind", "business", "--nip", "1234567890")  # fmt: skip
    assert bad.returncode == 2 and "tax_id" in bad.stderr and "Traceback" not in bad.stderr
    up = _cli(settings, "customer", "update", "acme", "--phone", "+48 61 250 40 01")
    assert up.returncode == 0, up.stderr
    assert json.loads(up.stdout)["phone"] == "+48612504001"
    ve = _cli(settings, "customer", "verify", "acme", "--by", "op-anna",
              "--now", "2026-11-30T23:30:00+00:00")  # fmt: skip
    assert ve.returncode == 0, ve.stderr
    shown = json.loads(_cli(settings, "customer", "show", "acme").stdout)
    assert shown["verification"] == "verified"
    assert shown["verification_by"] == "op-anna"
    assert shown["verification_at"] == "2026-11-30T23:30:00+00:00"
    listed = json.loads(_cli(settings, "customer", "list", "--verification", "pending").stdout)
    assert listed == []
    missing = _cli(settings, "customer", "show", "nobody")
    assert missing.returncode == 2 and "unknown customer" in missing.stderr


async def _call(ledger: Ledger, account: str, to: str) -> Grant:
    return await ledger.authorize(CallRequest(account, f"c-{uuid.uuid4().hex[:12]}", to))


async def test_unverified_customer_cannot_call_out_except_emergency(
    svc: Services, make_account: AccountFactory
) -> None:
    store = _store(svc)
    # Each allowed call below keeps its reservation (up to the longest call at the rate of
    # the hour it runs): enough credit for all of them at the day rate too.
    a = await make_account(balance=1_000_000_000)
    legacy = await make_account(balance=1_000_000_000)  # no customer record: as before
    await store.create(acme(), at=T0, actor="op", accounts=(a.id,))
    denied = await _call(svc.ledger, a.id, "0221234567")
    assert (denied.decision, denied.reason) == (Decision.DENY, "CUSTOMER_UNVERIFIED")
    assert (await svc.accounts.live(a.id)).reserved == 0
    assert (await _call(svc.ledger, a.id, "112")).reason == "EMERGENCY"
    assert (await _call(svc.ledger, legacy.id, "0221234567")).reason == "OK"
    # the operator's setting: allow unverified customers' calls
    lenient = Ledger(
        svc.redis,
        svc.settings.keyspace,
        svc.ledger.decks,
        replace(svc.ledger.settings, refuse_unverified=False),
    )
    assert (await _call(lenient, a.id, "0221234567")).reason == "OK"
    await store.verify("acme", Verification.VERIFIED, at=T0, actor="op")
    assert (await _call(svc.ledger, a.id, "0221234567")).reason == "OK"
    await store.verify("acme", Verification.REJECTED, at=T0, actor="op")
    assert (await _call(svc.ledger, a.id, "0221234567")).reason == "CUSTOMER_UNVERIFIED"


async def test_a_verification_revoked_mid_call_refuses_the_next_slice(
    svc: Services, make_account: AccountFactory
) -> None:
    store = _store(svc)
    a = await make_account(balance=10_000_000)
    await store.create(acme(), at=T0, actor="op", accounts=(a.id,))
    await store.verify("acme", Verification.VERIFIED, at=T0, actor="op")
    cid = f"c-{uuid.uuid4().hex[:12]}"
    grant = await svc.ledger.authorize(CallRequest(a.id, cid, "0221234567", cap_s=60))
    assert grant.allowed and grant.max_seconds == 60
    await svc.ledger.answer(a.id, cid)
    assert (await svc.ledger.renew(a.id, cid, 120)).reason == "OK"
    await store.verify("acme", Verification.REJECTED, at=T0, actor="op")
    refused = await svc.ledger.renew(a.id, cid, 180)
    assert (refused.decision, refused.reason) == (Decision.DENY, "CUSTOMER_UNVERIFIED")
    assert refused.max_seconds == 120  # what it already holds, no more


async def test_redis_repair_restores_the_unverified_flag(
    svc: Services, make_account: AccountFactory
) -> None:
    a = await make_account(balance=10_000_000)
    await _store(svc).create(acme(), at=T0, actor="op", accounts=(a.id,))
    await svc.redis.delete(svc.ledger.keys.account(a.id))  # Redis lost the account
    await svc.accounts.sync(a.id)
    assert (await _call(svc.ledger, a.id, "0221234567")).reason == "CUSTOMER_UNVERIFIED"


def test_refuse_unverified_is_an_operator_setting() -> None:
    assert Settings.from_env({}).ledger.refuse_unverified is True
    assert Settings.from_env({"TOLLGATE_REFUSE_UNVERIFIED": "no"}).ledger.refuse_unverified is False
    with pytest.raises(SettingsError) as err:
        Settings.from_env({"TOLLGATE_REFUSE_UNVERIFIED": "maybe"})
    assert "TOLLGATE_REFUSE_UNVERIFIED" in str(err.value)


async def test_personal_data_export_and_anonymisation_after_retention(
    svc: Services, make_account: AccountFactory
) -> None:
    store = _store(svc)
    a = await make_account(balance=10_000_000, at=T0)
    await store.create(acme(), at=T0, actor="op", accounts=(a.id,))
    await store.update("acme", at=T0, actor="customer", email="new@acme.example.pl")
    assert svc.pool is not None
    exported = await export_personal_data(svc.pool, "acme")
    assert exported["customer"]["tax_id"] == "5260250274"
    assert [x["id"] for x in exported["accounts"]] == [a.id]
    assert [e["amount"] for e in exported["ledger_entries"]] == [10_000_000]
    assert json.loads(json.dumps(exported, default=str)) == exported  # JSON as it stands
    later = T0 + timedelta(days=400)
    with pytest.raises(CustomerError) as err:  # an account still open
        await anonymise(svc.pool, "acme", at=later, actor="dpo")
    assert err.value.field == "accounts"
    closed_at = T0 + timedelta(days=30)
    await svc.accounts.set_status(a.id, AccountStatus.CLOSED, at=closed_at)
    with pytest.raises(CustomerError) as err:  # within the retention after the last change
        await anonymise(svc.pool, "acme", at=closed_at + timedelta(days=300), actor="dpo")
    assert err.value.field == "retention"
    last = await anonymise(svc.pool, "acme", at=later, actor="dpo")
    assert last == closed_at
    gone = await get_customer(svc.pool, "acme")
    assert (gone.legal_name, gone.email, gone.tax_id, gone.phone, gone.street) == (
        "anonymised", "anonymised@invalid", None, None, "",
    )  # fmt: skip
    assert gone.anonymised_at == later and gone.kind is CustomerKind.BUSINESS
    history = await svc.pool.fetch("select detail from customer_events where customer = 'acme'")
    assert all("acme.example.pl" not in h["detail"] for h in history)
    # the money and the accounts stay, detached from the person
    assert (await svc.accounts.entries(a.id))[0].amount == 10_000_000
    with pytest.raises(CustomerError):
        await store.update("acme", at=later, actor="op", email="back@acme.example.pl")
