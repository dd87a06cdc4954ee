-- Panel API tokens. Only the SHA-256 of a token's secret is kept: the secret itself is shown
-- once, when the token is created. A customer token is bound to one account; an operator
-- token to none.
create table panel_tokens (
    id            text primary key,  -- public handle: listings, revocation, audit
    secret_sha256 bytea not null unique,
    role          text not null check (role in ('customer', 'operator')),
    account       text references accounts(id) on delete cascade,
    label         text not null default '',
    created_at    timestamptz not null default now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz,
    check ((role = 'customer') = (account is not null))
);
create index panel_tokens_account on panel_tokens (account);
