"""The buyer of an account's documents, from its customer record (customers/).

Documents keep what this returned when they were issued. None when the account has no
customer record: the document is issued without buyer data (a receipt-style invoice) and is
printed with today's record once the account has one."""

from __future__ import annotations

from billing.parties import Party
from core.pg import Conn
from customers.model import Customer, CustomerKind
from customers.store import customer_of_account


def party_of(c: Customer) -> Party:
    """A consumer is printed without a NIP even if one was recorded (the law allows an
    invoice to a natural person without it); a business with its NIP or EU VAT number."""
    consumer = c.kind is CustomerKind.CONSUMER
    city = " ".join(p for p in (c.postal_code, c.city) if p)
    return Party(
        name=c.legal_name,
        address=tuple(p for p in (c.street, city) if p),
        country=c.country,
        nip="" if consumer else c.tax_id or "",
        vat_id="" if consumer or c.tax_id else c.vat_id or "",
        consumer=consumer,
        email=c.email,
        language=c.language,
    )


async def buyer_of(conn: Conn, account: str) -> Party | None:
    customer = await customer_of_account(conn, account)
    return None if customer is None else party_of(customer)
