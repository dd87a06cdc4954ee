-- The complaints register (terms §12): filed by a customer about calls, an invoice or a
-- period; answered by an operator before the deadline, or deemed accepted after it.
create table complaints (
    id              bigserial primary key,
    account         text not null references accounts(id),
    call_ids        text[] not null default '{}',  -- "switch/call_id" of the calls concerned
    invoice         text,                           -- a document's number
    period          text,                           -- YYYY-MM
    event_at        timestamptz not null,           -- when what is complained about happened
    description     text not null,
    requested       bigint not null default 0 check (requested >= 0),  -- credit asked (micro)
    answer_days     integer not null check (answer_days > 0),  -- the terms in force at filing
    filed_at        timestamptz not null,
    due_at          timestamptz not null,           -- the end of the last day to answer
    status          text not null check (status in
                        ('filed', 'acknowledged', 'accepted', 'rejected', 'deemed_accepted')),
    acknowledged_at timestamptz,
    answered_at     timestamptz,
    answer          text not null default '',
    credited        bigint not null default 0 check (credited >= 0),
    credit_note     text,                           -- the credit note's number, if one
    appeal_until    timestamptz,                    -- a rejection may be appealed until then
    check (invoice is not null or period is not null or cardinality(call_ids) > 0),
    check (due_at > filed_at)
);
create index complaints_open on complaints (due_at) where status in ('filed', 'acknowledged');
create index complaints_account on complaints (account, filed_at desc);
