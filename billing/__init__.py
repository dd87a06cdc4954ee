"""Billing: call listings, invoices and credit notes, subscription fees, re-rating, the
postpaid overdue rule and the prepaid lifecycle, all from CDRs and ledger entries.

Public surface: `run.bill_run` (the idempotent daily run), `listing.listing`,
`documents` (issue, numbering, immutability), `payments.pay` / `money_received`,
`rerate.rerate`, `period.Period`, `settings.BillingSettings`, `cli.register`.
The ledger's amounts are integer micro-units and gross (VAT included); documents are in
grosze (see vat.py and rounding.py). Documents and payments of the operator's model
(faktura VAT, KSeF, bank statements) grow here."""
