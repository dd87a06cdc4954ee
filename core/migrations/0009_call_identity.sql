-- A call is identified by its switch, its account and the switch's call id. Asterisk's
-- uniqueid is unique per box only, and the ledger keeps one record per (account, switch,
-- call id): a call id alone made a second account's call, debited in Redis, end up in
-- cdr_rejects instead of the customer's listing.

alter table cdr_ids add column switch text not null default '';
update cdr_ids i set switch = c.switch
  from cdrs c where c.call_id = i.call_id and c.started_at = i.started_at and c.switch <> '';

alter table cdrs drop constraint cdrs_call_id_started_at_fkey;
alter table cdrs drop constraint cdrs_pkey;
alter table cdr_ids drop constraint cdr_ids_pkey;
alter table cdr_ids drop constraint cdr_ids_started_at_call_id_key;

alter table cdr_ids add primary key (switch, account, call_id);
-- target of the foreign key, and retention's range scans
alter table cdr_ids add unique (started_at, switch, account, call_id);
create index cdr_ids_call_id on cdr_ids (call_id);  -- lookups by a call id alone

alter table cdrs add primary key (switch, account, call_id, started_at);
alter table cdrs add foreign key (switch, account, call_id, started_at)
  references cdr_ids (switch, account, call_id, started_at);

-- A re-rated call is one of the account's calls: its switch and call id name it.
alter table rerate_calls add column switch text not null default '';
update rerate_calls rc set switch = c.switch
  from rerates x, cdrs c
  where x.id = rc.rerate_id and c.account = x.account and c.call_id = rc.call_id;
alter table rerate_calls drop constraint rerate_calls_pkey;
alter table rerate_calls add primary key (rerate_id, switch, call_id);
drop index rerate_calls_call;
create index rerate_calls_call on rerate_calls (switch, call_id, rerate_id);
