-- Warn, then suspend (terms §5.1) and closure proposed on a repeat (acceptable-use policy).

alter table abuse_findings drop constraint abuse_findings_action_check;
alter table abuse_findings add constraint abuse_findings_action_check
    check (action in ('record', 'alert', 'warn', 'suspend'));

-- last_seen_at: event time of the latest hit (from the CDRs, not the detector's clock);
-- warned_at/deadline_at: the warning sent and the deadline it gave; warning_id: the warned
-- finding this one continues (same account and rule, warning still in force);
-- closure: an account closure proposed to an operator on a repeat, and its answer.
alter table abuse_findings
    add column last_seen_at timestamptz,
    add column warned_at    timestamptz,
    add column deadline_at  timestamptz,
    add column warning_id   bigint references abuse_findings(id),
    add column closure      text check (closure in ('proposed', 'accepted', 'rejected')),
    add column closure_at   timestamptz;

create index abuse_findings_deadline on abuse_findings (deadline_at)
    where warning_id is null and deadline_at is not null and not suspended
      and status in ('open', 'acknowledged');
create index abuse_findings_warning on abuse_findings (warning_id) where warning_id is not null;
create index abuse_findings_closure on abuse_findings (closure_at) where closure = 'proposed';
