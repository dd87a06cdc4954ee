"""The panel's payments and documents: the payment gateway's signed notifications (signed,
forged, stale, replayed) and documents as PDF for their customer and for operators."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from billing.documents import Draft, Kind, Line, issue
from billing.gateway import HmacScheme
from billing.settings import BillingSettings
from panel_api.tokens import Role
from runtime.services import Services
from tests.conftest import AccountFactory, PanelFactory
from tests.integration.test_documents import pdf_text
from tests.panel import bearer, token
from tests.unit.test_invoice_parts import SELLER

pytestmark = pytest.mark.panel_db  # the panel tests' database


SECRET = "s3cret-shared-with-the-gateway"
URL = "/api/v1/payments/gateway"
PLN = 1_000_000


@pytest.fixture(autouse=True)
async def _tables(svc: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    assert svc.pool is not None
    await svc.pool.execute(
        "truncate gateway_payments, bank_transactions, billing_documents, document_series cascade"
    )
    monkeypatch.setenv("TOLLGATE_GATEWAY_SECRET", SECRET)
    monkeypatch.setenv("TOLLGATE_GATEWAY_NAME", "przelewy")
    for key, value in SELLER.items():
        monkeypatch.setenv(key, value)


def signed(
    body: dict[str, Any], secret: str = SECRET, at: float | None = None
) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    stamp = int(time.time() if at is None else at)
    sig = HmacScheme(secret.encode()).sign(raw, stamp)
    return raw, {
        "X-Signature": sig,
        "X-Timestamp": str(stamp),
        "Content-Type": "application/json",
    }


async def test_a_signed_notification_tops_up_once_and_forgeries_book_nothing(
    svc: Services, panel: PanelFactory, make_account: AccountFactory
) -> None:
    acct = await make_account()
    note = {"payment_id": "p-1", "account": acct.id, "amount": "25.00", "currency": "PLN"}
    client = await panel()
    raw, headers = signed(note)
    first = await client.post(URL, data=raw, headers=headers)
    assert first.status == 201, await first.text()
    body = await first.json()
    assert body["created"] and body["amount"] == "25.00"
    assert body["invoice"].startswith("INV/")  # prepaid: the top-up is invoiced
    # the gateway retries the same notification: 200, nothing more booked
    again = await client.post(URL, data=raw, headers=headers)
    assert again.status == 200 and not (await again.json())["created"]

    # forged: another secret; the body changed after signing; no signature at all
    fake_raw, fake_headers = signed({**note, "payment_id": "p-2"}, secret="guess")
    forged = await client.post(URL, data=fake_raw, headers=fake_headers)
    assert forged.status == 401
    assert (await forged.json())["error"]["code"] == "BAD_SIGNATURE"
    _, good_headers = signed({**note, "payment_id": "p-3"})
    tampered = json.dumps({**note, "payment_id": "p-3", "amount": "2500.00"}).encode()
    assert (await client.post(URL, data=tampered, headers=good_headers)).status == 401
    bare = {"Content-Type": "application/json"}
    assert (await client.post(URL, data=raw, headers=bare)).status == 401
    # a captured notification replayed after the window: refused
    old_raw, old_headers = signed({**note, "payment_id": "p-4"}, at=time.time() - 3600)
    stale = await client.post(URL, data=old_raw, headers=old_headers)
    assert stale.status == 401
    assert (await stale.json())["error"]["details"]["field"] == "X-Timestamp"
    # the same payment id with another amount is not a retry
    other_raw, other_headers = signed({**note, "amount": "30.00"})
    conflict = await client.post(URL, data=other_raw, headers=other_headers)
    assert conflict.status == 400
    assert (await svc.accounts.live(acct.id)).balance == 25 * PLN
    assert svc.pool is not None
    assert await svc.pool.fetchval("select count(*) from gateway_payments") == 1


async def test_without_a_secret_notifications_are_refused(
    panel: PanelFactory, make_account: AccountFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOLLGATE_GATEWAY_SECRET")
    acct = await make_account()
    raw, headers = signed(
        {"payment_id": "p", "account": acct.id, "amount": "1.00", "currency": "PLN"}
    )
    client = await panel()
    r = await client.post(URL, data=raw, headers=headers)
    assert r.status == 403 and (await r.json())["error"]["code"] == "NOT_CONFIGURED"


async def test_document_pdf_for_its_customer_and_operators_only(
    svc: Services, panel: PanelFactory, make_account: AccountFactory, tmp_path: Path
) -> None:
    mine = await make_account()
    other = await make_account()
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        doc, _ = await issue(
            conn,
            Draft(
                Kind.TOPUP_INVOICE,
                mine.id,
                f"topup/{mine.id}/x",
                "PLN",
                datetime.now(UTC).date(),
                (Line("Doładowanie konta", 20 * PLN),),
            ),
            BillingSettings.from_env(),
            datetime.now(UTC),
        )
    path = f"/api/v1/accounts/{mine.id}/documents/{doc.number}/pdf"
    client = await panel()
    own = await client.get(path, headers=bearer(await token(svc, Role.CUSTOMER, mine.id)))
    assert own.status == 200 and own.content_type == "application/pdf"
    pdf = tmp_path / "d.pdf"
    pdf.write_bytes(await own.read())
    text = pdf_text(pdf)
    assert doc.number in text and "Zapłacono: 20,00 PLN" in text
    op = await client.get(path, headers=bearer(await token(svc, Role.OPERATOR)))
    assert op.status == 200
    # another customer: 404, whether through its own account or the owner's
    stranger = bearer(await token(svc, Role.CUSTOMER, other.id))
    assert (await client.get(path, headers=stranger)).status == 404
    theirs = f"/api/v1/accounts/{other.id}/documents/{doc.number}/pdf"
    assert (await client.get(theirs, headers=stranger)).status == 404
