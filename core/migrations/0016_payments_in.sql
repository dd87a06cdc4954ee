-- Payments in: credits read from bank statements (MT940, camt.053) and payment-gateway
-- notifications. Each is kept once, keyed by the id its sender gave it, and booked as one
-- ledger entry of kind payment (reference bank/<id> or gateway/<gateway>/<id>), so a
-- statement imported twice or a notification replayed books nothing more.
create table bank_transactions (
    id           bigserial primary key,
    bank_ref     text not null unique,      -- the bank's id of the transaction
    source       text not null,             -- the statement file it came in
    booked_on    date not null,
    amount       bigint not null check (amount > 0),
    currency     char(3) not null,
    title        text not null,
    counterparty text not null default '',
    counter_iban text not null default '',
    virtual_iban text not null default '',  -- the (virtual) account credited, when told
    account      text references accounts(id),
    matched_by   text check (matched_by in ('virtual_account', 'document', 'reference',
                                            'operator')),
    assigned_by  text,
    imported_at  timestamptz not null,
    booked_at    timestamptz,
    check ((booked_at is null) or (account is not null))
);
create index bank_transactions_unbooked on bank_transactions (id) where booked_at is null;

-- A virtual account number (IBAN) the bank gives one customer account to pay into.
create table virtual_accounts (
    iban    text primary key,
    account text not null references accounts(id)
);

-- Payment-gateway notifications accepted (signature checked); a replay of one is refused
-- as a duplicate by the primary key.
create table gateway_payments (
    gateway     text not null,
    payment_id  text not null,
    account     text not null references accounts(id),
    amount      bigint not null check (amount > 0),
    currency    char(3) not null,
    received_at timestamptz not null,
    primary key (gateway, payment_id)
);
