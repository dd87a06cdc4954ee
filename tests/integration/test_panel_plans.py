"""The panel's plans on the real Redis and PostgreSQL: operators keep plans and put accounts
on them (checked as the CLI checks them, audited); a customer sees its own plan and usage."""

from __future__ import annotations

from runtime.services import Services
from runtime.settings import Settings
from tests.conftest import AccountFactory
from tests.panel import OperatorPanel

PLAN = {
    "name": "pl300",
    "fee": "29.99",
    "allowances": [{"seconds": 18000, "classes": ["mobile", "geographic"],
                    "prefixes": ["+48"], "label": "PL mobile+fixed"}],
}  # fmt: skip


async def test_operator_keeps_plans_and_the_customer_sees_its_own(
    svc: Services,
    settings: Settings,
    make_account: AccountFactory,
    operator_panel: OperatorPanel,
) -> None:
    assert svc.pool is not None
    a = await make_account()
    client, op = operator_panel.client, operator_panel.op
    mine = await operator_panel.customer(a.id)
    r = await client.post("/api/v1/plans", json=PLAN, headers=op)
    assert r.status == 201, await r.text()
    made = await r.json()
    assert (made["fee"], made["allowances"][0]["prefixes"]) == ("29.9900", ["48"])
    again = await client.post("/api/v1/plans", json=PLAN, headers=op)
    assert (again.status, (await again.json())["error"]["code"]) == (409, "PLAN_CONFLICT")
    for body, field in (
        ({**PLAN, "name": "x", "allowances": [{"seconds": 0}]}, "allowances[0].seconds"),
        ({**PLAN, "name": "x", "allowances": [{"seconds": 9, "classes": ["sms"]}]},
         "allowances[0].classes"),
        ({**PLAN, "name": "x", "currency": "XXX1"}, "currency"),
        ({**PLAN, "name": "x", "allowances": []}, "allowances"),
    ):  # fmt: skip
        bad = await client.post("/api/v1/plans", json=body, headers=op)
        assert bad.status == 400, body
        assert (await bad.json())["error"]["details"]["field"] == field, body
    refused = await client.post("/api/v1/plans", json=PLAN, headers=mine)
    assert refused.status == 403
    r = await client.post(f"/api/v1/accounts/{a.id}/plan",
                          json={"plan": "pl300", "start": "2027-01-01T00:00:00+01:00"},
                          headers=op)  # fmt: skip
    assert r.status == 200, await r.text()
    clash = await client.post(f"/api/v1/accounts/{a.id}/plan",
                              json={"plan": "pl300", "start": "2027-02-01T00:00:00+01:00"},
                              headers=op)  # fmt: skip
    assert clash.status == 409
    missing = await client.post(f"/api/v1/accounts/{a.id}/plan",
                                json={"plan": "nosuch", "start": "2027-02-01T00:00:00Z"},
                                headers=op)  # fmt: skip
    assert missing.status == 404
    r = await client.patch("/api/v1/plans/pl300", json={"fee": "39.99"}, headers=op)
    assert (await r.json())["fee"] == "39.9900"
    r = await client.get(f"/api/v1/accounts/{a.id}/plan", headers=mine)
    assert r.status == 200, await r.text()
    view = await r.json()
    assert [p["plan"] for p in view["plans"]] == ["pl300"]
    r = await client.post(f"/api/v1/accounts/{a.id}/plan/end",
                          json={"end": "2027-03-01T00:00:00+01:00"}, headers=op)  # fmt: skip
    assert r.status == 200 and (await r.json())["end_at"].startswith("2027-02-28T23:00")
    r = await client.get("/api/v1/plans/pl300", headers=op)
    history = [(h["event"], h["account"]) for h in (await r.json())["history"]]
    assert history == [("created", None), ("assigned", a.id), ("updated", None),
                       ("unassigned", a.id)]  # fmt: skip
    fields = await svc.redis.hget(settings.keyspace.account(a.id), "bundles")
    assert fields is not None and b"|18000|mobile,geographic|48|" in fields
    audited = await svc.pool.fetch(
        "select method, path from operator_audit where path like '/api/v1/%plan%' order by id"
    )
    assert ("PATCH", "/api/v1/plans/pl300") in [(r["method"], r["path"]) for r in audited]
