"""The panel's customer records and numbers on the real Redis and PostgreSQL: operators
create, verify and export records and keep the number inventory; a customer reads its own
record, changes its contact data only, and picks its caller id among its own numbers."""

from __future__ import annotations

from panel_api.app import document
from panel_api.tokens import Role
from runtime.services import Services
from tests.conftest import AccountFactory, PanelFactory
from tests.panel import bearer, token

ACME = {
    "id": "acme",
    "legal_name": "ACME sp. z o.o.",
    "kind": "business",
    "tax_id": "526-025-02-74",
    "email": "billing@acme.example.pl",
    "postal_code": "60-122",
    "city": "Poznań",
}


async def test_operator_creates_verifies_and_exports_customers(
    svc: Services, panel: PanelFactory, make_account: AccountFactory
) -> None:
    a = await make_account()
    op = bearer(await token(svc, Role.OPERATOR))
    client = await panel()
    r = await client.post("/api/v1/customers", json={**ACME, "accounts": [a.id]}, headers=op)
    assert r.status == 201, await r.text()
    body = await r.json()
    assert (body["tax_id"], body["accounts"], body["verification"]) == (
        "5260250274", [a.id], "pending",
    )  # fmt: skip
    again = await client.post("/api/v1/customers", json=ACME, headers=op)
    assert again.status == 409
    assert (await again.json())["error"]["code"] == "CUSTOMER_STATE"
    bad = await client.post(
        "/api/v1/customers", json={**ACME, "id": "b", "tax_id": "1234567890"}, headers=op
    )
    assert bad.status == 400
    assert (await bad.json())["error"]["details"]["field"] == "tax_id"
    r = await client.post(
        "/api/v1/customers/acme/verification", json={"status": "verified"}, headers=op
    )
    assert r.status == 200, await r.text()
    verified = await r.json()
    assert verified["verification_by"] == "panel:test-operator"
    assert verified["verification_at"] is not None
    r = await client.get("/api/v1/customers?verification=verified", headers=op)
    assert [c["id"] for c in (await r.json())["items"]] == ["acme"]
    r = await client.get("/api/v1/customers/acme/personal-data", headers=op)
    assert r.status == 200 and (await r.json())["customer"]["id"] == "acme"
    missing = await client.get("/api/v1/customers/nobody", headers=op)
    assert missing.status == 404
    customer = bearer(await token(svc, Role.CUSTOMER, a.id))
    refused = await client.get("/api/v1/customers/acme", headers=customer)
    assert refused.status == 403
    assert (await svc.accounts.get(a.id)).unverified is False


async def test_customer_reads_its_record_and_changes_contact_data_only(
    svc: Services, panel: PanelFactory, make_account: AccountFactory
) -> None:
    a = await make_account()
    other = await make_account()
    op = bearer(await token(svc, Role.OPERATOR))
    mine = bearer(await token(svc, Role.CUSTOMER, a.id))
    client = await panel()
    none = await client.get(f"/api/v1/accounts/{a.id}/customer", headers=mine)
    assert none.status == 404
    r = await client.post("/api/v1/customers", json={**ACME, "accounts": [a.id]}, headers=op)
    assert r.status == 201
    r = await client.get(f"/api/v1/accounts/{a.id}/customer", headers=mine)
    assert r.status == 200 and (await r.json())["legal_name"] == "ACME sp. z o.o."
    assert (await client.get(f"/api/v1/accounts/{other.id}/customer", headers=mine)).status in (
        403,
        404,
    )
    url = f"/api/v1/accounts/{a.id}/customer"
    r = await client.patch(url, json={"email": "faktury@acme.example.pl"}, headers=mine)
    assert r.status == 200 and (await r.json())["email"] == "faktury@acme.example.pl"
    r = await client.patch(url, json={"legal_name": "Someone Else"}, headers=mine)
    assert r.status == 400
    assert (await r.json())["error"]["code"] == "NOTHING_TO_CHANGE"
    r = await client.patch(url, json={"email": "not an address"}, headers=mine)
    assert r.status == 400 and (await r.json())["error"]["details"]["field"] == "email"


async def test_numbers_inventory_assignment_and_caller_id(
    svc: Services, panel: PanelFactory, make_account: AccountFactory
) -> None:
    a = await make_account()
    op = bearer(await token(svc, Role.OPERATOR))
    mine = bearer(await token(svc, Role.CUSTOMER, a.id))
    client = await panel()
    for n in ("+48221234567", "+48221234568"):
        r = await client.post(
            "/api/v1/numbers",
            json={"number": n, "carrier": "orange", "monthly_cost": "1.00",
                  "monthly_price": "5.00"},
            headers=op,
        )  # fmt: skip
        assert r.status == 201, await r.text()
    r = await client.post("/api/v1/numbers/+48221234567/assign", json={"account": a.id}, headers=op)
    assert r.status == 200, await r.text()
    assert (await r.json())["status"] == "assigned"
    taken = await client.post(
        "/api/v1/numbers/+48221234567/assign", json={"account": a.id}, headers=op
    )
    assert taken.status == 409
    assert (await taken.json())["error"]["code"] == "NUMBER_STATE"
    r = await client.get(f"/api/v1/accounts/{a.id}/numbers", headers=mine)
    assert await r.json() == {"numbers": ["+48221234567"], "caller_id": "+48221234567"}
    spoof = await client.post(
        f"/api/v1/accounts/{a.id}/caller-id", json={"number": "+48221234568"}, headers=mine
    )
    assert spoof.status == 400
    assert (await spoof.json())["error"]["details"]["field"] == "caller_id"
    r = await client.post(f"/api/v1/accounts/{a.id}/caller-id", json={"number": None},
                          headers=mine)  # fmt: skip
    assert r.status == 200 and (await r.json())["caller_id"] is None
    r = await client.get("/api/v1/numbers?status=free", headers=op)
    assert [d["e164"] for d in (await r.json())["items"]] == ["+48221234568"]
    r = await client.post("/api/v1/numbers/+48221234567/release", headers=op)
    assert r.status == 200 and (await r.json())["status"] == "quarantined"


def test_the_document_declares_the_new_endpoints() -> None:
    paths = document()["paths"]
    for path in (
        "/api/v1/customers",
        "/api/v1/customers/{customer}",
        "/api/v1/customers/{customer}/verification",
        "/api/v1/accounts/{account}/customer",
        "/api/v1/numbers",
        "/api/v1/numbers/{number}/assign",
        "/api/v1/numbers/{number}/port-out",
        "/api/v1/accounts/{account}/caller-id",
    ):
        assert path in paths, path
