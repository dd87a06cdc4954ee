-- Documents are in grosze; `exact` is the amount in micro-units the document stands for in
-- the ledger (its lines before they were rounded). The difference is booked as a rounding
-- entry, never left as a debt. NULL for documents issued before: exact = gross.
alter table billing_documents add column exact bigint;
