-- A finding lifted as a false alarm was no episode of abuse: the repeat rule (a new finding
-- within TOLLGATE_ABUSE_REPEAT_WINDOW_DAYS of an earlier episode proposes closing the
-- account) does not count it.
alter table abuse_findings add column false_alarm boolean not null default false;
