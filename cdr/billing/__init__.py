"""Billing: call listings, invoices and credit notes, subscription fees, re-rating, the
postpaid overdue rule and the prepaid lifecycle, all from CDRs and ledger entries.

Every amount is integer micro-units and gross (VAT included), as the ledger moves it;
invoices split their gross total into net and VAT once (see vat.py)."""
