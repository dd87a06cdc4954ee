"""A document as PDF (fpdf2), in Polish, with a TrueType font embedded for the diacritics.

fpdf2 is pure Python (no browser, no system libraries), embeds and subsets TrueType fonts,
and draws tables; the font is DejaVu Sans from Debian's fonts-dejavu-core unless
TOLLGATE_PDF_FONT / TOLLGATE_PDF_FONT_BOLD name others, embedded from a reduced copy made
once per process when the document's text allows (pdf_fonts.py)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from billing.documents import UNIT, Document, Kind
from billing.errors import BillingError
from billing.labels import UNITS_EN, pdf_word, second_language
from billing.parties import Party, format_iban, reverse_charge
from billing.pdf_fonts import font_for
from billing.words import amount_in_words
from rating.money import MICRO

FONT_DIR = "/usr/share/fonts/truetype/dejavu"
FAMILY = "DejaVu"

TITLE = {
    Kind.INVOICE: "Faktura VAT",
    Kind.TOPUP_INVOICE: "Faktura VAT",
    Kind.CREDIT_NOTE: "Faktura korygująca",
    Kind.PROFORMA: "Faktura pro forma",
}
METHOD = {"transfer": "przelew", "card": "karta płatnicza", "gateway": "płatność online"}


@dataclass(frozen=True)
class PdfSettings:
    font: str = f"{FONT_DIR}/DejaVuSans.ttf"
    font_bold: str = f"{FONT_DIR}/DejaVuSans-Bold.ttf"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PdfSettings:
        env = os.environ if env is None else env
        base = cls()
        return cls(
            font=env.get("TOLLGATE_PDF_FONT", "") or base.font,
            font_bold=env.get("TOLLGATE_PDF_FONT_BOLD", "") or base.font_bold,
        )


@dataclass(frozen=True, slots=True)
class Related:
    """What a document points at, looked up by the caller (a credit note's invoice)."""

    corrected_number: str = ""
    corrected_issue_date: date | None = None
    corrected_ksef_number: str = ""  # the corrected invoice's number in KSeF, once accepted
    paid: bool = False  # printed as paid (a top-up invoice is paid when issued)


def money(micro: int) -> str:
    """1234560000 -> '1 234,56' (grosze, Polish separators)."""
    sign = "-" if micro < 0 else ""
    grosze = abs(micro) // (MICRO // 100)
    whole, cents = divmod(grosze, 100)
    return f"{sign}{whole:,}".replace(",", " ") + f",{cents:02d}"


def rate_label(code: str) -> str:
    return code if code in ("zw", "np") else f"{code}%"


def render(
    doc: Document, seller: Party, buyer: Party | None, related: Related, settings: PdfSettings
) -> bytes:
    """The PDF of `doc`. The seller is the document's own when it kept one (the caller
    passes it), else today's configuration."""
    for path in (settings.font, settings.font_bold):
        if not Path(path).is_file():
            raise BillingError("TOLLGATE_PDF_FONT", f"font file not found: {path}")
    pdf = FPDF(format="A4")
    pdf.set_title(f"{TITLE[doc.kind]} {doc.number}")
    pdf.set_creator("tollgate")
    text = _printed_text(doc, seller, buyer, related)
    pdf.add_font(FAMILY, "", font_for(settings.font, text))
    pdf.add_font(FAMILY, "B", font_for(settings.font_bold, text))
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    lang = second_language(buyer.language) if buyer is not None else ""
    _header(pdf, doc, lang)
    _parties(pdf, seller, buyer, lang)
    if doc.kind is Kind.CREDIT_NOTE:
        _correction(pdf, doc, related, lang)
    _lines(pdf, doc, lang)
    _totals(pdf, doc, lang)
    _payment(pdf, doc, seller, buyer, related, lang)
    return bytes(pdf.output())


def _printed_text(doc: Document, seller: Party, buyer: Party | None, related: Related) -> str:
    """Every variable text the PDF may print (the fixed words are Polish and English):
    what decides whether the reduced font has all its characters."""
    parts = [doc.as_dict(), seller.as_dict(), buyer.as_dict() if buyer else None]
    words = amount_in_words(doc.gross, doc.currency)
    return json.dumps([parts, str(related), words], ensure_ascii=False, default=str)


def _text(pdf: FPDF, text: str, size: float = 9, bold: bool = False, h: float = 5) -> None:
    pdf.set_font(FAMILY, "B" if bold else "", size)
    pdf.multi_cell(0, h, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _header(pdf: FPDF, doc: Document, lang: str) -> None:
    _text(pdf, f"{pdf_word(TITLE[doc.kind], lang)} nr {doc.number}", 15, bold=True, h=8)
    if doc.kind is Kind.PROFORMA:
        notice = "Dokument nie jest fakturą VAT i nie stanowi podstawy do odliczenia VAT."
        _text(pdf, pdf_word(notice, lang, "\n"))
    _text(pdf, f"{pdf_word('Data wystawienia', lang)}: {doc.issue_date.isoformat()}")
    _text(pdf, f"{pdf_word('Data sprzedaży', lang)}: {doc.sale_date.isoformat()}")
    pdf.ln(2)


def _party_lines(title: str, party: Party | None, lang: str) -> list[str]:
    if party is None:
        return [title, pdf_word("(brak danych nabywcy)", lang)]
    out = [title, party.name, *party.address]
    if party.country != "PL":
        out.append(party.country)
    if party.nip:
        out.append(f"NIP: {party.nip}")
    elif party.vat_id:
        out.append(f"VAT UE: {party.vat_id}")
    return out


def _parties(pdf: FPDF, seller: Party, buyer: Party | None, lang: str) -> None:
    left = _party_lines(pdf_word("Sprzedawca", lang), seller, lang)
    right = _party_lines(pdf_word("Nabywca", lang), buyer, lang)
    width = (pdf.w - pdf.l_margin - pdf.r_margin) / 2
    for i in range(max(len(left), len(right))):
        pdf.set_font(FAMILY, "B" if i == 0 else "", 9)
        pdf.cell(width, 5, left[i] if i < len(left) else "")
        pdf.cell(width, 5, right[i] if i < len(right) else "", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(3)


def _correction(pdf: FPDF, doc: Document, related: Related, lang: str) -> None:
    when = related.corrected_issue_date.isoformat() if related.corrected_issue_date else ""
    what = pdf_word("Korekta faktury nr", lang)
    _text(pdf, f"{what} {related.corrected_number} {pdf_word('z dnia', lang)} {when}", bold=True)
    if related.corrected_ksef_number:
        _text(pdf, f"{pdf_word('Numer KSeF', lang)}: {related.corrected_ksef_number}")
    _text(pdf, f"{pdf_word('Przyczyna korekty', lang)}: {doc.note or 'korekta ceny'}")
    pdf.ln(2)


def _lines(pdf: FPDF, doc: Document, lang: str) -> None:
    head = ("Lp.", "Nazwa", "Ilość", "J.m.", "Cena jedn. brutto", "VAT", "Wartość brutto")
    pdf.set_font(FAMILY, "", 8)
    with pdf.table(
        col_widths=(8, 80, 16, 12, 24, 14, 26),
        text_align=("RIGHT", "LEFT", "RIGHT", "CENTER", "RIGHT", "CENTER", "RIGHT"),
        line_height=5,
    ) as table:
        table.row(tuple(pdf_word(h, lang, "\n") for h in head))
        for i, (ln, rate) in enumerate(zip(doc.lines, doc.rates, strict=True), 1):
            qty = int(ln.get("quantity") or 1)
            gross = int(ln["gross"])
            unit_price = money(gross // qty) if gross % (qty * (MICRO // 100)) == 0 else "-"
            unit = str(ln.get("unit") or UNIT)
            table.row(
                (
                    str(i),
                    _line_text(ln, lang),
                    str(qty),
                    f"{unit}\n{UNITS_EN[unit]}" if lang and unit in UNITS_EN else unit,
                    unit_price,
                    rate_label(rate),
                    money(gross),
                )
            )
    pdf.ln(3)


def _line_text(line: dict[str, object], lang: str) -> str:
    second = line.get(f"text_{lang}") if lang else None
    return f"{line['text']}\n{second}" if second else str(line["text"])


def _totals(pdf: FPDF, doc: Document, lang: str) -> None:
    pdf.set_font(FAMILY, "", 8)
    with pdf.table(
        col_widths=(30, 30, 30, 30),
        text_align="RIGHT",
        line_height=5,
        width=120,
        align="RIGHT",
    ) as table:
        table.row(tuple(pdf_word(h, lang, "\n") for h in ("Stawka VAT", "Netto", "VAT", "Brutto")))
        for t in doc.totals:
            table.row((rate_label(t.code), money(t.net), money(t.vat), money(t.gross)))
        total = pdf_word("Razem", lang)
        table.row((total, money(doc.net), money(doc.vat), money(doc.gross)))
    pdf.ln(3)


def _payment(
    pdf: FPDF, doc: Document, seller: Party, buyer: Party | None, related: Related, lang: str
) -> None:
    due_word = "Do zwrotu" if doc.gross < 0 else "Do zapłaty"
    if related.paid:
        due_word = "Zapłacono"
    if reverse_charge(doc.rates, buyer):
        _text(pdf, pdf_word("Odwrotne obciążenie", lang), bold=True)
    due_word = pdf_word(due_word, lang)
    _text(pdf, f"{due_word}: {money(abs(doc.gross))} {doc.currency}", 11, bold=True, h=6)
    _text(pdf, f"{pdf_word('Słownie', lang)}: {amount_in_words(doc.gross, doc.currency)}")
    method = METHOD.get(doc.payment_method, doc.payment_method or "przelew")
    _text(pdf, f"{pdf_word('Sposób płatności', lang)}: {pdf_word(method, lang)}")
    if doc.due_date is not None and not related.paid:
        _text(pdf, f"{pdf_word('Termin płatności', lang)}: {doc.due_date.isoformat()}")
    if seller.iban and doc.gross > 0 and not related.paid:
        bank = f" ({seller.bank})" if seller.bank else ""
        _text(pdf, f"{pdf_word('Rachunek', lang)}: {format_iban(seller.iban)}{bank}")
        _text(pdf, f"{pdf_word('Tytuł przelewu', lang)}: {doc.number} {doc.account}")
    if doc.note and doc.kind is not Kind.CREDIT_NOTE:
        _text(pdf, doc.note)
