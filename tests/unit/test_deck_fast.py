"""The column-at-a-time reader (`deck_fast`) gives what the row reader gives: the same COPY
text, the same compiled pieces for Redis, the same counts and the same errors at the same
lines, whatever the parts' boundaries; and it does take the common form (else the
comparisons would only test the row reader against itself)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from rating import deck_fast
from rating.deck import DeckError, deck_hash, parse_head, read_manifest
from rating.deck_reader import run_blocks
from rating.deck_rows import RateStream
from tests.unit.test_deck import BAD_ROWS, HEADER, write

PLAIN = "".join(
    f"{p},Dest {p} Zażółć,{'' if p % 3 else '0.05'},0.{p % 97:02d},60,{p % 2 * 59 + 1},0,"
    f"{'*' if p % 5 == 0 else 'day'}\n"
    + ("" if p % 5 == 0 else f"{p},Dest {p} Zażółć,0,1.5,60,1,0,night\n")
    + ("" if p % 5 == 0 else f"{p},Dest {p} Zażółć,0,1.25,60,1,120,night\n")
    for p in range(4800, 4900)
)


def outcome(path: Path, fast: bool) -> tuple[Any, ...]:
    manifest, rates = read_manifest(path)
    digest = deck_hash(manifest)
    stream = RateStream(
        parse_head(manifest, str(path)),
        io.BytesIO(rates.read_bytes()),
        digest,
        file=str(rates),
        deck_id=3,
    )
    blocks = deck_fast.fast_blocks(stream, True) if fast else run_blocks(stream, True)
    try:
        done = list(blocks)
    except DeckError as exc:
        return ("error", exc.line, exc.why)
    problem = stream.problem and (stream.problem.line, stream.problem.why)
    copy = b"".join(c for c, _ in done)
    pieces = ",".join(p for _, p in done if p)
    return (copy, pieces, stream.rows, stream.runs, stream.grouped, problem, digest.hexdigest())


def same(path: Path) -> tuple[Any, ...]:
    fast = outcome(path, True)
    assert fast == outcome(path, False)
    return fast


@pytest.fixture
def taken(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each part was compiled by the fast path (True) or left to the row reader."""
    seen: list[bool] = []
    compiled = deck_fast.compiled

    def counted(*args: Any) -> Any:
        block = compiled(*args)
        seen.append(block is not None)
        return block

    monkeypatch.setattr(deck_fast, "compiled", counted)
    return seen


@pytest.mark.parametrize("part", [40, 300, 1 << 18])
def test_the_common_form_is_compiled_fast_and_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, taken: list[bool], part: int
) -> None:
    monkeypatch.setattr(deck_fast, "PART", part)
    copy, pieces, rows, runs, grouped, problem, _ = same(write(tmp_path, HEADER + PLAIN))
    assert (rows, runs, grouped, problem) == (260, 100, True, None)
    assert taken and all(taken)
    assert b'[[2,"Dest 4800 Za\xc5\xbc\xc3\xb3\xc5\x82\xc4\x87",50000,470000,60,1,0,"*"]]' in copy
    assert '"4801":"[[3,\\"Dest 4801' in pieces


ODD_LINES = [
    "4850,Dest,0,0.10,060,60,0,day\n",  # a leading zero: valid, written another way
    "+4850,Dest,0,0.10,60,60,0,day\n",
    "4850, Dest ,0, 0.1 ,60,60,0,day\n",
    '4850,"Dest, quoted",0,0.1,60,60,0,day\n',
    "4850,De\\st,0,0.1,60,60,0,day\n",
    "4850,Dest,0,0.1,60,60,0,day\r\n",
    "4850,Dest,0,0.1,60,60,0,\n",
    "\n",
    "4850,Dest,0,0.1000000,60,60,0,day\n",
    "4850,Dest,0,1000000000,60,60,0,day\n",
    "4850,Dest,0,0.1,60,60,86401,day\n",
    "4850,Dest,0,0.1,60,60,0,night\n",  # a second tier of the same band: duplicate
    "4799,Dest,0,0.1,60,60,0,*\n",  # prefixes no longer grouped
    "4850,Dest,0,0.1,60,60,5,*\n",  # no first tier for '*'
]


@pytest.mark.parametrize("odd", ODD_LINES)
@pytest.mark.parametrize("part", [64, 1 << 18])
def test_a_part_the_fast_path_does_not_take_is_read_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, taken: list[bool], odd: str, part: int
) -> None:
    monkeypatch.setattr(deck_fast, "PART", part)
    lines = PLAIN.splitlines(keepends=True)
    same(write(tmp_path, HEADER + "".join(lines[:120]) + odd + "".join(lines[120:])))
    # the odd part went to the row reader (a quote: all that follows, csv reads it)
    assert False in taken or '"' in odd


@pytest.mark.parametrize("quoted", [False, True])
@pytest.mark.parametrize(("csv", "line", "words"), BAD_ROWS)
def test_bad_rows_are_named_as_the_row_reader_names_them(
    tmp_path: Path, csv: str, line: int, words: str, quoted: bool
) -> None:
    if quoted:
        csv = csv.replace(",x,", ',"x",', 1)
    result = same(write(tmp_path, csv))
    if result[0] == "error":
        assert result[1] == line and words in result[2]
    else:  # a problem of a prefix as a whole: raised after every row was read
        assert result[5][0] == line and words in result[5][1]
