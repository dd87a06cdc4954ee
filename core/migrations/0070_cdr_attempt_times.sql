-- Attempt times and post-dial delay: each failed attempt in `attempts` may now carry its
-- start (epoch ms of the INVITE) and PDD (ms to the first ringing or progress) as
-- carrier:code:start:pdd; (older rows keep carrier:code;). The attempt on the carrier the
-- call used gets the same two as `carrier_timing` (start ms:pdd ms; '' when unknown or for
-- calls over the single trunk).
alter table cdrs add column carrier_timing text not null default '';
