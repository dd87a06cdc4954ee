"""The outcome log's line format: what the hangup handler writes, read back exactly."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from switch.outcome_line import OutcomeLineError, parse_line


def test_an_answered_call_is_read_with_its_talk_time_and_end() -> None:
    r = parse_line("c-1|acct-a|ANSWER|61499|16|+48601234567|0|1796185764.599")
    assert (r.call_id, r.account) == ("c-1", "acct-a")
    o = r.outcome
    assert (o.answered, o.billsec, o.disposition, o.hangup_cause) == (True, 61, "ANSWER", "16")
    assert o.ended_at == datetime.fromtimestamp(1796185764.599, UTC)
    assert o.answered_at == datetime.fromtimestamp(1796185764.599 - 61.499, UTC)
    assert o.dialled == "+48601234567"
    assert parse_line("c-1|a|ANSWER|61500|16|+48601234567|0|1.0").outcome.billsec == 62


def test_a_call_that_never_dialled_is_unanswered_and_free() -> None:
    o = parse_line("c-2|acct-a||0|21|0601234567|0|1796185764").outcome
    assert (o.answered, o.billsec, o.disposition, o.answered_at) == (False, 0, "NOANSWER", None)
    assert o.dialled == "0601234567"


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("c-1|acct-a|ANSWER|1000|16|+48601234567|0", "MALFORMED_OUTCOME"),
        ("c-1|acct-a|ANSWER|1000|16|+48601234567|0|1.0|x", "MALFORMED_OUTCOME"),
        ("bad id|acct-a|ANSWER|1000|16|+486|0|1.0", "BAD_CALL_ID"),
        ("|acct-a|ANSWER|1000|16|+486|0|1.0", "BAD_CALL_ID"),
        ("c-1|acct-a|ANSWER|1000|16|+486|0|yesterday", "BAD_END"),
        ("c-1|acct-a|ANSWER|-5|16|+486|0|1.0", "BAD_ANSWERED_MS"),
        ("c-1|acct-a|ANSWER|1000|16|+486|0|1.0|x", "MALFORMED_OUTCOME"),
        ("c-1|acct-a|ANSWER|1000|16|+486|0|1.0|a/b|", "BAD_ENDPOINT"),
        ("c-1|acct-a|ANSWER|1000|16|+486|0|1.0|up|down:503", "BAD_ATTEMPTS"),
        ("c-1|acct-a|ANSWER|1000|16|+486|0|1.0|up|down:5030;", "BAD_ATTEMPTS"),
    ],
)
def test_a_line_no_ledger_can_accept_names_what_is_wrong(line: str, code: str) -> None:
    with pytest.raises(OutcomeLineError) as err:
        parse_line(line)
    assert err.value.code == code


def test_odd_values_from_the_switch_are_not_trusted() -> None:
    o = parse_line("c-3|acct-a|ANSWER|1000|x16|12ab|0|1.0").outcome
    assert (o.hangup_cause, o.dialled) == ("", "")


def test_a_routed_call_names_its_carrier_and_failed_attempts() -> None:
    o = parse_line("c-3|acct-a|ANSWER|2000|16|+48221234567|0|1.0|trunk-b|trunk-a:503;").outcome
    assert (o.endpoint, o.attempts, o.billsec) == ("trunk-b", "trunk-a:503;", 2)
    single = parse_line("c-4|acct-a|ANSWER|2000|16|+48221234567|0|1.0||").outcome
    assert (single.endpoint, single.attempts) == ("", "")


def test_attempt_times_and_post_dial_delay_come_from_asterisks_measures() -> None:
    # trunk-a: INVITE at 1000.000 s, 503 with no ringing; trunk-b: INVITE at 1001.000 s,
    # ringing after 300 ms, answered, 6 s of talk until the hangup at 1010.000 s
    line = ("c-4|acct-a|ANSWER|6000|16|+48221234567|0|1010.0|trunk-b"
            "|trunk-a:503:1000000::;|1001000:300:")  # fmt: skip
    o = parse_line(line).outcome
    assert o.attempts == "trunk-a:503:1000000:;"
    assert o.timing == "1001000:300"
    # answered without ringing: the PDD is the time to the answer (end less talk less start)
    quiet = parse_line("c-5|acct-a|ANSWER|6000|16|+486|0|1010.0|trunk-b||1003550::").outcome
    assert quiet.timing == "1003550:450"
    # progress (183) before ringing counts as the first sign of life
    early = parse_line(
        "c-6|acct-a|BUSY|0|17|+486|0|1010.0|trunk-b|trunk-b:486:1009100:700:200;|"
    ).outcome
    assert early.attempts == "trunk-b:486:1009100:200;" and early.timing == ""


def test_older_and_controller_attempts_are_kept_as_they_are() -> None:
    line = "c-7|acct-a|ANSWER|1000|16|+486|0|1.0|up|down:503;mid:502:900:40;|"
    assert parse_line(line).outcome.attempts == "down:503;mid:502:900:40;"
    with pytest.raises(OutcomeLineError) as bad:
        parse_line("c-8|acct-a|ANSWER|1000|16|+486|0|1.0|up||9000:x:")
    assert bad.value.code == "BAD_TIMES"
