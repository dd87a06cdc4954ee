-- A call's claim (switch, account, call id) is now the unique index of the cdrs partition
-- holding its row, instead of a row of its own in cdr_ids. Storing a new call cost two
-- heaps and four index entries (cdr_ids: key and call id; cdrs: key and account); it now
-- costs one heap and two (the partition's unique index, the account index): what a plain
-- COPY into a table with the same indexes costs (bench/cdr_ingest.py).
--
-- A unique index of a partitioned table must contain the partition key, so the index lives
-- on each partition (cdr_ensure_month makes it with the partition). Within a month a
-- second row of a call fails the writer's insert, as the claim's key did; a twin in the
-- neighbouring month is found by the writer's edge check (cdr/ids.py), as before. The
-- index leads with the call id: reconciliation looks calls up by the switch's id alone.
--
-- The parent's primary key (switch, account, call_id, started_at) is dropped: each
-- partition's unique index implies it. cdr_ids stays as a view (the claims are the rows).

-- every existing partition gets its unique index (one row per call: the claims kept it so)
do $$
declare
    part text;
begin
    for part in
        select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid
        where i.inhparent = 'cdrs'::regclass
    loop
        execute format('create unique index if not exists %I on %I (call_id, switch, account)',
            part || '_call', part);
    end loop;
end $$;

alter table cdrs drop constraint cdrs_pkey;
drop table cdr_ids;

create view cdr_ids as
select switch, account, call_id, started_at,
       date_trunc('month', started_at at time zone 'UTC')::date as month
from cdrs;

-- The partition of cdrs holding `at` (UTC month) with its unique index, created if missing.
-- Safe to call concurrently.
create or replace function cdr_ensure_month(at timestamptz) returns text
language plpgsql as $$
declare
    -- month arithmetic on UTC wall time: timestamptz + '1 month' would use the session zone
    first timestamp := date_trunc('month', at at time zone 'UTC');
    part text := 'cdrs_' || to_char(first, 'YYYY_MM');
begin
    if to_regclass(quote_ident(part)) is null then
        perform pg_advisory_xact_lock(hashtext('tollgate.cdr_partitions'));
        if to_regclass(quote_ident(part)) is null then
            execute format('create table %I partition of cdrs for values from (%L) to (%L)',
                part, first at time zone 'UTC', (first + interval '1 month') at time zone 'UTC');
            execute format('create unique index %I on %I (call_id, switch, account)',
                part || '_call', part);
        end if;
    end if;
    return part;
end $$;
