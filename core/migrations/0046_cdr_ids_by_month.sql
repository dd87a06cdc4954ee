-- cdr_ids (a call's identity and the start it was first stored with) is partitioned by
-- month like cdrs, so retention drops a month of both instead of deleting rows (a DELETE of
-- 1.64M claims took 69 s; dropping the CDR partition of the same month 19 ms).
--
-- A unique key of a partitioned table must contain the partition key. The key here is the
-- claim's UTC month (`month`, the first day), not its start: two starts of one call in the
-- same month still collide in the primary key, so the writer's COPY fast path still fails on
-- a replay with another start. A replay whose start falls in the neighbouring month (a call
-- across midnight at a month's end) is found by the writer's edge check (cdr/ids.py).

alter table cdr_ids rename to cdr_ids_unpartitioned;
alter index cdr_ids_pkey rename to cdr_ids_unpartitioned_pkey;
alter index cdr_ids_call_id rename to cdr_ids_unpartitioned_call_id;
alter index cdr_ids_started_at rename to cdr_ids_unpartitioned_started_at;

create table cdr_ids (
    switch     text not null default '',
    account    text not null,
    call_id    text not null,
    started_at timestamptz not null,
    month      date not null,  -- first day of started_at's UTC month: the partition key
    check (month = date_trunc('month', started_at at time zone 'UTC')::date),
    primary key (switch, account, call_id, month)
) partition by range (month);
create index cdr_ids_call_id on cdr_ids (call_id);  -- lookups by a call id alone

-- The partitions of the month holding `at` (UTC) in cdrs and cdr_ids, created if missing.
-- Safe to call concurrently.
create or replace function cdr_ensure_month(at timestamptz) returns text
language plpgsql as $$
declare
    -- month arithmetic on UTC wall time: timestamptz + '1 month' would use the session zone
    first timestamp := date_trunc('month', at at time zone 'UTC');
    part text := 'cdrs_' || to_char(first, 'YYYY_MM');
    ids text := 'cdr_ids_' || to_char(first, 'YYYY_MM');
begin
    if to_regclass(quote_ident(part)) is null or to_regclass(quote_ident(ids)) is null then
        perform pg_advisory_xact_lock(hashtext('tollgate.cdr_partitions'));
        if to_regclass(quote_ident(part)) is null then
            execute format('create table %I partition of cdrs for values from (%L) to (%L)',
                part, first at time zone 'UTC', (first + interval '1 month') at time zone 'UTC');
        end if;
        if to_regclass(quote_ident(ids)) is null then
            execute format('create table %I partition of cdr_ids for values from (%L) to (%L)',
                ids, first::date, (first + interval '1 month')::date);
        end if;
    end if;
    return part;
end $$;

-- every month that has CDRs or claims gets both partitions, then the claims move over
select cdr_ensure_month(to_date(substr(c.relname, 6), 'YYYY_MM')::timestamp at time zone 'UTC')
from pg_inherits i join pg_class c on c.oid = i.inhrelid
where i.inhparent = 'cdrs'::regclass and c.relname ~ '^cdrs_\d{4}_\d{2}$';
select cdr_ensure_month(m) from (
    select distinct date_trunc('month', started_at at time zone 'UTC') at time zone 'UTC' as m
    from cdr_ids_unpartitioned
) months;
insert into cdr_ids (switch, account, call_id, started_at, month)
select switch, account, call_id, started_at,
       date_trunc('month', started_at at time zone 'UTC')::date
from cdr_ids_unpartitioned;
drop table cdr_ids_unpartitioned;
