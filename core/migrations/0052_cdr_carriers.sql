-- Least-cost routing on the CDR: the carriers the grant offered (in try order), the one the
-- call went out through last (the one that answered, for an answered call) and every
-- attempt as carrier:SIP code; ('' for calls over the single trunk).
alter table cdrs add column routes text not null default '';
alter table cdrs add column carrier text not null default '';
alter table cdrs add column attempts text not null default '';
