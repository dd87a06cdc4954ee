"""The README's table of refusal reasons names every reason the ledger can refuse with and
the SIP code the switch really answers it with."""

from __future__ import annotations

import re
from pathlib import Path

from rating.ledger import Reason
from switch.fastagi import SIP_CODES

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_refusal_reason_is_documented_with_its_sip_code() -> None:
    rows = dict(re.findall(r"^\| `([A-Z_]+)` \| (\d{3}) \|", README.read_text(), re.MULTILINE))
    refusals = {r.value for r in Reason} - {"OK", "EMERGENCY"}
    assert set(rows) == refusals
    for reason, code in rows.items():
        assert SIP_CODES[reason] == int(code), reason
