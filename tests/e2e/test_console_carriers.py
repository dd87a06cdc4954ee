"""The console's carriers tab in a real headless Chromium (the helpers and the browser of
test_panel_browser): the carriers list, the routes preview with a carrier in another
currency, and a month's quality and margin side by side; no horizontal overflow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from panel_api.logins import LoginRole, LoginStore
from rating.carrier_store import CarrierStore
from rating.carriers import Carrier
from rating.fx import FxRate
from rating.fx_store import set_fx
from runtime.services import Services
from runtime.settings import Settings
from tests.conftest import AccountFactory, install_deck
from tests.e2e.test_panel_browser import (
    CHROMIUM,
    PASSWORD,
    Cdp,
    chromium,
    open_page,
    overflow,
    shoot,
    size,
    speak,
    texts,
    type_into,
)
from tests.integration.test_carriers import buy
from tests.panel import cdr, panel_client, store_cdrs

pytestmark = [
    pytest.mark.panel_db,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium (Debian package) not installed"),
]
__all__ = ["chromium"]  # the browser fixture, used by name


@pytest.mark.parametrize("screen", ["desktop", "phone"])
async def test_carriers_tab_routes_preview_and_month_report(
    svc: Services,
    settings: Settings,
    make_account: AccountFactory,
    chromium: tuple[Cdp, Cdp, Path],
    screen: str,
) -> None:
    page, _, _ = chromium
    assert svc.pool is not None
    await make_account(id="alice")
    await install_deck(svc, buy("b-mid", "48,Poland,0,0.0400,60,1,0,*\n"))
    await install_deck(svc, buy("b-eur", "4822,Warsaw,0,0.0040,60,1,0,*\n", currency="EUR"))
    store = CarrierStore(svc.pool, svc.redis, svc.settings.keyspace)
    now = datetime.now(UTC)
    await store.create(Carrier("mid", "b-mid", trunk="trunk-mid"), at=now, actor="test")
    await store.create(Carrier("eu", "b-eur", max_calls=5), at=now, actor="test")
    async with svc.pool.acquire() as conn:
        await set_fx(conn, FxRate("EUR", "PLN", "4.25", now - timedelta(days=1)), at=now,
                     actor="test")  # fmt: skip
    await store.mirror()
    at = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
    await store_cdrs(svc.pool, [
        cdr("alice", 1, at, carrier="mid", routes="eu,mid", attempts="eu:503;", cost=190_000,
            buy_cost=40_000),
    ])  # fmt: skip
    await LoginStore(svc.pool).set("adam", LoginRole.ADMIN, PASSWORD)
    await speak(page, "en-GB")
    await size(page, screen)
    async with panel_client(settings) as client:
        await open_page(page, str(client.make_url("/console")))
        await type_into(page, "login", "adam")
        await type_into(page, "password", PASSWORD)
        await page.key("Enter", 13, "\r")
        await page.until("!document.getElementById('app').hidden")
        await page.click('[data-tab="carriers"]')
        await page.until("document.querySelectorAll('#carriers tbody tr').length === 2")
        assert (await texts(page, "#carriers tbody td"))[:3] == ["eu", "b-eur", "eu"]

        await type_into(page, "r-account", "alice")
        await type_into(page, "r-to", "+48 22 123 45 67")
        await page.click("#routes-show")
        await page.until("document.querySelectorAll('#routes tbody tr').length === 2")
        rows = await page.js(
            "[...document.querySelectorAll('#routes tbody tr')].map(r =>"
            " [...r.children].map(td => td.textContent))"
        )
        # 60 s: eu 0.004 EUR = 0.017 PLN, then mid 0.04 PLN (retail sells at 0.045-0.09)
        assert [(r[1], r[3], r[5]) for r in rows] == [
            ("eu", "0.0170", "0.0040 EUR \u00d7 4.25"), ("mid", "0.0400", ""),
        ]  # fmt: skip
        summary = await page.js("document.getElementById('r-summary').textContent")
        assert summary.startswith("+48221234567: sold for ")

        await type_into(page, "rp-period", "2026-11")
        await page.click("#report-show")
        await page.until("document.querySelectorAll('#carrier-report tbody tr').length >= 1")
        report = await page.js(
            "[...document.querySelectorAll('#carrier-report tbody tr')].map(r =>"
            " [...r.children].map(td => td.textContent))"
        )
        by = {r[0]: r for r in report}
        assert by["mid"][7] == "0.1500"  # 0.19 sold - 0.04 bought
        assert "503" in by["eu"][4]
        assert await overflow(page) <= 0
        await shoot(page, f"console-carriers-{screen}")
