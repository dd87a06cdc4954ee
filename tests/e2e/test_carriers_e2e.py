"""Least-cost routing through the real Asterisk: the cheaper carrier (a SIPp answering 503)
is tried first and the call moves on to the next one, which answers: the phone sees one
call, answered, and tollgate one CDR. A destination only a dearer-than-the-sale carrier
serves is refused with 403 and reaches no carrier."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime

from rating.carrier_store import CarrierStore
from rating.carriers import Carrier
from rating.deck import build_deck
from tests.conftest import install_deck
from tests.e2e.conftest import E2E
from tests.e2e.rig import SippCarrier

PLN = 1_000_000
HEAD = "prefix,name,connect_fee,rate,rate_unit_s,increment_s,from_s,band\n"


async def _carrier(e2e: E2E, name: str, endpoint: str, rows: str) -> None:
    assert e2e.svc.pool is not None
    data = {"name": f"buy-{name}", "currency": "PLN", "rates": "r.csv", "bands": {}}
    deck = build_deck(data, (HEAD + rows).encode(), manifest_file="m", rates_file="r.csv")
    await install_deck(e2e.svc, deck)
    store = CarrierStore(e2e.svc.pool, e2e.svc.redis, e2e.svc.settings.keyspace)
    await store.create(Carrier(name, deck.name, trunk=endpoint), at=datetime.now(UTC),
                       actor="e2e")  # fmt: skip


async def test_a_503_moves_the_call_to_the_next_carrier(e2e: E2E) -> None:
    await e2e.account("phone-a", balance=20 * PLN)
    # retail sells Warsaw at 0.045-0.09/min: both carriers are profitable, "down" cheaper
    await _carrier(e2e, "down", "carrier-b", "4822,Warsaw,0,0.0100,60,1,0,*\n")
    await _carrier(e2e, "up", "carrier", "48,Poland,0,0.0300,60,1,0,*\n")
    with SippCarrier(e2e.config.carrier_port, ip="127.0.0.11", scenario="uas_503.xml") as down:
        result = await e2e.call("221234567", "phone-a", hangup_after_ms=1500)
        refused = down.numbers()
    assert result.status == 200 and result.answered
    assert refused == ["+48221234567"]  # tried first, answered 503
    assert e2e.new_carrier_calls() == ["+48221234567"]  # then the next one, which answered
    [cdr] = await e2e.cdrs("phone-a", 1)
    assert (cdr["decision"], cdr["reason"], cdr["disposition"]) == ("ALLOW", "OK", "ANSWER")
    # the CDR names the carriers offered, the one used and each failed attempt's SIP code
    assert e2e.svc.pool is not None
    row = await e2e.svc.pool.fetchrow(
        "select routes, carrier, attempts, carrier_timing, buy_deck, buy_cost, billsec"
        " from cdrs where call_id = $1",
        cdr["call_id"],
    )
    assert row is not None
    assert (row["routes"], row["carrier"]) == ("down,up", "up")
    # each attempt's SIP code, start (epoch ms) and post-dial delay (empty: "down" never
    # rang), and the same two of the attempt on "up" (which rang before it answered)
    lines = e2e.rig.outcome_lines()
    match = re.fullmatch(r"down:503:(\d{13}):(\d*);", row["attempts"])
    assert match is not None, (row["attempts"], lines)
    start, pdd = (int(x) for x in row["carrier_timing"].split(":"))
    assert int(match[1]) <= start and 0 <= pdd < 5000, (row["carrier_timing"], lines)
    # the dialplan's failover step moved the call's place from "down" to "up" (position 2)
    call = await e2e.svc.ledger.call("e2e-a", cdr["call_id"])
    assert call.get("failover:1") == "2:up:carrier", call
    keys = e2e.svc.settings.keyspace
    assert [await e2e.svc.redis.zcard(keys.carrier_open(c)) for c in ("down", "up")] == [0, 0]
    # bought from "up" at 0.03/min, per second: 500 micro-units a second
    assert row["billsec"] >= 1
    assert (row["buy_deck"], row["buy_cost"]) == ("buy-up", 500 * row["billsec"])
    # carrier quality in tollgate serve's metrics, per trunk
    failures = 'tollgate_carrier_failures_total{code="503",trunk="carrier-b"}'
    answered = 'tollgate_carrier_answered_total{trunk="carrier"}'
    assert await asyncio.to_thread(e2e.metric, failures) >= 1
    assert await asyncio.to_thread(e2e.metric, answered) >= 1
    pdds = 'tollgate_carrier_pdd_seconds_count{trunk="carrier"}'
    assert await asyncio.to_thread(e2e.metric, pdds) >= 1


async def test_a_destination_only_a_dearer_carrier_serves_is_refused(e2e: E2E) -> None:
    await e2e.account("phone-b", balance=20 * PLN)
    await _carrier(e2e, "dear", "carrier", "4860,Mobile,0,0.2500,60,1,0,*\n")  # sold at 0.19
    refused = await e2e.call("601234567", "phone-b")
    assert refused.status == 403 and not refused.answered
    [cdr] = await e2e.cdrs("phone-b", 1)
    assert (cdr["decision"], cdr["reason"]) == ("DENY", "NO_PROFITABLE_ROUTE")
    assert e2e.new_carrier_calls() == []
