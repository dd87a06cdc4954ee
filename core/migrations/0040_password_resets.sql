-- Password reset by e-mail. A login may carry its own e-mail address; a customer login
-- without one is reached at its customer record's address. A reset token is kept only as
-- its SHA-256 (the secret travels in the mail alone), is single-use and expires; issuing
-- one is counted per login so a login cannot be flooded with mail.
alter table panel_logins add column email text check (email is null or email ~ '^[^@\s]+@[^@\s]+$');
create index panel_logins_email on panel_logins (lower(email)) where email is not null;

create table panel_password_resets (
    id          bigserial primary key,
    login       text not null references panel_logins(login) on delete cascade,
    token_hash  bytea not null unique,
    recipient   text not null,
    created_at  timestamptz not null,
    expires_at  timestamptz not null,
    used_at     timestamptz,             -- set when used, or when a later reset supersedes it
    check (expires_at > created_at)
);
create index panel_password_resets_login on panel_password_resets (login, created_at);
