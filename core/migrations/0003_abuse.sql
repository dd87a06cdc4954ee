-- Abuse detection: per-account thresholds, findings and their history.

-- Thresholds of one rule for one account, laid over the global ones (keys are the rule's
-- threshold names; checked by the application when set and when loaded).
create table abuse_overrides (
    account    text not null references accounts(id) on delete cascade,
    rule       text not null,
    params     jsonb not null default '{}',
    updated_at timestamptz not null default now(),
    primary key (account, rule)
);

-- One finding per account, rule, subject (what inside the rule fired: a signal, a caller id,
-- a number range) and window (UTC day of the first event); a rule firing again in the same
-- window updates it (hits, evidence, a higher severity) instead of opening another.
-- action: the strongest action carried out for it (record < alert < suspend).
-- suspended: this finding holds the account suspended (lifting it resumes the account when
-- no other finding holds it).
create table abuse_findings (
    id            bigserial primary key,
    account       text not null,
    rule          text not null,
    subject       text not null default '',
    window_key    text not null,
    severity      text not null check (severity in ('info', 'warning', 'critical')),
    status        text not null default 'open'
                  check (status in ('open', 'acknowledged', 'lifted', 'closed')),
    action        text not null default 'record' check (action in ('record', 'alert', 'suspend')),
    suspended     boolean not null default false,
    evidence      jsonb not null,
    hits          integer not null default 1,
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now(),
    status_by     text,
    status_reason text,
    status_at     timestamptz,
    unique (account, rule, subject, window_key)
);
create index abuse_findings_status on abuse_findings (status, created_at desc);
create index abuse_findings_account on abuse_findings (account, created_at desc);

-- What happened to a finding and who did it: created, escalated, actions, status changes.
create table abuse_finding_events (
    id         bigserial primary key,
    finding_id bigint not null references abuse_findings(id) on delete cascade,
    event      text not null,
    who        text not null default '',
    why        text not null default '',
    detail     jsonb not null default '{}',
    at         timestamptz not null default now()
);
create index abuse_finding_events_finding on abuse_finding_events (finding_id, at);
