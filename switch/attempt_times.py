"""Attempt times and post-dial delay (PDD) from what the dialplan and Asterisk measure.

The dialplan does no arithmetic: it notes when it sends each INVITE (epoch ms, in the MSet
that picks the endpoint) and keeps Dial's RINGTIME_MS and PROGRESSTIME_MS (ms from the
INVITE to the first ringing / progress; empty when there was none). Each failed attempt
comes as `endpoint:code:start ms:ringing ms:progress ms` and the last attempt's as
`start ms:ringing ms:progress ms`. tollgate keeps, in the ledger and the CDR,
`carrier:code:start ms:pdd ms;` per failed attempt and `start ms:pdd ms` for the attempt on
the carrier used: PDD = INVITE to the first ringing or progress, or to the answer when the
carrier answered without ringing. Older lines (`endpoint:code;`) keep their two fields."""

from __future__ import annotations

import re

_MS = re.compile(r"^[0-9]{1,13}$")


def _ms(text: str) -> int | None:
    return int(text) if _MS.match(text) else None


def pdd_ms(ringing: int | None, progress: int | None, to_answer: int | None = None) -> int | None:
    """INVITE to the first sign of life: ringing or progress, else the answer."""
    early = [t for t in (ringing, progress) if t is not None]
    if early:
        return min(early)
    return to_answer if to_answer is not None and to_answer >= 0 else None


def timing(start: int | None, pdd: int | None) -> str:
    """`start ms:pdd ms`, each empty when unknown; '' when both are."""
    if start is None and pdd is None:
        return ""
    return f"{'' if start is None else start}:{'' if pdd is None else pdd}"


def failed_attempts(raw: str) -> str:
    """The dialplan's failed attempts with the PDD in place of Dial's measures; entries
    already in that form (or older two-field ones) are kept as they are."""
    out = []
    for entry in filter(None, raw.split(";")):
        parts = entry.split(":")
        if len(parts) == 5:
            endpoint, code, start, ringing, progress = parts
            times = timing(_ms(start), pdd_ms(_ms(ringing), _ms(progress)))
            out.append(f"{endpoint}:{code}:{times}" if times else f"{endpoint}:{code}")
        else:
            out.append(entry)
    return "".join(f"{e};" for e in out)


def last_attempt(raw: str, ended_ms: int, talk_ms: int | None) -> str:
    """`start ms:pdd ms` of the last attempt from `start ms:ringing ms:progress ms` read in
    the hangup handler; answered without ringing, the PDD is the time to the answer (the
    call's end less its talk time, from the INVITE)."""
    parts = [*raw.split(":"), "", "", ""][:3]
    start, ringing, progress = (_ms(p) for p in parts)
    to_answer = ended_ms - talk_ms - start if start is not None and talk_ms is not None else None
    return timing(start, pdd_ms(ringing, progress, to_answer))


def pdd_of(times: str) -> int | None:
    """The PDD of `start:pdd`, None when unknown."""
    parts = times.split(":")
    return _ms(parts[1]) if len(parts) == 2 else None


def attempt_pdds(attempts: str) -> list[tuple[str, str, int | None]]:
    """(carrier or endpoint, SIP code, PDD or None) of each `name:code[:start:pdd];`."""
    out = []
    for entry in filter(None, attempts.split(";")):
        parts = entry.split(":")
        code = parts[1] if len(parts) > 1 else ""
        out.append((parts[0], code, _ms(parts[3]) if len(parts) == 4 else None))
    return out


def final_listed(attempts: str, carrier: str, answered: bool) -> bool:
    """Whether the attempt on the carrier used last is already among the failed `attempts`:
    it is when that carrier failed or did not answer (the dialplan and the session
    controller record it as the last entry), not when it answered or the caller gave up
    while it rang (Dial returns no more, the leg is torn down unrecorded). Counting the
    carrier used as one more attempt must skip it then, else it counts twice."""
    if answered or not carrier:
        return False
    entries = [e for e in attempts.split(";") if e]
    return bool(entries) and entries[-1].split(":", 1)[0] == carrier
