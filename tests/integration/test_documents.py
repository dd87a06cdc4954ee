"""Legal documents against the real PostgreSQL: VAT per line with totals per rate, seller
and buyer kept on the document, pro-formas in their own series, and the PDF as a reader
sees it (pdftotext from poppler-utils).

Documents are issued at fixed instants (`local(...)`), so these pass on any day."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import subprocess
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, Protocol
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestServer
from lxml import etree

from billing import cli as billing_cmds
from billing.documents import Draft, Kind, Line, by_number, issue
from billing.ksef_xml import KsefError, fa3_xml
from billing.parties import Party
from billing.pdf import PdfSettings, render
from billing.postpaid import invoice_statuses
from billing.prepaid import invoice_topup
from billing.printing import printable
from billing.settings import BillingSettings
from core.cliout import CliError
from customers.model import Customer, CustomerKind
from customers.store import CustomerStore
from panel_api.tokens import Role
from rating.accounts import Account
from runtime.services import Services
from tests.conftest import AccountFactory, PanelFactory
from tests.ksef_standin import Standin
from tests.panel import bearer, token
from tests.unit.test_invoice_parts import SELLER
from tollgate.scheduler import SchedulerSettings, job_ksef

PLN = 1_000_000
GROSZ = 10_000
MY_TABLES = (
    "ksef_submissions",
    "billing_documents",
    "document_series",
    "customer_events",
    "customers",
)


@pytest.fixture(autouse=True)
async def document_tables(svc: Services) -> AsyncIterator[None]:
    assert svc.pool is not None
    await svc.pool.execute(f"truncate {', '.join(MY_TABLES)} cascade")
    yield


@pytest.fixture
def seller_env(monkeypatch: pytest.MonkeyPatch) -> BillingSettings:
    for key, value in SELLER.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("TOLLGATE_SELLER_BANK", "Bank Przykładowy S.A.")
    return BillingSettings.from_env()


class Issued(NamedTuple):
    account: Account
    number: str  # the invoice's number


class IssueFactory(Protocol):
    async def __call__(
        self, settings: BillingSettings, *, customer: dict[str, Any] | None = None
    ) -> Issued: ...


@pytest.fixture
def issued(svc: Services, make_account: AccountFactory) -> IssueFactory:
    """`await issued(settings, customer={...})`: a new account (with a customer record when
    `customer` is given, its fields overriding the defaults) and its `issue_mixed` invoice."""

    async def make(settings: BillingSettings, *, customer: dict[str, Any] | None = None) -> Issued:
        acct = await make_account(at=local("2026-11-01T10:00"))
        if customer is not None:
            await customer_for(svc, acct.id, **customer)
        return Issued(acct, await issue_mixed(svc, acct.id, settings))

    return make


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo("Europe/Warsaw")).astimezone(UTC)


def pdf_text(path: Path) -> str:
    out = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True, text=True
    )
    return out.stdout


async def issue_mixed(svc: Services, account: str, settings: BillingSettings) -> str:
    """A postpaid-style invoice with calls at 23% and np and a fee."""
    draft = Draft(
        Kind.INVOICE,
        account,
        f"invoice/{account}/2026-11",
        "PLN",
        local("2026-11-30T12:00").date(),
        (
            Line("Połączenia: Polska komórkowe (+4860)", 12_345_678, 40, 3600, "23"),
            Line("Połączenia: Niemcy (+49)", 5_004_999, 3, 200, "np"),
            Line("Abonament: centrala wirtualna", 49 * PLN, 1, 0, "", "mies."),
        ),
        period="2026-11",
        payment_method="transfer",
    )
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        doc, created = await issue(conn, draft, settings, local("2026-12-01T00:30"))
    assert created
    return doc.number


async def test_an_invoice_keeps_rates_per_line_totals_per_rate_and_the_seller(
    svc: Services, issued: IssueFactory, seller_env: BillingSettings
) -> None:
    number = (await issued(seller_env)).number
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        doc = await by_number(conn, number)
    assert doc is not None
    # lines rounded to the grosz: 12.35 + 5.00 + 49.00; 23% on 61.35 once, np carries none
    assert [(t.code, t.net, t.vat, t.gross) for t in doc.totals] == [
        ("23", 4_988 * GROSZ, 1_147 * GROSZ, 6_135 * GROSZ),
        ("np", 500 * GROSZ, 0, 500 * GROSZ),
    ]
    assert (doc.net, doc.vat, doc.gross) == (5_488 * GROSZ, 1_147 * GROSZ, 6_635 * GROSZ)
    assert doc.rates == ["23", "np", "23"]
    assert doc.seller is not None and doc.seller.nip == "5260001246"
    assert doc.due_date is not None and doc.due_date.isoformat() == "2026-12-15"
    view = doc.as_dict()
    assert view["vat_totals"][1] == {"rate": "np", "net": "5.00", "vat": "0.00", "gross": "5.00"}


async def test_bill_pdf_prints_numbers_tax_ids_totals_and_polish_letters(
    svc: Services, issued: IssueFactory, seller_env: BillingSettings, tmp_path: Path
) -> None:
    number = (await issued(seller_env)).number
    out = tmp_path / "faktura.pdf"
    await billing_cmds.cmd_pdf(svc, argparse.Namespace(number=number, output=str(out)))
    assert out.read_bytes().startswith(b"%PDF-")
    text = pdf_text(out)
    assert f"Faktura VAT nr {number}" in text
    assert "Łączność Sp. z o.o." in text and "ul. Źródlana 5" in text
    assert "NIP: 5260001246" in text
    assert "Data wystawienia: 2026-12-01" in text and "Data sprzedaży: 2026-11-30" in text
    assert "Termin płatności: 2026-12-15" in text
    assert "PL61 1090 1014 0000 0712 1981 2874" in text
    for row in (
        "23%      49,88     11,47     61,35",
        "np       5,00      0,00      5,00",
        "Razem      54,88     11,47     66,35",
    ):
        assert " ".join(row.split()) in " ".join(text.split())
    assert "Do zapłaty: 66,35 PLN" in text
    assert "sześćdziesiąt sześć złotych, trzydzieści pięć groszy" in " ".join(text.split())
    assert "Połączenia: Polska komórkowe (+4860)" in text


async def test_pdf_of_a_missing_document_or_without_a_seller_is_a_clear_error(
    svc: Services,
    issued: IssueFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TOLLGATE_SELLER_NAME", raising=False)
    with pytest.raises(CliError, match="number: no document 'INV/2026/12/000009'"):
        await billing_cmds.cmd_pdf(
            svc, argparse.Namespace(number="INV/2026/12/000009", output=str(tmp_path / "x"))
        )
    number = (await issued(BillingSettings())).number
    with pytest.raises(CliError, match="TOLLGATE_SELLER_NAME: no seller configured"):
        await billing_cmds.cmd_pdf(
            svc, argparse.Namespace(number=number, output=str(tmp_path / "x.pdf"))
        )
    assert not (tmp_path / "x.pdf").exists()


async def test_a_proforma_has_its_own_series_and_is_not_an_invoice_owed(
    svc: Services, make_account: AccountFactory, seller_env: BillingSettings, tmp_path: Path
) -> None:
    acct = await make_account(at=local("2026-11-01T10:00"))
    assert svc.pool is not None
    draft = Draft(
        Kind.PROFORMA,
        acct.id,
        f"proforma/{acct.id}/2026-12",
        "PLN",
        local("2026-12-01T00:00").date(),
        (Line("Abonament grudzień 2026", 49 * PLN),),
        period="2026-12",
        payment_method="transfer",
    )
    async with svc.pool.acquire() as conn:
        pf, _ = await issue(conn, draft, seller_env, local("2026-11-10T09:00"))
        assert await invoice_statuses(conn, acct.id) == []
    assert pf.number == "PF/2026/11/000001"
    number = await issue_mixed(svc, acct.id, seller_env)
    assert number == "INV/2026/12/000001"
    out = tmp_path / "pf.pdf"
    await billing_cmds.cmd_pdf(svc, argparse.Namespace(number=pf.number, output=str(out)))
    text = pdf_text(out)
    assert "Faktura pro forma nr PF/2026/11/000001" in text
    assert "nie jest fakturą VAT" in text


async def test_a_credit_note_names_the_invoice_it_corrects_and_why(
    svc: Services, issued: IssueFactory, seller_env: BillingSettings, tmp_path: Path
) -> None:
    acct, number = await issued(seller_env)
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        inv = await by_number(conn, number)
        assert inv is not None
        cn, _ = await issue(
            conn,
            Draft(
                Kind.CREDIT_NOTE,
                acct.id,
                f"credit/{acct.id}/x",
                "PLN",
                inv.sale_date,
                (Line("Zmiana cen połączeń", -2 * PLN),),
                corrects=inv.id,
                note="obniżka cen po reklamacji",
            ),
            seller_env,
            local("2026-12-05T10:00"),
        )
    out = tmp_path / "cn.pdf"
    await billing_cmds.cmd_pdf(svc, argparse.Namespace(number=cn.number, output=str(out)))
    text = pdf_text(out)
    assert f"Faktura korygująca nr {cn.number}" in text
    assert f"Korekta faktury nr {number} z dnia 2026-12-01" in text
    assert "Przyczyna korekty: obniżka cen po reklamacji" in text
    assert "Do zwrotu: 2,00 PLN" in text


BUSINESS = Party(
    "Przykładowa Firma Sp. z o.o.",
    ("ul. Kwiatowa 1", "31-000 Kraków"),
    nip="7740001454",
    email="faktury@example.com",
)
FA = {"fa": "http://crd.gov.pl/wzor/2025/06/25/13775/"}


async def test_fa3_xml_of_an_invoice_passes_the_official_schema(
    svc: Services, issued: IssueFactory, seller_env: BillingSettings, tmp_path: Path
) -> None:
    number = (await issued(seller_env)).number
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        p = replace(await printable(conn, number, seller_env), buyer=BUSINESS)
    xml = etree.fromstring(fa3_xml(p))  # fa3_xml validates against the XSD itself

    def one(path: str) -> str:
        found = xml.xpath(path, namespaces=FA)
        assert len(found) == 1, path
        return str(found[0].text)

    assert one("fa:Podmiot1/fa:DaneIdentyfikacyjne/fa:NIP") == "5260001246"
    assert one("fa:Podmiot2/fa:DaneIdentyfikacyjne/fa:NIP") == "7740001454"
    assert one("fa:Fa/fa:P_2") == number
    assert (one("fa:Fa/fa:P_13_1"), one("fa:Fa/fa:P_14_1")) == ("49.88", "11.47")
    assert (one("fa:Fa/fa:P_13_8"), one("fa:Fa/fa:P_15")) == ("5.00", "66.35")
    assert [r.text for r in xml.xpath("fa:Fa/fa:FaWiersz/fa:P_12", namespaces=FA)] == [
        "23",
        "np I",
        "23",
    ]
    assert one("fa:Fa/fa:Platnosc/fa:TerminPlatnosci/fa:Termin") == "2026-12-15"
    assert one("fa:Fa/fa:Platnosc/fa:RachunekBankowy/fa:NrRB") == "PL61109010140000071219812874"
    assert one("fa:Fa/fa:RodzajFaktury") == "VAT"
    # a business in another EU country: np is "np II" (art. 100 ust. 1 pkt 4), box P_13_9
    eu = replace(p, buyer=replace(BUSINESS, nip="", vat_id="DE136695976", country="DE"))
    eu_xml = etree.fromstring(fa3_xml(eu))
    assert eu_xml.xpath("string(fa:Fa/fa:P_13_9)", namespaces=FA) == "5.00"
    assert eu_xml.xpath("string(fa:Podmiot2/fa:DaneIdentyfikacyjne/fa:NrVatUE)", namespaces=FA) == (
        "136695976"
    )
    assert [r.text for r in eu_xml.xpath("fa:Fa/fa:FaWiersz/fa:P_12", namespaces=FA)] == [
        "23",
        "np II",
        "23",
    ]
    # the EU buyer accounts for the VAT: "odwrotne obciążenie" in FA(3) (P_18) and on paper
    assert one("fa:Fa/fa:Adnotacje/fa:P_18") == "2"
    assert eu_xml.xpath("string(fa:Fa/fa:Adnotacje/fa:P_18)", namespaces=FA) == "1"
    for printable_, says in ((p, False), (eu, True)):
        pdf = tmp_path / "rc.pdf"
        pdf.write_bytes(
            render(printable_.document, printable_.seller, printable_.buyer, printable_.related,
                   PdfSettings())
        )  # fmt: skip
        assert ("Odwrotne obciążenie" in pdf_text(pdf)) is says


async def test_fa3_xml_of_a_credit_note_and_what_cannot_go_to_ksef(
    svc: Services, issued: IssueFactory, seller_env: BillingSettings
) -> None:
    acct, number = await issued(seller_env)
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        inv = await by_number(conn, number)
        assert inv is not None
        cn, _ = await issue(
            conn,
            Draft(
                Kind.CREDIT_NOTE,
                acct.id,
                f"credit/{acct.id}/x",
                "PLN",
                inv.sale_date,
                (Line("Zmiana cen połączeń", -2 * PLN),),
                corrects=inv.id,
                note="obniżka cen po reklamacji",
            ),
            seller_env,
            local("2026-12-05T10:00"),
        )
        p = replace(await printable(conn, cn.number, seller_env), buyer=BUSINESS)
        consumer = replace(p, buyer=replace(BUSINESS, nip="", consumer=True))
    xml = etree.fromstring(fa3_xml(p))
    assert xml.xpath("string(fa:Fa/fa:RodzajFaktury)", namespaces=FA) == "KOR"
    assert xml.xpath("string(fa:Fa/fa:P_15)", namespaces=FA) == "-2.00"
    assert xml.xpath("string(fa:Fa/fa:P_14_1)", namespaces=FA) == "-0.37"
    assert xml.xpath("string(fa:Fa/fa:DaneFaKorygowanej/fa:NrFaKorygowanej)", namespaces=FA) == (
        number
    )
    assert xml.xpath("string(fa:Fa/fa:PrzyczynaKorekty)", namespaces=FA) == (
        "obniżka cen po reklamacji"
    )
    with pytest.raises(KsefError, match=r"buyer: .* the buyer has no NIP"):
        fa3_xml(consumer)
    with pytest.raises(KsefError, match=r"xml: .* does not pass the FA\(3\) schema"):
        fa3_xml(replace(p, seller=replace(p.seller, nip="12")))


async def customer_for(svc: Services, account: str, **fields: object) -> None:
    assert svc.pool is not None
    base: dict[str, object] = {
        "id": f"cust-{account}",
        "legal_name": "Przykładowa Firma Sp. z o.o.",
        "email": "faktury@example.com",
        "kind": CustomerKind.BUSINESS,
        "tax_id": "774-000-14-54",
        "street": "ul. Kwiatowa 1",
        "postal_code": "31-000",
        "city": "Kraków",
    }
    await CustomerStore(svc.pool, svc.accounts).create(
        Customer(**{**base, **fields}),  # type: ignore[arg-type]
        at=local("2026-11-01T10:00"),
        actor="test",
        accounts=(account,),
    )


async def test_the_buyer_comes_from_the_customer_record_and_is_kept_as_issued(
    svc: Services, issued: IssueFactory, seller_env: BillingSettings, tmp_path: Path
) -> None:
    acct, number = await issued(seller_env, customer={})
    assert svc.pool is not None
    # the customer moves after the invoice: the invoice keeps the address it was issued to
    await svc.pool.execute(
        "update customers set street = 'ul. Nowa 9' where id = $1", f"cust-{acct.id}"
    )
    async with svc.pool.acquire() as conn:
        p = await printable(conn, number, seller_env)
    assert p.buyer == BUSINESS
    out = tmp_path / "b2b.pdf"
    await billing_cmds.cmd_pdf(svc, argparse.Namespace(number=number, output=str(out)))
    text = pdf_text(out)
    assert "NIP: 7740001454" in text and "ul. Kwiatowa 1" in text and "ul. Nowa" not in text
    xml_out = tmp_path / "b2b.xml"
    await billing_cmds.cmd_ksef(svc, argparse.Namespace(number=number, output=str(xml_out)))
    xml = etree.fromstring(xml_out.read_bytes())
    assert xml.xpath("string(fa:Podmiot2/fa:DaneIdentyfikacyjne/fa:NIP)", namespaces=FA) == (
        "7740001454"
    )


async def test_a_consumer_gets_an_invoice_without_nip_and_no_ksef_xml(
    svc: Services, issued: IssueFactory, seller_env: BillingSettings, tmp_path: Path
) -> None:
    consumer = {"legal_name": "Zofia Żółć", "kind": CustomerKind.CONSUMER, "tax_id": None}
    number = (await issued(seller_env, customer=consumer)).number
    out = tmp_path / "b2c.pdf"
    await billing_cmds.cmd_pdf(svc, argparse.Namespace(number=number, output=str(out)))
    text = pdf_text(out)
    assert "Zofia Żółć" in text
    assert text.count("NIP:") == 1  # the seller's only
    with pytest.raises(CliError, match=r"buyer: .* KSeF takes B2B invoices"):
        await billing_cmds.cmd_ksef(svc, argparse.Namespace(number=number, output=None))


@pytest.fixture
async def ksef(svc: Services) -> AsyncIterator[tuple[Standin, str]]:
    """The KSeF stand-in on a loopback port, with the seller's token."""
    standin = Standin(token="ksef-token-123", nip="5260001246")
    async with TestServer(standin.app(), host="127.0.0.1") as server:
        yield standin, str(server.make_url("/"))


async def test_a_b2b_invoice_is_sent_to_ksef_once_and_keeps_its_number(
    svc: Services,
    issued: IssueFactory,
    seller_env: BillingSettings,
    ksef: tuple[Standin, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    standin, url = ksef
    acct, number = await issued(seller_env, customer={})
    monkeypatch.setenv("TOLLGATE_KSEF_URL", url)
    monkeypatch.setenv("TOLLGATE_KSEF_TOKEN", "ksef-token-123")
    monkeypatch.setenv("TOLLGATE_KSEF_NIP", "5260001246")
    args = argparse.Namespace(number=number, output=None, send=True, now="2026-12-01T08:00+01:00")
    first = await json_of(billing_cmds.cmd_ksef, svc, args)
    assert first["status"] == "accepted" and first["sent"] is True
    assert first["ksef_number"].startswith("5260001246-")
    # what KSeF received is the document's XML, decrypted on its side
    [received] = standin.received
    xml = etree.fromstring(received)
    assert xml.xpath("string(fa:Fa/fa:P_2)", namespaces=FA) == number
    again = await json_of(billing_cmds.cmd_ksef, svc, args)
    assert (again["sent"], again["ksef_number"]) == (False, first["ksef_number"])
    assert len(standin.received) == 1
    # a credit note refers to the corrected invoice by its KSeF number
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        inv = await by_number(conn, number)
        assert inv is not None
        cn, _ = await issue(
            conn,
            Draft(
                Kind.CREDIT_NOTE,
                acct.id,
                f"credit/{acct.id}/k",
                "PLN",
                inv.sale_date,
                (Line("Zmiana cen", -PLN),),
                corrects=inv.id,
                note="reklamacja",
            ),
            seller_env,
            local("2026-12-05T10:00"),
        )
        p = await printable(conn, cn.number, seller_env)
    corrected = etree.fromstring(fa3_xml(p)).xpath(
        "string(fa:Fa/fa:DaneFaKorygowanej/fa:NrKSeFFaKorygowanej)", namespaces=FA
    )
    assert corrected == first["ksef_number"]


async def test_a_wrong_ksef_token_is_a_clear_error_and_nothing_is_recorded(
    svc: Services,
    issued: IssueFactory,
    seller_env: BillingSettings,
    ksef: tuple[Standin, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    standin, url = ksef
    number = (await issued(seller_env, customer={})).number
    monkeypatch.setenv("TOLLGATE_KSEF_URL", url)
    monkeypatch.setenv("TOLLGATE_KSEF_TOKEN", "stolen")
    monkeypatch.setenv("TOLLGATE_KSEF_NIP", "5260001246")
    args = argparse.Namespace(number=number, output=None, send=True, now=None)
    with pytest.raises(CliError, match="ksef: KSeF did not take the invoice"):
        await billing_cmds.cmd_ksef(svc, args)
    assert svc.pool is not None
    assert await svc.pool.fetchval("select count(*) from ksef_submissions") == 0
    assert standin.received == []


async def json_of(cmd: Any, svc: Services, args: argparse.Namespace) -> Any:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        await cmd(svc, args)
    return json.loads(out.getvalue())


async def topup_invoice_pdf(
    svc: Services, account: str, settings: BillingSettings, out: Path
) -> tuple[str, str]:
    """A top-up booked in the ledger, its invoice issued by billing as `bill run` does, and
    the PDF as `bill pdf` writes it: (the document's number, the PDF's text)."""
    acct = await svc.accounts.get(account)
    entry, _ = await svc.accounts.add_entry(account, "topup", 50 * PLN, "P24-77", at=local(
        "2026-12-03T10:00"))  # fmt: skip
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        doc, created = await invoice_topup(conn, acct, entry, settings, local("2026-12-03T10:05"))
    assert created
    await billing_cmds.cmd_pdf(svc, argparse.Namespace(number=doc.number, output=str(out)))
    return doc.number, " ".join(pdf_text(out).split())


async def test_line_texts_units_and_payment_are_polish_with_english_only_when_asked(
    svc: Services, make_account: AccountFactory, seller_env: BillingSettings, tmp_path: Path
) -> None:
    pl = await make_account(at=local("2026-11-01T10:00"))
    await customer_for(svc, pl.id)
    number, text = await topup_invoice_pdf(svc, pl.id, seller_env, tmp_path / "pl.pdf")
    assert f"Faktura VAT nr {number}" in text
    assert "Doładowanie konta przedpłaconego P24-77" in text
    assert "Zapłacono: 50,00 PLN" in text and "Sposób płatności: przelew" in text
    assert "szt." in text
    for english in ("top-up", "Prepaid", "VAT invoice", "Amount", "Paid", "pcs"):
        assert english not in text
    # the line's Polish text is what KSeF gets; its English is kept beside it
    async with svc.pool.acquire() as conn:  # type: ignore[union-attr]
        doc = await by_number(conn, number)
        assert doc is not None
        p = await printable(conn, number, seller_env)
    assert doc.lines[0]["text_en"] == "Prepaid credit top-up P24-77"
    xml = etree.fromstring(fa3_xml(p))
    assert xml.xpath("string(fa:Fa/fa:FaWiersz/fa:P_7)", namespaces=FA) == (
        "Doładowanie konta przedpłaconego P24-77"
    )
    # a buyer whose record asks for English gets it as a second language, Polish first
    en = await make_account(at=local("2026-11-01T10:00"))
    await customer_for(svc, en.id, id="cust-en", language="en")
    number, text = await topup_invoice_pdf(svc, en.id, seller_env, tmp_path / "en.pdf")
    assert f"Faktura VAT / VAT invoice nr {number}" in text
    polish, english = "Doładowanie konta przedpłaconego P24-77", "Prepaid credit top-up P24-77"
    assert polish in text and english in text and text.index(polish) < text.index(english)
    assert text.index("szt.") < text.index("pcs")
    assert "Zapłacono / Paid: 50,00 PLN" in text
    assert "Sposób płatności / Payment method: przelew / bank transfer" in text
    assert "Sprzedawca / Seller" in text and "Nabywca / Buyer" in text
    assert text.index("Data wystawienia / Issue date") < text.index("Słownie / In words")


async def test_the_ksef_upo_is_fetched_kept_and_shown(
    svc: Services,
    issued: IssueFactory,
    seller_env: BillingSettings,
    ksef: tuple[Standin, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    panel: PanelFactory,
) -> None:
    """KSeF accepts the invoice before its UPO is ready: the submission is kept with the UPO
    pending, `bill ksef --upo` asks again until KSeF has it, then keeps it (asked no more),
    and `bill show` shows the KSeF number and the UPO's state."""
    standin, url = ksef
    standin.upo_after = 100  # not produced while the send waits for it
    acct, number = await issued(seller_env, customer={})
    for key, value in (("URL", url), ("TOKEN", "ksef-token-123"), ("NIP", "5260001246")):
        monkeypatch.setenv(f"TOLLGATE_KSEF_{key}", value)
    monkeypatch.setenv("TOLLGATE_KSEF_POLL_S", "0")
    monkeypatch.setenv("TOLLGATE_KSEF_UPO_POLLS", "3")
    send = argparse.Namespace(number=number, output=None, send=True, now="2026-12-01T08:00+01:00")
    sent = await json_of(billing_cmds.cmd_ksef, svc, send)
    assert (sent["status"], sent["upo"]) == ("accepted", "pending")
    assert standin.upo_asked == 3  # TOLLGATE_KSEF_UPO_POLLS tries, then left for later
    shown = await json_of(billing_cmds.cmd_show, svc, argparse.Namespace(number=number))
    assert shown["number"] == number and shown["ksef"]["upo"] == "pending"
    assert shown["ksef"]["ksef_number"] == sent["ksef_number"]

    out = tmp_path / "upo.xml"
    ask = argparse.Namespace(number=number, output=str(out), upo=True, now="2026-12-01T09:00+01:00")
    later = await json_of(billing_cmds.cmd_ksef, svc, ask)
    assert (later["upo"], later["fetched"]) == ("pending", False) and not out.exists()
    standin.upo_after = 0
    got = await json_of(billing_cmds.cmd_ksef, svc, ask)
    assert (got["upo"], got["fetched"], got["file"]) == ("received", True, str(out))
    upo = etree.fromstring(out.read_bytes())
    ns = {"upo": "http://upo.schematy.mf.gov.pl/KSeF/v4-2"}
    assert upo.xpath("string(//upo:NumerKSeFDokumentu)", namespaces=ns) == sent["ksef_number"]
    asked = standin.upo_asked
    again = await json_of(billing_cmds.cmd_ksef, svc, ask)
    assert (again["upo"], again["fetched"]) == ("received", False)
    assert standin.upo_asked == asked  # kept: KSeF is not asked again
    shown = await json_of(billing_cmds.cmd_show, svc, argparse.Namespace(number=number))
    assert shown["ksef"]["upo"] == "received"
    assert shown["ksef"]["upo_at"] == local("2026-12-01T09:00").isoformat()
    listed = await json_of(
        billing_cmds.cmd_invoices, svc, argparse.Namespace(account=acct.id, now=None)
    )
    assert [d["ksef"]["upo"] for d in listed] == ["received"]
    # the panel lists it the same way to the customer
    client = await panel()
    customer = bearer(await token(svc, Role.CUSTOMER, acct.id))
    r = await client.get(f"/api/v1/accounts/{acct.id}/invoices", headers=customer)
    [doc] = (await r.json())["items"]
    assert doc["ksef"]["ksef_number"] == sent["ksef_number"] and doc["ksef"]["upo"] == "received"


async def test_a_upo_of_another_document_or_before_acceptance_is_refused(
    svc: Services,
    issued: IssueFactory,
    seller_env: BillingSettings,
    ksef: tuple[Standin, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    standin, url = ksef
    standin.upo_hash = "bm90IHRoaXMgZG9jdW1lbnQ="  # a receipt for other bytes
    number = (await issued(seller_env, customer={})).number
    for key, value in (("URL", url), ("TOKEN", "ksef-token-123"), ("NIP", "5260001246")):
        monkeypatch.setenv(f"TOLLGATE_KSEF_{key}", value)
    monkeypatch.setenv("TOLLGATE_KSEF_POLL_S", "0")
    ask = argparse.Namespace(number=number, output=None, upo=True, now="2026-12-01T09:00+01:00")
    with pytest.raises(CliError, match=r"upo: KSeF has not accepted the document \(not sent\)"):
        await billing_cmds.cmd_ksef(svc, ask)
    # KSeF accepted the invoice: its number is kept, the receipt that is not its own is not
    send = argparse.Namespace(number=number, output=None, send=True, now="2026-12-01T08:00+01:00")
    sent = await json_of(billing_cmds.cmd_ksef, svc, send)
    assert (sent["status"], sent["upo"]) == ("accepted", "pending")
    assert "is not the sent XML's" in sent["upo_error"]
    with pytest.raises(CliError, match=r"upo: the UPO's document hash .* is not the sent XML's"):
        await billing_cmds.cmd_ksef(svc, ask)
    assert svc.pool is not None
    assert await svc.pool.fetchval("select count(*) from ksef_submissions where upo is null") == 1


async def test_ksef_pending_sends_what_ksef_lacks_then_fetches_the_upos(
    svc: Services,
    issued: IssueFactory,
    seller_env: BillingSettings,
    ksef: tuple[Standin, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    standin, url = ksef
    standin.upo_after = 100
    numbers = []
    for _ in range(2):
        numbers.append((await issued(seller_env, customer={})).number)
    await issued(seller_env, customer={"kind": CustomerKind.CONSUMER, "tax_id": None})
    for key, value in (("URL", url), ("TOKEN", "ksef-token-123"), ("NIP", "5260001246")):
        monkeypatch.setenv(f"TOLLGATE_KSEF_{key}", value)
    monkeypatch.setenv("TOLLGATE_KSEF_POLL_S", "0")
    monkeypatch.setenv("TOLLGATE_KSEF_UPO_POLLS", "1")
    args = argparse.Namespace(now="2026-12-01T08:00+01:00")
    # KSeF unreachable: each document is reported, none is recorded, the pass ends
    monkeypatch.setenv("TOLLGATE_KSEF_URL", "http://127.0.0.1:9/")
    down = await json_of(billing_cmds.cmd_ksef_pending, svc, args)
    assert [f["number"] for f in down["failed"]] == numbers and down["sent"] == []
    assert all("KSeF did not take the invoice" in f["error"] for f in down["failed"])
    monkeypatch.setenv("TOLLGATE_KSEF_URL", url)
    first = await json_of(billing_cmds.cmd_ksef_pending, svc, args)
    assert [(d["number"], d["status"], d["upo"]) for d in first["sent"]] == [
        (n, "accepted", "pending") for n in numbers
    ]  # the consumer's invoice is not sent
    assert (first["upo"], first["failed"]) == ([], [])
    standin.upo_after = 0
    second = await json_of(billing_cmds.cmd_ksef_pending, svc, args)
    assert second["sent"] == []
    assert [(d["number"], d["upo"], d["fetched"]) for d in second["upo"]] == [
        (n, "received", True) for n in numbers
    ]
    third = await json_of(billing_cmds.cmd_ksef_pending, svc, args)
    assert third == {"sent": [], "upo": [], "skipped": [], "failed": []}
    assert len(standin.received) == 2  # each sent once


async def test_the_scheduler_sends_to_ksef_once_configured(
    svc: Services,
    issued: IssueFactory,
    seller_env: BillingSettings,
    ksef: tuple[Standin, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    standin, url = ksef
    number = (await issued(seller_env, customer={})).number
    now = local("2026-12-01T03:00")
    monkeypatch.delenv("TOLLGATE_KSEF_URL", raising=False)
    assert await job_ksef(svc, SchedulerSettings(), now) == "KSeF not configured"
    for key, value in (("URL", "http://127.0.0.1:9/"), ("TOKEN", "ksef-token-123"),
                       ("NIP", "5260001246"), ("POLL_S", "0")):  # fmt: skip
        monkeypatch.setenv(f"TOLLGATE_KSEF_{key}", value)
    with pytest.raises(RuntimeError, match=f"not in KSeF: {number}"):
        await job_ksef(svc, SchedulerSettings(), now)  # a failed job: retried next tick
    monkeypatch.setenv("TOLLGATE_KSEF_URL", url)
    assert await job_ksef(svc, SchedulerSettings(), now) == "sent 1, UPOs asked 0"
    assert len(standin.received) == 1
