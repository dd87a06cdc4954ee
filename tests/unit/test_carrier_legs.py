"""What the session controller reads from a failed carrier leg, and which SIP codes may
move a call to the next carrier."""

from __future__ import annotations

import pytest

from core.env import SettingsError
from switch.carrier_legs import failover_codes, routes_arg, sip_code


def test_failover_codes_are_the_dialplans_and_never_the_callees_answer() -> None:
    assert failover_codes({}) == {503, 502, 408, 480}
    assert failover_codes({"TOLLGATE_FAILOVER_CODES": "503| 500"}) == {503, 500}
    for bad in ("503|486", "404", "503|busy"):
        with pytest.raises(SettingsError) as e:
            failover_codes({"TOLLGATE_FAILOVER_CODES": bad})
        assert e.value.variable == "TOLLGATE_FAILOVER_CODES"


def test_the_sip_code_comes_from_tech_cause_else_only_from_unambiguous_causes() -> None:
    assert sip_code({"type": "ChannelDestroyed", "cause": 34, "tech_cause": 503}) == 503
    assert sip_code({"cause": 1, "tech_cause": "404"}) == 404
    assert sip_code({"cause": 34}) == 503  # an Asterisk without tech_cause
    assert sip_code({"cause": 38}) == 502
    # a ring timeout or a cancelled INVITE carries no code: never a failover
    assert sip_code({"cause": 19}) is None
    assert sip_code({"cause": 16, "tech_cause": "unknown"}) is None


def test_routes_from_stasis_are_endpoint_names_or_nothing() -> None:
    assert routes_arg("trunk-a|trunk-b") == ("trunk-a", "trunk-b")
    assert routes_arg("") == ()
    assert routes_arg("trunk-a|bad/endpoint") == ()
