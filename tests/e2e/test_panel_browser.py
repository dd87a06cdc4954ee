"""The customer portal and the operator console in a real headless Chromium, driven over the
Chrome DevTools protocol (a websocket, from aiohttp), at desktop (1366x900) and phone
(390x844) sizes: sign in by typing and pressing Enter, Polish formatting, day filters around
local midnight with the browser in another zone, both CSV downloads found on disk, no
horizontal overflow (measured in the page), operator top-up and suspension and the audit
entries they leave.

Screenshots of every main page at both sizes are written to TOLLGATE_ARTIFACTS (default: a
"tollgate-artifacts" directory in the system's temp directory) for a reviewer to look at."""

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
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from billing.documents import Draft, Kind, Line, issue
from billing.settings import BillingSettings
from panel_api.logins import LoginRole, LoginStore
from panel_api.tokens import Role, TokenStore
from runtime.services import Services
from runtime.settings import Settings
from tests.conftest import AccountFactory
from tests.integration.test_documents import customer_for
from tests.panel import cdr, panel_client, store_cdrs
from tests.unit.test_invoice_parts import SELLER

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.panel_db,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium (Debian package) not installed"),
]
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
        """A real mouse click in the middle of the element, once it has stopped moving: a
        page still filling in (a tab's rows arriving) shifts the layout, and a click at the
        old place misses."""
        box = await self.js(
            f"(async () => {{ const e = document.querySelector({json.dumps(selector)});"
            " const at = () => { e.scrollIntoView({block: 'center'});"
            " const r = e.getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; };"
            " const frame = () => new Promise(done => requestAnimationFrame(() => done()));"
            " let last = at();"
            " for (let i = 0; i < 50; i++) { await frame(); await frame(); const now = at();"
            " if (now[0] === last[0] && now[1] === last[1]) return now; last = now; }"
            " return last; })()"
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


SIZES = {"desktop": (1366, 900, False), "phone": (390, 844, True)}
PASSWORD = "correct horse battery"
ARTIFACTS = Path(
    os.environ.get("TOLLGATE_ARTIFACTS") or Path(tempfile.gettempdir()) / "tollgate-artifacts"
)
NOV_1 = datetime(2026, 10, 31, 23, 0, tzinfo=UTC)  # 1 November 00:00 in Warsaw (CET)
NBSP = "\u00a0"


async def size(page: Cdp, name: str) -> None:
    width, height, mobile = SIZES[name]
    await page.send(
        "Emulation.setDeviceMetricsOverride",
        width=width,
        height=height,
        deviceScaleFactor=1,
        mobile=mobile,
    )


async def speak(page: Cdp, locale: str) -> None:
    """The browser's language (navigator.language, Accept-Language) and Intl's locale."""
    agent = (await page.send("Browser.getVersion"))["userAgent"]
    await page.send("Emulation.setUserAgentOverride", userAgent=agent, acceptLanguage=locale)
    await page.send("Emulation.setLocaleOverride", locale=locale)


async def overflow(page: Cdp) -> int:
    """How many CSS pixels the page is wider than the window (0: no horizontal scrolling)."""
    return int(
        await page.js(
            "Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
            " - window.innerWidth"
        )
    )


def _save(name: str, png: bytes) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    target = ARTIFACTS / f"{name}.png"
    target.write_bytes(png)
    return target


def _finished(downloads: Path) -> set[Path]:
    return {p for p in downloads.iterdir() if not p.name.endswith(".crdownload")}


async def shoot(page: Cdp, name: str) -> Path:
    shot = await page.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
    return await asyncio.to_thread(_save, name, base64.b64decode(shot["data"]))


async def visible(page: Cdp, selector: str) -> bool:
    return bool(
        await page.js(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " return !!e && e.getClientRects().length > 0; })()"
        )
    )


async def type_into(page: Cdp, element_id: str, text: str) -> None:
    await page.js(f"document.getElementById({json.dumps(element_id)}).value = ''")
    await page.js(f"document.getElementById({json.dumps(element_id)}).focus()")
    await page.send("Input.insertText", text=text)


async def open_page(page: Cdp, url: str) -> None:
    await page.send("Page.navigate", url=url)
    await page.event("Page.loadEventFired")


async def download(
    browser: Cdp, downloads: Path, page: Cdp, button: str = "#download"
) -> tuple[str, bytes]:
    """Click a download button and take the file off the disk: its name and content."""
    await page.click(button)
    done = None
    while done is None or done["state"] == "inProgress":
        done = await browser.event("Browser.downloadProgress")
    assert done["state"] == "completed"
    files = await asyncio.to_thread(_finished, downloads)
    assert len(files) == 1
    path = files.pop()
    raw = await asyncio.to_thread(path.read_bytes)
    await asyncio.to_thread(path.unlink)  # the next download may bear the same name
    return path.name, raw


async def operator_token(svc: Services) -> str:
    assert svc.pool is not None
    _, secret = await TokenStore(svc.pool).create(Role.OPERATOR, None, label="test")
    return secret


def texts(page: Cdp, selector: str) -> Any:
    return page.js(
        f"[...document.querySelectorAll({json.dumps(selector)})].map(e => e.textContent)"
    )


@pytest.mark.parametrize("screen", list(SIZES))
async def test_customer_portal(
    svc: Services,
    settings: Settings,
    make_account: AccountFactory,
    chromium: tuple[Cdp, Cdp, Path],
    screen: str,
) -> None:
    page, browser, downloads = chromium
    a = await make_account(balance=286_894_900, timezone="Europe/Warsaw")
    half = timedelta(minutes=30)
    calls = [
        cdr(a.id, 1, NOV_1 - half),  # 31 October 23:30 in Warsaw: not November's
        cdr(a.id, 2, NOV_1 + half, cost=1_234_500),  # 1 November 00:30 in Warsaw
        cdr(a.id, 3, NOV_1 + timedelta(hours=2), caller="+cmd|' /C calc'!A0"),
        cdr(a.id, 4, NOV_1 + timedelta(days=30) + half),  # 1 December 00:30: not November's
    ]
    calls += [cdr(a.id, n, NOV_1 + timedelta(days=2, minutes=n)) for n in range(10, 40)]
    assert svc.pool is not None
    await store_cdrs(svc.pool, calls)
    await svc.accounts.add_entry(a.id, "topup", 50_000_000, "pay-77", at=NOV_1)
    await LoginStore(svc.pool).set("ala", LoginRole.CUSTOMER, PASSWORD, a.id)
    # the browser is in Polish, in New York: the page must still show Warsaw's days
    await speak(page, "pl-PL")
    await page.send("Emulation.setTimezoneOverride", timezoneId="America/New_York")
    await size(page, screen)

    async with panel_client(settings) as client:
        await open_page(page, str(client.make_url("/")))
        assert await page.js("document.title") == "tollgate — połączenia i saldo"
        assert await page.js("document.documentElement.lang") == "pl"
        # before signing in, nothing of an account shows (hidden is not overridden by CSS)
        assert not await visible(page, "#who")
        assert not await visible(page, "#sign-out")
        assert not await visible(page, "#account")
        # accessibility basics: every control has a label, one h1, a main
        assert await page.js(
            "[...document.querySelectorAll('input, select')].every(e => e.labels.length > 0)"
        )
        assert await page.js(
            "document.querySelectorAll('h1').length === 1 && !!document.querySelector('main')"
        )
        assert await overflow(page) <= 0
        await shoot(page, f"portal-signin-{screen}")

        # a wrong password is refused with a message, by keyboard alone
        await type_into(page, "login", "ala")
        await type_into(page, "password", "wrong password")
        await page.key("Enter", 13, "\r")
        error = await page.until("document.getElementById('signin-error').textContent")
        assert error == "Błędny login lub hasło."

        await type_into(page, "password", PASSWORD)
        await page.key("Enter", 13, "\r")
        balance = await page.until("document.getElementById('balance').textContent")
        assert balance == f"336,89{NBSP}zł"
        assert await visible(page, "#who") and await visible(page, "#sign-out")
        assert await page.js("document.getElementById('who-account').textContent") == a.id
        assert await page.js("document.getElementById('account-status').textContent") == ("Aktywne")
        assert not await visible(page, "#topup-link")  # no payment gateway configured
        entries = await page.until(
            "(() => { const r = document.querySelectorAll('#entries tbody td');"
            " return r.length >= 4 ? [...r].map(td => td.textContent) : null; })()"
        )
        assert entries[1:3] == ["Doładowanie", f"50,00{NBSP}zł"]
        assert entries[0] == "01.11.2026, 00:00:00"  # Warsaw's time, not New York's

        # November, as the account's local days: calls 2, 3 and the thirty, not 1 or 4
        await page.js("document.getElementById('from').value = '2026-11-01'")
        await page.js("document.getElementById('to').value = '2026-11-30'")
        await page.click("#show-calls")
        await page.until(
            "document.querySelectorAll('#cdrs tbody tr').length === 32"
            " && document.getElementById('more').hidden"
        )
        cells = await texts(page, "#cdrs tbody tr:last-child td")
        assert cells[0] == "01.11.2026, 00:30:00"
        assert cells[1] == "+48601234567" and cells[4] == f"1,2345{NBSP}zł"
        assert cells[5] == "Odebrane"
        summary = await page.js("document.getElementById('cdrs-summary').textContent")
        assert summary == "Pokazano połączeń: 32, od najnowszych."
        # 31 calls at 0,19 zł and one at 1,2345 zł, a minute each
        assert await page.js("document.getElementById('calls-totals').textContent") == (
            f"W tym okresie: połączeń 32, odebranych 32, czas 32:00, koszt 7,1245{NBSP}zł."
        )
        if screen == "phone":
            # each row is a card: every column there, labelled, nothing wider than the screen
            labels = await page.js(
                "[...document.querySelectorAll('#cdrs tbody tr:first-child td')]"
                ".map(td => td.dataset.label)"
            )
            assert labels == ["Początek", "Numer", "Kierunek", "Czas", "Koszt", "Wynik"]
            assert await page.js(
                "[...document.querySelectorAll('#cdrs tbody tr:first-child td')]"
                ".every(td => td.getClientRects().length > 0)"
            )
        assert await overflow(page) <= 0
        await shoot(page, f"portal-calls-{screen}")

        # totals of November by kind of number
        await page.js("document.getElementById('month').value = '2026-11'")
        await page.click("#show-totals")
        await page.until(
            "[...document.querySelectorAll('#by-class tbody td')].some(td =>"
            " td.textContent === '32')"
        )
        total = await texts(page, "#by-class tbody tr.total td")
        assert total[0] == "Razem" and total[1] == "32"

        # both CSV dialects, named after the days chosen
        await page.js("document.getElementById('csv-format').value = 'excel-pl'")
        name, raw = await download(browser, downloads, page)
        assert name == f"cdrs-{a.id}-20261101-20261130.csv"
        assert raw.startswith(b"\xef\xbb\xbf")
        rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline=""), delimiter=";"))
        assert len(rows) == 32
        assert rows[0]["started_at"] == "2026-11-01 00:30:00" and rows[0]["cost"] == "1,2345"
        assert rows[0]["number"] == "+48601234567"
        assert rows[1]["caller"] == "'+cmd|' /C calc'!A0"
        await page.js("document.getElementById('csv-format').value = 'standard'")
        name, raw = await download(browser, downloads, page)
        assert name == f"cdrs-{a.id}-20261101-20261130.csv"
        rows = list(csv.DictReader(io.StringIO(raw.decode(), newline="")))
        assert len(rows) == 32 and rows[0]["started_at"] == "2026-11-01T00:30:00+01:00"
        assert rows[0]["cost"] == "1.2345"
        # the month's statement: the same format, answered calls of November only
        name, statement = await download(browser, downloads, page, "#statement-download")
        assert name == f"statement-{a.id}-2026-11.csv"
        assert statement == raw

        # English, on the spot
        await page.js(
            "(() => { const s = document.getElementById('lang'); s.value = 'en';"
            " s.dispatchEvent(new Event('change')); })()"
        )
        await page.until(
            "document.getElementById('balance-title').textContent === 'Balance'"
            " && !document.getElementById('balance').textContent.includes('zł')"
        )
        assert await page.js("document.getElementById('balance').textContent") == (
            f"PLN{NBSP}336.89"
        )
        assert await page.js("document.documentElement.lang") == "en"
        await shoot(page, f"portal-english-{screen}")

        await page.click("#sign-out")
        await page.until("!document.getElementById('signin').hidden")
        assert not await visible(page, "#who")


@pytest.mark.parametrize("screen", list(SIZES))
async def test_operator_console_top_up_suspend_and_the_audit_log(
    svc: Services,
    settings: Settings,
    make_account: AccountFactory,
    chromium: tuple[Cdp, Cdp, Path],
    screen: str,
) -> None:
    page, _, _ = chromium
    a = await make_account(balance=1_000_000)
    assert svc.pool is not None
    await customer_for(svc, a.id, legal_name="Kwiaciarnia Róża", tax_id="526-025-02-74")
    logins = LoginStore(svc.pool)
    await logins.set("adam", LoginRole.ADMIN, PASSWORD)
    await logins.set("sue", LoginRole.SUPPORT, PASSWORD)
    await speak(page, "en-GB")
    await size(page, screen)

    async with panel_client(settings) as client:
        await open_page(page, str(client.make_url("/console")))
        assert await page.js("document.documentElement.lang") == "en"
        assert not await visible(page, "#app") and not await visible(page, "#sign-out")
        await type_into(page, "login", "adam")
        await type_into(page, "password", PASSWORD)
        await page.key("Enter", 13, "\r")
        await page.until(f"!!document.querySelector('[data-account=\"{a.id}\"]')")
        assert await page.js("document.getElementById('who-role').textContent") == "admin"
        await page.click(f'[data-account="{a.id}"]')
        await page.until("document.getElementById('d-balance').textContent")
        assert await page.js("document.getElementById('d-balance').textContent") == (
            f"PLN{NBSP}1.00"
        )

        # a customer found by its NIP typed without dashes: record, accounts, documents
        await page.click('[data-tab="customers"]')
        await type_into(page, "customer-search", "5260250274")
        await page.key("Enter", 13, "\r")
        await page.until(f"!!document.querySelector('[data-customer=\"cust-{a.id}\"]')")
        assert await page.js("document.querySelectorAll('#customers tbody tr').length") == 1
        await page.click(f'[data-customer="cust-{a.id}"]')
        await page.until("document.getElementById('cu-name').textContent === 'Kwiaciarnia Róża'")
        assert await page.js("document.getElementById('cu-nip').textContent") == "5260250274"
        assert (await texts(page, "#cu-accounts tbody td"))[:3] == [
            a.id,
            "Active",
            f"PLN{NBSP}1.00",
        ]
        assert await overflow(page) <= 0
        await shoot(page, f"console-customer-{screen}")
        await page.click(f'[data-open-account="{a.id}"]')
        await page.until("!document.getElementById('tab-accounts').hidden")

        await type_into(page, "t-amount", "25,50")
        await type_into(page, "t-reference", "bank-1")
        await page.click("#topup")
        await page.until("document.getElementById('d-balance').textContent.includes('26.50')")
        await type_into(page, "s-reason", "fraud check")
        await page.click("#suspend")
        await page.until("document.getElementById('d-status').textContent === 'Suspended'")
        assert await overflow(page) <= 0
        await shoot(page, f"console-account-{screen}")

        await page.click('[data-tab="audit"]')
        await page.until("document.querySelectorAll('#audit tbody tr').length >= 3")
        audit = await page.js(
            "[...document.querySelectorAll('#audit tbody tr')].map(r =>"
            " [...r.children].map(td => td.textContent))"
        )
        actions = [(row[1], row[2], row[3], row[4]) for row in audit]
        assert ("adam", "topup", a.id, "201") in actions
        assert ("adam", "set_status:suspend", a.id, "200") in actions
        assert ("adam", "get_account", a.id, "200") in actions  # reads are recorded too
        assert ("adam", "get_record cust-" + a.id, "", "200") in actions  # the customer's
        top = next(row for row in audit if row[2] == "topup")
        assert "balance: 1.0000 → 26.5000" in top[5]
        sus = next(row for row in audit if row[2] == "set_status:suspend")
        assert "status: active → suspended" in sus[5]
        assert await overflow(page) <= 0
        await shoot(page, f"console-audit-{screen}")
        for tab in ("live", "findings", "decks"):
            await page.click(f'[data-tab="{tab}"]')
            await page.until(f"!document.getElementById('tab-{tab}').hidden")
            assert await overflow(page) <= 0, tab
            await shoot(page, f"console-{tab}-{screen}")

        # a deck with a bad line: the error names the file and the line
        await page.click('[data-tab="decks"]')
        await page.js(
            "(() => { const dt = new DataTransfer(); dt.items.add(new File(["
            "'prefix,name,connect_fee,rate,rate_unit_s,increment_s,from_s,band\\n"
            "48,PL,0,0.10,60,60,0,*\\n49,x,0,abc,60,60,0,*\\n'], 'rates.csv',"
            " {type: 'text/csv'})); document.getElementById('deck-rates').files = dt.files;"
            " document.getElementById('deck-name').value = 'bad'; })()"
        )
        await page.click("#upload")
        error = await page.until("document.getElementById('deck-error').textContent")
        assert error.startswith("rates.csv, line 3:"), error

        # bulk import: a bad file lists its lines and stores nothing; a good one creates
        await page.click('[data-tab="accounts"]')
        upload = (
            "(() => {{ const dt = new DataTransfer(); dt.items.add(new File([{body!r}],"
            " 'onboard.csv', {{type: 'text/csv'}}));"
            " document.getElementById('import-file').files = dt.files; }})()"
        )
        await page.js(upload.format(body="id,kind,credit_limit\nbulk-a,prepaid,\nbulk-b,x,\n"))
        await page.click("#import")
        await page.until("document.querySelectorAll('#import-errors li').length")
        assert (await texts(page, "#import-errors li"))[0].startswith("Line 3: kind: one of")
        assert not await page.js("!!document.querySelector('[data-account=\"bulk-a\"]')")
        await page.js(upload.format(body="id,kind\nbulk-a,prepaid\nbulk-b,postpaid\n"))
        await page.click("#import")
        await page.until("!!document.querySelector('[data-account=\"bulk-b\"]')")
        assert await page.js("document.getElementById('import-result').textContent") == (
            "2 rows: 2 accounts created, 0 existed (unchanged)."
        )
        assert await page.js("document.querySelectorAll('#import-errors li').length") == 0
        assert await overflow(page) <= 0
        await shoot(page, f"console-import-{screen}")

        # support: the same pages, no forms that change anything; the API refuses anyway
        await page.click("#sign-out")
        await page.until("!document.getElementById('signin').hidden")
        # nothing of the previous operator's is left in the page
        assert await page.js("document.querySelectorAll('#app tbody tr').length") == 0
        await type_into(page, "login", "sue")
        await type_into(page, "password", PASSWORD)
        await page.key("Enter", 13, "\r")
        await page.until("document.getElementById('who-login').textContent === 'sue'")
        await page.until(f"!!document.querySelector('[data-account=\"{a.id}\"]')")
        await page.click(f'[data-account="{a.id}"]')
        await page.until("document.getElementById('d-balance').textContent.includes('26.50')")
        assert not await visible(page, "#topup-form")
        assert not await visible(page, "#import-form")
        assert not await visible(page, "#status-form")
        refused = await page.js(
            f"fetch('/api/v1/accounts/{a.id}/resume', {{method: 'POST', headers:"
            " {Authorization: 'Bearer ' + sessionStorage.getItem('tollgate.console')}})"
            ".then(r => r.status)"
        )
        assert refused == 403
        await shoot(page, f"console-support-{screen}")
    rows = await svc.pool.fetch(
        "select actor, action, status from operator_audit where account = $1 order by id", a.id
    )
    assert ("sue", "set_status:resume", 403) in [tuple(r) for r in rows]


@pytest.mark.parametrize("screen", list(SIZES))
async def test_password_reset_by_e_mail_the_top_up_link_and_an_invoice_pdf(
    svc: Services,
    settings: Settings,
    make_account: AccountFactory,
    chromium: tuple[Cdp, Cdp, Path],
    screen: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Forgotten password: asked for on the page, the link taken from the mail as it waits
    in the outbox (SMTP itself is tested elsewhere), opened, the new password set, signed
    in with it; the gateway's top-up link, now that a gateway is configured; an invoice's
    PDF downloaded from the documents' table."""
    page, browser, downloads = chromium
    a = await make_account(balance=1_000_000)
    assert svc.pool is not None
    await customer_for(svc, a.id)
    for key, value in SELLER.items():
        monkeypatch.setenv(key, value)
    async with svc.pool.acquire() as conn:
        invoice, _ = await issue(
            conn,
            Draft(Kind.INVOICE, a.id, f"invoice/{a.id}/2026-11", "PLN", date(2026, 11, 30),
                  (Line("Połączenia", 61_350_000),), payment_method="transfer"),
            BillingSettings.from_env(SELLER),
            NOV_1 + timedelta(days=30, hours=1),
        )  # fmt: skip
    await LoginStore(svc.pool).set("ola", LoginRole.CUSTOMER, PASSWORD, a.id, "ola@example.pl")
    pay = "https://pay.example/topup?account={account}&currency={currency}"
    monkeypatch.setenv("TOLLGATE_GATEWAY_PAY_URL", pay)
    monkeypatch.setenv("TOLLGATE_GATEWAY_SECRET", "s3cret")
    await speak(page, "pl-PL")
    await size(page, screen)
    async with panel_client(settings, public_url="https://panel.example") as client:
        # a number and a SIP login for the account, as an operator gives them
        op = {"Authorization": f"Bearer {await operator_token(svc)}"}
        r = await client.post(
            "/api/v1/numbers",
            json={"number": "+48221234567", "carrier": "orange", "monthly_cost": "1.00",
                  "monthly_price": "5.00"},
            headers=op,
        )  # fmt: skip
        assert r.status == 201, await r.text()
        r = await client.post(
            "/api/v1/numbers/+48221234567/assign", json={"account": a.id}, headers=op
        )
        assert r.status == 200, await r.text()
        r = await client.post(
            f"/api/v1/accounts/{a.id}/sip-logins", json={"login": "4812345"}, headers=op
        )
        assert r.status == 201, await r.text()
        await open_page(page, str(client.make_url("/")))
        await page.click("#forgot summary")
        await type_into(page, "forgot-login", "OLA@example.pl")
        await page.key("Enter", 13, "\r")
        said = await page.until("document.getElementById('forgot-done').textContent")
        assert said.startswith("Jeśli ten login lub adres jest u nas")
        body = await svc.pool.fetchval("select body from mail_outbox where recipient = $1",
                                       "ola@example.pl")  # fmt: skip
        assert "https://panel.example/#reset=" in body
        secret = body.split("#reset=")[1].split()[0]

        await open_page(page, "about:blank")
        await open_page(page, str(client.make_url("/")) + "#reset=" + secret)
        await page.until("!document.getElementById('reset').hidden")
        assert await page.js("location.hash") == ""  # the secret is off the address bar
        assert not await visible(page, "#signin")
        assert await page.js(
            "[...document.querySelectorAll('input')].every(e => e.labels.length > 0)"
        )
        await type_into(page, "new-password", "short")
        await page.key("Enter", 13, "\r")
        error = await page.until("document.getElementById('reset-error').textContent")
        assert error == "Hasło musi mieć co najmniej 10 znaków."
        await type_into(page, "new-password", "nowe hasło do panelu")
        await type_into(page, "new-password2", "nowe hasło do panelu")
        assert await overflow(page) <= 0
        await shoot(page, f"portal-reset-{screen}")
        await page.key("Enter", 13, "\r")
        await page.until("!document.getElementById('signin').hidden")
        assert await page.js("document.getElementById('login').value") == "ola"
        assert (await page.js("document.getElementById('status').textContent")).startswith(
            "Hasło ustawione"
        )
        await type_into(page, "password", "nowe hasło do panelu")
        await page.key("Enter", 13, "\r")
        await page.until("document.getElementById('balance').textContent")
        assert await visible(page, "#topup-link")
        href = await page.js("document.getElementById('topup-href').href")
        assert href == pay.format(account=a.id, currency="PLN")
        assert await page.js("document.getElementById('topup-href').textContent") == (
            "Doładuj online"
        )
        assert await overflow(page) <= 0
        # SIP logins and numbers, as tables, every cell labelled on a phone
        await page.until("!document.getElementById('sip').hidden")
        sip = await texts(page, "#sip-logins tbody td")
        assert sip[0] == "4812345" and sip[2:] == ["Aktywny", "Brak rejestracji"], sip
        await page.until("!document.getElementById('numbers').hidden")
        assert await texts(page, "#numbers-list tbody td") == ["+48221234567", "tak"]
        assert await page.js(
            "[...document.querySelectorAll('#sip-logins td, #numbers-list td')]"
            ".every(td => td.dataset.label)"
        )
        await page.until("document.querySelectorAll('#docs tbody a').length === 1")
        assert (await texts(page, "#docs tbody td"))[:2] == [invoice.number, "Faktura"]
        name, pdf = await download(browser, downloads, page, "#docs tbody a")
        assert name == invoice.number.replace("/", "-") + ".pdf"
        assert pdf.startswith(b"%PDF-")
    rows = await svc.pool.fetch(
        "select actor, action, status from operator_audit where account = $1 and actor = 'ola'"
        " order by id",
        a.id,
    )
    assert [tuple(r) for r in rows] == [
        ("ola", "password_reset_request", 202),
        ("ola", "password_reset", 200),
    ]
