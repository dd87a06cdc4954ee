"""A part of a rates CSV checked and compiled column by column with Arrow (C speed), for
the rows that need nothing more than the common case: canonical numbers, plain names,
the manifest's bands, one run per prefix in rising order. A part with anything else
gives `None`, and the row-by-row reader (`deck_rows`) reads it: it alone words the errors
(file:line), so whatever the fast path does not take is read exactly as before.

Imported only by the deck reader: pyarrow is large and the command line must start fast."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from decimal import Decimal
from json.encoder import encode_basestring
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from rating.deck import ANY_BAND, COLUMNS
from rating.deck_reader import Block, run_blocks
from rating.deck_rows import (
    RateStream,
    csv_batches,
    decoded_chunks,
    is_plain,
    row_batches,
    split_lines,
)

# What the fast path takes (RE2). A name needs no JSON escaping and no stripping; a number
# is written as Python would write its value back (no sign, no leading zero, no spaces).
PREFIX = r"^[0-9]{1,15}$"
# a name's first and last characters: none that str.strip() removes (str.isspace), no
# control character, quote or backslash (JSON would escape them)
_EDGE = r'[^\x00-\x20"\\\x85\xa0\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]'
NAME = rf'^(?:{_EDGE}(?:[^\x00-\x1f"\\]*{_EDGE})?)?$'
MONEY = r"^(?:0|[1-9][0-9]{0,8})(?:\.[0-9]{1,6})?$"  # below MAX_MICRO, at most 6 decimals
SECONDS = r"^(?:0|[1-9][0-9]{0,4})$"
MAX_SECONDS = 86_400
_MILLION = pa.scalar(Decimal(1_000_000), pa.decimal128(7, 0))
PART = 1 << 18  # bytes of CSV compiled at a time: Arrow's working memory is ~15 MB
SHAPES_KEPT = 4096  # as the row reader keeps run shapes that passed
_TIER, _TIERS = "\x01", "\x02"  # joins a run's tiers into one text: its shape

_READ = pcsv.ReadOptions(column_names=list(COLUMNS), use_threads=False, block_size=1 << 22)
_PARSE = pcsv.ParseOptions(
    quote_char=False, escape_char=False, double_quote=False, newlines_in_values=False,
    ignore_empty_lines=False,
)  # fmt: skip
TAIL = COLUMNS[2:]  # read as dictionaries: their values repeat down a deck
SECONDS_COLUMNS = ("rate_unit_s", "increment_s", "from_s")
_CONVERT = pcsv.ConvertOptions(
    column_types={
        c: pa.dictionary(pa.int32(), pa.string()) if c in TAIL else pa.string() for c in COLUMNS
    },
    strings_can_be_null=False,
    quoted_strings_can_be_null=False,
    check_utf8=False,  # decoded (and checked) before
)


class Bands:
    """The band cells the fast path takes: a manifest's band (written as it is), '*' or
    empty (any time), each with its compiled JSON text."""

    def __init__(self, names: list[str]) -> None:
        taken = [n for n in names if n and n == n.strip() and n != ANY_BAND]
        self.cells = pa.array([*taken, ANY_BAND, ""], pa.string())
        self.names = pa.array([*taken, ANY_BAND, ANY_BAND], pa.string())
        self.json = pa.array([encode_basestring(n) for n in self.names.to_pylist()], pa.string())
        # the same band for the duplicate check: '' and '*' are both any time
        self.ids = pa.array([*range(len(taken)), len(taken), len(taken)], pa.int64())


def compiled(
    stream: RateStream, bands: Bands, text: str, line: int, drafted: bool
) -> tuple[bytes, str] | None:
    """A part's runs (whole runs, no blank line, first at `line`) as a deck reader's block:
    its COPY text and its draft pieces ("" when not `drafted`). The stream's counts move
    on. `None` (nothing moved) when the part is not one the fast path takes."""
    data = text.encode()  # searched as bytes: memchr, not a walk over characters
    if b"\n\n" in data or b"\n\r\n" in data or data.startswith((b"\n", b"\r")):
        return None  # a blank line: the row reader skips it and keeps the line count
    try:
        table = pcsv.read_csv(
            pa.py_buffer(data),
            read_options=_READ,
            parse_options=_PARSE,
            convert_options=_CONVERT,
        )
    except pa.ArrowInvalid:  # a row of another width: the row reader names it
        return None
    n = table.num_rows
    if n == 0 or n != data.count(b"\n") + (not data.endswith(b"\n")):
        return None
    table = table.unify_dictionaries().combine_chunks()
    cols = {c: table[c].chunk(0) for c in COLUMNS}
    cells = _checked(cols, bands)
    if cells is None:
        return None
    lines = pc.add(_counting(n), line)
    offsets = _run_offsets(cols["prefix"], n)
    starts = pc.take(cols["prefix"], offsets[:-1])
    if not _in_order(stream, starts) or not _distinct(cols["prefix"], cells, len(bands.ids)):
        return None
    if stream.problem is None and not _shapes_pass(stream, cells, offsets):
        return None  # the row reader finds the first run that fails, as it always does
    rows = pc.binary_join_element_wise(
        "[", pc.cast(lines, pa.string()), ',"', cols["name"], cells["fee_text"],
        cells["rate"], cells["tail_text"], "",
    )  # fmt: skip
    runs = pc.binary_join_element_wise("[", _joined(rows, offsets, ","), "]", "")
    first = pc.cast(pc.take(lines, offsets[:-1]), pa.string())
    # a band's name is an identifier (bands.py) and a name here has no quote or backslash:
    # the compiled text has no backslash for COPY to double; for JSON, quotes only
    copy = pc.binary_join_element_wise(str(stream.deck_id), starts, first, runs, "\t")
    copy_text = _all(pc.binary_join_element_wise(copy, "\n", ""), "")
    pieces = ""
    if drafted:  # '"<prefix>":<rows as a JSON string>', as the row reader writes them
        escaped = pc.replace_substring(runs, '"', '\\"')
        piece = pc.binary_join_element_wise('"', starts, '":"', escaped, '"', "")
        pieces = _all(piece, ",")
    stream.rows += n
    stream.runs += len(starts)
    stream.last_prefix = starts[-1].as_py()
    return copy_text.encode(), pieces


def _checked(cols: dict[str, Any], bands: Bands) -> dict[str, Any] | None:
    """The cells as the compiled form writes them, or None if any is not one the fast
    path takes (the row reader then decides: it may be valid, written another way). The
    columns after the name are dictionaries (a deck repeats its fees, units and bands):
    their distinct values are checked and converted, then given to each row."""
    prefix_length = pc.min_max(pc.binary_length(cols["prefix"])).as_py()
    if not pc.all(pc.ascii_is_decimal(cols["prefix"])).as_py() or not (
        prefix_length["min"] >= 1 and prefix_length["max"] <= 15
    ):
        return None
    if not pc.all(pc.match_substring_regex(cols["name"], NAME)).as_py():
        return None
    values = {c: cols[c].dictionary for c in TAIL}
    fee = pc.if_else(pc.equal(values["connect_fee"], ""), "0", values["connect_fee"])
    for column, pattern in [
        (fee, MONEY),
        (values["rate"], MONEY),
        (values["rate_unit_s"], SECONDS),
        (values["increment_s"], SECONDS),
        (values["from_s"], SECONDS),
    ]:
        if not pc.all(pc.match_substring_regex(column, pattern)).as_py():
            return None
    band_at = pc.index_in(values["band"], value_set=bands.cells)
    if band_at.null_count:
        return None
    for column, low in (("rate_unit_s", 1), ("increment_s", 1), ("from_s", 0)):
        bounds = pc.min_max(pc.cast(values[column], pa.int64())).as_py()
        if bounds["min"] < low or bounds["max"] > MAX_SECONDS:
            return None
    band_index = pc.take(band_at, cols["band"].indices)
    fee_text = pc.binary_join_element_wise('",', pc.cast(_micro(fee), pa.string()), ",", "")
    return {
        "fee_text": pc.take(fee_text, cols["connect_fee"].indices),
        "rate": pc.take(pc.cast(_micro(values["rate"]), pa.string()), cols["rate"].indices),
        "tail_text": _tails(cols, values, pc.take(bands.json, band_at)),
        "from_s": pc.take(values["from_s"], cols["from_s"].indices),
        "band": pc.take(bands.names, band_index),
        "band_id": pc.take(bands.ids, band_index),
        "from_s_int": pc.take(pc.cast(values["from_s"], pa.int64()), cols["from_s"].indices),
    }


def _tails(cols: dict[str, Any], values: dict[str, Any], band_json: Any) -> Any:
    """Each row's text after its rate: `,unit,increment,from_s,"band"]`, made once for
    each distinct combination (a row's four dictionary indices as one whole number)."""
    parts = [*SECONDS_COLUMNS, "band"]
    sizes = [len(values[c]) for c in parts]
    key = pc.cast(cols[parts[0]].indices, pa.int64())
    for column, size in zip(parts[1:], sizes[1:], strict=True):
        key = pc.add(pc.multiply(key, size), pc.cast(cols[column].indices, pa.int64()))
    combos = pc.dictionary_encode(key)
    found = combos.dictionary
    pieces = []
    for size in reversed(sizes):
        pieces.append(
            pc.cast(pc.subtract(found, pc.multiply(pc.divide(found, size), size)), pa.int32())
        )
        found = pc.divide(found, size)
    unit_at, increment_at, from_at, band_at = reversed(pieces)
    text = pc.binary_join_element_wise(
        ",", pc.take(values["rate_unit_s"], unit_at), ",",
        pc.take(values["increment_s"], increment_at), ",", pc.take(values["from_s"], from_at),
        ",", pc.take(band_json, band_at), "]", "",
    )  # fmt: skip
    return pc.take(text, combos.indices)


def _micro(column: Any) -> Any:
    """Decimal texts (checked by MONEY: at most 6 decimals) as whole micro-units: parsed
    as exact decimals and scaled, never through a float."""
    exact = pc.cast(column, pa.decimal128(15, 6))
    return pc.cast(pc.multiply(exact, _MILLION), pa.int64())


_COUNT: list[Any] = [pa.array([], pa.int64())]


def _counting(n: int) -> Any:
    """0, 1, ... n - 1: made once (as large as a part needs), sliced for each part."""
    if len(_COUNT[0]) < n:
        _COUNT[0] = pa.array(range(max(n, 2 * len(_COUNT[0]))), pa.int64())
    return _COUNT[0][:n]


def _run_offsets(prefix: Any, n: int) -> Any:
    """Where each run starts (rows of one prefix that follow each other), and `n`."""
    changes = pc.indices_nonzero(pc.not_equal(prefix[1:], prefix[:-1]))
    return pa.concat_arrays(
        [
            pa.array([0], pa.uint64()),
            pc.add(changes, pa.scalar(1, pa.uint64())),
            pa.array([n], pa.uint64()),
        ]
    ).cast(pa.int32())


def _in_order(stream: RateStream, starts: Any) -> bool:
    """Runs' prefixes rising from the last one given out: the prefixes stay grouped. If
    they are not yet known not to be, the row reader says so (and where)."""
    if not stream.grouped:
        return True
    if starts[0].as_py() <= stream.last_prefix:
        return False
    return len(starts) < 2 or not pc.any(pc.less_equal(starts[1:], starts[:-1])).as_py()


def _distinct(prefix: Any, cells: dict[str, Any], bands: int) -> bool:
    """No two rows of a run for the same band and from_s (else the row reader raises the
    duplicate, naming both lines). Runs have distinct prefixes here (`_in_order`): a row's
    run, band and from_s make one whole number, counted."""
    changes = pc.cast(pc.not_equal(prefix[1:], prefix[:-1]), pa.int64())
    run_of = pa.concat_arrays([pa.array([0], pa.int64()), pc.cumulative_sum(changes)])
    band_of = pc.add(pc.multiply(run_of, bands), cells["band_id"])
    keys = pc.add(pc.multiply(band_of, MAX_SECONDS + 1), cells["from_s_int"])
    return int(pc.count_distinct(keys).as_py()) == len(prefix)


def _shapes_pass(stream: RateStream, cells: dict[str, Any], offsets: Any) -> bool:
    """Every run's tiers pass the prefix checks (a first tier in each band, a rate at all
    times); each distinct shape is checked once, as the row reader does."""
    tiers = pc.binary_join_element_wise(cells["band"], cells["from_s"], _TIER)
    for shape_text in pc.unique(_joined(tiers, offsets, _TIERS)).to_pylist():
        shape = tuple(
            (band, int(from_s))
            for band, from_s in (t.split(_TIER) for t in shape_text.split(_TIERS))
        )
        if shape in stream.shapes_passed:
            continue
        if stream.check.problem("", {tier: i for i, tier in enumerate(shape)}) is not None:
            return False
        if len(stream.shapes_passed) < SHAPES_KEPT:
            stream.shapes_passed.add(shape)
    return True


def _joined(values: Any, offsets: Any, sep: str) -> Any:
    """Each run's values joined by `sep`, one text per run."""
    return pc.binary_join(pa.ListArray.from_arrays(offsets, values), sep)


def _all(values: Any, sep: str) -> str:
    whole = pa.ListArray.from_arrays(pa.array([0, len(values)], pa.int32()), values)
    text: str = pc.binary_join(whole, sep)[0].as_py()
    return text


def fast_blocks(stream: RateStream, drafted: bool) -> Iterator[Block]:
    """The stream's blocks: the file cut into parts of whole runs, each compiled here if
    it can be, else read row by row. A header in another order, or a quote (which only
    csv reads right, and may span parts), sends the rest of the file to the row reader."""
    pa.set_memory_pool(pa.system_memory_pool())  # gives freed parts back: RSS stays flat
    chunks = decoded_chunks(stream.source, stream.digest, stream.file, PART)
    head = next(chunks, "")
    end = head.find("\n")
    bands = Bands(list(stream.head.bands))
    header = [h.strip() for h in head[:end].split(",")] if end >= 0 else []
    if not (is_plain(head) and header == list(COLUMNS)):
        rows = row_batches(itertools.chain([head], chunks), stream.file)
        yield from run_blocks(stream.runs_of(rows), drafted)
        stream.finish()
        return
    line, pending = 2, ""  # the first line of `pending`: the rows of a run not yet ended
    for text in itertools.chain([head[end + 1 :]], chunks):
        if not is_plain(text):
            rest = itertools.chain([pending + text], chunks)
            rows = csv_batches(rest, stream.file, line - 1, COLUMNS)
            yield from run_blocks(stream.runs_of(rows), drafted)
            break
        data = pending + text
        cut = last_run(data)
        part, pending = data[:cut], data[cut:]
        if part:
            yield from _part_blocks(stream, bands, part, line, drafted)
            line += part.count("\n")
    else:
        if pending:
            yield from _part_blocks(stream, bands, pending, line, drafted)
    stream.finish()


def _part_blocks(
    stream: RateStream, bands: Bands, part: str, line: int, drafted: bool
) -> Iterator[Block]:
    block = compiled(stream, bands, part, line, drafted)
    if block is not None:
        stream.report(line)
        yield block
        return
    batch = (line, [row.split(",", 2) for row in split_lines(part)])
    yield from run_blocks(stream.runs_of([batch]), drafted)


def last_run(text: str) -> int:
    """Where the last run of plain lines starts: the first of the last lines whose prefix
    cell (stripped, without '+', as the row reader compares them) is the same; lines with
    an empty one go with it. 0 when it is all one run."""
    start = len(text) - 1 if text.endswith("\n") else len(text)
    key = ""
    while start > 0:
        begin = text.rfind("\n", 0, start) + 1
        cell = text[begin:start].split(",", 1)
        found = cell[0].strip().lstrip("+") if len(cell) > 1 else ""
        if found:
            if key and found != key:
                return start + 1
            key = found
        start = begin - 1
    return 0
