# ruff: noqa: RUF001  (Cyrillic and typographic characters are what this test is about)
"""The PDF font reduced once per process: used when it has every character of the
document, the full font otherwise; either way the text reads back (pdftotext)."""

from __future__ import annotations

import subprocess
from datetime import UTC, date, datetime
from pathlib import Path

from billing.documents import Document, Kind
from billing.parties import Party
from billing.pdf import PdfSettings, Related, render
from billing.pdf_fonts import font_for, reduced
from billing.vat import totals_by_rate

FONT = PdfSettings().font
PLN = 1_000_000


def test_the_reduced_copy_is_used_only_when_it_has_every_character() -> None:
    copy = reduced(FONT)
    assert copy is reduced(FONT)  # made once
    assert font_for(FONT, "Zażółć gęślą jaźń: 1 234,56 zł – €, „cudzysłów”\n") == copy.path
    assert font_for(FONT, "ООО Ромашка") == FONT
    assert font_for(FONT, "Ωmega") == FONT


def invoice(buyer_name: str) -> tuple[Document, Party, Party]:
    lines = ({"text": "Opłata: łącze", "quantity": 1, "gross": 123 * PLN, "vat": "23"},)
    totals = tuple(totals_by_rate([("23", 123 * PLN)], 2))
    doc = Document(
        id=1,
        number="INV/2026/12/000001",
        kind=Kind.INVOICE,
        account="a",
        source="s",
        period=None,
        corrects=None,
        currency="PLN",
        vat_rate_bp=2300,
        net=totals[0].net,
        vat=totals[0].vat,
        gross=totals[0].gross,
        sale_date=date(2026, 11, 30),
        issue_date=date(2026, 12, 1),
        due_date=date(2026, 12, 15),
        issued_at=datetime(2026, 12, 1, tzinfo=UTC),
        lines=lines,
        vat_totals=totals,
    )
    seller = Party("Łączność Sp. z o.o.", ("ul. Źródlana 5",), nip="5260001246")
    return doc, seller, Party(buyer_name, ("Kyiv",), country="UA")


def text_of(data: bytes, tmp_path: Path) -> str:
    path = tmp_path / "doc.pdf"
    path.write_bytes(data)
    out = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, check=True, text=True)
    return out.stdout


def test_both_fonts_print_the_document(tmp_path: Path) -> None:
    for name in ("Żaneta Ćwik", "ООО Ромашка"):
        doc, seller, buyer = invoice(name)
        text = text_of(render(doc, seller, buyer, Related(), PdfSettings()), tmp_path)
        assert name in text and "Opłata: łącze" in text and "123,00" in text
