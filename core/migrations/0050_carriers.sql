-- Carriers: who terminates the operator's calls, at the price of a buy-rate deck (any deck
-- imported with the deck import), their preference among equal costs (lower priority first),
-- their capacity (0 = unlimited) and the Asterisk endpoint calls go out through ('' = the
-- carrier's name). Disabled carriers stay for the CDRs that name them.
create table carriers (
    name       text primary key,
    deck       text not null,
    trunk      text not null default '',
    priority   integer not null default 100 check (priority >= 0),
    max_calls  integer not null default 0 check (max_calls >= 0),
    cps        integer not null default 0 check (cps >= 0),
    disabled   boolean not null default false,
    created_at timestamptz not null,
    updated_at timestamptz not null
);

create table carrier_events (
    id      bigserial primary key,
    carrier text not null references carriers(name),
    event   text not null,
    actor   text not null,
    detail  jsonb not null default '{}',
    at      timestamptz not null
);
create index carrier_events_by_carrier on carrier_events (carrier, id);
