-- The prepaid lifecycle's foreign-destination block is lifted when the balance is back to
-- >= 0: that is recorded as its own event, keyed like the block it lifts.
alter table billing_events drop constraint billing_events_kind_check;
alter table billing_events add constraint billing_events_kind_check
    check (kind in ('foreign_numbers_removed', 'foreign_numbers_restored',
                    'closed_negative_balance'));
