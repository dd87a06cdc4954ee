-- E-mail to send (documents with their PDF, notices): written by whoever has something to
-- say, in its own transaction, and sent by notify's sender, which retries with backoff.
-- Writing here never waits for an SMTP server, so a mail server down never holds billing.
create table mail_outbox (
    id              bigserial primary key,
    key             text not null unique,   -- what it is for (document/INV/...): sent once
    recipient       text not null,
    subject         text not null,
    body            text not null,
    attachment_name text,
    attachment_type text,
    attachment      bytea,
    created_at      timestamptz not null,
    attempts        integer not null default 0,
    next_attempt_at timestamptz not null,
    sent_at         timestamptz,
    failed_at       timestamptz,             -- gave up after the last attempt
    message_id      text,
    last_error      text not null default ''
);
create index mail_outbox_due on mail_outbox (next_attempt_at)
    where sent_at is null and failed_at is null;
