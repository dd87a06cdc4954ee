-- Plans and minute bundles: a plan gives free seconds per calendar month (in the account's
-- time zone) to destinations picked by number class and/or E.164 prefix, for a fee per
-- period charged in advance. PostgreSQL is the truth; the account's hash in Redis mirrors
-- its current assignments (field `bundles`) and keeps the usage per period.
create table plans (
    name text primary key,
    period text not null default 'month' check (period = 'month'),
    fee bigint not null check (fee >= 0),  -- net micro-units per period; VAT as other fees
    currency text not null,
    disabled_at timestamptz,
    created_at timestamptz not null,
    updated_at timestamptz not null
);

create table plan_allowances (
    plan text not null references plans(name) on delete cascade,
    idx integer not null check (idx >= 0),
    label text not null default '',
    seconds bigint not null check (seconds > 0),
    classes text[] not null default '{}',   -- empty: every class the call may have
    prefixes text[] not null default '{}',  -- empty: every destination
    primary key (plan, idx)
);

-- One plan at a time per account: assignments of an account never overlap.
create table account_plans (
    id bigserial primary key,
    account text not null references accounts(id),
    plan text not null references plans(name),
    start_at timestamptz not null,
    end_at timestamptz,
    created_at timestamptz not null,
    check (end_at is null or end_at > start_at)
);
create index account_plans_account on account_plans (account, start_at);
create index account_plans_plan on account_plans (plan);

-- What operators did to plans and assignments (who, when, what).
create table plan_events (
    id bigserial primary key,
    plan text not null,
    account text,
    event text not null,
    actor text not null,
    detail jsonb not null default '{}',
    at timestamptz not null
);
create index plan_events_plan on plan_events (plan, at);

-- The bundle a call drew on (`assignment.allowance:YYYY-MM`) and the seconds it used; cost
-- stays what the balance paid (the overage).
alter table cdrs add column bundle text not null default '';
alter table cdrs add column bundle_seconds integer not null default 0;
