-- Buy-side re-ratings: routed calls' buy cost priced again with the carrier's deck (the
-- version in force at each call's start, or one named) and converted with the exchange
-- rate of the answer. The CDR's buy_deck, buy_deck_version and buy_cost are updated in
-- place, so margin reports and carrier reconciliation read the new cost; what they were
-- before is kept here, per call, with who re-rated and when.
create table buy_rerates (
    id           bigserial primary key,
    started_from timestamptz not null,
    started_to   timestamptz not null,
    carrier      text not null default '',
    deck         text not null default '',
    account      text not null default '',
    calls        integer not null,
    changed      integer not null,
    total_diff   bigint not null,
    actor        text not null,
    applied_at   timestamptz not null
);

create table buy_rerate_calls (
    rerate_id   bigint not null references buy_rerates(id),
    switch      text not null,
    account     text not null,
    call_id     text not null,
    started_at  timestamptz not null,
    old_deck    text not null,
    old_version integer not null,
    old_cost    bigint not null,
    new_deck    text not null,
    new_version integer not null,
    new_cost    bigint not null,
    primary key (rerate_id, switch, account, call_id)
);
create index buy_rerate_calls_call on buy_rerate_calls (switch, account, call_id, rerate_id);
