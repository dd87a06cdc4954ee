-- Which accounts a repeat `bill run` may leave alone. A complete run of an account for a
-- period records that it left nothing to do (period, settings digest, the run's instant and
-- the next instant at which billing work could appear with no change at all: `due_at`).
-- Every change to what billing reads marks the account again, in the change's own
-- transaction, by the triggers below: `gen` moves on and `period` is cleared. A run writes a
-- mark only if `gen` is still what it read before billing the account, so a change made
-- while the account was being billed is never lost.
--
-- Writes of the bill run itself (on its connection, `tollgate.billing_run` set) are not
-- changes: the run has just seen them. CDRs are not watched (a trigger per call would cost
-- the writer): a prepaid account's calls reach billing through its Redis balance, which the
-- run reads for every account, and a postpaid account is left alone only once its period's
-- invoice is issued, after which new calls of the period no longer change it.
create sequence billing_marks_gen;

create table billing_marks (
    account   text primary key,  -- no foreign key: marks follow deletions in any order
    gen       bigint not null,
    period    text,              -- null: billing work may be waiting
    settings  text,
    billed_at timestamptz,
    due_at    timestamptz        -- null: nothing falls due with time alone
);

create function billing_mark(acct text) returns void language sql as $$
    insert into billing_marks (account, gen) values (acct, nextval('billing_marks_gen'))
    on conflict (account) do update set gen = excluded.gen, period = null
$$;

-- tg_argv[0]: the column naming the account
create function billing_marks_changed() returns trigger language plpgsql as $$
declare
    before_acct text;
    after_acct text;
begin
    if tg_op in ('UPDATE', 'DELETE') then
        before_acct := to_jsonb(old) ->> tg_argv[0];
        perform billing_mark(before_acct);
    end if;
    if tg_op in ('INSERT', 'UPDATE') then
        after_acct := to_jsonb(new) ->> tg_argv[0];
        if after_acct is distinct from before_acct then
            perform billing_mark(after_acct);
        end if;
    end if;
    return null;
end $$;

-- a plan's fee or terms: every account holding it
create function billing_marks_plan_changed() returns trigger language plpgsql as $$
begin
    perform billing_mark(p.account) from account_plans p where p.plan = old.name;
    return null;
end $$;

create function billing_marks_gone() returns trigger language plpgsql as $$
begin
    delete from billing_marks where account = old.id;
    return null;
end $$;

-- a table emptied at once: every mark goes
create function billing_marks_truncated() returns trigger language plpgsql as $$
begin
    delete from billing_marks;
    return null;
end $$;

create trigger billing_marks_accounts after insert or update on accounts for each row
    when (current_setting('tollgate.billing_run', true) is distinct from 'on')
    execute function billing_marks_changed('id');
create trigger billing_marks_accounts_gone after delete on accounts
    for each row execute function billing_marks_gone();
create trigger billing_marks_plans after update or delete on plans for each row
    execute function billing_marks_plan_changed();
create trigger billing_marks_accounts_truncated after truncate on accounts
    for each statement execute function billing_marks_truncated();

do $$
declare
    t text;
begin
    foreach t in array array['ledger_entries', 'subscriptions', 'billing_documents',
                             'billing_events', 'account_plans', 'rerates'] loop
        execute format(
            'create trigger billing_marks_%1$s after insert or update or delete on %1$I'
            ' for each row when (current_setting(''tollgate.billing_run'', true)'
            ' is distinct from ''on'') execute function billing_marks_changed(''account'')',
            t);
        execute format(
            'create trigger billing_marks_%1$s_truncated after truncate on %1$I'
            ' for each statement execute function billing_marks_truncated()', t);
    end loop;
end $$;
