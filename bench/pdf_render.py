"""PDF rendering of a 20-line invoice, in-process, in one run: with the full DejaVu font
parsed for every document (as before pdf_fonts.py), with the reduced copy made once per
process (the first render pays for making it), and the floor: fpdf2 drawing the same table
with a core font (Helvetica: nothing to parse or subset; its text is not Polish, so it is
only a limit to compare with, not an alternative). Rounds alternate to share the noise.

    .venv/bin/python bench/pdf_render.py [--docs 30]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fpdf import FPDF

from billing import pdf
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


def timed(n: int, draw: Callable[[], bytes]) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        draw()
    return (time.perf_counter() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    doc, seller, buyer = sample()
    settings = PdfSettings()
    t0 = time.perf_counter()
    cached = render(doc, seller, buyer, Related(), settings)
    first = time.perf_counter() - t0

    def full_font() -> bytes:
        with mock.patch.object(pdf, "font_for", lambda path, text: path):
            return render(doc, seller, buyer, Related(), settings)

    full = full_font()
    assert len(cached) > 10_000 and len(full) > 10_000
    times: dict[str, list[float]] = {"full": [], "reduced": [], "floor": []}
    n = args.docs
    for _ in range(args.rounds):
        times["full"].append(timed(n, full_font))
        times["reduced"].append(timed(n, lambda: render(doc, seller, buyer, Related(), settings)))
        times["floor"].append(timed(n, lambda: core_font_page(doc)))
    best = {k: min(v) for k, v in times.items()}
    load = os.getloadavg()[0]
    print(f"first render (makes the reduced fonts) {first * 1000:.0f} ms")
    for k in ("full", "reduced", "floor"):
        print(f"{k:>8}: {best[k] * 1000:6.0f} ms/doc (best of {args.rounds} x {n})")
    print(
        f"full/reduced {best['full'] / best['reduced']:.2f}x;"
        f" reduced/floor {best['reduced'] / best['floor']:.2f}x; load average {load:.2f}"
    )


if __name__ == "__main__":
    main()
