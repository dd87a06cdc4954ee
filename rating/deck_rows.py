"""A rates CSV read as a stream: validated row by row, hashed as it is read, given out one
prefix at a time in the compiled form, so memory does not grow with the deck.

The rows of one prefix that follow each other in the file make a run. A deck that lists
each prefix's rows together (most do) has one run per prefix; another deck has several,
which whoever stores the runs merges and checks again (`merged_problem`)."""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterable, Iterator, Sequence
from json.encoder import encode_basestring
from operator import itemgetter
from typing import Any, BinaryIO, Protocol

from rating.deck import (
    COLUMNS,
    PROGRESS_EVERY,
    TAIL_COLUMNS,
    DeckError,
    DeckHead,
    PrefixCheck,
    Progress,
    Tail,
    column_index,
    duplicate,
    is_blank,
    parse_prefix,
    parse_tail,
)

CHUNK = 1 << 20  # bytes read (and hashed) at a time
TAILS_KEPT = 1 << 16  # distinct checked tails remembered: the same fees repeat down a deck

# (band, from_s) -> line of the row: one prefix's tiers, in line order
Tiers = dict[tuple[str, int], int]


class Hasher(Protocol):
    """What the deck's hash needs: `update(bytes)`, `hexdigest()` (a hashlib object)."""

    def update(self, data: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...


# A run as stored: (deck id, prefix, line of its first row, compiled rows), the compiled
# rows a JSON text [[line, name, connect_fee, rate, rate_unit_s, increment_s, from_s, band],
# ...] in line order.
Run = tuple[int, str, int, str]


class RateStream:
    """Iterate it for the runs; once it is exhausted, `rows`, `runs`, `grouped` (every
    prefix came in one run: the prefixes never went down) and `problem` (the first run that
    failed `PrefixCheck`, reported after every row was read, as the whole-file reader does)
    are known."""

    def __init__(
        self,
        head: DeckHead,
        source: BinaryIO,
        digest: Hasher,
        *,
        file: str,
        deck_id: int = 0,
        lines: int = 0,
        progress: Progress | None = None,
    ) -> None:
        self.head = head
        self.source = source
        self.digest = digest
        self.file = file
        self.deck_id = deck_id
        self.lines = lines  # the file's lines, for progress only
        self.progress = progress
        self.rows = 0
        self.runs = 0
        self.grouped = True
        self.problem: DeckError | None = None
        self.check = PrefixCheck(file, head.bands)
        self.shapes_passed: set[tuple[tuple[str, int], ...]] = set()  # run shapes that passed
        self._tails: dict[str | tuple[str, ...], tuple[tuple[str, int], str]] = {}
        self.last_prefix = ""  # of the last run given out: `grouped` compares with it

    def __iter__(self) -> Iterator[Run]:
        chunks = decoded_chunks(self.source, self.digest, self.file)
        yield from self.runs_of(row_batches(chunks, self.file))
        self.finish()

    def finish(self) -> None:
        """Once every run was given out: a deck without rows is an error; progress ends."""
        if self.rows == 0:
            raise DeckError(self.file, "no rates")
        if self.progress is not None:
            self.progress(self.rows, self.rows)

    def runs_of(self, batches: Iterable[Batch]) -> Iterator[Run]:
        """The runs of these batches, the last one given out when they end: batches that
        end where a run ends can be read a part at a time (the fast reader's fallback)."""
        tails = self._tails
        prefix, last_raw, first = self.last_prefix, None, 0
        last_name, name = None, ""
        texts: list[str] = []
        tiers: list[tuple[str, int]] = []  # the run's (band, from_s), one per row
        report = 0
        for start, batch in batches:
            line = start - 1
            if start >= report:
                self.report(start)
                report = start + PROGRESS_EVERY
            for cells in batch:
                line += 1
                try:
                    raw, cell, key = cells
                except ValueError:
                    raw = ""
                if not raw:
                    _odd_row(cells, self.file, line)  # raises, unless the line is blank
                    continue
                if raw != last_raw:  # a run's rows repeat the same cell: checked once
                    found = raw.strip().lstrip("+")
                    if not (found.isdigit() and found.isascii() and len(found) <= 15):
                        parse_prefix(raw.strip(), self.file, line)  # raises, naming the cell
                    last_raw = raw
                    if found != prefix or not texts:
                        if texts:
                            yield self._run(prefix, first, texts, tiers)
                        if found < prefix or (found == prefix and not texts):
                            self.grouped = False  # the prefix came before (a run split)
                        prefix, first, texts, tiers = found, line, [], []
                try:
                    tier, tail_text = tails[key]
                except KeyError:
                    if len(tails) >= TAILS_KEPT:
                        tails.clear()
                    tier, tail_text = tails[key] = self._tail(key, line)
                if tier in tiers:  # a few rows, the same tuple objects: no hashing
                    first_at = _line_of(texts[tiers.index(tier)])
                    raise duplicate(self.file, line, prefix, *tier, first_at)
                tiers.append(tier)
                if cell != last_name:
                    last_name = cell
                    name = encode_basestring(cell.strip())
                texts.append(f"[{line},{name}{tail_text}")
        if texts:
            yield self._run(prefix, first, texts, tiers)
        self.last_prefix = prefix

    def report(self, line: int) -> None:
        if self.progress is not None:
            self.progress(line, max(line, self.lines))

    def _tail(self, key: str | tuple[str, ...], line: int) -> tuple[tuple[str, int], str]:
        """A tail checked once: its (band, from_s) and its compiled text after the name.
        `key` is the tail's cells, or their text as the line has it (no quotes)."""
        cells = key.split(",") if isinstance(key, str) else key
        tail: Tail = parse_tail(cells, self.file, line, self.head.bands)
        fee, rate, unit, increment, from_s, band = tail
        text = f",{fee},{rate},{unit},{increment},{from_s},{encode_basestring(band)}]"
        return (band, from_s), text

    def _run(self, prefix: str, first: int, texts: list[str], tiers: list[tuple[str, int]]) -> Run:
        self.rows += len(texts)
        self.runs += 1
        shape = tuple(tiers)
        if shape not in self.shapes_passed and self.problem is None:
            lines = {tier: _line_of(text) for tier, text in zip(tiers, texts, strict=True)}
            self.problem = self.check.problem(prefix, lines)
            if self.problem is None and len(self.shapes_passed) < 4096:
                self.shapes_passed.add(shape)
        return (self.deck_id, prefix, first, "[" + ",".join(texts) + "]")


def _line_of(text: str) -> int:
    """The line of a compiled row: its first field."""
    return int(text[1 : text.index(",")])


def merged_problem(
    check: PrefixCheck, prefix: str, rows: list[list[object]]
) -> tuple[DeckError | None, DeckError | None]:
    """A prefix put together from several runs, checked again: (its first duplicate row, its
    prefix problem). `rows` are compiled rows in line order."""
    tiers: Tiers = {}
    dup: DeckError | None = None
    for row in rows:
        line, band, from_s = int(str(row[0])), str(row[7]), int(str(row[6]))
        tier = (band, from_s)
        if tier in tiers:
            if dup is None:
                dup = duplicate(check.file, line, prefix, band, from_s, tiers[tier])
            continue
        tiers[tier] = line
    return dup, check.problem(prefix, tiers)


# A batch of rows: (line of the first, rows), each row [prefix cell, name cell, the other
# cells] where the other cells are their text as the line has it (a line without quotes,
# split at commas) or a tuple of them (read by csv).
Batch = tuple[int, list[list[Any]]]


def row_batches(texts: Iterator[str], file: str) -> Iterator[Batch]:
    """The rows after the header. A file in the columns' own order is split at commas a
    chunk at a time, as long as a chunk has no quote and no lone '\r' (what only csv reads
    right); from the first chunk that has one, csv reads the rest."""
    text = next(texts, "")
    end = text.find("\n")
    if is_plain(text) and end >= 0:
        header = text[:end].split(",")
        if [h.strip() for h in header] == list(COLUMNS):
            yield (2, [line.split(",", 2) for line in split_lines(text[end + 1 :])])
            done = text.count("\n")
            for text in texts:
                if not is_plain(text):
                    yield from csv_batches(itertools.chain([text], texts), file, done, COLUMNS)
                    return
                yield (done + 1, [line.split(",", 2) for line in split_lines(text)])
                done += text.count("\n")
            return
    yield from csv_batches(itertools.chain([text], texts), file, 0, None)


def is_plain(text: str) -> bool:
    return '"' not in text and text.count("\r") == text.count("\r\n")


def split_lines(text: str) -> list[str]:
    lines = text.split("\n")
    if lines[-1] == "":  # the text ends with a line break
        lines.pop()
    return lines


def csv_batches(
    texts: Iterator[str], file: str, done: int, header: Sequence[str] | None
) -> Iterator[Batch]:
    """Rows read by csv, one batch each; `done` lines were read before, the header among
    them when it is given."""
    reader = csv.reader(line for text in texts for line in io.StringIO(text, newline=""))
    try:
        if header is None:
            found = next(reader, None)
            index = column_index(found, file)
            header = found
        else:
            index = {c: i for i, c in enumerate(header)}
        width = len(header or ())
        name_of = itemgetter(index["prefix"], index["name"])
        tail_of = itemgetter(*[index[c] for c in TAIL_COLUMNS])
        for cells in reader:
            line = done + reader.line_num
            if len(cells) != width:
                if is_blank(cells):
                    continue
                raise DeckError(file, f"expected {width} fields, got {len(cells)}", line)
            yield (line, [[*name_of(cells), tail_of(cells)]])
    except csv.Error as exc:
        raise DeckError(file, f"not readable as CSV: {exc}", done + reader.line_num) from None


def _odd_row(cells: list[Any], file: str, line: int) -> None:
    """A row without a prefix or with too few fields: blank (skipped) or an error."""
    if len(cells) == 3 and isinstance(cells[2], tuple):
        every = [cells[0], cells[1], *cells[2]]
    else:
        every = ",".join(cells).split(",")
    if is_blank(every):
        return
    if len(every) < len(COLUMNS):
        raise DeckError(file, f"expected {len(COLUMNS)} fields, got {len(every)}", line)
    parse_prefix(cells[0].strip(), file, line)  # no prefix: raises, naming the cell


def decoded_chunks(
    source: BinaryIO, digest: Hasher, file: str, size: int | None = None
) -> Iterator[str]:
    """The file decoded a chunk (of `size` bytes, default CHUNK) at a time, each chunk
    hashed as it is read. A chunk is decoded up to its last line break, so a character or
    a '\r\n' is never cut in two."""
    rest = b""
    offset = 0  # bytes before `rest`
    newlines = 0  # line breaks before `rest`
    first = True
    while True:
        chunk = source.read(size or CHUNK)
        if chunk:
            digest.update(chunk)
            data = rest + chunk
            cut = _cut(data)
        else:
            data, cut = rest, len(rest)
        if cut:
            text = _decode(data[:cut], file, offset, newlines)
            if first:
                text = text.removeprefix("\ufeff")
                first = False
            offset += cut
            newlines += data.count(b"\n", 0, cut)
            yield text
        rest = data[cut:]
        if not chunk:
            return


def _cut(data: bytes) -> int:
    """Where to cut: after the last '\\n', else after a '\\r' that is not the last byte."""
    cut = data.rfind(b"\n") + 1
    if cut == 0:
        cut = data.rfind(b"\r", 0, len(data) - 1) + 1
    return cut


def _decode(data: bytes, file: str, offset: int, newlines: int) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = newlines + data.count(b"\n", 0, exc.start) + 1
        raise DeckError(
            file, f"not UTF-8 ({exc.reason} at byte {offset + exc.start})", line
        ) from None
