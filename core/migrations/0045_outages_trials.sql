-- Outage compensation (terms §9.7-9.9) and trials (the other provider's terms).

-- An operator records an outage; each affected customer is credited 1/30 of their average
-- monthly use over the 3 months before the day it began, per started day of an outage
-- longer than 24 hours (at most 12 months of it).
create table outages (
    id          bigserial primary key,
    started_at  timestamptz not null,
    ended_at    timestamptz not null check (ended_at > started_at),
    accounts    text[],              -- null: every account
    reason      text not null default '',
    recorded_by text not null default '',
    recorded_at timestamptz not null
);

-- What each account was credited for an outage (the ledger entry's reference:
-- outage/ID); one row per outage and account, so compensating again books nothing.
create table outage_compensations (
    outage_id   bigint not null references outages(id),
    account     text not null references accounts(id),
    days        integer not null,
    use_total   bigint not null,     -- micro-units used in the window
    window_from timestamptz not null,
    window_to   timestamptz not null,
    amount      bigint not null check (amount > 0),
    booked_at   timestamptz not null,
    primary key (outage_id, account)
);

-- Trials (the other provider's terms: a 14-day trial): a credit and an end date; at the end
-- the account is blocked until paid, then closed after the configured period unless paid.
-- blocked_at/closed_at/paid_at: the steps taken (each once).
create table trials (
    account     text primary key references accounts(id),
    credit      bigint not null check (credit >= 0),
    started_at  timestamptz not null,
    ends_at     timestamptz not null check (ends_at > started_at),
    close_at    timestamptz not null check (close_at >= ends_at),
    blocked_at  timestamptz,
    closed_at   timestamptz,
    paid_at     timestamptz
);
create index trials_open on trials (ends_at) where closed_at is null and paid_at is null;
