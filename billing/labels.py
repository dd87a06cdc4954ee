"""What documents say, in Polish, and in English as a second language for a buyer whose
customer record asks for it.

A Polish invoice must be in Polish (art. 106e of the VAT act names its content, and the
language act requires Polish in trade with consumers); a second language may be printed
next to it. So every line keeps its Polish text (what KSeF gets too) and its English one,
and the PDF prints the English under the Polish when the buyer's language is English.
Destination names in call lines come from the operator's rate deck as they are written."""

from __future__ import annotations

# key -> (Polish, English), str.format templates
LINES: dict[str, tuple[str, str]] = {
    "topup": ("Doładowanie konta przedpłaconego {ref}", "Prepaid credit top-up {ref}"),
    "calls": ("Połączenia: {name} (+{prefix})", "Calls: {name} (+{prefix})"),
    "fee": ("Opłata: {what}", "Fee: {what}"),
    "adjustment": ("Korekta salda: {what}", "Balance adjustment: {what}"),
    "rerate": (
        "Zmiana cen połączeń za {period} ({deck} v{version})",
        "Re-rating of {period} calls ({deck} v{version})",
    ),
    "complaint": ("Reklamacja nr {id} uznana", "Complaint {id} accepted"),
    "subscription": ("Abonament {name} {period}", "Subscription {name} {period}"),
}

# units as printed (Polish abbreviations) and their English
PIECE = "szt."
CALLS = "poł."
MONTH = "mies."
UNITS_EN = {PIECE: "pcs", CALLS: "calls", MONTH: "month"}

SECOND_LANGUAGES = frozenset({"en"})


def line_text(key: str, **params: object) -> tuple[str, str]:
    """(Polish, English) text of a document line."""
    pl, en = LINES[key]
    return pl.format(**params), en.format(**params)


# the PDF's own words: Polish -> English
PDF_EN: dict[str, str] = {
    "Faktura VAT": "VAT invoice",
    "Faktura korygująca": "Corrective invoice",
    "Faktura pro forma": "Pro forma invoice",
    "nr": "no.",
    "Dokument nie jest fakturą VAT i nie stanowi podstawy do odliczenia VAT.": (
        "This document is not a VAT invoice."
    ),
    "Data wystawienia": "Issue date",
    "Data sprzedaży": "Date of sale",
    "Sprzedawca": "Seller",
    "Nabywca": "Buyer",
    "Korekta faktury nr": "Correction of invoice no.",
    "z dnia": "of",
    "Przyczyna korekty": "Reason",
    "Lp.": "No.",
    "Nazwa": "Description",
    "Ilość": "Qty",
    "J.m.": "Unit",
    "Cena jedn. brutto": "Unit price (gross)",
    "Wartość brutto": "Gross amount",
    "Stawka VAT": "VAT rate",
    "Netto": "Net",
    "Brutto": "Gross",
    "Razem": "Total",
    "Do zapłaty": "Amount due",
    "Do zwrotu": "To be refunded",
    "Zapłacono": "Paid",
    "Słownie": "In words",
    "Sposób płatności": "Payment method",
    "Termin płatności": "Payment due",
    "Rachunek": "Bank account",
    "Tytuł przelewu": "Transfer title",
    "Numer KSeF": "KSeF number",
    "przelew": "bank transfer",
    "karta płatnicza": "payment card",
    "płatność online": "online payment",
    "(brak danych nabywcy)": "(no buyer data)",
    "Odwrotne obciążenie": "Reverse charge",
}


def second_language(language: str) -> str:
    """The second language to print for a buyer ('' for Polish only)."""
    return language if language in SECOND_LANGUAGES else ""


def pdf_word(polish: str, language: str, sep: str = " / ") -> str:
    """`polish`, followed by its translation when the document has a second language."""
    if not language or polish not in PDF_EN:
        return polish
    return f"{polish}{sep}{PDF_EN[polish]}"
