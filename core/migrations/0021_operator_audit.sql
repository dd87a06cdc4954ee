-- Every operator action, and every operator read of customer data: who, what, when, and for
-- changes the state before and after. Rows are only ever added.
create table operator_audit (
    id        bigserial primary key,
    at        timestamptz not null,
    actor     text not null,            -- the login, or the token's label or id
    token_id  text not null,
    read_only boolean not null,         -- a support operator
    action    text not null,            -- the endpoint: "post account", "get balance", ...
    method    text not null,
    path      text not null,
    status    integer not null,
    account   text,                     -- the customer account concerned, if any
    subject   text,                     -- what else it concerned: a finding, a call, a deck
    before    jsonb,
    after     jsonb,
    detail    jsonb not null default '{}'
);
create index operator_audit_at on operator_audit (at desc, id desc);
create index operator_audit_account on operator_audit (account, at desc);
