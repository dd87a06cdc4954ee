"""The console's carrier views through the panel API on the real Redis and PostgreSQL: the
routes preview (`GET /api/v1/routes`, the same plan as `tollgate routes`, exchange rates
included) and the carriers' quality report (`GET /api/v1/reports/carriers`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from panel_api.app import document
from rating.carrier_store import CarrierStore
from rating.carriers import Carrier
from rating.fx import FxRate
from rating.fx_store import set_fx
from runtime.services import Services
from tests.conftest import AccountFactory, install_deck
from tests.integration.test_carriers import T0, buy
from tests.panel import OperatorPanel


async def test_routes_preview_for_operators_only(
    svc: Services, make_account: AccountFactory, operator_panel: OperatorPanel
) -> None:
    assert svc.pool is not None
    a = await make_account(id="alice")
    await install_deck(svc, buy("b-mid", "48,Poland,0,0.0400,60,1,0,*\n"))
    await install_deck(svc, buy("b-eur", "4822,Warsaw,0,0.0040,60,1,0,*\n", currency="EUR"))
    store = CarrierStore(svc.pool, svc.redis, svc.settings.keyspace)
    await store.create(Carrier("mid", "b-mid"), at=T0, actor="test")
    await store.create(Carrier("eu", "b-eur"), at=T0, actor="test")
    async with svc.pool.acquire() as conn:
        await set_fx(conn, FxRate("EUR", "PLN", "4.25", T0 - timedelta(days=1)), at=T0,
                     actor="test")  # fmt: skip
    await store.mirror()
    client, op = operator_panel.client, operator_panel.op
    mine = await operator_panel.customer(a.id)
    at = T0.isoformat().replace("+00:00", "Z")
    r = await client.get(f"/api/v1/routes?account=alice&to=221234567&at={at}&seconds=90",
                         headers=op)  # fmt: skip
    assert r.status == 200, await r.text()
    plan = await r.json()
    assert (plan["number"], plan["refused"], plan["sell"]["cost"]) == (
        "+48221234567", None, "0.1350",
    )  # fmt: skip
    # eu: 90 s at 0.004 EUR/min = 0.006 EUR x 4.25 = 0.0255 PLN; mid: 0.06 PLN
    assert [(x["carrier"], x["cost_micro"], x.get("fx_rate")) for x in plan["routes"]] == [
        ("eu", 25_500, "4.25"), ("mid", 60_000, None),
    ]  # fmt: skip
    r = await client.get(f"/api/v1/routes?account=alice&to=%2B49%20301234567&at={at}",
                         headers=op)  # fmt: skip
    assert r.status == 200, await r.text()
    refused = await r.json()
    # retail sells Germany, but no carrier has a rate for it
    assert (refused["number"], refused["refused"]) == ("+49301234567", "NO_ROUTE")
    r = await client.get(f"/api/v1/routes?account=alice&to=%2B8613912345678&at={at}",
                         headers=op)  # fmt: skip
    assert (await r.json())["refused"] == "NO_RATE"  # nothing sold to China
    for query, field in (("account=nobody&to=221234567", "account"),
                         ("account=alice&to=12", "to")):  # fmt: skip
        bad = await client.get(f"/api/v1/routes?{query}", headers=op)
        assert bad.status == 400, query
        assert (await bad.json())["error"]["details"]["field"] == field
    assert (await client.get("/api/v1/routes?account=alice", headers=op)).status == 400
    denied = await client.get("/api/v1/routes?account=alice&to=221234567", headers=mine)
    assert denied.status == 403


async def test_carrier_quality_report(svc: Services, operator_panel: OperatorPanel) -> None:
    from tests.panel import cdr, store_cdrs

    assert svc.pool is not None
    at = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
    await store_cdrs(svc.pool, [
        cdr("alice", 1, at, carrier="up", routes="down,up", attempts="down:503;"),
        cdr("alice", 2, at, carrier="down", answered=False, billsec=0, attempts="down:503;"),
    ])  # fmt: skip
    client, op = operator_panel.client, operator_panel.op
    r = await client.get("/api/v1/reports/carriers?period=2026-11", headers=op)
    assert r.status == 200, await r.text()
    body = await r.json()
    by = {c["carrier"]: c for c in body["carriers"]}
    assert (by["up"]["answered"], by["up"]["asr_percent"]) == (1, 100.0)
    assert set(by["down"]["failure_codes"]) == {"503"}
    assert (await client.get("/api/v1/reports/carriers?period=x", headers=op)).status == 400


def test_the_document_declares_the_console_endpoints() -> None:
    paths = document()["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/fx"])
    assert "get" in paths["/api/v1/routes"]
    assert "get" in paths["/api/v1/reports/carriers"]


async def test_operators_set_exchange_rates_and_routing_uses_them(
    svc: Services, make_account: AccountFactory, operator_panel: OperatorPanel
) -> None:
    from rating.carrier_store import mirrored_fx

    assert svc.pool is not None
    a = await make_account()
    client, op = operator_panel.client, operator_panel.op
    mine = await operator_panel.customer(a.id)
    body = {"base": "EUR", "quote": "PLN", "rate": "4.312500",
            "effective_at": "2026-12-01T00:00:00+01:00"}  # fmt: skip
    r = await client.post("/api/v1/fx", json=body, headers=op)
    assert r.status == 201, await r.text()
    assert ((await r.json())["rate"], (await r.json())["replaced"]) == ("4.3125", None)
    again = await client.post("/api/v1/fx", json={**body, "rate": "4.4"}, headers=op)
    assert (await again.json())["replaced"] == "4.3125"
    for bad, field in (({"quote": "EUR"}, "quote"), ({"rate": "0"}, "rate"),
                       ({"rate": "-1"}, "rate")):  # fmt: skip
        refused = await client.post("/api/v1/fx", json={**body, **bad}, headers=op)
        assert refused.status == 400, bad
        assert field in await refused.text()
    listed = await client.get("/api/v1/fx", headers=op)
    assert [x["rate"] for x in (await listed.json())["items"]] == ["4.4"]
    assert (await client.post("/api/v1/fx", json=body, headers=mine)).status == 403
    table = await mirrored_fx(svc.redis, svc.settings.keyspace)
    assert table.convert(1_000_000, "EUR", "PLN", datetime(2026, 12, 1, tzinfo=UTC)) == 4_400_000
    events = await svc.pool.fetch("select actor, previous from fx_rate_events order by id")
    assert [tuple(e) for e in events] == [("panel:test-operator", None),
                                          ("panel:test-operator", "4.3125")]  # fmt: skip
