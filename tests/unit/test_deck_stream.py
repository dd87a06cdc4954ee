"""The streamed reader of a rates CSV gives what the whole-file reader gives: the same rows
in the compiled form, the same hash, the same errors at the same lines, whatever the
chunk boundaries, quoting, line ends or order of the rows."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from rating import deck_rows
from rating.deck import (
    DeckError,
    compiled_prefixes,
    deck_digest,
    deck_hash,
    load_deck,
    parse_head,
    read_manifest,
)
from rating.deck_rows import RateStream, merged_problem
from tests.unit.test_deck import BAD_ROWS, HEADER, write


def stream(path: Path) -> tuple[RateStream, list[tuple[int, str, int, str]], str]:
    manifest, rates = read_manifest(path)
    digest = deck_hash(manifest)
    reader = RateStream(
        parse_head(manifest, str(path)), io.BytesIO(rates.read_bytes()), digest, file=str(rates)
    )
    runs = list(reader)
    if reader.grouped and reader.problem is not None:  # what the import then raises
        raise reader.problem
    return reader, runs, digest.hexdigest()


def merged(runs: list[tuple[int, str, int, str]]) -> dict[str, list[Any]]:
    """Runs put together per prefix, as the import's merge does."""
    out: dict[str, list[Any]] = {}
    for _, prefix, _, rows in sorted(runs, key=lambda r: r[2]):
        out.setdefault(prefix, []).extend(json.loads(rows))
    return out


def same_as_whole_file(path: Path) -> RateStream:
    reader, runs, sha256 = stream(path)
    whole = load_deck(path)
    assert merged(runs) == {p: json.loads(t) for p, t in compiled_prefixes(whole).items()}
    assert sha256 == whole.sha256 == deck_digest(path).sha256
    assert reader.rows == len(whole.rows)
    return reader


ODD = (
    '48,"Poland, fixed",0,0.10,60,60,0,*\n'
    '4860,"Poland ""mobile""\nline two",0,0.20,60,60,0,day\n'
    "4860,PL mob,0,0.15,60,60,0,night\n"
    "\n"
    ",,,,,,,\n"
    "+49 , Niemcy ,0, 0.3 ,60,60,0,*\n"
)


@pytest.mark.parametrize("chunk", [7, 64, 1 << 20])
@pytest.mark.parametrize(
    "csv",
    [
        HEADER + "48,PL,0,0.10,60,60,0,*\n4860,PL mob,0,0.2,60,60,0,*\n",
        HEADER + "48,PL,0,0.10,60,60,0,*",  # no final line break
        HEADER.replace("\n", "\r\n") + "48,PL,0,0.10,60,60,0,*\r\n\r\n49,DE,0,1,60,60,0,*\r\n",
        "\ufeff" + HEADER + "48,Zażółć gęślą,0,0.10,60,60,0,*\n",
        HEADER + ODD,  # quotes: csv reads it
        HEADER + "".join(f"48{n:03d},PL,0,0.1,60,60,0,*\n" for n in range(40)) + ODD,
        "band,prefix,name,connect_fee,rate,rate_unit_s,increment_s,from_s\n*,48,PL,0,0.1,60,60,0\n",
        HEADER + "48,PL,0,0.10,60,30,0,*\n48,PL,0,0.10,60,6,30,*\n",
    ],
)
def test_a_streamed_deck_is_the_whole_file_deck(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int, csv: str
) -> None:
    monkeypatch.setattr(deck_rows, "CHUNK", chunk)
    same_as_whole_file(write(tmp_path, csv))


@pytest.mark.parametrize("quoted", [False, True])
@pytest.mark.parametrize(("csv", "line", "words"), BAD_ROWS)
def test_bad_rows_are_named_as_the_whole_file_reader_names_them(
    tmp_path: Path, csv: str, line: int, words: str, quoted: bool
) -> None:
    if quoted:  # a quote anywhere sends the file to csv
        csv = csv.replace(",x,", ',"x",', 1)
    path = write(tmp_path, csv)
    with pytest.raises(DeckError) as whole:
        load_deck(path)
    with pytest.raises(DeckError) as streamed:
        stream(path)
    assert (streamed.value.line, streamed.value.why) == (whole.value.line, whole.value.why)
    assert streamed.value.line == line and words in str(streamed.value)


def test_a_bad_row_far_down_is_named_by_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deck_rows, "CHUNK", 4096)
    rows = "".join(f"48{n:06d},PL,0,0.1,60,60,0,*\n" for n in range(20_000))
    path = write(tmp_path, HEADER + rows + "49,DE,0,1.0000001,60,60,0,*\n")
    with pytest.raises(DeckError) as err:
        stream(path)
    assert err.value.line == 20_002 and "6 decimal" in err.value.why


def test_bytes_that_are_not_utf8_are_named_by_line_and_byte(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "48,PL,0,0.1,60,60,0,*\n")
    (tmp_path / "rates.csv").write_bytes((HEADER + "48,PL,0,0.1,60,60,0,*\n49,").encode() + b"\xff")
    with pytest.raises(DeckError) as err:
        stream(path)
    assert err.value.line == 3 and "not UTF-8" in err.value.why
    assert f"at byte {len(HEADER) + 22 + 3}" in err.value.why


def test_prefixes_in_several_runs_are_told_apart(tmp_path: Path) -> None:
    """Rows sorted by band: every prefix comes twice. The reader says so (`grouped`), and
    its problems wait for the merge: a run alone may lack what the other run has."""
    csv = HEADER + "48,PL,0,0.1,60,60,0,day\n49,DE,0,1,60,60,0,*\n48,PL,0,0.05,60,60,0,night\n"
    reader = same_as_whole_file(write(tmp_path, csv))
    assert merged_problem(reader.check, "49", merged(stream(write(tmp_path, csv))[1])["49"]) == (
        None,
        None,
    )
    assert not reader.grouped and reader.runs == 3
    assert reader.problem is not None  # 48's first run alone does not cover the week
    by_prefix = merged(stream(write(tmp_path, csv))[1])
    assert merged_problem(reader.check, "48", by_prefix["48"]) == (None, None)


def test_a_duplicate_across_runs_is_found_when_they_are_merged(tmp_path: Path) -> None:
    csv = HEADER + "48,PL,0,0.1,60,60,0,*\n49,DE,0,1,60,60,0,*\n48,PL,0,0.2,60,60,0,*\n"
    reader, runs, _ = stream(write(tmp_path, csv))
    dup, problem = merged_problem(reader.check, "48", merged(runs)["48"])
    assert problem is None
    assert dup is not None and dup.line == 4 and "first at line 2" in dup.why
    with pytest.raises(DeckError) as whole:
        load_deck(write(tmp_path, csv))
    assert (whole.value.line, whole.value.why) == (dup.line, dup.why)


def test_the_hash_is_taken_as_the_file_is_read(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "48,PL,0,0.10,60,60,0,*\n")
    _, _, sha256 = stream(path)
    assert sha256 == deck_digest(path).sha256
    (tmp_path / "rates.csv").write_text(HEADER + "48,PL,0,0.11,60,60,0,*\n")
    assert stream(path)[2] == deck_digest(path).sha256 != sha256
    assert deck_digest(path).lines == 2
