-- Call detail records, moved from the ledger's Redis streams by the CDR writer.
--
-- cdrs is partitioned by UTC month of started_at (authorized_at, or ended_at - billsec for a
-- call that never reached authorize). There is no default partition: a row for a month
-- without a partition is an error, never silently parked where retention and partition
-- creation would have to scan it; cdr_ensure_month() creates months ahead of need.

-- One row per call_id, whatever its started_at. A unique key on a partitioned table must
-- contain the partition key, so uniqueness of call_id alone lives here: the writer inserts
-- the pair first and the foreign key below forbids a cdrs row with any other started_at.
create table cdr_ids (
    call_id    text primary key,
    account    text not null,
    started_at timestamptz not null,
    unique (started_at, call_id)  -- target of the foreign key, and retention's range scans
);

create table cdrs (
    call_id       text not null,
    started_at    timestamptz not null,
    account       text not null,
    state         text not null check (state in ('denied', 'expired', 'finished')),
    decision      text not null default '',
    reason        text not null default '',
    detail        text not null default '',
    granted_s     integer not null default 0 check (granted_s >= 0),
    reserved      bigint not null default 0 check (reserved >= 0),
    raw           text not null default '',
    e164          text not null default '',
    number_class  text not null default '',
    caller        text not null default '',
    switch        text not null default '',
    prefix        text not null default '',
    rate_name     text not null default '',
    deck          text not null default '',
    deck_version  integer not null default 0 check (deck_version >= 0),
    currency      text not null default '',
    authorized_at timestamptz,
    answered_at   timestamptz,
    ended_at      timestamptz not null,
    billsec       integer not null default 0 check (billsec >= 0),
    answered      boolean not null default false,
    rated_cost    bigint not null default 0 check (rated_cost >= 0),
    cost          bigint not null default 0 check (cost >= 0),
    disposition   text not null default '',
    hangup_cause  text not null default '',
    emergency     boolean not null default false,
    unauthorized  boolean not null default false,
    prior_state   text not null default '',
    stream_id     text not null,
    written_at    timestamptz not null default now(),
    primary key (call_id, started_at),
    foreign key (call_id, started_at) references cdr_ids (call_id, started_at)
) partition by range (started_at);
create index cdrs_account_started_at on cdrs (account, started_at);

-- Stream entries the writer could not turn into a row: kept (bytes that are not UTF-8
-- escaped), then acknowledged, so one bad entry never blocks its stream. Unique per entry:
-- a re-read is a no-op.
create table cdr_rejects (
    id          bigserial primary key,
    stream      text not null,
    stream_id   text not null,
    call_id     text not null default '',
    fields      jsonb not null,
    error       text not null,
    rejected_at timestamptz not null default now(),
    unique (stream, stream_id)
);

-- The partition holding `at` (UTC month), created if missing. Safe to call concurrently.
create function cdr_ensure_month(at timestamptz) returns text
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
        end if;
    end if;
    return part;
end $$;

-- The current month and the next two exist from the start; the writer keeps it so.
select cdr_ensure_month(
    (date_trunc('month', now() at time zone 'UTC') + make_interval(months => m)) at time zone 'UTC')
from generate_series(0, 2) as m;
