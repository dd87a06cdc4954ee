-- Inbound calls (a carrier's call to a customer's number) are rated and recorded like
-- outbound ones; `direction` tells them apart in listings, statements and abuse detection.
alter table cdrs add column direction text not null default 'out'
    check (direction in ('in', 'out'));
