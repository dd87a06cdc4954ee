-- Exchange rates for buy decks in another currency than the sale: 1 base = rate quote from
-- effective_at on. The rate is kept as the exact decimal string it was given (the
-- conversion is done in rational arithmetic, never in floating point). Setting the same
-- pair at the same instant again replaces it (a correction); the event table keeps who
-- set what.
create table fx_rates (
    base         char(3) not null check (base ~ '^[A-Z]{3}$'),
    quote        char(3) not null check (quote ~ '^[A-Z]{3}$' and quote <> base),
    effective_at timestamptz not null,
    rate         text not null check (rate ~ '^(0|[1-9][0-9]{0,8})(\.[0-9]{1,12})?$'),
    source       text not null default '',
    set_by       text not null,
    set_at       timestamptz not null,
    primary key (base, quote, effective_at)
);

create table fx_rate_events (
    id           bigserial primary key,
    base         char(3) not null,
    quote        char(3) not null,
    effective_at timestamptz not null,
    rate         text not null,
    previous     text,
    source       text not null default '',
    actor        text not null,
    at           timestamptz not null
);
