-- Customers: the person or company behind accounts (the terms' contracting party), their
-- verification (who and when) and the two dates the contract starts from (§3.1, §3.7-3.8).
create table customers (
    id                  text primary key,
    kind                text not null check (kind in ('consumer', 'business')),
    legal_name          text not null,
    tax_id              text,   -- Polish NIP, 10 digits, checksum-validated
    vat_id              text,   -- EU VAT id with its country prefix (PL..., DE...)
    street              text not null default '',
    postal_code         text not null default '',
    city                text not null default '',
    country             char(2) not null default 'PL',
    email               text not null,
    phone               text,   -- E.164
    language            text not null default 'pl',
    verification        text not null default 'pending'
                        check (verification in ('pending', 'verified', 'rejected')),
    verification_by     text,
    verification_at     timestamptz,
    verification_note   text not null default '',
    first_topup_at      timestamptz,
    contract_started_at timestamptz,
    anonymised_at       timestamptz,
    created_at          timestamptz not null,
    updated_at          timestamptz not null,
    check ((verification = 'pending') = (verification_at is null))
);
create index customers_tax_id on customers (tax_id) where tax_id is not null;

-- Changes to a customer record: who changed what, when (the record's own history).
create table customer_events (
    id       bigserial primary key,
    customer text not null references customers(id),
    event    text not null,
    actor    text not null default '',
    detail   jsonb not null default '{}',
    at       timestamptz not null
);
create index customer_events_customer on customer_events (customer, id);

-- An account belongs to at most one customer; `unverified` is what the ledger reads in Redis
-- (the account's customer is pending or rejected), kept beside the account so that Redis
-- repair and mirroring restore it from the account's row alone.
alter table accounts add column customer_id text references customers(id);
alter table accounts add column unverified boolean not null default false;
create index accounts_customer on accounts (customer_id) where customer_id is not null;

-- The contract starts when both have happened: the first top-up of any of the customer's
-- accounts and the verification. The top-up's own instant (the entry's created_at, which the
-- caller sets) is recorded, in the top-up's transaction.
create function customers_first_topup() returns trigger
language plpgsql as $$
begin
    if new.kind = 'topup' then
        update customers c
           set first_topup_at = new.created_at,
               contract_started_at = case when c.verification = 'verified'
                   then greatest(new.created_at, c.verification_at) end
          from accounts a
         where a.id = new.account and c.id = a.customer_id
           and (c.first_topup_at is null or c.first_topup_at > new.created_at);
    end if;
    return new;
end $$;
create trigger ledger_entries_first_topup after insert on ledger_entries
    for each row execute function customers_first_topup();
