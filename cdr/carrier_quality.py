"""Carriers' quality over a period from the CDRs: attempts (every failed one and the one
the call went out through last), answered calls, ASR (answered / attempts), ACD (billsec /
answered), the SIP codes of failed attempts and post-dial delay (PDD: INVITE to the first
ringing or progress, or to the answer) over the attempts whose times were recorded (failed
ones from `attempts`, the one on the carrier used from `carrier_timing`; rows from before
attempt times have none and are left out of it). Each attempt counts once: an unanswered
attempt on the carrier used is often the last failed one already (`final_listed`)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from core.pg import Conn

QUALITY = """
with routed as (
  select carrier, answered, billsec, attempts, carrier_timing,
         -- the attempt on the carrier used is the last failed one already when it did not
         -- answer (not when the caller gave up while it rang): switch.attempt_times
         coalesce(not answered and carrier <> '' and split_part(
           substring(attempts from '([^;]*);$'), ':', 1) = carrier, false) as listed
  from cdrs
  where started_at >= $1 and started_at < $2 and state = 'finished' and routes <> ''
), pdds as (
  select split_part(a, ':', 1) as carrier, nullif(split_part(a, ':', 4), '') as pdd
  from routed, regexp_split_to_table(attempts, ';') as a where a <> ''
  union all
  select carrier, nullif(split_part(carrier_timing, ':', 2), '') from routed
  where carrier <> '' and not listed
), delay as (
  select carrier, count(*) as measured, round(avg(pdd::bigint)) as pdd_avg,
         percentile_disc(0.5) within group (order by pdd::bigint) as pdd_p50,
         percentile_disc(0.95) within group (order by pdd::bigint) as pdd_p95
  from pdds where pdd is not null group by carrier
), failed as (
  select split_part(a, ':', 1) as carrier, split_part(a, ':', 2) as code
  from routed, regexp_split_to_table(attempts, ';') as a where a <> ''
), final as (
  select carrier, count(*) filter (where not listed) as calls,
         count(*) filter (where answered) as answered,
         coalesce(sum(billsec) filter (where answered), 0) as billsec
  from routed where carrier <> '' group by carrier
), lost as (
  select carrier, sum(n) as failed, jsonb_object_agg(code, n) as codes
  from (select carrier, code, count(*) as n from failed group by carrier, code) c
  group by carrier
)
select coalesce(f.carrier, l.carrier) as carrier, coalesce(f.calls, 0) as finals,
       coalesce(f.answered, 0) as answered, coalesce(f.billsec, 0) as billsec,
       coalesce(l.failed, 0) as failed, coalesce(l.codes, '{}'::jsonb)::text as codes,
       coalesce(d.measured, 0) as measured, d.pdd_avg, d.pdd_p50, d.pdd_p95
from final f full join lost l on l.carrier = f.carrier
left join delay d on d.carrier = coalesce(f.carrier, l.carrier)
order by 1
"""


async def carrier_quality(conn: Conn, start: datetime, end: datetime) -> list[dict[str, Any]]:
    out = []
    for r in await conn.fetch(QUALITY, start, end):
        attempts = int(r["finals"]) + int(r["failed"])
        answered = r["answered"]
        out.append({
            "carrier": r["carrier"],
            "attempts": attempts,
            "answered": answered,
            "asr_percent": round(100 * answered / attempts, 1) if attempts else None,
            "acd_s": round(int(r["billsec"]) / answered, 1) if answered else None,
            "failure_codes": json.loads(r["codes"]),
            # PDD in ms over the attempts with recorded times (`pdd_attempts` of them)
            "pdd_attempts": int(r["measured"]),
            "pdd_avg_ms": None if r["pdd_avg"] is None else int(r["pdd_avg"]),
            "pdd_p50_ms": r["pdd_p50"],
            "pdd_p95_ms": r["pdd_p95"],
        })  # fmt: skip
    return out
