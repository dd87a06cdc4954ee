-- Billing: invoices and credit notes (immutable once issued, numbered gaplessly per series),
-- recurring subscription fees, re-ratings applied, and what the prepaid lifecycle did.
-- Money is integer micro-units; every amount here is gross (VAT included), like the ledger.

-- A plan's recurring fees, charged per calendar month (account's zone) as ledger entries
-- of kind fee, referenced 'fee/YYYY-MM/name' so that a month is charged once.
create table subscriptions (
    account     text not null references accounts(id),
    name        text not null,
    monthly_fee bigint not null check (monthly_fee > 0),
    started_on  date not null,
    ended_on    date,
    primary key (account, name),
    check (ended_on is null or ended_on >= started_on)
);

-- One counter per series (INV/2026/11): the issuing transaction increments it and holds the
-- row lock until it commits or rolls back, so numbers are gapless and never reused.
create table document_series (
    series   text primary key,
    last_seq integer not null check (last_seq >= 0)
);

-- Issued documents. `source` says what a document was issued for (a top-up entry, an
-- account's month, a re-rating) and is unique: issuing is idempotent. Corrections are new
-- documents (credit notes pointing at the invoice they correct), never edits.
create table billing_documents (
    id          bigserial primary key,
    number      text not null unique,
    series      text not null,
    seq         integer not null check (seq > 0),
    kind        text not null check (kind in ('invoice', 'topup_invoice', 'credit_note')),
    account     text not null references accounts(id),
    source      text not null unique,
    period      text,
    corrects    bigint references billing_documents(id),
    currency    char(3) not null,
    vat_rate_bp integer not null check (vat_rate_bp between 0 and 10000),
    net         bigint not null,
    vat         bigint not null,
    gross       bigint not null,
    sale_date   date not null,
    issue_date  date not null,
    due_date    date,
    issued_at   timestamptz not null,
    lines       jsonb not null,
    note        text not null default '',
    created_at  timestamptz not null default now(),
    unique (series, seq),
    check (net + vat = gross),
    check ((kind = 'credit_note') = (corrects is not null))
);
create index billing_documents_account on billing_documents (account, issued_at, id);

create function billing_document_immutable() returns trigger
language plpgsql as $$
begin
    raise exception 'billing document % is issued and cannot be changed or deleted; '
        'issue a credit note instead', old.number;
end $$;
create trigger billing_documents_immutable before update or delete on billing_documents
    for each row execute function billing_document_immutable();

-- A re-rating applied to an account's month with one deck version; `reference` is that of
-- its ledger adjustment (none when the difference is zero).
create table rerates (
    id           bigserial primary key,
    account      text not null references accounts(id),
    period       text not null,
    deck         text not null,
    deck_version integer not null,
    reference    text not null,
    total        bigint not null,
    entry_seq    bigint,
    applied_at   timestamptz not null default now(),
    unique (account, reference)
);
-- What each call costs after a re-rating: the latest row of a call overrides its CDR's cost.
create table rerate_calls (
    rerate_id bigint not null references rerates(id),
    call_id   text not null,
    rated     bigint not null check (rated >= 0),
    charge    bigint not null check (charge >= 0),
    primary key (rerate_id, call_id)
);
create index rerate_calls_call on rerate_calls (call_id, rerate_id);

-- Actions the prepaid lifecycle took, at most one of a kind per stretch of negative balance.
create table billing_events (
    id             bigserial primary key,
    account        text not null references accounts(id),
    kind           text not null
                   check (kind in ('foreign_numbers_removed', 'closed_negative_balance')),
    negative_since timestamptz not null,
    effective_at   timestamptz not null,
    detail         jsonb not null default '{}',
    created_at     timestamptz not null default now(),
    unique (account, kind, negative_since)
);
