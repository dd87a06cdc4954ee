"""The CDR the ledger writes as one line of COPY text with the stream entry (rating/lua/lib.lua
`cdr_text`) is exactly the writer's own conversion of the entry's fields (`flat_text_row`,
else the careful path), and is left out whenever that conversion declines or the entry is
bad: for odd values in every field, missing fields, and COPY's special characters."""

from __future__ import annotations

import uuid
from importlib import resources
from typing import Any

from cdr.model import BadCdr, Row, flat_text_row, ledger_text_row, stream_row, text_row
from cdr.stream import Entry
from runtime.services import Services
from tests.unit.test_cdr_stream_row import GOOD, ODD_VALUES
from tests.unit.test_cdr_text_row import ODD_TEXTS

EMIT = (
    (resources.files("rating") / "lua" / "lib.lua").read_text()
    + "\nreturn emit_cdr(KEYS[1], KEYS[2])"
)
FIELDS = sorted({*GOOD, "detail", "emergency", "unauthorized", "rdnis", "direction", "bundle"})
MORE = ["in", "out", "0001764000000000", "1764000000000.5", "1e12", " 5", "0x10", "ż" * 600]


def converted(flat: list[Any]) -> Row | None:
    """What the writer makes of the entry's fields alone (None: a bad CDR)."""
    row = flat_text_row(flat, "5-0")
    if row is not None:
        return row
    try:
        return text_row(stream_row(Entry("s", "5-0", flat).fields(), "5-0"))
    except BadCdr:
        return None


async def emitted(svc: Services, records: list[dict[str, str]]) -> list[list[Any]]:
    """Each record written as a call record, then to a stream by the ledger's emit_cdr."""
    base = f"test-cdr-text-{uuid.uuid4().hex}"
    stream = f"{base}:stream"
    try:
        async with svc.redis.pipeline(transaction=False) as pipe:
            for n, record in enumerate(records):
                call = f"{base}:call:{n}"
                pipe.delete(call)
                if record:
                    pipe.hset(call, mapping=record)  # type: ignore[arg-type]
                else:
                    pipe.hset(call, "call_id", "x")
                pipe.eval(EMIT, 2, stream, call)
                pipe.delete(call)
            await pipe.execute()
        # as the writer reads them: field, value, field, value... (bytes)
        return [[x for kv in raw.items() for x in kv] for _, raw in await svc.redis.xrange(stream)]
    finally:
        await svc.redis.delete(stream)


async def test_the_ledgers_text_is_the_writers_conversion(svc: Services) -> None:
    records = [dict(GOOD), {**GOOD, "state": "denied", "answered_at": "", "authorized_at": ""}]
    records += [{k: v for k, v in GOOD.items() if k != f} for f in GOOD]
    records += [
        {**GOOD, field: value} for field in FIELDS for value in ODD_VALUES + ODD_TEXTS + MORE
    ]
    entries = await emitted(svc, records)
    assert len(entries) == len(records)
    taken = 0
    for record, flat in zip(records, entries, strict=True):
        text = ledger_text_row(flat, "5-0")
        fields = flat[2:] if text is not None else flat
        expected = converted(fields)
        if text is not None:
            taken += 1
            assert text == expected, {k: v for k, v in record.items() if GOOD.get(k) != v}
        else:
            # left out only where the fields need the writer's care: escapes, NUL, odd forms
            assert flat[0] != b"text_row", {k: v for k, v in record.items() if GOOD.get(k) != v}
    # most entries carry it: the good ones and those with harmless odd values
    assert ledger_text_row(entries[0], "5-0") is not None
    assert ledger_text_row(entries[1], "5-0") is not None
    assert taken > len(records) // 2
