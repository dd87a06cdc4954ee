"""Rate decks: a TOML manifest plus a CSV of rates, validated whole before anything is stored."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rating.bands import Band, BandClock, BandError, parse_band
from rating.codes import is_currency, is_deck_name
from rating.money import MoneyError, Rounding, parse_micro, parse_whole

COLUMNS = ("prefix", "name", "connect_fee", "rate", "rate_unit_s", "increment_s", "from_s", "band")
ANY_BAND = "*"
PROGRESS_EVERY = 10_000  # rows between two progress reports


class DeckError(ValueError):
    """A deck is invalid. Names the file and, for CSV rows, the line (1-based, header = 1)."""

    def __init__(self, file: str, why: str, line: int | None = None) -> None:
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {why}")
        self.file = file
        self.line = line
        self.why = why

    def __reduce__(self) -> tuple[type[DeckError], tuple[str, str, int | None]]:
        # pickled whole: the deck reader process sends its error to the importing one
        return (DeckError, (self.file, self.why, self.line))


@dataclass(frozen=True, slots=True)
class RateRow:
    line: int
    prefix: str
    name: str
    connect_fee: int  # micro-units, once per answered call
    rate: int  # micro-units per rate_unit_s
    rate_unit_s: int
    increment_s: int
    from_s: int
    band: str  # "*" = any time

    def as_dict(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "prefix": self.prefix,
            "name": self.name,
            "connect_fee": self.connect_fee,
            "rate": self.rate,
            "rate_unit_s": self.rate_unit_s,
            "increment_s": self.increment_s,
            "from_s": self.from_s,
            "band": self.band,
        }


@dataclass(frozen=True, slots=True)
class PrefixRates:
    """All rows of one prefix: tiers (sorted by from_s) per band, '*' as the fallback."""

    prefix: str
    name: str
    by_band: dict[str, tuple[RateRow, ...]]

    def rows_for(self, band: str | None) -> tuple[RateRow, ...]:
        if band is not None and band in self.by_band:
            return self.by_band[band]
        return self.by_band.get(ANY_BAND, ())


def _prefix_rates(prefix: str, rows: Sequence[RateRow]) -> PrefixRates:
    """One prefix's rows (in line order) grouped by band, tiers sorted by from_s."""
    by_band: dict[str, list[RateRow]] = {}
    for row in rows:
        by_band.setdefault(row.band, []).append(row)
    return PrefixRates(
        prefix,
        rows[0].name,
        {b: tuple(sorted(rs, key=lambda r: r.from_s)) for b, rs in by_band.items()},
    )


# A compiled deck's rows of one prefix, as its JSON keeps them: a JSON text of its own
# (parsed when a lookup first needs the prefix, so loading a deck makes two strings per
# prefix, nothing per row), of [[line, name, connect_fee, rate, rate_unit_s, increment_s,
# from_s, band], ...] in line order.
CompiledPrefix = str


class CompiledPrefixes(Mapping[str, PrefixRates]):
    """A compiled deck's prefixes, built one at a time when a lookup first needs them:
    loading a deck costs one `json.loads`, not an object per row (serve's first call)."""

    def __init__(self, raw: dict[str, CompiledPrefix]) -> None:
        self.raw = raw
        self._built: dict[str, PrefixRates] = {}

    def get(self, prefix: str, default: Any = None) -> Any:
        built = self._built.get(prefix)
        if built is None:
            entry = self.raw.get(prefix)
            if entry is None:
                return default
            built = _prefix_rates(prefix, _compiled_rows(prefix, entry))
            self._built[prefix] = built
        return built

    def __getitem__(self, prefix: str) -> PrefixRates:
        found: PrefixRates | None = self.get(prefix)
        if found is None:
            raise KeyError(prefix)
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)


class CompiledRows(Sequence[RateRow]):
    """A compiled deck's rows in line order, made only if someone asks for them."""

    def __init__(self, raw: dict[str, CompiledPrefix], count: int) -> None:
        self.raw = raw
        self.total = count
        self._rows: tuple[RateRow, ...] | None = None

    def _all(self) -> tuple[RateRow, ...]:
        if self._rows is None:
            rows = [r for p, e in self.raw.items() for r in _compiled_rows(p, e)]
            self._rows = tuple(sorted(rows, key=lambda r: r.line))
        return self._rows

    def __getitem__(self, index: Any) -> Any:
        return self._all()[index]

    def __len__(self) -> int:
        return self.total

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and tuple(self._all()) == tuple(other)

    __hash__ = None  # type: ignore[assignment]


def _compiled_rows(prefix: str, entry: CompiledPrefix) -> list[RateRow]:
    return [RateRow(r[0], prefix, *r[1:]) for r in json.loads(entry)]


@dataclass(frozen=True)
class Deck:
    name: str
    currency: str
    timezone: str
    decimals: int
    rounding: Rounding
    bands: dict[str, Band]
    rows: Sequence[RateRow]  # a tuple; `CompiledRows` for a deck loaded from its compiled form
    version: int = 0
    sha256: str = ""
    prefixes: Mapping[str, PrefixRates] = field(init=False, repr=False, compare=False)
    clock: BandClock = field(init=False, repr=False, compare=False)
    max_prefix_len: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        prefixes: Mapping[str, PrefixRates]
        if isinstance(self.rows, CompiledRows):
            prefixes = CompiledPrefixes(self.rows.raw)
        else:
            grouped: dict[str, list[RateRow]] = {}
            for row in self.rows:
                grouped.setdefault(row.prefix, []).append(row)
            prefixes = {p: _prefix_rates(p, rows) for p, rows in grouped.items()}
        object.__setattr__(self, "prefixes", prefixes)
        object.__setattr__(self, "clock", BandClock(self.bands, self.timezone))
        object.__setattr__(self, "max_prefix_len", max(map(len, prefixes), default=0))

    def lookup(self, digits: str) -> PrefixRates | None:
        """Longest prefix match on E.164 digits (no '+')."""
        for length in range(min(len(digits), self.max_prefix_len), 0, -1):
            found = self.prefixes.get(digits[:length])
            if found is not None:
                return found
        return None

    def manifest(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "currency": self.currency,
            "timezone": self.timezone,
            "decimals": self.decimals,
            "rounding": self.rounding.value,
            "bands": {b.name: list(b.windows) for b in self.bands.values()},
        }


Progress = Callable[[int, int], None]  # (rows read, rows in the file)
HASH_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class DeckDigest:
    """What identifies a deck's content, read without parsing its rates."""

    name: str
    sha256: str
    lines: int = 0  # line breaks in the CSV: how far a progress bar has to go


def read_manifest(path: Path) -> tuple[dict[str, Any], Path]:
    try:
        manifest = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DeckError(str(path), "file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DeckError(str(path), f"not valid TOML: {exc}") from None
    rates_name = manifest.get("rates")
    if not isinstance(rates_name, str) or not rates_name:
        raise DeckError(str(path), "'rates' must name the CSV file of rates")
    return manifest, path.parent / rates_name


def deck_hash(manifest: dict[str, Any]) -> Any:
    """The deck's hash (a hashlib object), fed the manifest; the CSV's bytes follow."""
    digest = hashlib.sha256()
    digest.update(repr(sorted((k, str(v)) for k, v in manifest.items())).encode())
    return digest


def deck_digest(manifest_path: str | Path) -> DeckDigest:
    """The name and `Deck.sha256` of a deck on disk, hashing its CSV in chunks without
    parsing it: an unchanged deck is recognised at the cost of reading it once."""
    path = Path(manifest_path)
    manifest, rates_path = read_manifest(path)
    digest = deck_hash(manifest)
    lines = 0
    try:
        with rates_path.open("rb") as f:
            while chunk := f.read(HASH_CHUNK):
                digest.update(chunk)
                lines += chunk.count(b"\n")
    except FileNotFoundError:
        raise DeckError(str(rates_path), "file not found") from None
    name = manifest.get("name")
    return DeckDigest(name.strip() if isinstance(name, str) else "", digest.hexdigest(), lines)


def load_deck(manifest_path: str | Path, progress: Progress | None = None) -> Deck:
    """Read and validate a deck from its manifest; raises DeckError naming file and line.
    `progress` is told how many rows were read, now and then."""
    path = Path(manifest_path)
    manifest, rates_path = read_manifest(path)
    try:
        data = rates_path.read_bytes()
    except FileNotFoundError:
        raise DeckError(str(rates_path), "file not found") from None
    return build_deck(
        manifest, data, manifest_file=str(path), rates_file=str(rates_path), progress=progress
    )


@dataclass(frozen=True, slots=True)
class DeckHead:
    """A deck's manifest, validated: everything but its rates."""

    name: str
    currency: str
    timezone: str
    decimals: int
    rounding: Rounding
    bands: dict[str, Band]

    def manifest(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "currency": self.currency,
            "timezone": self.timezone,
            "decimals": self.decimals,
            "rounding": self.rounding.value,
            "bands": {b.name: list(b.windows) for b in self.bands.values()},
        }


def parse_head(manifest: dict[str, Any], manifest_file: str) -> DeckHead:
    """Validate a manifest (already parsed TOML); raises DeckError naming the manifest."""
    name = _text(manifest, "name", manifest_file)
    if not is_deck_name(name):
        raise DeckError(
            manifest_file,
            f"name must be 1-64 of letters, digits, '_', '-', '.' (no '..'), got {name!r}",
        )
    currency = _text(manifest, "currency", manifest_file)
    if not is_currency(currency):
        raise DeckError(manifest_file, f"currency must be an ISO 4217 code, got {currency!r}")
    timezone = manifest.get("timezone", "Europe/Warsaw")
    try:
        ZoneInfo(str(timezone))
    except (ZoneInfoNotFoundError, ValueError):
        raise DeckError(manifest_file, f"unknown timezone {timezone!r}") from None
    decimals = manifest.get("decimals", 4)
    if not isinstance(decimals, int) or isinstance(decimals, bool) or not 0 <= decimals <= 6:
        raise DeckError(manifest_file, f"decimals must be an integer 0..6, got {decimals!r}")
    try:
        rounding = Rounding(manifest.get("rounding", "up"))
    except ValueError:
        raise DeckError(
            manifest_file, f"rounding must be up, half-up or down, got {manifest.get('rounding')!r}"
        ) from None
    bands = _bands(manifest.get("bands", {}), manifest_file)
    return DeckHead(name, currency, str(timezone), decimals, rounding, bands)


def build_deck(
    manifest: dict[str, Any],
    rates_csv: bytes,
    *,
    manifest_file: str,
    rates_file: str,
    progress: Progress | None = None,
) -> Deck:
    """Validate a manifest (already parsed TOML) and the CSV bytes into a Deck."""
    head = parse_head(manifest, manifest_file)
    rows = _rows(rates_csv, rates_file, head.bands, progress)
    digest = deck_hash(manifest)
    digest.update(rates_csv)
    try:
        return Deck(
            head.name,
            head.currency,
            head.timezone,
            head.decimals,
            head.rounding,
            head.bands,
            rows,
            sha256=digest.hexdigest(),
        )
    except BandError as exc:
        raise DeckError(manifest_file, str(exc)) from None


def _text(manifest: dict[str, Any], key: str, file: str) -> str:
    value = manifest.get(key)
    if not isinstance(value, str) or not value.strip():
        raise DeckError(file, f"'{key}' is required and must be a non-empty string")
    return value.strip()


def _bands(raw: Any, file: str) -> dict[str, Band]:
    if not isinstance(raw, dict):
        raise DeckError(file, "[bands] must be a table of name = [windows]")
    bands: dict[str, Band] = {}
    try:
        for name, windows in raw.items():
            if not isinstance(windows, list):
                raise DeckError(file, f"band {name!r} must be a list of windows")
            bands[name] = parse_band(name, windows)
        BandClock(bands, "UTC")  # overlap check between bands
    except BandError as exc:
        raise DeckError(file, str(exc)) from None
    return bands


def column_index(header: list[str] | None, file: str) -> dict[str, int]:
    """Where each column is in the CSV, from its header line; raises naming line 1."""
    if header is None:
        raise DeckError(file, "empty file, expected a header", 1)
    header = [h.strip() for h in header]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise DeckError(file, f"missing column(s): {', '.join(missing)}", 1)
    extra = [c for c in header if c not in COLUMNS]
    if extra:
        raise DeckError(file, f"unknown column(s): {', '.join(extra)}", 1)
    return {c: header.index(c) for c in COLUMNS}


def is_blank(cells: list[str]) -> bool:
    """An empty line, or one of empty cells: skipped."""
    return not cells or all(not c.strip() for c in cells)


def _rows(
    data: bytes, file: str, bands: dict[str, Band], progress: Progress | None = None
) -> tuple[RateRow, ...]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DeckError(file, f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    width = len(header) if header is not None else 0
    index = column_index(header, file)
    rows: list[RateRow] = []
    seen: dict[tuple[str, str, int], int] = {}
    total = text.count("\n") if progress is not None else 0
    tail_of = itemgetter(*[index[c] for c in TAIL_COLUMNS])
    for cells in reader:
        line = reader.line_num
        if progress is not None and not line % PROGRESS_EVERY:
            progress(line - 1, total)
        if is_blank(cells):
            continue
        if len(cells) != width:
            raise DeckError(file, f"expected {width} fields, got {len(cells)}", line)
        prefix = parse_prefix(cells[index["prefix"]].strip(), file, line)
        tail = parse_tail(tail_of(cells), file, line, bands)
        row = RateRow(line, prefix, cells[index["name"]].strip(), *tail)
        key = (row.prefix, row.band, row.from_s)
        if key in seen:
            raise duplicate(file, line, row.prefix, row.band, row.from_s, seen[key])
        seen[key] = line
        rows.append(row)
    if not rows:
        raise DeckError(file, "no rates")
    if progress is not None:
        progress(len(rows), len(rows))
    _check_prefixes(rows, file, bands)
    return tuple(rows)


def duplicate(file: str, line: int, prefix: str, band: str, from_s: int, first: int) -> DeckError:
    return DeckError(
        file,
        f"duplicate row for prefix {prefix} band {band} from_s {from_s} (first at line {first})",
        line,
    )


def parse_prefix(text: str, file: str, line: int) -> str:
    prefix = text.lstrip("+")
    if not (prefix.isdigit() and prefix.isascii()) or len(prefix) > 15:
        raise DeckError(file, f"prefix must be 1-15 digits, got {text!r}", line)
    return prefix


# A row's cells after its prefix and name, checked: connect_fee, rate, rate_unit_s,
# increment_s, from_s (whole micro-units and seconds) and band.
Tail = tuple[int, int, int, int, int, str]
TAIL_COLUMNS = COLUMNS[2:]


def parse_tail(cells: Sequence[str], file: str, line: int, bands: dict[str, Band]) -> Tail:
    """A row's cells after its prefix and name, in `TAIL_COLUMNS` order as the file has
    them: the one place a row's cells are checked (the whole-file reader checks each row's,
    the stream each distinct group of them once)."""
    if len(cells) != len(TAIL_COLUMNS):
        raise DeckError(file, f"expected {len(COLUMNS)} fields, got {len(cells) + 2}", line)
    fee_text, rate_text, unit_text, increment_text, from_text, band_text = (
        c.strip() for c in cells
    )
    band = band_text or ANY_BAND
    if band != ANY_BAND and band not in bands:
        raise DeckError(file, f"unknown band {band!r} (not in the manifest's [bands])", line)
    try:
        connect_fee = parse_micro(fee_text or "0")
    except MoneyError as exc:
        raise DeckError(file, f"connect_fee: {exc}", line) from None
    try:
        rate = parse_micro(rate_text)
    except MoneyError as exc:
        raise DeckError(file, f"rate: {exc}", line) from None
    unit = _int(unit_text, "rate_unit_s", file, line, minimum=1)
    increment = _int(increment_text, "increment_s", file, line, minimum=1)
    from_s = _int(from_text, "from_s", file, line, minimum=0)
    return connect_fee, rate, unit, increment, from_s, band


def _int(text: str, column: str, file: str, line: int, *, minimum: int) -> int:
    try:
        return parse_whole(text, low=minimum, high=86_400)
    except MoneyError as exc:
        raise DeckError(
            file, f"{column} must be a whole number between {minimum} and 86400: {exc}", line
        ) from None


class PrefixCheck:
    """The checks on one prefix's rows as a whole: a first tier (from_s 0) in every band it
    uses, and a rate at all times. Answers are kept per shape (the bands and tiers used), so
    a large deck pays for each shape once."""

    def __init__(self, file: str, bands: dict[str, Band]) -> None:
        self.file = file
        self.bands = bands
        self._shapes: dict[frozenset[tuple[str, int]], tuple[str | None, bool]] = {}

    def problem(self, prefix: str, tiers: dict[tuple[str, int], int]) -> DeckError | None:
        """`tiers`: (band, from_s) -> line, in line order. None when the prefix is good."""
        shape = frozenset(tiers)
        verdict = self._shapes.get(shape)
        if verdict is None:
            if len(self._shapes) > 4096:  # bounded: a deck may have many shapes
                self._shapes.clear()
            verdict = self._shapes[shape] = self._verdict(tiers)
        no_first_tier, covered = verdict
        if no_first_tier is not None:
            first = min(line for (band, _), line in tiers.items() if band == no_first_tier)
            return DeckError(
                self.file, f"prefix {prefix} band {no_first_tier} has no tier with from_s 0", first
            )
        if not covered:
            return DeckError(
                self.file,
                f"prefix {prefix} has no rate at some times: add a '*' row or bands covering "
                "the whole week",
                min(tiers.values()),
            )
        return None

    def _verdict(self, tiers: dict[tuple[str, int], int]) -> tuple[str | None, bool]:
        used = list(dict.fromkeys(band for band, _ in tiers))  # in order of first use
        starts = {band for band, from_s in tiers if from_s == 0}
        missing = next((band for band in used if band not in starts), None)
        if ANY_BAND in used:
            return missing, True
        covered: set[int] = set()
        for band in used:
            for start, end in self.bands[band].minutes:
                covered.update(range(start, end))
        return missing, len(covered) == WEEK_MINUTES


WEEK_MINUTES = 7 * 1440


def _check_prefixes(rows: list[RateRow], file: str, bands: dict[str, Band]) -> None:
    """Every prefix must have a first tier in every band it uses, and a rate at all times."""
    by_prefix: dict[str, dict[tuple[str, int], int]] = {}
    for row in rows:
        by_prefix.setdefault(row.prefix, {})[(row.band, row.from_s)] = row.line
    check = PrefixCheck(file, bands)
    for prefix, tiers in by_prefix.items():
        problem = check.problem(prefix, tiers)
        if problem is not None:
            raise problem


COMPILED_FORMAT = 2  # rows grouped per prefix as lists; 1 (a dict per row) is still read


def compiled_prefixes(deck: Deck) -> dict[str, CompiledPrefix]:
    """Each prefix's rows as the compiled form keeps them, prefixes in order of first use."""
    if isinstance(deck.rows, CompiledRows):
        return dict(deck.rows.raw)
    grouped: dict[str, list[list[Any]]] = {}
    for r in deck.rows:
        grouped.setdefault(r.prefix, []).append(
            [r.line, r.name, r.connect_fee, r.rate, r.rate_unit_s, r.increment_s, r.from_s, r.band]
        )
    compact = json.JSONEncoder(separators=(",", ":")).encode
    return {p: compact(rows) for p, rows in grouped.items()}


def deck_to_json(deck: Deck, version: int | None = None) -> str:
    """The compiled form kept in Redis (and with the version in PostgreSQL): each prefix's
    rows as plain lists, so that loading it is one `json.loads` and nothing per row.
    `version` stands for the deck's own when it is not numbered yet."""
    prefixes = compiled_prefixes(deck)
    return json.dumps(
        {
            **deck.manifest(),
            "format": COMPILED_FORMAT,
            "version": deck.version if version is None else version,
            "sha256": deck.sha256,
            "rows": len(deck.rows),
            "prefixes": prefixes,
        },
        separators=(",", ":"),
    )


def deck_from_json(text: str | bytes) -> Deck:
    data = json.loads(text)
    bands = {name: parse_band(name, windows) for name, windows in data["bands"].items()}
    rows: Sequence[RateRow]
    if data.get("format") == COMPILED_FORMAT:
        rows = CompiledRows(data["prefixes"], data["rows"])
    else:  # written by an earlier version, still in Redis until the deck changes
        rows = tuple(RateRow(**row) for row in data["rows"])
    return Deck(
        data["name"],
        data["currency"],
        data["timezone"],
        data["decimals"],
        Rounding(data["rounding"]),
        bands,
        rows,
        version=data["version"],
        sha256=data["sha256"],
    )
