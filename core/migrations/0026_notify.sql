-- Notifications (notify/): who is told what, through which channel, and whether it arrived.

-- An account's contact details and preferences. No row: the account gets the defaults
-- (TOLLGATE_NOTIFY_LANGUAGE, TOLLGATE_NOTIFY_THRESHOLDS) and has no channel to be reached on.
create table notify_contacts (
    account     text primary key references accounts(id),
    language    text not null default '' check (language in ('', 'pl', 'en')),
    email       text not null default '',
    webhook_url text not null default '',
    -- low-balance thresholds in micro-units; empty: the default setting
    thresholds  bigint[] not null default '{}',
    -- kinds the customer opted out of (only kinds the law lets one opt out of are accepted)
    opted_out   text[] not null default '{}',
    updated_at  timestamptz not null
);

-- Where the balance stood against each threshold the last time the worker looked: a notice
-- is due when it goes below (`below` turns true, `crossings` counts up) and the threshold is
-- re-armed only when the balance is above it again, so a balance hovering around it sends one.
create table notify_thresholds (
    account    text not null references accounts(id),
    threshold  bigint not null,
    below      boolean not null,
    crossings  integer not null default 0,
    changed_at timestamptz not null,
    primary key (account, threshold)
);

-- Every notice, one row per channel; (account, kind, channel, dedupe_key) is the identity
-- that makes creating a notice repeat-safe.
create table notices (
    id              bigserial primary key,
    account         text not null references accounts(id),
    kind            text not null,
    channel         text not null check (channel in ('email', 'webhook', 'none')),
    recipient       text not null default '',
    language        text not null check (language in ('pl', 'en')),
    subject         text not null,
    body            text not null,
    data            jsonb not null default '{}',
    dedupe_key      text not null,
    status          text not null check (status in ('pending', 'sent', 'failed', 'opted_out')),
    attempts        integer not null default 0,
    next_attempt_at timestamptz not null,
    last_error      text not null default '',
    created_at      timestamptz not null,
    sent_at         timestamptz,
    unique (account, kind, channel, dedupe_key)
);
create index notices_due on notices (next_attempt_at) where status = 'pending';
create index notices_account on notices (account, created_at desc);
