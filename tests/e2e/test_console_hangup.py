"""The operator console on the Asterisk rig: a call placed by a SIPp phone shows among the
live calls, the admin hangs it up from the browser, Asterisk sends the phone a BYE, the CDR
is written, and the audit log holds the hang-up with the call as it was."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from panel_api.app import build_app
from panel_api.logins import LoginRole, LoginStore
from panel_api.settings import PanelSettings
from runtime.settings import Settings
from switch.ari import AriSettings
from tests.e2e.conftest import E2E
from tests.e2e.rig import RigConfig
from tests.e2e.test_panel_browser import (
    PASSWORD,
    Cdp,
    open_page,
    shoot,
    size,
    speak,
    type_into,
)
from tests.e2e.test_panel_browser import chromium as browser  # noqa: F401 - a fixture

MOBILE = "601234567"


async def running(e: E2E, account: str, wait_s: float = 15) -> str:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        for r in await e.svc.ledger.open_sessions():
            if r.get("account") == account:
                return r["call_id"]
        await asyncio.sleep(0.1)
    raise AssertionError(f"no running call of {account}")


async def test_admin_hangs_up_a_live_call_from_the_console(
    e2e: E2E,
    e2e_settings: Settings,
    rig_config: RigConfig,
    browser: tuple[Cdp, Cdp, Path],  # noqa: F811 - the fixture imported above
) -> None:
    page, _, _ = browser
    account = await e2e.account("phone-f", balance=100_000_000)
    assert e2e.svc.pool is not None
    await LoginStore(e2e.svc.pool).set("adam", LoginRole.ADMIN, PASSWORD)
    call = asyncio.ensure_future(e2e.call(MOBILE, "phone-f", max_wait_s=60))
    call_id = await running(e2e, account.id)
    ari = AriSettings(
        url=f"http://127.0.0.1:{rig_config.ari_port}",
        user=rig_config.ari_user,
        password=rig_config.ari_password,
    )
    app = build_app(e2e_settings, PanelSettings(metrics_port=0), ari=ari)
    await speak(page, "en-GB")
    await size(page, "desktop")
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        await open_page(page, str(client.make_url("/console")))
        await type_into(page, "login", "adam")
        await type_into(page, "password", PASSWORD)
        await page.key("Enter", 13, "\r")
        await page.until("document.getElementById('who-role').textContent === 'admin'")
        await page.click('[data-tab="live"]')
        row = f'#live tr[data-call="{call_id}"]'
        await page.until(f"!!document.querySelector('{row}')")
        await shoot(page, "console-live-call-desktop")
        await page.click(f"{row} button")
        said = await page.until(
            "document.getElementById('status').textContent.includes('hung up')"
            " && document.getElementById('status').textContent"
        )
        assert call_id in said
        result = await asyncio.wait_for(call, 60)
    assert result.bye_from_asterisk
    [cdr] = await e2e.cdrs("phone-f", 1)
    assert cdr["state"] == "finished"
    row_ = await e2e.svc.pool.fetchrow(
        "select actor, status, account, subject, before from operator_audit where action = 'hangup'"
    )
    assert row_ is not None
    assert (row_["actor"], row_["status"], row_["account"], row_["subject"]) == (
        "adam",
        200,
        account.id,
        call_id,
    )
    assert '"running"' in row_["before"]
