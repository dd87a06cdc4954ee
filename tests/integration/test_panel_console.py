"""What the operator console and the portal read beyond the basics, on the real Redis and
PostgreSQL: customer records found by name, NIP, e-mail, account or number (each search
and read in the audit log), and the online top-up link, there only when the payment
gateway is configured both ways (its page and its notifications' secret)."""

from __future__ import annotations

import json

import pytest

from billing.gateway import GatewaySettings
from panel_api.tokens import Role
from runtime.services import Services
from runtime.settings import SettingsError
from tests.conftest import AccountFactory, PanelFactory
from tests.panel import bearer, token

pytestmark = pytest.mark.panel_db

KOWALSKI = {
    "id": "kowalski",
    "legal_name": "Jan Kowalski",
    "kind": "consumer",
    "email": "jan.kowalski@example.pl",
}
ACME = {
    "id": "acme",
    "legal_name": "ACME 100% sp. z o.o.",
    "kind": "business",
    "tax_id": "526-025-02-74",
    "email": "billing@acme.example.pl",
}


async def test_customers_are_found_by_name_nip_e_mail_account_and_number(
    svc: Services, panel: PanelFactory, make_account: AccountFactory
) -> None:
    a, b = await make_account(), await make_account()
    op = bearer(await token(svc, Role.OPERATOR))
    client = await panel()
    for record, account in ((KOWALSKI, a.id), (ACME, b.id)):
        r = await client.post(
            "/api/v1/customers", json={**record, "accounts": [account]}, headers=op
        )
        assert r.status == 201, await r.text()
    r = await client.post(
        "/api/v1/numbers",
        json={"number": "+48221234567", "carrier": "orange", "monthly_cost": "1.00",
              "monthly_price": "5.00"},
        headers=op,
    )  # fmt: skip
    assert r.status == 201, await r.text()
    r = await client.post("/api/v1/numbers/+48221234567/assign", json={"account": a.id}, headers=op)
    assert r.status == 200, await r.text()

    async def found(q: str) -> list[str]:
        r = await client.get("/api/v1/customers", params={"q": q}, headers=op)
        assert r.status == 200, await r.text()
        return [c["id"] for c in (await r.json())["items"]]

    assert await found("kowal") == ["kowalski"]
    assert await found("JAN.KOWALSKI@") == ["kowalski"]
    assert await found("5260250274") == ["acme"]  # NIP without dashes
    assert await found("526-025") == ["acme"]  # and with
    assert await found(b.id) == ["acme"]  # an account's id
    assert await found("22 123 45 67") == ["kowalski"]  # a number, national, spaced
    assert await found("+48221234567") == ["kowalski"]
    assert await found("100%") == ["acme"]  # % is a character, not a wildcard
    assert await found("_") == []
    assert await found("nobody like this") == []
    assert sorted(await found("")) == ["acme", "kowalski"]
    long = await client.get("/api/v1/customers", params={"q": "x" * 401}, headers=op)
    assert long.status == 400
    assert (await long.json())["error"]["details"]["parameter"] == "q"
    mine = bearer(await token(svc, Role.CUSTOMER, a.id))
    refused = await client.get("/api/v1/customers", params={"q": "a"}, headers=mine)
    assert refused.status == 403
    r = await client.get("/api/v1/customers/kowalski", headers=op)
    assert r.status == 200 and (await r.json())["accounts"] == [a.id]
    assert svc.pool is not None
    rows = await svc.pool.fetch(
        "select action, subject, detail from operator_audit where method = 'GET' order by id"
    )
    searches = [
        json.loads(r["detail"])["query"]["q"] for r in rows if r["action"] == "list_records"
    ]
    assert searches[:2] == ["kowal", "JAN.KOWALSKI@"]
    assert ("get_record", "kowalski") in [(r["action"], r["subject"]) for r in rows]


async def test_the_top_up_link_is_there_only_with_a_configured_gateway(
    svc: Services,
    panel: PanelFactory,
    make_account: AccountFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a = await make_account()
    mine = bearer(await token(svc, Role.CUSTOMER, a.id))
    other = bearer(await token(svc, Role.CUSTOMER, (await make_account()).id))
    page = "https://pay.example/topup?merchant=7&account={account}&currency={currency}"
    cases = [
        ({}, None),
        ({"PAY_URL": page}, None),  # no secret: its notifications would be refused
        ({"NAME": "p24", "SECRET": "s3cret", "PAY_URL": page}, "p24"),
    ]
    for env, name in cases:
        for key in ("NAME", "SECRET", "PAY_URL"):
            monkeypatch.delenv(f"TOLLGATE_GATEWAY_{key}", raising=False)
        for key, value in env.items():
            monkeypatch.setenv(f"TOLLGATE_GATEWAY_{key}", value)
        client = await panel()
        r = await client.get(f"/api/v1/accounts/{a.id}/topup-link", headers=mine)
        assert r.status == 200
        expected = page.format(account=a.id, currency="PLN") if name else None
        assert await r.json() == {"url": expected, "gateway": name}
        r = await client.get(f"/api/v1/accounts/{a.id}/topup-link", headers=other)
        assert r.status == 404  # another account's is not even known to exist
    for bad in ("http://pay.example/{account}", "https://pay.example/", "https://x/{who}"):
        with pytest.raises(SettingsError):
            GatewaySettings.from_env({"TOLLGATE_GATEWAY_PAY_URL": bad})
