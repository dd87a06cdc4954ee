-- A deck version's row and prefix counts, kept with it: re-importing an unchanged deck
-- answers from its hash and these, instead of counting its rates (a scan of deck_rates
-- that took seconds for a large deck). And its compiled form (the JSON Redis serves):
-- start-up puts a deck Redis lost back by copying it, not by rebuilding it row by row;
-- versions imported before this have none and are compiled as before.
alter table decks add column rows integer;
alter table decks add column prefixes integer;
update decks d set
    rows = (select count(*) from deck_rates r where r.deck_id = d.id),
    prefixes = (select count(distinct prefix) from deck_rates r where r.deck_id = d.id);
alter table decks alter column rows set not null;
alter table decks alter column prefixes set not null;
alter table decks add column compiled text;
