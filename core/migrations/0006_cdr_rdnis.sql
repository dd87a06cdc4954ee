-- The redirecting number of forwarded legs (Asterisk's RDNIS), for abuse detection and
-- complaints about forwarded calls.
alter table cdrs add column rdnis text not null default '';
