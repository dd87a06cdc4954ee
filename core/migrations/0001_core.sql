-- Rate decks (versioned, source of truth), accounts and their money ledger.
create table decks (
    id          bigserial primary key,
    name        text not null,
    version     integer not null,
    currency    char(3) not null,
    timezone    text not null,
    decimals    smallint not null,
    rounding    text not null,
    bands       jsonb not null,
    source      text not null,
    sha256      text not null,
    imported_at timestamptz not null default now(),
    unique (name, version)
);
create table deck_heads (
    name            text primary key,
    current_version integer not null,
    switched_at     timestamptz not null default now()
);
create table deck_rates (
    deck_id     bigint not null references decks(id) on delete cascade,
    line        integer not null,
    prefix      text not null,
    name        text not null,
    connect_fee bigint not null check (connect_fee >= 0),
    rate        bigint not null check (rate >= 0),
    rate_unit_s integer not null check (rate_unit_s > 0),
    increment_s integer not null check (increment_s > 0),
    from_s      integer not null check (from_s >= 0),
    band        text not null,
    primary key (deck_id, line),
    unique (deck_id, prefix, band, from_s)
);
create table accounts (
    id               text primary key,
    kind             text not null check (kind in ('prepaid', 'postpaid')),
    status           text not null check (status in ('active', 'suspended', 'closed')),
    currency         char(3) not null,
    country          text not null,
    timezone         text not null,
    deck             text,
    credit_limit     bigint not null default 0 check (credit_limit >= 0),
    max_calls        integer not null default 10 check (max_calls >= 0),
    cps              integer not null default 2 check (cps >= 0),
    daily_cap        bigint not null default 0 check (daily_cap >= 0),
    allow_premium    boolean not null default false,
    allow_high_risk  boolean not null default false,
    blocked_prefixes text[] not null default '{}',
    invoice_overdue  boolean not null default false,
    ledger_seq       bigint not null default 0,
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now()
);
-- Money that moves outside calls: top-ups, payments, adjustments. Calls are debited by the
-- ledger in Redis and recorded as CDRs; balance = sum(entries) - sum(call costs).
create table ledger_entries (
    account    text not null references accounts(id),
    seq        bigint not null,
    kind       text not null check (kind in ('topup', 'payment', 'adjustment', 'fee')),
    amount     bigint not null,
    reference  text,
    note       text not null default '',
    created_at timestamptz not null default now(),
    primary key (account, seq),
    unique (account, reference)
);
create table account_events (
    id      bigserial primary key,
    account text not null references accounts(id),
    event   text not null,
    detail  jsonb not null default '{}',
    at      timestamptz not null default now()
);
