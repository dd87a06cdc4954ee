-- A deck version's rates, stored as Redis serves them: one row per prefix, its rows one
-- JSON text [[line, name, connect_fee, rate, rate_unit_s, increment_s, from_s, band], ...]
-- in line order. An import streams them in with COPY (a row per prefix, not per rate, and
-- no index per rate), and Redis gets its copy by concatenating them, so neither the import
-- nor the publication holds the whole deck in memory. It replaces the row per rate
-- (deck_rates) and the one-text copy of the whole deck (decks.compiled), converted here.
-- No foreign key to decks: its check, a lookup per row, took longer than the import
-- itself; the only writer takes deck_id from the decks row it inserted in the same
-- transaction, and versions are never deleted.
create table deck_prefixes (
    deck_id    bigint not null,
    prefix     text not null,
    first_line integer not null,
    rows       text not null,
    primary key (deck_id, first_line)
);
insert into deck_prefixes (deck_id, prefix, first_line, rows)
select deck_id, prefix, min(line),
       json_agg(json_build_array(line, name, connect_fee, rate, rate_unit_s, increment_s,
                                 from_s, band) order by line)::text
from deck_rates group by deck_id, prefix;
drop table deck_rates;
alter table decks drop column compiled;
