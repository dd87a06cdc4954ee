-- Notices' e-mails go through the documents' outbox (one SMTP configuration): the language
-- of a message, sent as Content-Language.
alter table mail_outbox add column language text not null default '';
