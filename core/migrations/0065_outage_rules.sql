-- Outage compensation rules: the operator's terms §9.7 (1/30 of the average monthly use per
-- started day, 'use_per_day') or the other provider's terms §10c (the subscription extended
-- by a month per started 12 hours beyond the first day, 'month_per_12h'). An account without
-- a row follows TOLLGATE_OUTAGE_RULE.
create table outage_rules (
    account text primary key references accounts(id),
    rule    text not null check (rule in ('use_per_day', 'month_per_12h')),
    set_by  text not null default '',
    set_at  timestamptz not null
);

-- What each compensation was computed by: the rule and, for month_per_12h, the months
-- (use_total then holds the monthly fees the months are worth).
alter table outage_compensations
    add column rule text not null default 'use_per_day'
        check (rule in ('use_per_day', 'month_per_12h')),
    add column months integer not null default 0 check (months between 0 and 12);
