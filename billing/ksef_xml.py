"""A B2B document as KSeF's FA(3) XML, checked against the official schema.

The schema is the Ministry of Finance's FA(3) (1-0E) as shipped in the `ksef-client`
package (ksef_client/documents/fa3/schemas, with a resolver that never goes to the network);
the XML is built here with lxml from the document as issued: amounts are gross-based
(art. 106e ust. 7-8: P_9B/P_11A per line), totals per rate in P_13_x/P_14_x, P_15 the gross.

Rates map to the form's boxes: 23/22 -> P_13_1, 8/7 -> P_13_2, 5 -> P_13_3, 0 -> P_13_6_1
("0 KR"), zw -> P_13_7 (with the exemption's legal basis, TOLLGATE_BILLING_VAT_EXEMPTION_BASIS),
np -> P_13_8 ("np I": a service whose place of supply is abroad), or P_13_9 ("np II")
for a business in another EU country, with P_18 = 1 (reverse charge, the buyer's VAT)."""

from __future__ import annotations

from datetime import UTC

from ksef_client.documents.fa3 import FA3XmlValidationError, validate_fa3_xml_xsd
from lxml import etree

from billing.documents import Kind
from billing.errors import BillingError
from billing.parties import Party, reverse_charge
from billing.printing import Printable
from rating.money import MICRO

NS = "http://crd.gov.pl/wzor/2025/06/25/13775/"
SYSTEM = "tollgate"

# rate code -> (net box, VAT box or None, P_12 as the form spells the rate)
BOXES: dict[str, tuple[str, str | None, str]] = {
    "23": ("P_13_1", "P_14_1", "23"),
    "22": ("P_13_1", "P_14_1", "22"),
    "8": ("P_13_2", "P_14_2", "8"),
    "7": ("P_13_2", "P_14_2", "7"),
    "5": ("P_13_3", "P_14_3", "5"),
    "0": ("P_13_6_1", None, "0 KR"),
    "zw": ("P_13_7", None, "zw"),
    "np": ("P_13_8", None, "np I"),
}
# np for a business in another EU country: a service taxed where the buyer is (art. 100
# ust. 1 pkt 4), its own box
NP_EU = ("P_13_9", None, "np II")
BOX_ORDER = ("P_13_1", "P_13_2", "P_13_3", "P_13_6_1", "P_13_7", "P_13_8", "P_13_9")
METHOD = {"transfer": "6", "card": "2", "gateway": "6"}  # FormaPlatnosci: 6 = przelew


class KsefError(BillingError):
    """The document cannot go to KSeF as it is; `field` names why."""


def _q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def _sub(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
    node = etree.SubElement(parent, _q(tag))
    if text is not None:
        node.text = text
    return node


def amount(micro: int) -> str:
    """Micro-units in grosze as the schema writes them: -12.30"""
    sign = "-" if micro < 0 else ""
    whole, cents = divmod(abs(micro) // (MICRO // 100), 100)
    return f"{sign}{whole}.{cents:02d}"


def fa3_xml(p: Printable, exemption_basis: str = "") -> bytes:
    """The FA(3) XML of a B2B VAT document, validated against the schema."""
    doc = p.document
    if doc.kind is Kind.PROFORMA:
        raise KsefError("kind", f"{doc.number} is a pro-forma, not a VAT invoice")
    if p.buyer is None or not p.buyer.business:
        raise KsefError("buyer", f"{doc.number}: KSeF takes B2B invoices; the buyer has no NIP")
    for t in doc.totals:
        if t.code not in BOXES:
            raise KsefError("vat", f"rate {t.code!r} has no box in FA(3)")
        if t.code == "zw" and not exemption_basis:
            raise KsefError(
                "TOLLGATE_BILLING_VAT_EXEMPTION_BASIS", "required for a zw (exempt) line"
            )
    root = etree.Element(_q("Faktura"), nsmap={None: NS})  # type: ignore[dict-item]
    _header(root, p)
    _seller(root, p.seller)
    _buyer(root, p.buyer)
    _fa(root, p, exemption_basis)
    xml = bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    try:
        validate_fa3_xml_xsd(xml)
    except FA3XmlValidationError as e:
        raise KsefError("xml", f"{doc.number} does not pass the FA(3) schema: {e}") from None
    return xml


def _header(root: etree._Element, p: Printable) -> None:
    head = _sub(root, "Naglowek")
    form = _sub(head, "KodFormularza", "FA")
    form.set("kodSystemowy", "FA (3)")
    form.set("wersjaSchemy", "1-0E")
    _sub(head, "WariantFormularza", "3")
    made = p.document.issued_at.astimezone(UTC).replace(microsecond=0)
    _sub(head, "DataWytworzeniaFa", made.isoformat().replace("+00:00", "Z"))
    _sub(head, "SystemInfo", SYSTEM)


def _address(node: etree._Element, party: Party) -> None:
    addr = _sub(node, "Adres")
    _sub(addr, "KodKraju", party.country)
    lines = [line for line in party.address if line] or [party.name]
    _sub(addr, "AdresL1", lines[0])
    if len(lines) > 1:
        _sub(addr, "AdresL2", ", ".join(lines[1:]))


def _seller(root: etree._Element, seller: Party) -> None:
    node = _sub(root, "Podmiot1")
    ids = _sub(node, "DaneIdentyfikacyjne")
    _sub(ids, "NIP", seller.nip)
    _sub(ids, "Nazwa", seller.name)
    _address(node, seller)
    if seller.email:
        _sub(_sub(node, "DaneKontaktowe"), "Email", seller.email)


def _buyer(root: etree._Element, buyer: Party) -> None:
    node = _sub(root, "Podmiot2")
    ids = _sub(node, "DaneIdentyfikacyjne")
    if buyer.nip:
        _sub(ids, "NIP", buyer.nip)
    else:
        _sub(ids, "KodUE", buyer.vat_id[:2])
        _sub(ids, "NrVatUE", buyer.vat_id[2:])
    _sub(ids, "Nazwa", buyer.name)
    _address(node, buyer)
    if buyer.email:
        _sub(_sub(node, "DaneKontaktowe"), "Email", buyer.email)
    _sub(node, "JST", "2")  # not a local-government unit
    _sub(node, "GV", "2")  # not a VAT group member


def _box(code: str, buyer: Party | None) -> tuple[str, str | None, str]:
    if code == "np" and buyer is not None and buyer.eu_business:
        return NP_EU
    return BOXES[code]


def _fa(root: etree._Element, p: Printable, exemption_basis: str) -> None:
    doc = p.document
    fa = _sub(root, "Fa")
    _sub(fa, "KodWaluty", doc.currency)
    _sub(fa, "P_1", doc.issue_date.isoformat())
    _sub(fa, "P_2", doc.number)
    _sub(fa, "P_6", doc.sale_date.isoformat())
    boxes: dict[str, tuple[int, int, str | None]] = {}
    for t in doc.totals:
        net_box, vat_box, _ = _box(t.code, p.buyer)
        net, vat, _v = boxes.get(net_box, (0, 0, vat_box))
        boxes[net_box] = (net + t.net, vat + t.vat, vat_box)
    for box in BOX_ORDER:
        if box in boxes:
            net, vat, vat_box = boxes[box]
            _sub(fa, box, amount(net))
            if vat_box is not None:
                _sub(fa, vat_box, amount(vat))
    _sub(fa, "P_15", amount(doc.gross))
    _annotations(
        fa,
        any(t.code == "zw" for t in doc.totals),
        exemption_basis,
        reverse_charge(doc.rates, p.buyer),
    )
    _sub(fa, "RodzajFaktury", "KOR" if doc.kind is Kind.CREDIT_NOTE else "VAT")
    if doc.kind is Kind.CREDIT_NOTE:
        _sub(fa, "PrzyczynaKorekty", doc.note or "korekta ceny")
        _sub(fa, "TypKorekty", "2")  # takes effect at the corrected invoice's date
        corrected = _sub(fa, "DaneFaKorygowanej")
        when = p.related.corrected_issue_date
        assert when is not None  # a credit note always corrects an issued invoice
        _sub(corrected, "DataWystFaKorygowanej", when.isoformat())
        _sub(corrected, "NrFaKorygowanej", p.related.corrected_number)
        if p.related.corrected_ksef_number:
            _sub(corrected, "NrKSeF", "1")
            _sub(corrected, "NrKSeFFaKorygowanej", p.related.corrected_ksef_number)
        else:
            _sub(corrected, "NrKSeFN", "1")
    for i, (line, rate) in enumerate(zip(doc.lines, doc.rates, strict=True), 1):
        row = _sub(fa, "FaWiersz")
        _sub(row, "NrWierszaFa", str(i))
        _sub(row, "P_7", str(line["text"]))
        _sub(row, "P_8A", str(line.get("unit") or "szt."))
        qty = int(line.get("quantity") or 1)
        gross = int(line["gross"])
        _sub(row, "P_8B", str(qty))
        if gross % (qty * (MICRO // 100)) == 0:
            _sub(row, "P_9B", amount(gross // qty))
        _sub(row, "P_11A", amount(gross))
        _sub(row, "P_12", _box(rate, p.buyer)[2])
    _payment(fa, p)


def _annotations(fa: etree._Element, exempt: bool, basis: str, reverse: bool) -> None:
    node = _sub(fa, "Adnotacje")
    _sub(node, "P_16", "2")  # no cash accounting method
    _sub(node, "P_17", "2")  # no self-billing
    _sub(node, "P_18", "1" if reverse else "2")  # "odwrotne obciążenie": the buyer's VAT
    _sub(node, "P_18A", "2")  # no split payment
    exemption = _sub(node, "Zwolnienie")
    if exempt:
        _sub(exemption, "P_19", "1")
        _sub(exemption, "P_19A", basis)
    else:
        _sub(exemption, "P_19N", "1")
    _sub(_sub(node, "NoweSrodkiTransportu"), "P_22N", "1")
    _sub(node, "P_23", "2")
    _sub(_sub(node, "PMarzy"), "P_PMarzyN", "1")


def _payment(fa: etree._Element, p: Printable) -> None:
    doc = p.document
    if doc.gross <= 0:
        return
    node = _sub(fa, "Platnosc")
    if p.related.paid:
        _sub(node, "Zaplacono", "1")
        _sub(node, "DataZaplaty", doc.sale_date.isoformat())
    elif doc.due_date is not None:
        _sub(_sub(node, "TerminPlatnosci"), "Termin", doc.due_date.isoformat())
    _sub(node, "FormaPlatnosci", METHOD.get(doc.payment_method, "6"))
    if p.seller.iban and not p.related.paid:
        account = _sub(node, "RachunekBankowy")
        _sub(account, "NrRB", p.seller.iban)
        if p.seller.bank:
            _sub(account, "NazwaBanku", p.seller.bank)
