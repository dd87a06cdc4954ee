"""PDF rendering of a 20-line invoice, in-process: documents per second, the first render
(fonts read from disk) against the following ones, and, in the same run, the floor: fpdf2
drawing the same page with a core font (Helvetica, nothing to parse or subset; its text is
not Polish, so it is only a limit to compare with, not an alternative).

    .venv/bin/python bench/pdf_render.py [--docs 30]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fpdf import FPDF

from billing.documents import Document, Kind
from billing.parties import Party
from billing.pdf import PdfSettings, Related, render
from billing.vat import totals_by_rate

PLN = 1_000_000


def sample() -> tuple[Document, Party, Party]:
    lines = tuple(
        {
            "text": f"Połączenia: Polska komórkowe {i} (+4850{i})",
            "quantity": 10 + i,
            "seconds": 600 + i,
            "gross": (1234 + i * 17) * (PLN // 100),
            "vat": "23" if i % 4 else "np",
            "unit": "poł.",
        }
        for i in range(20)
    )
    totals = tuple(totals_by_rate([(str(ln["vat"]), int(ln["gross"])) for ln in lines], 2))
    doc = Document(
        id=1,
        number="INV/2026/12/000001",
        kind=Kind.INVOICE,
        account="bench",
        source="bench",
        period="2026-11",
        corrects=None,
        currency="PLN",
        vat_rate_bp=2300,
        net=sum(t.net for t in totals),
        vat=sum(t.vat for t in totals),
        gross=sum(t.gross for t in totals),
        sale_date=date(2026, 11, 30),
        issue_date=date(2026, 12, 1),
        due_date=date(2026, 12, 15),
        issued_at=datetime(2026, 12, 1, 6, tzinfo=UTC),
        lines=lines,
        vat_totals=totals,
        payment_method="transfer",
    )
    seller = Party(
        "Operator Sp. z o.o.",
        ("ul. Długa 1", "00-001 Warszawa"),
        nip="5260250274",
        iban="PL61109010140000071219812874",
    )
    buyer = Party("Łódzka Firma S.A.", ("ul. Żółta 2", "90-001 Łódź"), nip="7251801126")
    return doc, seller, buyer


def core_font_page(doc: Document) -> bytes:
    pdf = FPDF(format="A4")
    pdf.add_page()
    pdf.set_font("Helvetica", "", 8)
    with pdf.table(col_widths=(8, 80, 16, 12, 24, 14, 26), line_height=5) as table:
        for i, ln in enumerate(doc.lines, 1):
            text = str(ln["text"]).encode("latin-1", "replace").decode("latin-1")
            table.row((str(i), text, str(ln["quantity"]), "szt.", "1,00", "23%", "12,34"))
    return bytes(pdf.output())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=30)
    n = ap.parse_args().docs
    doc, seller, buyer = sample()
    settings = PdfSettings()
    t0 = time.perf_counter()
    first = render(doc, seller, buyer, Related(), settings)
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(n):
        render(doc, seller, buyer, Related(), settings)
    per_doc = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    for _ in range(n):
        core_font_page(doc)
    floor = (time.perf_counter() - t0) / n
    load = os.getloadavg()[0]
    print(f"first render {t_first * 1000:.0f} ms ({len(first)} bytes)")
    print(f"invoice PDF {per_doc * 1000:.0f} ms/doc over {n} ({1 / per_doc:.1f} docs/s)")
    print(f"floor (core font, same table) {floor * 1000:.0f} ms/doc")
    print(f"ratio to the floor {per_doc / floor:.1f}x; load average {load:.2f}")


if __name__ == "__main__":
    main()
