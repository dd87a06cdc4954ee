-- Where a prepaid account's current stretch of negative balance began, as the last bill run
-- found it. A hint, never the truth: the run checks it against the events since then (and
-- looks further back only when the balance was already negative at the mark), so the
-- lifecycle no longer reads every ledger entry and charged CDR the account ever had.
create table billing_negative_marks (
    account    text primary key references accounts(id),
    since      timestamptz not null,
    checked_at timestamptz not null
);
