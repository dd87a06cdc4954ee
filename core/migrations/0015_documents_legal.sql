-- Documents as Polish law wants them: VAT per line with totals per rate, the seller and the
-- buyer as they were when the document was issued, and pro-formas in their own series.
-- Older documents keep NULL here: one rate (vat_rate_bp) and the parties of today.
alter table billing_documents add column vat_totals jsonb;
alter table billing_documents add column seller jsonb;
alter table billing_documents add column buyer jsonb;
alter table billing_documents add column payment_method text not null default '';

alter table billing_documents drop constraint billing_documents_kind_check;
alter table billing_documents add constraint billing_documents_kind_check
    check (kind in ('invoice', 'topup_invoice', 'credit_note', 'proforma'));

-- KSeF: what was sent for a B2B document and the reference number KSeF gave it. Documents
-- themselves are immutable; this row records the submission's progress.
create table ksef_submissions (
    document_id       bigint primary key references billing_documents(id),
    element_reference text not null,        -- the session or request KSeF answered with
    ksef_number       text,                 -- the KSeF number once KSeF accepted the invoice
    status            text not null check (status in ('sent', 'accepted', 'rejected')),
    detail            text not null default '',
    xml_sha256        text not null,
    sent_at           timestamptz not null,
    updated_at        timestamptz not null
);
