-- What the call cost the operator on the carrier it went out through: the buy deck (and its
-- version, to re-rate) and the exact buy cost in micro-units (0 without carriers). The
-- margin is cost - buy_cost (reports compute it; a stored column would rewrite the table).
alter table cdrs add column buy_deck text not null default '';
alter table cdrs add column buy_deck_version integer not null default 0;
alter table cdrs add column buy_cost bigint not null default 0;
