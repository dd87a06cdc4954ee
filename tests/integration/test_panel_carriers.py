"""The panel's carriers on the real Redis and PostgreSQL: operators add, change and disable
carriers (checked as the CLI checks them, audited); customers cannot see them."""

from __future__ import annotations

from panel_api.app import document
from rating.carrier_store import mirrored_carriers
from runtime.services import Services
from runtime.settings import Settings
from tests.conftest import AccountFactory
from tests.panel import OperatorPanel


async def test_operator_keeps_carriers_and_customers_cannot_see_them(
    svc: Services,
    settings: Settings,
    make_account: AccountFactory,
    operator_panel: OperatorPanel,
) -> None:
    assert svc.pool is not None
    a = await make_account()
    client, op = operator_panel.client, operator_panel.op
    mine = await operator_panel.customer(a.id)
    r = await client.post("/api/v1/carriers", json={"name": "orange", "deck": "retail",
                          "trunk": "orange-trunk", "max_calls": 30}, headers=op)  # fmt: skip
    assert r.status == 201, await r.text()
    assert (await r.json())["endpoint"] == "orange-trunk"
    again = await client.post("/api/v1/carriers", json={"name": "orange", "deck": "retail"},
                              headers=op)  # fmt: skip
    assert again.status == 409
    assert (await again.json())["error"]["code"] == "CARRIER_EXISTS"
    for body, field in (({"name": "x", "deck": "nosuchdeck"}, "deck"),
                        ({"name": "x", "deck": "retail", "trunk": "a/b"}, "trunk"),
                        ({"name": "x"}, "deck")):  # fmt: skip
        bad = await client.post("/api/v1/carriers", json=body, headers=op)
        assert bad.status == 400, body
        assert (await bad.json())["error"]["details"]["field"] == field
    r = await client.patch("/api/v1/carriers/orange", json={"disabled": True,
                           "priority": 3}, headers=op)  # fmt: skip
    assert r.status == 200, await r.text()
    assert ((await r.json())["disabled"], (await r.json())["priority"]) == (True, 3)
    r = await client.get("/api/v1/carriers/orange", headers=op)
    history = (await r.json())["history"]
    assert [(h["event"], h["actor"]) for h in history] == [
        ("created", "panel:test-operator"), ("updated", "panel:test-operator"),
    ]  # fmt: skip
    missing = await client.get("/api/v1/carriers/nobody", headers=op)
    assert missing.status == 404
    r = await client.get("/api/v1/carriers", headers=op)
    assert [c["name"] for c in (await r.json())["items"]] == ["orange"]
    refused = await client.get("/api/v1/carriers", headers=mine)
    assert refused.status == 403
    mirrored = await mirrored_carriers(svc.redis, settings.keyspace)
    assert [(c.name, c.disabled) for c in mirrored or []] == [("orange", True)]
    audited = await svc.pool.fetch(
        "select method, path from operator_audit where path like '/api/v1/carriers%' order by id"
    )
    assert ("PATCH", "/api/v1/carriers/orange") in [(r["method"], r["path"]) for r in audited]


async def test_operator_reads_the_margin_report(
    svc: Services, operator_panel: OperatorPanel
) -> None:
    from datetime import UTC, datetime

    from tests.panel import cdr, store_cdrs

    assert svc.pool is not None
    at = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
    await store_cdrs(svc.pool, [cdr("alice", 1, at, carrier="up", cost=190_000,
                                    buy_cost=80_000)])  # fmt: skip
    client, op = operator_panel.client, operator_panel.op
    r = await client.get("/api/v1/reports/margin?period=2026-11", headers=op)
    assert r.status == 200, await r.text()
    body = await r.json()
    assert [(c["carrier"], c["margin"]) for c in body["carriers"]] == [("up", "0.1100")]
    assert body["from"] == "2026-10-31T23:00:00+00:00"  # the month in Warsaw
    for bad in ("period=2026-13", "period=2026-11&tz=Mars/Base", ""):
        r = await client.get(f"/api/v1/reports/margin?{bad}", headers=op)
        assert r.status == 400, bad


def test_the_document_declares_the_carrier_endpoints() -> None:
    paths = document()["paths"]
    assert "get" in paths["/api/v1/reports/margin"]
    assert {"get", "post"} <= set(paths["/api/v1/carriers"])
    assert {"get", "patch"} <= set(paths["/api/v1/carriers/{carrier}"])
