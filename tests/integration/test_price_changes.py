"""Price changes with notice (terms §7.1) on the real PostgreSQL and Redis with a real SMTP
server: the notice period refuses an early increase (nothing stored), forcing is audited,
customers on the deck are told once with the changed destinations, the ledger switches at
the effective instant (a call is priced by the version in force at its start) and re-rating
uses the version in force at each call's start."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from billing.price_changes import Force, PriceNoticeTooShort, earliest_effective, guard
from billing.rerate import rerate
from billing.settings import BillingSettings
from notify import contacts
from notify.delivery import deliver_due
from notify.mail_settings import SmtpSettings
from notify.price_changes import scan
from notify.settings import NotifySettings
from rating.accounts import AccountStatus
from rating.deck import Deck, RateRow, load_deck
from rating.deck_draft import epoch_ms
from rating.deck_store import import_deck, list_decks, publish_stored
from rating.ledger import CallRequest, Outcome
from runtime.services import Services
from tests.conftest import RETAIL, AccountFactory, PanelFactory
from tests.integration.test_billing import call, this_period
from tests.integration.test_notify import smtp  # noqa: F401  (the SMTP server fixture)

PLN = 1_000_000
SETTINGS = BillingSettings()
MOBILE = "0601234567"  # +4860...: 0.19 PLN a minute in retail v1


def row(prefix: str, name: str, rate: int, increment_s: int = 1, **kw: Any) -> RateRow:
    fields: dict[str, Any] = {
        "line": 0,
        "prefix": prefix,
        "name": name,
        "connect_fee": 0,
        "rate": rate,
        "rate_unit_s": 60,
        "increment_s": increment_s,
        "from_s": 0,
        "band": "*",
    }
    fields.update(kw)
    return RateRow(**fields)


def changed(deck: Deck) -> Deck:
    """retail with: mobiles +4860 up (0.19 -> 0.25), Germany down (0.25 -> 0.20), +4851
    gone (its calls fall to +48: 0.12 a minute, cheaper, but charged per whole minute instead
    of per second: dearer), +4853 new and dearer than the +48 it used to fall to (0.30),
    Krakow's daytime tier from 30 s charged per 30 s instead of 6."""
    rows: list[RateRow] = []
    for r in deck.rows:
        if r.prefix == "4851":
            continue
        if r.prefix == "4860":
            r = replace(r, rate=250_000)
        elif r.prefix == "49":
            r = replace(r, rate=200_000)
        elif (r.prefix, r.band, r.from_s) == ("4812", "day", 30):
            r = replace(r, increment_s=30)
        rows.append(r)
    rows.append(row("4853", "Poland mobile new", 300_000))
    numbered = tuple(replace(r, line=i + 2) for i, r in enumerate(rows))
    return replace(deck, rows=numbered, sha256=f"changed-{uuid.uuid4().hex}")


def cheaper(deck: Deck) -> Deck:
    rows = tuple(replace(r, rate=100_000) if r.prefix == "4860" else r for r in deck.rows)
    return replace(deck, rows=rows, sha256=f"cheaper-{uuid.uuid4().hex}")


async def import_at(
    svc: Services,
    deck: Deck,
    effective_at: datetime | None,
    now: datetime,
    force: Force | None = None,
) -> Deck:
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        stored, created = await import_deck(
            conn, deck, "test", effective_at=effective_at, guard=guard(SETTINGS, now, force)
        )
        assert created
        await publish_stored(conn, svc.redis, svc.settings.keyspace, stored.name, stored.version)
    svc.ledger.decks.invalidate()  # as a process starting now would read it
    return stored


def test_the_earliest_effective_instant_is_after_one_whole_billing_period() -> None:
    # notice on 20 November: December passes whole; from 1 January, midnight in Warsaw
    assert earliest_effective(datetime(2026, 11, 20, 10, 0, tzinfo=UTC), SETTINGS) == (
        datetime(2026, 12, 31, 23, 0, tzinfo=UTC)
    )
    # 30 November 23:30 UTC is already 1 December in Warsaw: from 1 February
    assert earliest_effective(datetime(2026, 11, 30, 23, 30, tzinfo=UTC), SETTINGS) == (
        datetime(2027, 1, 31, 23, 0, tzinfo=UTC)
    )
    two = replace(SETTINGS, price_notice_periods=2)
    assert earliest_effective(datetime(2026, 11, 20, tzinfo=UTC), two) == (
        datetime(2027, 1, 31, 23, 0, tzinfo=UTC)
    )


async def test_an_early_increase_is_refused_and_nothing_is_stored(
    svc: Services, retail: Deck
) -> None:
    assert svc.pool is not None
    now = datetime.now(UTC)
    earliest = earliest_effective(now, SETTINGS)
    with pytest.raises(PriceNoticeTooShort) as err:
        await import_at(svc, changed(retail), earliest - timedelta(seconds=1), now)
    assert err.value.earliest_at == earliest and err.value.increases == 4
    assert err.value.code == "PRICE_NOTICE_TOO_SHORT"
    assert [d["version"] for d in await _decks(svc)] == [1]  # nothing partial
    assert await svc.pool.fetchval("select count(*) from deck_price_changes") == 0

    v2 = await import_at(svc, changed(retail), earliest, now)
    change = await svc.pool.fetchrow("select * from deck_price_changes where version = $1", 2)
    assert change is not None
    assert (change["previous"], change["increases"], change["forced"]) == (1, 4, False)
    assert change["effective_at"] == earliest and change["noticed_at"] == now
    ups = await svc.pool.fetch(
        "select prefix, band, from_s, old_per_minute, new_per_minute, old_increment_s,"
        " new_increment_s from deck_increases where version = $1 order by prefix",
        v2.version,
    )
    assert [tuple(r) for r in ups] == [
        ("4812", "day", 30, 90_000, 90_000, 6, 30),
        ("4851", "*", 0, 190_000, 120_000, 1, 60),  # falls to +48, charged per minute
        ("4853", "*", 0, 120_000, 300_000, 60, 1),  # used to fall to +48
        ("4860", "*", 0, 190_000, 250_000, 1, 1),
    ]


async def test_a_decrease_needs_no_notice_and_may_even_be_retroactive(
    svc: Services, retail: Deck
) -> None:
    assert svc.pool is not None
    now = datetime.now(UTC)
    v2 = await import_at(svc, cheaper(retail), now - timedelta(days=3), now)
    assert v2.version == 2
    assert await svc.pool.fetchval("select count(*) from deck_price_changes") == 0


async def test_a_forced_early_increase_is_recorded_and_audited(svc: Services, retail: Deck) -> None:
    assert svc.pool is not None
    now = datetime.now(UTC)
    soon = (now + timedelta(days=1)).replace(microsecond=0)
    await import_at(svc, changed(retail), soon, now, Force("eve", "regulator's new fee"))
    change = await svc.pool.fetchrow("select * from deck_price_changes where version = 2")
    assert change is not None
    assert (change["forced"], change["forced_by"], change["reason"]) == (
        True,
        "eve",
        "regulator's new fee",
    )
    audit = await svc.pool.fetchrow(
        "select * from operator_audit where action = 'deck price increase forced'"
    )
    assert audit is not None and audit["actor"] == "eve" and audit["subject"] == "deck retail v2"
    detail = json.loads(audit["detail"])
    assert detail["increases"] == 4 and detail["effective_at"] == soon.isoformat()


async def test_the_ledger_switches_at_the_effective_instant(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    a = await make_account(balance=10 * PLN)
    now = datetime.now(UTC)
    switch = earliest_effective(now, SETTINGS)
    await import_at(svc, changed(retail), switch, now)

    async def minute_call(start: datetime) -> int:
        grant = await svc.ledger.authorize(
            CallRequest(a.id, f"c-{uuid.uuid4().hex[:12]}", MOBILE, "600100200", at=start)
        )
        assert grant.allowed, grant
        end = start + timedelta(seconds=60)
        outcome = Outcome(True, 60, end, "ANSWER", "16", answered_at=start)
        return (await svc.ledger.finish(a.id, grant.call_id, outcome)).rated_cost

    # started a second before: the old price, though it ends after the switch
    assert await minute_call(switch - timedelta(seconds=1)) == 190_000
    assert await minute_call(switch) == 250_000  # at the instant: the new price
    assert await minute_call(switch + timedelta(seconds=1)) == 250_000


async def test_rerating_uses_the_version_in_force_at_each_calls_start(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    a = await make_account(balance=10 * PLN)
    period = await this_period()
    before = await call(svc, a.id, 60)
    mid = datetime.now(UTC)
    after = await call(svc, a.id, 60)
    # a decrease, effective between the two calls (retroactive: allowed without notice)
    v2 = await import_at(svc, cheaper(retail), mid, datetime.now(UTC))
    now = period.bounds("Europe/Warsaw")[1] + timedelta(days=2)
    result = await rerate(svc.accounts, a.id, period, "retail", now=now)
    by_call = {ln.call_id: (ln.old_charge, ln.new_charge) for ln in result.lines}
    assert by_call == {before: (190_000, 190_000), after: (190_000, 100_000)}
    assert result.reference == f"rerate/{period}/retail:1+{v2.version}"
    assert result.version == v2.version and result.total == -90_000
    # naming a version still prices every call with it
    named = await rerate(svc.accounts, a.id, period, "retail", 2, now=now)
    assert {ln.call_id: ln.new_charge for ln in named.lines} == {before: 100_000, after: 100_000}


async def test_customers_on_the_deck_are_told_once_with_the_changed_destinations(
    svc: Services,
    retail: Deck,
    make_account: AccountFactory,
    smtp: Any,  # noqa: F811
) -> None:
    assert svc.pool is not None
    pl, en, gone = [await make_account() for _ in range(3)]
    other_deck = await make_account(deck=None)
    now = datetime.now(UTC)
    async with svc.pool.acquire() as conn:
        for acct, lang in ((pl, "pl"), (en, "en"), (gone, "pl"), (other_deck, "pl")):
            await contacts.put(
                conn, contacts.Contact(acct.id, language=lang, email=f"{acct.id}@ex.pl"), now
            )
    await svc.accounts.set_status(gone.id, AccountStatus.CLOSED, "test", at=now)
    switch = earliest_effective(now, SETTINGS)
    await import_at(svc, changed(retail), switch, now)
    settings = NotifySettings(smtp=SmtpSettings("127.0.0.1", smtp.port, sender="bok@op.pl"))
    assert await scan(svc.pool, settings, now) == 2
    assert await scan(svc.pool, settings, now) == 0  # once
    assert (await deliver_due(svc.pool, settings, now)).sent == 2
    mails = {m["To"]: m for m in smtp.messages}
    assert set(mails) == {f"{pl.id}@ex.pl", f"{en.id}@ex.pl"}
    local = switch.astimezone(ZoneInfo("Europe/Warsaw"))
    when = f"{local:%Y-%m-%d %H:%M} Europe/Warsaw"
    polish = mails[f"{pl.id}@ex.pl"]
    assert polish["Subject"] == f"Zmiana cennika połączeń od {when}"
    body = polish.get_content()
    assert "do 4 kierunków" in body
    assert "- +4860 Poland mobile: 0,1900 PLN → 0,2500 PLN za minutę" in body
    assert "- +4853 Poland mobile new: 0,1200 PLN → 0,3000 PLN za minutę" in body
    assert "- +4812 Poland Krakow (day, od 30 s): 0,0900 PLN → 0,0900 PLN za minutę;" in body
    assert "naliczanie co 6 s → 30 s" in body
    english = mails[f"{en.id}@ex.pl"].get_content()
    assert "- +4860 Poland mobile: 0.1900 PLN → 0.2500 PLN a minute" in english


async def test_cli_imports_with_an_effective_instant_and_refuses_an_early_increase(
    svc: Services, retail: Deck, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tollgate.cli import CliError, build_parser

    source = changed(retail)
    write_deck(tmp_path, source)
    parser = build_parser()

    async def run(*argv: str) -> Any:
        args = parser.parse_args(["deck", "import", str(tmp_path / "deck.toml"), *argv])
        capsys.readouterr()
        await args.run(svc, args)
        return json.loads(capsys.readouterr().out)

    with pytest.raises(PriceNoticeTooShort):
        await run()  # now: too early
    with pytest.raises(CliError):
        await run("--effective-at", "2027-01-01T00:00")  # no zone
    with pytest.raises(CliError):
        await run("--force")  # no reason
    earliest = earliest_effective(datetime.now(UTC), SETTINGS)
    out = await run("--effective-at", earliest.isoformat())
    assert (out["version"], out["increases"], out["in_force"], out["forced"]) == (
        2,
        4,
        False,
        False,
    )
    assert datetime.fromisoformat(out["effective_at"]) == earliest


def write_deck(path: Path, deck: Deck) -> None:
    manifest = RETAIL.read_text().replace('name = "retail"', f'name = "{deck.name}"')
    (path / "deck.toml").write_text(manifest)
    lines = ["prefix,name,connect_fee,rate,rate_unit_s,increment_s,from_s,band"]
    for r in deck.rows:
        lines.append(
            f"{r.prefix},{r.name},{_money(r.connect_fee)},{_money(r.rate)},{r.rate_unit_s},"
            f"{r.increment_s},{r.from_s},{r.band}"
        )
    (path / "rates.csv").write_text("\n".join(lines) + "\n")
    assert load_deck(path / "deck.toml").rows  # what the CLI will read


def _money(micro: int) -> str:
    return f"{micro // PLN}.{micro % PLN:06d}"


async def _decks(svc: Services) -> list[dict[str, Any]]:
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        return [d for d in await list_decks(conn) if d["name"] == "retail"]


async def test_the_panel_upload_takes_an_effective_instant_and_refuses_an_early_increase(
    svc: Services, panel: PanelFactory
) -> None:
    from panel_api.tokens import Role
    from tests.panel import bearer, deck_form, token

    op = bearer(await token(svc, Role.OPERATOR))
    rates = (RETAIL.parent / "rates.csv").read_bytes()
    dearer = rates.replace(b"4860,Poland mobile,0,0.1900,", b"4860,Poland mobile,0,0.2500,")
    assert dearer != rates
    bands = json.dumps(
        {
            "day": ["mon-fri 08:00-18:00"],
            "offpeak": ["mon-fri 00:00-08:00", "mon-fri 18:00-24:00", "sat-sun 00:00-24:00"],
        }
    )
    keys = svc.settings.keyspace
    client = await panel()
    r = await client.post("/api/v1/decks", data=deck_form(rates, bands=bands), headers=op)
    assert r.status == 201, await r.text()
    first = await r.json()
    assert first["increases"] == 0
    r = await client.post("/api/v1/decks", data=deck_form(dearer, bands=bands), headers=op)
    assert r.status == 422, await r.text()
    error = (await r.json())["error"]
    earliest = earliest_effective(datetime.now(UTC), SETTINGS)
    assert error["code"] == "PRICE_NOTICE_TOO_SHORT"
    assert error["details"]["increases"] == 1
    assert datetime.fromisoformat(error["details"]["earliest_at"]) == earliest
    # nothing stored, nothing told to Redis
    assert await svc.redis.hkeys(keys.deck_schedule("panel-retail")) == [b"1"]

    form = deck_form(dearer, bands=bands, effective_at=earliest.isoformat())
    r = await client.post("/api/v1/decks", data=form, headers=op)
    assert r.status == 201, await r.text()
    second = await r.json()
    assert (second["version"], second["increases"]) == (2, 1)
    assert datetime.fromisoformat(second["effective_at"]) == earliest
    # the streamed import told Redis both instants, to the millisecond, with the version
    schedule = await svc.redis.hgetall(keys.deck_schedule("panel-retail"))
    imported_at = datetime.fromisoformat(first["effective_at"])
    assert schedule == {
        b"1": str(epoch_ms(imported_at)).encode(),
        b"2": str(epoch_ms(earliest)).encode(),
    }
    assert imported_at.microsecond % 1000 == 0  # kept to the millisecond


async def test_the_panel_forces_an_early_increase_with_a_reason_audited(
    svc: Services, panel: PanelFactory
) -> None:
    """As the CLI's `--force --reason`: refused without a reason, then stored with the
    early instant, recorded on the version and in the audit log with the operator's token."""
    from panel_api.tokens import Role
    from tests.panel import bearer, deck_form, token

    assert svc.pool is not None
    op = bearer(await token(svc, Role.OPERATOR))
    rates = (RETAIL.parent / "rates.csv").read_bytes()
    dearer = rates.replace(b"4860,Poland mobile,0,0.1900,", b"4860,Poland mobile,0,0.2500,")
    bands = json.dumps(
        {
            "day": ["mon-fri 08:00-18:00"],
            "offpeak": ["mon-fri 00:00-08:00", "mon-fri 18:00-24:00", "sat-sun 00:00-24:00"],
        }
    )
    client = await panel()
    r = await client.post("/api/v1/decks", data=deck_form(rates, bands=bands), headers=op)
    assert r.status == 201, await r.text()
    soon = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    early = {"effective_at": soon.isoformat(), "bands": bands}

    r = await client.post("/api/v1/decks", data=deck_form(dearer, **early), headers=op)
    assert r.status == 422 and (await r.json())["error"]["code"] == "PRICE_NOTICE_TOO_SHORT"
    for reason in ({}, {"reason": "  "}):
        form = deck_form(dearer, force="true", **early, **reason)
        r = await client.post("/api/v1/decks", data=form, headers=op)
        assert r.status == 400, await r.text()
        assert (await r.json())["error"]["details"]["field"] == "reason"
    assert await svc.pool.fetchval("select count(*) from decks where name = 'panel-retail'") == 1

    form = deck_form(dearer, force="true", reason="regulator's new fee", **early)
    r = await client.post("/api/v1/decks", data=form, headers=op)
    assert r.status == 201, await r.text()
    body = await r.json()
    assert (body["version"], body["increases"]) == (2, 1)
    assert datetime.fromisoformat(body["effective_at"]) == soon
    change = await svc.pool.fetchrow(
        "select * from deck_price_changes where deck = 'panel-retail' and version = 2"
    )
    assert change is not None
    assert (change["forced"], change["forced_by"], change["reason"]) == (
        True,
        f"test-{Role.OPERATOR}",
        "regulator's new fee",
    )
    audit = await svc.pool.fetchrow(
        "select * from operator_audit where action = 'deck price increase forced'"
    )
    assert audit is not None
    assert (audit["actor"], audit["method"], audit["path"], audit["subject"]) == (
        f"test-{Role.OPERATOR}",
        "POST",
        "/api/v1/decks",
        "deck panel-retail v2",
    )
    assert audit["token_id"]
    assert json.loads(audit["detail"])["reason"] == "regulator's new fee"
