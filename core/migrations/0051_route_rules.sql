-- Operators' routing choices: for an account ('' = every account) and a destination prefix
-- (E.164 digits; '' = every destination), carriers tried first (pin, in order), carriers
-- never tried (exclude) and whether calls may be routed at a loss (allow_loss). Every rule
-- matching a call applies: excludes add up, any allow_loss allows, the most specific pin
-- (longest prefix, then the account's own) wins.
create table route_rules (
    account    text not null default '',
    prefix     text not null default '' check (prefix ~ '^[0-9]{0,15}$'),
    pin        text[] not null default '{}',
    exclude    text[] not null default '{}',
    allow_loss boolean not null default false,
    updated_at timestamptz not null,
    updated_by text not null,
    primary key (account, prefix)
);
