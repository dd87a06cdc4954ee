"""The CDR pipeline: from the ledger's per-shard Redis streams to PostgreSQL, exactly once.

Public surface: `model.Cdr`, `writer.CdrWriter` (batches, COPY + idempotent upsert, ack after
commit), `partitions` (monthly partitions), `queries` (reading CDRs back), `reconcile`
(against Asterisk's own CDRs), `csv_safe` (the spreadsheet-safe cell rule of every export)."""
