"""Carriers' quality over a period from the CDRs: attempts (every failed one and the one
the call went out through last), answered calls, ASR (answered / attempts), ACD (billsec /
answered) and the SIP codes of failed attempts. PDD needs attempt times, not recorded yet."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from core.pg import Conn

QUALITY = """
with routed as (
  select carrier, answered, billsec, attempts from cdrs
  where started_at >= $1 and started_at < $2 and state = 'finished' and routes <> ''
), failed as (
  select split_part(a, ':', 1) as carrier, split_part(a, ':', 2) as code
  from routed, regexp_split_to_table(attempts, ';') as a where a <> ''
), final as (
  select carrier, count(*) as calls, count(*) filter (where answered) as answered,
         coalesce(sum(billsec) filter (where answered), 0) as billsec
  from routed where carrier <> '' group by carrier
), lost as (
  select carrier, sum(n) as failed, jsonb_object_agg(code, n) as codes
  from (select carrier, code, count(*) as n from failed group by carrier, code) c
  group by carrier
)
select coalesce(f.carrier, l.carrier) as carrier, coalesce(f.calls, 0) as finals,
       coalesce(f.answered, 0) as answered, coalesce(f.billsec, 0) as billsec,
       coalesce(l.failed, 0) as failed, coalesce(l.codes, '{}'::jsonb)::text as codes
from final f full join lost l on l.carrier = f.carrier
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
        })  # fmt: skip
    return out
