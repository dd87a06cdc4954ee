-- The CDR writer claims each call in cdr_ids and stores its row, in the same transaction,
-- with the started_at the claim holds (a new call: the row's own; a call seen before: the
-- one it was first stored with, ALIGN in cdr/store.py). The foreign key checked that again
-- for every inserted row, one lookup in cdr_ids per row: about a quarter of the writer's
-- PostgreSQL time, measured by bench/cdr_ingest.py. cdr_ids keeps the uniqueness of a call
-- (switch, account, call id) across partitions; tests/integration/test_cdr_writer.py checks
-- that a call recorded twice with two starts stays one row in the first start's partition.
alter table cdrs drop constraint cdrs_switch_account_call_id_started_at_fkey;

-- Without the foreign key, the unique (started_at, switch, account, call_id) on cdr_ids was
-- only retention's range scan (delete where started_at < cutoff): a plain index on
-- started_at does that with one index entry of 8 bytes per call instead of four columns.
alter table cdr_ids drop constraint cdr_ids_started_at_switch_account_call_id_key;
create index cdr_ids_started_at on cdr_ids (started_at);
