"""Notifications: e-mail (documents with their PDF, notices the terms require) through an
outbox table and a real SMTP client (aiosmtplib), retried with backoff.

Public surface: `outbox.Mail` / `outbox.enqueue` (anyone with something to send, in its own
transaction), `sender.deliver_due` (one pass over what is due), `settings.SmtpSettings`."""
