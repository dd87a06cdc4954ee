"""The customer page in a real headless Chromium, driven over the Chrome DevTools protocol
(a websocket, from aiohttp): sign in by typing the token and pressing Enter, see the balance
and the call listing, click "Download CSV" and find the file on disk."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import csv
import io
import json
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from panel_api.tokens import Role
from runtime.services import Services
from runtime.settings import Settings
from tests.conftest import AccountFactory
from tests.integration.test_panel_api import (
    NOW,
    cdr,
    ensure_panel_db,
    panel_client,
    panel_settings,
    store_cdrs,
    token,
)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium (Debian package) not installed")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


@pytest.fixture(scope="session")
def panel_db() -> str:
    return ensure_panel_db()


@pytest.fixture
def settings(panel_db: str) -> Settings:
    return panel_settings(panel_db)


class Cdp:
    """One DevTools websocket: commands answered by id, events queued by name."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = 0
        self.waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            data = json.loads(message.data)
            if "id" in data:
                future = self.waiting.pop(data["id"])
                if "error" in data:
                    future.set_exception(RuntimeError(f"CDP: {data['error']}"))
                else:
                    future.set_result(data.get("result", {}))
            else:
                self.queue(data["method"]).put_nowait(data.get("params", {}))

    def queue(self, method: str) -> asyncio.Queue[dict[str, Any]]:
        return self.events.setdefault(method, asyncio.Queue())

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        self.ids += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[self.ids] = future
        await self.ws.send_json({"id": self.ids, "method": method, "params": params})
        return await asyncio.wait_for(future, 30)

    async def event(self, method: str, within_s: float = 30) -> dict[str, Any]:
        return await asyncio.wait_for(self.queue(method).get(), within_s)

    async def js(self, expression: str) -> Any:
        result = await self.send(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def until(self, expression: str, within_s: float = 15) -> Any:
        """Poll the page until the expression is truthy; its value."""
        deadline = asyncio.get_running_loop().time() + within_s
        while True:
            value = await self.js(expression)
            if value:
                return value
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out waiting for: {expression}")
            await asyncio.sleep(0.1)

    async def key(self, key: str, code: int, text: str = "") -> None:
        for kind in ("keyDown", "keyUp"):
            await self.send(
                "Input.dispatchKeyEvent",
                type=kind,
                key=key,
                code=key,
                windowsVirtualKeyCode=code,
                **({"text": text} if kind == "keyDown" and text else {}),
            )

    async def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element."""
        box = await self.js(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            await self.send(
                "Input.dispatchMouseEvent",
                type=kind,
                x=box[0],
                y=box[1],
                button="left",
                clickCount=1,
            )


async def stop_group(process: asyncio.subprocess.Process) -> None:
    """SIGTERM to Chromium's whole process group, SIGKILL what is left after 10 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), 10)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
    for _ in range(50):  # helpers of the group exit right after the main process
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        await asyncio.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture
async def chromium() -> AsyncIterator[tuple[Cdp, Cdp, Path]]:
    """Headless Chromium with a fresh profile: (page, browser) DevTools sessions and the
    download directory."""
    assert CHROMIUM is not None
    # Chromium's helper processes outlive the main one for a moment and keep writing into
    # the profile: the whole process group is stopped before the directory is removed.
    with tempfile.TemporaryDirectory(
        prefix="tollgate-chromium-", ignore_cleanup_errors=True
    ) as tmp:
        profile, downloads = Path(tmp) / "profile", Path(tmp) / "downloads"
        downloads.mkdir()
        process = await asyncio.create_subprocess_exec(
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={profile}",
            "about:blank",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            active = profile / "DevToolsActivePort"
            for _ in range(300):
                if active.exists() and len(active.read_text().splitlines()) == 2:
                    break
                await asyncio.sleep(0.05)
            port, browser_path = active.read_text().splitlines()
            async with aiohttp.ClientSession() as http:
                pages: list[dict[str, Any]] = []
                for _ in range(100):  # the first tab may show up a moment after the port
                    async with http.get(f"http://127.0.0.1:{port}/json/list") as r:
                        pages = [t for t in await r.json() if t["type"] == "page"]
                    if pages:
                        break
                    await asyncio.sleep(0.05)
                page_url = pages[0]["webSocketDebuggerUrl"]
                async with (
                    http.ws_connect(f"ws://127.0.0.1:{port}{browser_path}", max_msg_size=0) as bws,
                    http.ws_connect(page_url, max_msg_size=0) as pws,
                ):
                    browser, page = Cdp(bws), Cdp(pws)
                    await browser.send(
                        "Browser.setDownloadBehavior",
                        behavior="allow",
                        downloadPath=str(downloads),
                        eventsEnabled=True,
                    )
                    await page.send("Page.enable")
                    await page.send("Runtime.enable")
                    yield page, browser, downloads
                    browser.reader.cancel()
                    page.reader.cancel()
        finally:
            await stop_group(process)


async def test_customer_signs_in_sees_balance_and_calls_and_downloads_csv(
    svc: Services,
    settings: Settings,
    make_account: AccountFactory,
    chromium: tuple[Cdp, Cdp, Path],
) -> None:
    page, browser, downloads = chromium
    a = await make_account(balance=12_340_000)
    calls = [cdr(a.id, n, NOW - timedelta(minutes=n)) for n in range(1, 8)]
    calls.append(cdr(a.id, 99, NOW - timedelta(hours=2), caller="=cmd|'/c calc'!A1"))
    assert svc.pool is not None
    await store_cdrs(svc.pool, calls)
    secret = await token(svc, Role.CUSTOMER, a.id)

    async with panel_client(settings) as client:
        await page.send("Page.navigate", url=str(client.make_url("/")))
        await page.event("Page.loadEventFired")
        assert await page.js("document.title") == "tollgate — your calls and balance"
        # accessibility basics: every control has a label, the page has one h1 and a main
        assert await page.js(
            "[...document.querySelectorAll('input, select')].every(e => e.labels.length > 0)"
        )
        assert await page.js(
            "document.querySelectorAll('h1').length === 1 && !!document.querySelector('main')"
        )

        # a wrong token is refused with a message, by keyboard alone
        await page.js("document.getElementById('token').focus()")
        await page.send("Input.insertText", text="tgp_wrong")
        await page.key("Enter", 13, "\r")
        assert "unknown" in await page.until("document.getElementById('signin-error').textContent")

        await page.js("document.getElementById('token').value = ''")
        await page.js("document.getElementById('token').focus()")
        await page.send("Input.insertText", text=secret)
        await page.key("Enter", 13, "\r")
        balance = await page.until("document.getElementById('balance').textContent")
        assert balance == "12.3400 PLN"
        assert await page.js("document.getElementById('who-account').textContent") == a.id
        rows = await page.until(
            "(() => { const r = document.querySelectorAll('#cdrs tbody tr');"
            " return r.length === 8 ? r.length : 0; })()"
        )
        assert rows == 8
        first = await page.js(
            "[...document.querySelectorAll('#cdrs tbody tr:first-child td')]"
            ".map(td => td.textContent)"
        )
        assert first[1] == "+48601234567" and first[4] == "0.1900 PLN" and first[5] == "Answered"

        # a filter that matches nothing empties the listing
        await page.js("document.getElementById('class').value = 'premium'")
        await page.click("#show-calls")
        await page.until(
            "document.getElementById('cdrs-summary').textContent.startsWith('No calls')"
        )
        await page.js("document.getElementById('class').value = ''")

        if os.environ.get("TOLLGATE_SCREENSHOT"):  # for a person to look at the page
            shot = await page.send(
                "Page.captureScreenshot", format="png", captureBeyondViewport=True
            )
            target = Path(os.environ["TOLLGATE_SCREENSHOT"])
            await asyncio.to_thread(target.write_bytes, base64.b64decode(shot["data"]))
        await page.click("#download")
        done = None
        while done is None or done["state"] == "inProgress":
            done = await browser.event("Browser.downloadProgress")
        assert done["state"] == "completed"
        files = [p for p in downloads.iterdir() if not p.name.endswith(".crdownload")]
        assert len(files) == 1 and files[0].name.startswith(f"cdrs-{a.id}-")
        rows_csv = list(csv.DictReader(io.StringIO(files[0].read_text(), newline="")))
        assert len(rows_csv) == 8
        assert {r["caller"] for r in rows_csv} >= {"'=cmd|'/c calc'!A1", "48221111111"}
