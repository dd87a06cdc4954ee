"""The month of the margin and carriers' quality reports: in the operator's billing zone
(TOLLGATE_BILLING_TIMEZONE) unless one is asked for, the same in the panel and the CLI; and a
new account without a zone gets the billing zone."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from panel_api.tokens import Role
from runtime.services import Services
from tests.conftest import PanelFactory
from tests.panel import bearer, cdr, store_cdrs, token
from tollgate.cli import build_parser

ZONE = "Asia/Tokyo"  # +9 all year: its November is not Warsaw's
START = datetime(2026, 10, 31, 15, 0, tzinfo=UTC)  # 1 November 00:00 in Tokyo
END = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)  # 1 December 00:00 in Tokyo
SECOND = timedelta(seconds=1)
# carrier -> its call's start: the month's first instant and last second in Tokyo are
# counted; the second before and the next month's first are not (Warsaw's November holds the
# last two)
CALLS = {"k1": START - SECOND, "k2": START, "k3": END - SECOND, "k4": END}
TOKYO = ["k2", "k3"]
WARSAW = ["k3", "k4"]


async def _stored(svc: Services) -> None:
    assert svc.pool is not None
    await store_cdrs(svc.pool, [
        cdr("alice", n, at, carrier=carrier, routes=carrier, cost=190_000, buy_cost=80_000)
        for n, (carrier, at) in enumerate(CALLS.items())
    ])  # fmt: skip


async def _cli(svc: Services, capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    args = build_parser().parse_args(argv)
    capsys.readouterr()
    await args.run(svc, args)
    return json.loads(capsys.readouterr().out)


def _carriers(body: dict[str, Any]) -> list[str]:
    """The carriers of the calls a report counted (one call each)."""
    assert all(c.get("calls", c.get("answered")) == 1 for c in body["carriers"]), body
    return sorted(c["carrier"] for c in body["carriers"])


async def test_reports_count_the_month_in_the_billing_zone(
    svc: Services,
    panel: PanelFactory,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TOLLGATE_BILLING_TIMEZONE", ZONE)
    await _stored(svc)
    client = await panel()
    op = bearer(await token(svc, Role.OPERATOR))
    r = await client.get("/api/v1/reports/margin?period=2026-11", headers=op)
    assert r.status == 200, await r.text()
    assert _carriers(await r.json()) == TOKYO
    r = await client.get("/api/v1/reports/carriers?period=2026-11", headers=op)
    assert r.status == 200, await r.text()
    quality = await r.json()
    assert (quality["from"], quality["to"]) == (START.isoformat(), END.isoformat())
    assert _carriers(quality) == TOKYO
    # the CLI gives the same answer for the same period
    margin = await _cli(svc, capsys, "report", "margin", "--period", "2026-11")
    assert _carriers(margin) == TOKYO
    carriers = await _cli(svc, capsys, "report", "carriers", "--period", "2026-11")
    assert _carriers(carriers) == TOKYO
    # a zone asked for still wins, in both
    r = await client.get("/api/v1/reports/margin?period=2026-11&tz=Europe/Warsaw", headers=op)
    assert _carriers(await r.json()) == WARSAW
    warsaw = await _cli(svc, capsys, "report", "margin", "--period", "2026-11",
                        "--tz", "Europe/Warsaw")  # fmt: skip
    assert _carriers(warsaw) == WARSAW


async def test_a_new_account_without_a_zone_gets_the_billing_zone(
    svc: Services,
    panel: PanelFactory,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TOLLGATE_BILLING_TIMEZONE", ZONE)
    client = await panel()
    op = bearer(await token(svc, Role.OPERATOR))
    r = await client.post("/api/v1/accounts", json={"id": "by-panel"}, headers=op)
    assert r.status == 201, await r.text()
    assert (await r.json())["timezone"] == ZONE
    r = await client.post("/api/v1/accounts", json={"id": "own", "timezone": "UTC"}, headers=op)
    assert (await r.json())["timezone"] == "UTC"
    made = await _cli(svc, capsys, "account", "create", "by-cli")
    assert made["timezone"] == ZONE
