"""The documents a batched bill run reports are the documents it stored: built from the
values it copied (not read back), they must be what reading the rows gives, field for field
and as printed."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from billing.documents import by_source
from billing.run import bill_run
from runtime.services import Services
from tests.conftest import AccountFactory
from tests.integration.test_bill_batches import INSTANTS, PERIOD, SETTINGS, population


async def test_reported_documents_are_the_stored_ones(
    svc: Services, make_account: AccountFactory
) -> None:
    await population(svc, make_account, "d")
    assert svc.pool is not None
    # the instant given in a zone other than the one PostgreSQL hands back (UTC)
    now = INSTANTS[0].astimezone(ZoneInfo("Europe/Warsaw"))
    report = await bill_run(svc.accounts, PERIOD, SETTINGS, now, batch=3)
    assert not report.failed
    kinds = {d.kind.value for d in report.documents}
    assert {"invoice", "topup_invoice"} <= kinds  # both paths of the batch issued one
    async with svc.pool.acquire() as conn:
        for doc in report.documents:
            stored = await by_source(conn, doc.source)
            assert stored is not None
            assert doc == stored
            assert doc.as_dict() == stored.as_dict()  # instants printed in the same zone
