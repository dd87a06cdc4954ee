-- Price changes with notice (terms §7.1: an increase announced at least one billing period
-- before it comes into force). A deck version takes effect at an instant; the version in
-- force at an instant is the highest version whose effective_at has come (a newer version
-- supersedes an older one still pending). Versions stored before this took effect at import.
alter table decks add column effective_at timestamptz;
update decks set effective_at = imported_at;
alter table decks alter column effective_at set not null;
alter table decks alter column effective_at set default now();
create index decks_effective on decks (name, effective_at);

-- A version that raises prices for some destinations, as imported: the version it was
-- compared with, the earliest effective instant the notice period allowed, and whether an
-- operator forced an earlier one (who, why). Customers on the deck are notified from this.
create table deck_price_changes (
    deck            text not null,
    version         integer not null,
    previous        integer not null,
    effective_at    timestamptz not null,
    noticed_at      timestamptz not null,
    earliest_at     timestamptz not null,
    increases       integer not null,
    forced          boolean not null default false,
    forced_by       text not null default '',
    reason          text not null default '',
    primary key (deck, version),
    foreign key (deck, version) references decks (name, version) on delete cascade
);

-- The destinations whose price goes up in that version (money in micro-units per rate unit,
-- as in deck_rates): what the notice lists.
create table deck_increases (
    deck            text not null,
    version         integer not null,
    prefix          text not null,
    name            text not null,
    band            text not null,
    from_s          integer not null,
    old_connect_fee bigint not null,
    new_connect_fee bigint not null,
    old_per_minute  bigint not null,  -- micro-units per 60 s, cut down
    new_per_minute  bigint not null,
    old_increment_s integer not null,
    new_increment_s integer not null,
    primary key (deck, version, prefix, band, from_s),
    foreign key (deck, version) references deck_price_changes (deck, version) on delete cascade
);
