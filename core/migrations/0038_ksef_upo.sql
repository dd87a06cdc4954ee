-- KSeF's official receipt (UPO, urzędowe poświadczenie odbioru) of an accepted invoice, as
-- KSeF signed it: kept with the submission, fetched after acceptance (or later, by
-- `bill ksef --upo`, when KSeF had not produced it yet).
alter table ksef_submissions
    add column upo    text,
    add column upo_at timestamptz;
