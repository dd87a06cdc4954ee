"""Attempt times and post-dial delay (PDD) from what Asterisk measures.

The dialplan does no arithmetic: each failed attempt comes as
`endpoint:code:hangup ms:DIALEDTIME_MS:RINGTIME_MS:PROGRESSTIME_MS` and the last attempt's
measures as `DIALEDTIME_MS:RINGTIME_MS:PROGRESSTIME_MS` (epoch ms for the hangup, the rest
milliseconds since the carrier's INVITE; empty when Asterisk saw no such event). tollgate
keeps, in the ledger and the CDR, `carrier:code:start ms:pdd ms;` per failed attempt and
`start ms:pdd ms` for the attempt of the carrier used: start = when the INVITE went out
(epoch ms), PDD = INVITE to the first ringing or progress, or to the answer when the
carrier answered without ringing. Older lines (`endpoint:code;`) keep their two fields."""

from __future__ import annotations

import re

_MS = re.compile(r"^[0-9]{1,13}$")


def _ms(text: str) -> int | None:
    return int(text) if _MS.match(text) else None


def pdd_ms(dialed: int | None, ringing: int | None, progress: int | None,
           talk: int | None = None) -> int | None:  # fmt: skip
    """INVITE to the first sign of life: ringing or progress, else the answer (Dial's time
    less the talk time)."""
    early = [t for t in (ringing, progress) if t is not None]
    if early:
        return min(early)
    if dialed is not None and talk is not None and talk <= dialed:
        return dialed - talk
    return None


def timing(start: int | None, pdd: int | None) -> str:
    """`start ms:pdd ms`, each empty when unknown; '' when both are."""
    if start is None and pdd is None:
        return ""
    return f"{'' if start is None else start}:{'' if pdd is None else pdd}"


def failed_attempts(raw: str) -> str:
    """The dialplan's failed attempts with start and PDD in place of Asterisk's measures;
    entries already in that form (or older two-field ones) are kept as they are."""
    out = []
    for entry in filter(None, raw.split(";")):
        parts = entry.split(":")
        if len(parts) == 6:
            endpoint, code, hangup, dialed, ringing, progress = parts
            end, took = _ms(hangup), _ms(dialed)
            start = end - took if end is not None and took is not None else None
            times = timing(start, pdd_ms(took, _ms(ringing), _ms(progress)))
            out.append(f"{endpoint}:{code}:{times}" if times else f"{endpoint}:{code}")
        else:
            out.append(entry)
    return "".join(f"{e};" for e in out)


def last_attempt(raw: str, ended_ms: int, talk_ms: int | None) -> str:
    """`start ms:pdd ms` of the last attempt from `DIALEDTIME_MS:RINGTIME_MS:PROGRESSTIME_MS`
    read in the hangup handler (Dial returned at the hangup: it started `dialled` earlier)."""
    parts = ([*raw.split(":"), "", "", ""])[:3]
    took, ringing, progress = (_ms(p) for p in parts)
    start = ended_ms - took if took is not None else None
    return timing(start, pdd_ms(took, ringing, progress, talk_ms))


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
