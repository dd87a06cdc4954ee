-- Numbers (DIDs): the operator's inventory, each assigned to at most one account, and what
-- happened to each (assignment, release, quarantine, port-out) with who and when.
create table numbers (
    e164              text primary key check (e164 ~ '^[+][1-9][0-9]{1,14}$'),
    country           char(2) not null,
    type              text not null
                      check (type in ('geographic', 'mobile', 'non_geographic', 'foreign')),
    carrier           text not null,
    monthly_cost      bigint not null check (monthly_cost >= 0),   -- what the carrier charges
    monthly_price     bigint not null check (monthly_price >= 0),  -- what the customer pays
    status            text not null default 'free'
                      check (status in ('free', 'assigned', 'quarantined', 'ported_out')),
    account           text references accounts(id),
    assigned_at       timestamptz,
    quarantined_until timestamptz,
    created_at        timestamptz not null,
    updated_at        timestamptz not null,
    check ((status = 'assigned') = (account is not null)),
    check ((status = 'quarantined') = (quarantined_until is not null))
);
create index numbers_account on numbers (account) where account is not null;
create index numbers_quarantine on numbers (quarantined_until) where status = 'quarantined';

create table number_events (
    id      bigserial primary key,
    number  text not null references numbers(e164),
    event   text not null,
    account text,
    actor   text not null default '',
    detail  jsonb not null default '{}',
    at      timestamptz not null
);
create index number_events_number on number_events (number, id);
create index number_events_account on number_events (account, at) where account is not null;

-- What the ledger reads in Redis: the account's numbers (a call may present only these) and
-- the one it presents by default. Kept on the account's row so that mirroring and Redis
-- repair restore them from the row alone. After a port-out no new numbers are assigned
-- (§4.6 of the terms).
alter table accounts add column numbers text[] not null default '{}';
alter table accounts add column caller_id text;
alter table accounts add column ported_out_at timestamptz;
