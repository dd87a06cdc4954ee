"""The panel API on the real Redis and PostgreSQL: tokens and roles, customers' balance and
calls (JSON pages, CSV), operators' accounts, money, decks and running calls, rate limits,
errors and metrics."""

from __future__ import annotations

import argparse
import csv
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from billing.prepaid import invoice_topup
from billing.settings import BillingSettings
from cdr.csv_safe import defuse
from panel_api.app import build_app, document
from panel_api.cli_args import register
from panel_api.settings import PanelSettings
from panel_api.tokens import Role, TokenStore
from rating.accounts import AccountStatus
from rating.deck import Deck
from rating.deck_store import list_decks
from rating.ledger import CallRequest
from rating.money import format_micro
from runtime.services import Services
from runtime.settings import Settings
from switch.ari import AriSettings
from tests.conftest import RETAIL, AccountFactory, PanelFactory
from tests.panel import NOW, bearer, cdr, deck_form, store_cdrs, token

pytestmark = pytest.mark.panel_db


# -- tokens, roles, errors ---------------------------------------------------------------------


async def test_openapi_documents_exactly_the_api_routes(panel: PanelFactory) -> None:
    client = await panel()
    served = await (await client.get("/openapi.json")).json()
    assert served == json.loads(json.dumps(document()))
    documented = {(method.upper(), path) for path, ops in served["paths"].items() for method in ops}
    routes = {
        (r.method, r.resource.canonical)
        for r in client.app.router.routes()
        if r.resource is not None
        and r.method != "HEAD"
        and r.resource.canonical.startswith(("/api/", "/health"))
    }
    # a regex route stands for one documented path per action
    actions = {
        "/api/v1/accounts/{account}/{action}": ("suspend", "resume", "close"),
        "/api/v1/findings/{finding}/{action}": (
            "acknowledge",
            "lift",
            "close",
            "accept-closure",
            "reject-closure",
        ),
        "/api/v1/numbers/{number}/{action}": ("assign", "release", "port-out"),
        "/api/v1/sip-logins/{login}/{action}": ("disable", "enable"),
        "/api/v1/complaints/{complaint}/{action}": ("acknowledge", "accept", "reject"),
    }
    expanded = set()
    for method, path in routes:
        for action in actions.get(path, ("",)):
            expanded.add((method, path.replace("{action}", action) if action else path))
    assert expanded == documented


async def test_a_token_is_needed_and_only_its_hash_is_stored(
    svc: Services, panel: PanelFactory, make_account: AccountFactory
) -> None:
    a = await make_account(balance=1_000_000)
    secret = await token(svc, Role.CUSTOMER, a.id)
    assert svc.pool is not None
    row = await svc.pool.fetchrow("select * from panel_tokens")
    assert row is not None and secret not in json.dumps(dict(row), default=str)
    assert len(row["secret_sha256"]) == 32
    client = await panel()
    no = await client.get(f"/api/v1/accounts/{a.id}/balance")
    assert no.status == 401 and no.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await no.json())["error"]["code"] == "UNAUTHENTICATED"
    wrong = await client.get("/api/v1/me", headers=bearer("tgp_not-a-token"))
    assert wrong.status == 401
    basic = await client.get("/api/v1/me", headers={"Authorization": "Basic eDp5"})
    assert basic.status == 401
    me = await client.get("/api/v1/me", headers=bearer(secret))
    assert me.status == 200
    body = await me.json()
    assert body["role"] == "customer" and body["account"] == a.id
    await TokenStore(svc.pool).revoke(body["id"])
    assert (await client.get("/api/v1/me", headers=bearer(secret))).status == 401


async def test_customer_sees_its_balance_as_decimal_strings(
    svc: Services, panel: PanelFactory, make_account: AccountFactory
) -> None:
    a = await make_account(balance=12_340_000)
    await svc.accounts.add_entry(a.id, "fee", -500_000, note="monthly fee", at=datetime.now(UTC))
    secret = await token(svc, Role.CUSTOMER, a.id)
    client = await panel()
    r = await client.get(f"/api/v1/accounts/{a.id}/balance", headers=bearer(secret))
    assert r.status == 200
    body = await r.json()
    assert body["balance"] == "11.8400" and body["available"] == "11.8400"
    assert body["reserved"] == "0.0000" and body["currency"] == "PLN"
    assert [(e["kind"], e["amount"]) for e in body["entries"]] == [
        ("fee", "-0.5000"),
        ("topup", "12.3400"),
    ]
    r = await client.get(f"/api/v1/accounts/{a.id}/entries?limit=1", headers=bearer(secret))
    assert [e["seq"] for e in (await r.json())["items"]] == [2]


async def test_another_account_is_404_for_a_customer_exactly_like_a_missing_one(
    svc: Services, panel: PanelFactory, make_account: AccountFactory
) -> None:
    mine, theirs = await make_account(balance=1_000_000), await make_account(balance=2_000_000)
    await store_cdrs(svc.pool, [cdr(theirs.id, 1, NOW - timedelta(hours=1))])  # type: ignore[arg-type]
    secret = await token(svc, Role.CUSTOMER, mine.id)
    client = await panel()
    for path in ("balance", "entries", "cdrs", "cdrs.csv"):
        r = await client.get(f"/api/v1/accounts/{theirs.id}/{path}", headers=bearer(secret))
        missing = await client.get(f"/api/v1/accounts/nobody/{path}", headers=bearer(secret))
        assert r.status == missing.status == 404, path
        theirs_body, missing_body = await r.json(), await missing.json()
        assert theirs_body["error"]["code"] == missing_body["error"]["code"] == "NOT_FOUND"
        # the same answer, word for word, as for an account that does not exist
        assert json.dumps(theirs_body) == json.dumps(missing_body).replace("nobody", theirs.id)
    r = await client.post(f"/api/v1/accounts/{theirs.id}/cdrs/exports", headers=bearer(secret))
    assert r.status == 404
    # and an operator's endpoints are refused outright
    for method, path in (
        ("GET", "/api/v1/accounts"),
        ("POST", f"/api/v1/accounts/{mine.id}/topups"),
        ("GET", "/api/v1/calls"),
        ("GET", "/api/v1/decks"),
    ):
        r = await client.request(method, path, headers=bearer(secret), json={"amount": "1"})
        assert r.status == 403 and (await r.json())["error"]["code"] == "FORBIDDEN"
    assert (await svc.accounts.live(mine.id)).balance == 1_000_000


async def test_unknown_routes_and_methods_answer_in_the_error_format(panel: PanelFactory) -> None:
    client = await panel()
    r = await client.get("/api/v1/nothing")
    assert r.status == 404 and (await r.json())["error"]["code"] == "NOT_FOUND"
    r = await client.delete("/openapi.json")
    assert r.status == 405 and (await r.json())["error"]["code"] == "METHOD_NOT_ALLOWED"


# -- calls: JSON pages and CSV -----------------------------------------------------------------


async def test_cdr_listing_filters_and_keyset_pages(
    svc: Services, panel: PanelFactory, make_account: AccountFactory
) -> None:
    a = await make_account()
    calls = [cdr(a.id, n, NOW - timedelta(minutes=10 * n), cost=10_000 * n) for n in range(1, 24)]
    calls += [  # same start: ties broken by call id
        cdr(a.id, 100, NOW - timedelta(minutes=5)),
        cdr(a.id, 101, NOW - timedelta(minutes=5)),
        cdr(
            a.id,
            200,
            NOW - timedelta(hours=2),
            e164="+4930123456",
            raw="004930123456",
            number_class="international",
            rate_name="Germany",
        ),
        cdr(a.id, 300, NOW - timedelta(days=40)),  # outside the default period
    ]
    assert svc.pool is not None
    await store_cdrs(svc.pool, calls)
    secret = await token(svc, Role.CUSTOMER, a.id)
    client = await panel()
    url = f"/api/v1/accounts/{a.id}/cdrs"
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "7", **({"cursor": cursor} if cursor else {})}
        r = await client.get(url, params=params, headers=bearer(secret))
        assert r.status == 200
        body = await r.json()
        seen += body["items"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    in_period = sorted(
        (c for c in calls if c.started_at > NOW - timedelta(days=31)),
        key=lambda c: (c.started_at, c.call_id),
        reverse=True,
    )
    assert [c["call_id"] for c in seen] == [c.call_id for c in in_period]
    assert pages == 4
    first = seen[0]
    assert first["cost"] == format_micro(in_period[0].cost)
    assert first["number"] == "+48601234567" and first["class"] == "mobile"

    r = await client.get(url, params={"class": "international"}, headers=bearer(secret))
    assert [c["call_id"] for c in (await r.json())["items"]] == [f"call-{a.id}-200"]
    r = await client.get(url, params={"number": "30 123"}, headers=bearer(secret))
    assert [c["call_id"] for c in (await r.json())["items"]] == [f"call-{a.id}-200"]
    old = {
        "from": (NOW - timedelta(days=41)).date().isoformat(),
        "to": (NOW - timedelta(days=39)).isoformat(),
    }
    r = await client.get(url, params=old, headers=bearer(secret))
    assert [c["call_id"] for c in (await r.json())["items"]] == [f"call-{a.id}-300"]

    for params, name in (
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"limit": "0"}, "limit"),
        ({"from": "yesterday"}, "from"),
        ({"from": "2026-01-02", "to": "2026-01-01"}, "from"),
        ({"class": "pizza"}, "class"),
        ({"number": "12a"}, "number"),
        ({"to": "1999-12-31"}, "to"),
    ):
        r = await client.get(url, params=params, headers=bearer(secret))
        assert r.status == 400, params
        error = (await r.json())["error"]
        assert error["code"] == "INVALID_PARAMETER" and error["details"]["parameter"] == name


async def test_csv_download_streams_every_row_and_defuses_formulas(
    svc: Services, panel: PanelFactory, make_account: AccountFactory
) -> None:
    a = await make_account()
    evil = [
        '=HYPERLINK("http://x","y")',
        "+cmd|' /C calc'!A0",
        "+48601234567+1",
        "-2+3",
        "@SUM(A1)",
        "\tx",
        "\rx",
        " =1+1",  # blanks before '=' still make a formula
        " \t@SUM(A1)",
    ]
    costs = [0, 1, 10, 100, 190_000, 5_000_050, 123_456_789]
    calls = [
        cdr(a.id, n, NOW - timedelta(seconds=n, microseconds=n % 3), cost=costs[n % len(costs)])
        for n in range(1, 2501)
    ]
    calls += [
        cdr(a.id, 9000 + i, NOW - timedelta(hours=1, seconds=i), caller=text, raw=text)
        for i, text in enumerate(evil)
    ]
    calls.append(cdr(a.id, 9100, NOW - timedelta(hours=2), answered_at=None, rate_name='a "b", c'))
    assert svc.pool is not None
    await store_cdrs(svc.pool, calls)
    secret = await token(svc, Role.CUSTOMER, a.id)
    client = await panel(csv_batch=500)
    r = await client.get(f"/api/v1/accounts/{a.id}/cdrs.csv", headers=bearer(secret))
    assert r.status == 200
    assert r.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in r.headers["Content-Disposition"]
    text = await r.text()
    listed: dict[str, dict[str, Any]] = {}
    cursor: str | None = None
    while True:
        params = {"limit": "500", **({"cursor": cursor} if cursor else {})}
        page = await (
            await client.get(f"/api/v1/accounts/{a.id}/cdrs", params=params, headers=bearer(secret))
        ).json()
        listed.update((c["call_id"], c) for c in page["items"])
        if not (cursor := page["next_cursor"]):
            break
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert len(rows) == len(calls)
    assert [r["call_id"] for r in rows] == [
        c.call_id for c in sorted(calls, key=lambda c: (c.started_at, c.call_id))
    ]
    by_id = {r["call_id"]: r for r in rows}
    for i, original in enumerate(evil):
        row = by_id[f"call-{a.id}-{9000 + i}"]
        assert row["caller"] == row["dialled"] == "'" + original
    plain = by_id[f"call-{a.id}-7"]
    assert plain["number"] == "+48601234567"  # an E.164 number is no formula: left as it is
    assert plain["caller"] == "48221111111" and plain["cost"] == "0.0000"
    assert plain["billsec"] == "60" and plain["destination"] == "Poland mobile"
    assert by_id[f"call-{a.id}-9100"]["destination"] == 'a "b", c'
    # every cell says what the JSON listing says (defused where it must be); times are the
    # same instants, given in the account's zone to the second
    for call_id, row in by_id.items():
        for name, value in listed[call_id].items():
            if name.endswith("_at") and value is not None:
                shown = datetime.fromisoformat(row[name])
                assert shown.utcoffset() == shown.astimezone(ZoneInfo(a.timezone)).utcoffset()
                exact = datetime.fromisoformat(value).replace(microsecond=0)
                assert shown == exact, (call_id, name)
                continue
            expected = "" if value is None else str(value)
            if isinstance(value, str):
                expected = defuse(value)
            assert row[name] == expected, (call_id, name)


async def test_export_link_downloads_once(
    svc: Services, panel: PanelFactory, make_account: AccountFactory
) -> None:
    a = await make_account()
    assert svc.pool is not None
    await store_cdrs(svc.pool, [cdr(a.id, n, NOW - timedelta(minutes=n)) for n in range(1, 4)])
    secret = await token(svc, Role.CUSTOMER, a.id)
    client = await panel()
    r = await client.post(
        f"/api/v1/accounts/{a.id}/cdrs/exports?class=mobile", headers=bearer(secret)
    )
    assert r.status == 201
    link = await r.json()
    assert link["filter"]["class"] == "mobile"
    first = await client.get(link["url"])  # no header: the link is the credential
    assert first.status == 200
    assert len(list(csv.DictReader(io.StringIO(await first.text(), newline="")))) == 3
    again = await client.get(link["url"])
    assert again.status == 404
    assert (await again.json())["error"]["code"] == "EXPORT_NOT_FOUND"


# -- operators ---------------------------------------------------------------------------------


async def test_operator_manages_accounts(svc: Services, panel: PanelFactory, retail: Deck) -> None:
    op = bearer(await token(svc, Role.OPERATOR))
    client = await panel()
    r = await client.post(
        "/api/v1/accounts",
        json={"id": "bob", "deck": "retail", "max_calls": 2, "daily_cap": "50.00"},
        headers=op,
    )
    assert r.status == 201, await r.text()
    body = await r.json()
    assert body["daily_cap"] == "50.0000" and body["balance"]["balance"] == "0.0000"
    again = await client.post("/api/v1/accounts", json={"id": "bob"}, headers=op)
    assert again.status == 409 and (await again.json())["error"]["code"] == "ACCOUNT_EXISTS"
    bad = await client.post(
        "/api/v1/accounts", json={"id": "carol", "credit_limit": "5"}, headers=op
    )
    assert bad.status == 400
    assert (await bad.json())["error"]["details"]["field"] == "credit_limit"
    bad = await client.post("/api/v1/accounts", json={"id": "x", "cps": "2"}, headers=op)
    assert bad.status == 400 and (await bad.json())["error"]["details"]["field"] == "cps"

    r = await client.patch(
        "/api/v1/accounts/bob",
        json={"max_calls": 5, "blocked_prefixes": ["+4970"]},
        headers=op,
    )
    assert r.status == 200
    assert (await svc.accounts.get("bob")).max_calls == 5
    assert (await svc.accounts.get("bob")).blocked_prefixes == ("4970",)
    r = await client.patch("/api/v1/accounts/bob", json={}, headers=op)
    assert (await r.json())["error"]["code"] == "NOTHING_TO_CHANGE"

    r = await client.post(
        "/api/v1/accounts/bob/suspend", json={"reason": "investigation"}, headers=op
    )
    assert r.status == 200 and (await r.json())["status"] == "suspended"
    grant = await svc.ledger.authorize(CallRequest("bob", "c-susp", "0601234567"))
    assert grant.reason == "ACCOUNT_SUSPENDED"
    r = await client.post("/api/v1/accounts/bob/resume", headers=op)
    assert (await r.json())["status"] == "active"
    r = await client.post("/api/v1/accounts/bob/close", headers=op)
    assert (await r.json())["status"] == "closed"
    r = await client.patch("/api/v1/accounts/bob", json={"cps": 1}, headers=op)
    assert r.status == 409 and (await r.json())["error"]["code"] == "ACCOUNT_CLOSED"

    r = await client.get("/api/v1/accounts", headers=op)
    assert [x["id"] for x in (await r.json())["items"]] == ["bob"]
    r = await client.get("/api/v1/accounts/nobody", headers=op)
    assert r.status == 404


async def test_topups_are_ledger_entries_once_per_reference(
    svc: Services, panel: PanelFactory, make_account: AccountFactory
) -> None:
    a = await make_account()
    op = bearer(await token(svc, Role.OPERATOR))
    client = await panel()
    url = f"/api/v1/accounts/{a.id}/topups"
    body = {"amount": "20.00", "reference": "pay-1", "note": "card"}
    first = await client.post(url, json=body, headers=op)
    assert first.status == 201
    assert (await first.json())["balance"]["balance"] == "20.0000"
    second = await client.post(url, json=body, headers=op)
    assert second.status == 200 and (await second.json())["created"] is False
    fee = await client.post(url, json={"amount": "1.5", "kind": "fee"}, headers=op)
    assert (await fee.json())["entry"]["amount"] == "-1.5000"
    for bad in ({"amount": "abc"}, {"amount": "-5"}, {"amount": 5}, {}):
        r = await client.post(url, json=bad, headers=op)
        assert r.status == 400, bad
    r = await client.post(url, data=b"{not json", headers=op)
    assert (await r.json())["error"]["code"] == "INVALID_JSON"
    r = await client.post("/api/v1/accounts/nobody/topups", json=body, headers=op)
    assert r.status == 404
    assert (await svc.accounts.live(a.id)).balance == 18_500_000


async def test_operator_input_that_is_accepted_but_wrong_is_refused(
    svc: Services, panel: PanelFactory, make_account: AccountFactory
) -> None:
    a = await make_account()
    op = bearer(await token(svc, Role.OPERATOR))
    client = await panel()
    url = f"/api/v1/accounts/{a.id}/topups"
    assert (await client.post(url, json={"amount": "5", "reference": "r"}, headers=op)).ok
    for body in ({"amount": "6", "reference": "r"}, {"amount": "5", "reference": "r",
                                                      "kind": "payment"}):  # fmt: skip
        r = await client.post(url, json=body, headers=op)
        assert r.status == 409, body
        assert (await r.json())["error"]["code"] == "REFERENCE_CONFLICT"
    again = await client.post(url, json={"amount": "5.00", "reference": "r"}, headers=op)
    assert again.status == 200 and (await again.json())["created"] is False
    for amount in ("1e3", "1_000", "\u0661", "1e300000", "1e999999"):
        r = await client.post(url, json={"amount": amount}, headers=op)
        assert r.status == 400, amount
        assert (await r.json())["error"]["code"] == "INVALID_AMOUNT"
    for body, field in (
        ({"deck": "nosuchdeck"}, "deck"),
        ({"deck": "../../etc"}, "deck"),
    ):
        r = await client.patch(f"/api/v1/accounts/{a.id}", json=body, headers=op)
        assert r.status == 400, body
        assert (await r.json())["error"]["details"]["field"] == field
    for body, field in (
        ({"id": "c1", "currency": "<B>"}, "currency"),
        ({"id": "c2", "currency": "=1A"}, "currency"),
        ({"id": "c3", "currency": "EUR", "deck": "retail"}, "currency"),
        ({"id": "c4", "deck": "nosuchdeck"}, "deck"),
    ):
        r = await client.post("/api/v1/accounts", json=body, headers=op)
        assert r.status == 400, body
        assert (await r.json())["error"]["details"]["field"] == field
    assert (await svc.accounts.live(a.id)).balance == 5_000_000
    assert (await svc.accounts.get(a.id)).deck == "retail"


async def test_deck_upload_stores_a_valid_deck_and_names_file_and_line_of_an_invalid_one(
    svc: Services, panel: PanelFactory
) -> None:
    op = bearer(await token(svc, Role.OPERATOR))
    rates = (RETAIL.parent / "rates.csv").read_bytes()
    bands = json.dumps(
        {
            "day": ["mon-fri 08:00-18:00"],
            "offpeak": ["mon-fri 00:00-08:00", "mon-fri 18:00-24:00", "sat-sun 00:00-24:00"],
        }
    )
    assert svc.pool is not None
    client = await panel()
    r = await client.post("/api/v1/decks", data=deck_form(rates, bands=bands), headers=op)
    assert r.status == 201, await r.text()
    stored = await r.json()
    assert stored["version"] == 1 and stored["rows"] > 0
    same = await client.post("/api/v1/decks", data=deck_form(rates, bands=bands), headers=op)
    assert same.status == 200 and (await same.json())["created"] is False

    broken = rates.splitlines(keepends=True)
    broken[2] = b"48,Poland,0,abc,60,1,0,*\n"
    r = await client.post(
        "/api/v1/decks", data=deck_form(b"".join(broken), bands=bands), headers=op
    )
    assert r.status == 422
    error = (await r.json())["error"]
    assert error["code"] == "DECK_INVALID"
    assert error["details"]["file"] == "rates.csv" and error["details"]["line"] == 3
    assert "rate" in error["details"]["why"]

    r = await client.post(
        "/api/v1/decks", data=deck_form(rates, bands=bands, currency="zł"), headers=op
    )
    assert r.status == 422 and (await r.json())["error"]["details"]["file"] == "manifest"
    r = await client.post("/api/v1/decks", json={"name": "x"}, headers=op)
    assert r.status == 400
    async with svc.pool.acquire() as conn:
        assert [(d["name"], d["version"]) for d in await list_decks(conn)] == [("panel-retail", 1)]
    r = await client.get("/api/v1/decks", headers=op)
    assert [d["version"] for d in (await r.json())["items"]] == [1]


async def test_deck_upload_refusals_name_the_file_the_field_or_the_limit(
    svc: Services, panel: PanelFactory
) -> None:
    """What the upload reader shared with the accounts import answers for a deck; nothing
    is stored."""
    op = bearer(await token(svc, Role.OPERATOR))
    rates = (RETAIL.parent / "rates.csv").read_bytes()
    client = await panel(max_upload_bytes=len(rates) + 2048)
    r = await client.post("/api/v1/decks", data=deck_form(rates[:40] + b"\x00" + rates[40:]),
                          headers=op)  # fmt: skip
    assert r.status == 422, await r.text()
    assert (await r.json())["error"] == {
        "code": "DECK_INVALID",
        "message": "rates.csv: contains a NUL byte",
        "details": {"file": "rates.csv", "line": None, "why": "contains a NUL byte"},
    }
    r = await client.post("/api/v1/decks", data=deck_form(rates, decimals="x"), headers=op)
    assert r.status == 400, await r.text()
    error = (await r.json())["error"]
    assert (error["code"], error["details"]["field"]) == ("INVALID_FIELD", "decimals")
    r = await client.post("/api/v1/decks", data=deck_form(rates + b"#" * 4096), headers=op)
    assert r.status == 413, await r.text()
    assert (await r.json())["error"]["details"] == {"limit_bytes": len(rates) + 2048}
    form = aiohttp.FormData({"name": "no-rates"})
    form.add_field("other", b"x", filename="x.csv")
    r = await client.post("/api/v1/decks", data=form, headers=op)
    assert r.status == 400 and (await r.json())["error"]["details"]["field"] == "rates"
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        assert await list_decks(conn) == []


async def test_running_calls_are_listed_and_hangup_needs_ari(
    svc: Services, panel: PanelFactory, make_account: AccountFactory, retail: Deck
) -> None:
    a = await make_account(balance=10_000_000)
    grant = await svc.ledger.authorize(CallRequest(a.id, "running-1", "0601234567"))
    assert grant.allowed
    op = bearer(await token(svc, Role.OPERATOR))
    client = await panel()
    r = await client.get("/api/v1/calls", headers=op)
    calls = (await r.json())["items"]
    assert [(c["call_id"], c["account"], c["number"]) for c in calls] == [
        ("running-1", a.id, "+48601234567")
    ]
    assert calls[0]["reserved"] == format_micro(grant.reserved)
    r = await client.get("/api/v1/calls", params={"account": "other"}, headers=op)
    assert (await r.json())["items"] == []
    r = await client.post("/api/v1/calls/running-1/hangup", headers=op)
    assert r.status == 409
    assert (await r.json())["error"]["code"] == "ARI_NOT_CONFIGURED"


async def test_hangup_goes_through_ari_when_configured(
    svc: Services, settings: Settings, make_account: AccountFactory, retail: Deck
) -> None:
    """A stand-in for Asterisk's ARI on loopback: the panel sends DELETE /channels/{id}."""
    a = await make_account(balance=10_000_000)
    b = await make_account(balance=10_000_000)
    await svc.ledger.authorize(CallRequest(a.id, "running-2", "0601234567"))
    # the same call id: another account's call on this switch, and a call on another switch
    await svc.ledger.authorize(CallRequest(b.id, "running-2", "0601234567"))
    assert await svc.ledger.touch(b.id, "running-2", a_chan="chan-b")
    await svc.ledger.authorize(CallRequest(a.id, "running-3", "0601234567", switch="pbx-b"))
    deleted: list[str] = []

    async def delete_channel(request: aiohttp.web.Request) -> aiohttp.web.Response:
        deleted.append(request.match_info["id"])
        return aiohttp.web.Response(status=204)

    fake = aiohttp.web.Application()
    fake.router.add_delete("/ari/channels/{id}", delete_channel)
    async with TestServer(fake, host="127.0.0.1") as ari_server:
        ari = AriSettings(url=str(ari_server.make_url("")).rstrip("/"), password="x")
        app = build_app(settings, PanelSettings(metrics_port=0), ari=ari)
        op = bearer(await token(svc, Role.OPERATOR))
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            r = await client.post("/api/v1/calls/running-2/hangup", headers=op)
            assert r.status == 409
            assert (await r.json())["error"]["code"] == "AMBIGUOUS_CALL_ID"
            for account in (b.id, a.id):
                r = await client.post(
                    "/api/v1/calls/running-2/hangup", params={"account": account}, headers=op
                )
                assert r.status == 200 and (await r.json())["hung_up"] is True
            r = await client.post("/api/v1/calls/nope/hangup", headers=op)
            assert r.status == 404
            # another switch's call is not reachable through this switch's Asterisk
            r = await client.post("/api/v1/calls/running-3/hangup", headers=op)
            assert r.status == 404
    assert deleted == ["chan-b", "running-2"]


# -- limits, metrics, CLI ----------------------------------------------------------------------


async def test_rate_limit_is_per_token_and_shared_by_processes(
    svc: Services, panel: PanelFactory, make_account: AccountFactory
) -> None:
    a = await make_account()
    mine, other = await token(svc, Role.CUSTOMER, a.id), await token(svc, Role.OPERATOR)
    limits: dict[str, Any] = {"rate_per_s": 0.5, "burst": 3}
    one, two = await panel(**limits), await panel(**limits)
    statuses = []
    for client in (one, two, one, two):
        statuses.append((await client.get("/api/v1/me", headers=bearer(mine))).status)
    assert statuses == [200, 200, 200, 429]
    r = await one.get("/api/v1/me", headers=bearer(mine))
    assert r.status == 429
    assert 1 <= int(r.headers["Retry-After"]) <= 2
    error = (await r.json())["error"]
    assert error["code"] == "RATE_LIMITED" and error["details"]["retry_after_s"] >= 1
    assert (await two.get("/api/v1/me", headers=bearer(other))).status == 200


async def test_metrics_count_requests_by_route_and_status(
    svc: Services, panel: PanelFactory, make_account: AccountFactory
) -> None:
    a = await make_account()
    secret = await token(svc, Role.CUSTOMER, a.id)
    registry = CollectorRegistry()
    client = await panel(registry=registry)
    await client.get(f"/api/v1/accounts/{a.id}/balance", headers=bearer(secret))
    await client.get("/api/v1/accounts/nobody/balance", headers=bearer(secret))
    await client.get("/no/such/thing")
    route = "/api/v1/accounts/{account}/balance"

    def count(route: str, status: str) -> float:
        labels = {"route": route, "method": "GET", "status": status}
        return registry.get_sample_value("tollgate_panel_requests_total", labels) or 0.0

    assert count(route, "200") == 1 and count(route, "404") == 1
    assert count("unmatched", "404") == 1
    assert (
        registry.get_sample_value(
            "tollgate_panel_request_duration_seconds_count", {"route": route, "method": "GET"}
        )
        == 2
    )


async def test_metrics_listener_serves_prometheus_text(panel: PanelFactory) -> None:
    from tests.e2e.rig import free_tcp_port

    port = free_tcp_port()
    client = await panel(metrics_port=port)
    await client.get("/openapi.json")
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/metrics") as r,
    ):
        text = await r.text()
    assert 'tollgate_panel_requests_total{method="GET",route="/openapi.json",status="200"}' in text


async def test_cli_creates_lists_and_revokes_tokens(
    svc: Services, make_account: AccountFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    a = await make_account()
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command", required=True))

    async def run(*argv: str) -> Any:
        args = parser.parse_args(argv)
        await args.run(svc, args)
        return json.loads(capsys.readouterr().out)

    created = await run("token", "create", "--role", "customer", "--account", a.id)
    assert created["token"].startswith("tgp_") and created["account"] == a.id
    assert svc.pool is not None
    assert (
        await TokenStore(svc.pool).authenticate(created["token"], datetime.now(UTC))
    ) is not None
    listed = await run("token", "list")
    assert [t["id"] for t in listed] == [created["id"]] and "token" not in listed[0]
    revoked = await run("token", "revoke", created["id"])
    assert revoked["revoked_at"] is not None
    assert (await TokenStore(svc.pool).authenticate(created["token"], datetime.now(UTC))) is None
    args = parser.parse_args(["panel"])
    assert args.sync.resolve().__name__ == "cmd_panel"


# -- billing documents and abuse findings ------------------------------------------------------


async def test_statement_and_invoices_of_a_customer(
    svc: Services, panel: PanelFactory, make_account: AccountFactory
) -> None:
    a = await make_account(balance=20_000_000)
    b = await make_account()
    started = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    assert svc.pool is not None
    await store_cdrs(
        svc.pool,
        [cdr(a.id, n, started + timedelta(hours=n), cost=100_000 * n) for n in range(1, 4)]
        + [cdr(a.id, 9, started, number_class="international", e164="+4930123456", cost=1_000)],
    )
    entry = (await svc.accounts.entries(a.id, 1))[0]
    async with svc.pool.acquire() as conn:
        await invoice_topup(
            conn, await svc.accounts.get(a.id), entry, BillingSettings(), datetime.now(UTC)
        )
    secret = await token(svc, Role.CUSTOMER, a.id)
    client = await panel()
    r = await client.get(f"/api/v1/accounts/{a.id}/statements/2026-03", headers=bearer(secret))
    assert r.status == 200, await r.text()
    body = await r.json()
    assert body["period"] == "2026-03" and body["total"]["count"] == 4
    assert body["total"]["cost"] == "0.6010"
    assert body["by_class"]["international"]["cost"] == "0.0010"
    r = await client.get(f"/api/v1/accounts/{a.id}/statements/2026-13", headers=bearer(secret))
    assert r.status == 400
    r = await client.get(f"/api/v1/accounts/{b.id}/statements/2026-03", headers=bearer(secret))
    assert r.status == 404
    r = await client.get(f"/api/v1/accounts/{a.id}/invoices", headers=bearer(secret))
    docs = (await r.json())["items"]
    assert [(d["kind"], d["gross"], d["status"]) for d in docs] == [
        ("topup_invoice", "20.00", "paid")
    ]
    r = await client.get(f"/api/v1/accounts/{b.id}/invoices", headers=bearer(secret))
    assert r.status == 404


async def add_finding(svc: Services, account: str, subject: str, *, suspended: bool = False) -> int:
    assert svc.pool is not None
    finding_id: int = await svc.pool.fetchval(
        "insert into abuse_findings (account, rule, subject, window_key, severity, action,"
        " suspended, evidence) values ($1, 'premium', $2, '2026-11-21', 'critical', $3, $4, $5)"
        " returning id",
        account,
        subject,
        "suspend" if suspended else "alert",
        suspended,
        json.dumps({"calls": ["c1", "c2"]}),
    )
    return finding_id


async def test_operator_reviews_findings(
    svc: Services, panel: PanelFactory, make_account: AccountFactory
) -> None:
    a = await make_account()
    await svc.accounts.set_status(a.id, AccountStatus.SUSPENDED, "abuse")
    held = await add_finding(svc, a.id, "701", suspended=True)
    other = await add_finding(svc, a.id, "702")
    op = bearer(await token(svc, Role.OPERATOR))
    customer = bearer(await token(svc, Role.CUSTOMER, a.id))
    client = await panel()
    assert (await client.get("/api/v1/findings", headers=customer)).status == 403
    r = await client.get("/api/v1/findings", params={"status": "open"}, headers=op)
    assert {f["id"] for f in (await r.json())["items"]} == {held, other}
    r = await client.get(f"/api/v1/findings/{held}", headers=op)
    assert (await r.json())["evidence"] == {"calls": ["c1", "c2"]}
    assert (await client.get("/api/v1/findings/999999", headers=op)).status == 404
    r = await client.get("/api/v1/findings", params={"rule": "nope"}, headers=op)
    assert r.status == 400

    r = await client.post(
        f"/api/v1/findings/{other}/acknowledge", json={"reason": "looking"}, headers=op
    )
    assert (await r.json())["status"] == "acknowledged"
    r = await client.post(f"/api/v1/findings/{other}/close", headers=op)
    assert (await r.json())["status"] == "closed"
    r = await client.post(f"/api/v1/findings/{other}/acknowledge", headers=op)
    assert r.status == 409 and (await r.json())["error"]["code"] == "FINDING_STATE"

    r = await client.post(
        f"/api/v1/findings/{held}/lift", json={"reason": "false alarm"}, headers=op
    )
    body = await r.json()
    assert body["status"] == "lifted" and body["account_resumed"] is True
    assert body["status_by"].startswith("panel:")
    assert (await svc.accounts.get(a.id)).status is AccountStatus.ACTIVE


async def test_a_download_cut_short_leaves_the_panel_healthy(
    svc: Services, panel: PanelFactory, make_account: AccountFactory
) -> None:
    a = await make_account()
    assert svc.pool is not None
    await store_cdrs(svc.pool, [cdr(a.id, n, NOW - timedelta(seconds=n)) for n in range(1, 5001)])
    secret = await token(svc, Role.CUSTOMER, a.id)
    client = await panel(csv_batch=100)
    for _ in range(10):  # more than the pool holds: none may stay stuck in a transaction
        r = await client.get(f"/api/v1/accounts/{a.id}/cdrs.csv", headers=bearer(secret))
        assert r.status == 200
        await r.content.readexactly(1000)
        r.close()  # the customer gives up
    r = await client.get(f"/api/v1/accounts/{a.id}/cdrs.csv", headers=bearer(secret))
    assert (await r.text()).count("\n") == 5001
