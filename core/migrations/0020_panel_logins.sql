-- Sign-in with a login and a password (the browser's way in; API tokens stay for programs).
-- Only an argon2id hash of the password is kept. After too many failures in a row a login is
-- locked for a while, whatever password is tried. A successful sign-in yields a short-lived
-- panel token bound to the login (so revoking or removing the login ends its sessions).
-- Operators are 'support' (reads only) or 'admin'.
create table panel_logins (
    login           text primary key check (login ~ '^[a-z0-9][a-z0-9._@-]{2,63}$'),
    role            text not null check (role in ('customer', 'support', 'admin')),
    account         text references accounts(id) on delete cascade,
    password_hash   text not null,
    failures        integer not null default 0,
    locked_until    timestamptz,
    created_at      timestamptz not null default now(),
    password_set_at timestamptz not null default now(),
    check ((role = 'customer') = (account is not null))
);
create index panel_logins_account on panel_logins (account);

alter table panel_tokens add column read_only boolean not null default false;
alter table panel_tokens add column login text references panel_logins(login) on delete cascade;
