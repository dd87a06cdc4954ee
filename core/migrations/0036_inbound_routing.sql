-- Inbound calls ring the account's SIP logins, and are limited per account.
--
-- `accounts.sip_logins`: the account's ACTIVE SIP logins, what an inbound call to one of its
-- numbers rings (mirrored to Redis with the other settings, so the authorization that admits
-- the call names them). Kept by a trigger on `sip_logins`, in the same transaction as the
-- change of the login, whoever makes it.
alter table accounts add column sip_logins text[] not null default '{}';
-- Inbound limits, counted in the Redis authorization like the outbound ones: concurrent
-- inbound calls (0 = only the account's max_calls, which counts every call) and new inbound
-- calls per second (0 = no limit).
alter table accounts add column inbound_max_calls integer not null default 0
    check (inbound_max_calls >= 0);
alter table accounts add column inbound_cps integer not null default 5
    check (inbound_cps >= 0);

create function accounts_refresh_sip_logins(acct text) returns void language plpgsql as $$
begin
    -- The account's row is locked first; the list is read by the next statement, which (in
    -- a volatile function) sees what concurrent transactions committed meanwhile: two logins
    -- created at once for one account both end up in the list. NO KEY UPDATE: the login's
    -- own foreign key holds a KEY SHARE lock on the row, which this must not wait for (two
    -- such transactions would deadlock).
    perform 1 from accounts where id = acct for no key update;
    update accounts set sip_logins = array(
        select login from sip_logins where account = acct and status = 'active' order by login
    ) where id = acct;
end $$;

create function sip_logins_to_account() returns trigger language plpgsql as $$
begin
    if tg_op in ('UPDATE', 'DELETE') then
        perform accounts_refresh_sip_logins(old.account);
    end if;
    if tg_op in ('INSERT', 'UPDATE') and (tg_op = 'INSERT' or new.account <> old.account) then
        perform accounts_refresh_sip_logins(new.account);
    end if;
    return null;
end $$;

create trigger sip_logins_to_account after insert or update of status, account or delete
    on sip_logins for each row execute function sip_logins_to_account();

update accounts a set sip_logins = array(
    select login from sip_logins s where s.account = a.id and s.status = 'active' order by login
);
