"""Routes in the authorization on the 6-node Redis Cluster: margin refusals, the CDR's
carrier fields and the single-trunk case as on one Redis (tests/integration/
test_carrier_grants.py), exchange rates written in the carriers' slot (test_buy_side.py);
carriers' max calls are not counted on a cluster (their counters would be in another slot
than the account's script), documented in the README."""

from rating.ledger import CallRequest, Reason
from runtime.services import Services
from tests.conftest import AccountFactory
from tests.integration.test_buy_side import (
    test_a_call_through_a_carrier_in_euro_is_routed_and_its_buy_cost_converted,
)
from tests.integration.test_carrier_grants import (
    PLN,
    WARSAW,
    _carriers,
    test_a_lost_carriers_copy_never_opens_the_single_trunk,
    test_margin_refusal_is_a_recorded_decision_with_its_sip_code,
    test_the_finish_records_the_carrier_used_and_failed_attempts,
    test_without_carriers_the_single_trunk_grant_is_unchanged,
)

__all__ = [
    "test_a_call_through_a_carrier_in_euro_is_routed_and_its_buy_cost_converted",
    "test_a_lost_carriers_copy_never_opens_the_single_trunk",
    "test_margin_refusal_is_a_recorded_decision_with_its_sip_code",
    "test_the_finish_records_the_carrier_used_and_failed_attempts",
    "test_without_carriers_the_single_trunk_grant_is_unchanged",
]


async def test_capacity_is_not_counted_on_a_cluster(
    svc: Services, make_account: AccountFactory
) -> None:
    assert not svc.ledger.settings.carrier_capacity
    a = await make_account(balance=50 * PLN)
    await _carriers(svc, cheap_max=1)
    grants = [await svc.ledger.authorize(CallRequest(a.id, f"k{i}", WARSAW)) for i in range(2)]
    assert [(g.reason, g.routes) for g in grants] == [(Reason.OK, ("trunk-a", "trunk-b"))] * 2
