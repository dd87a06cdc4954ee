"""The font files a PDF embeds, prepared once per process.

fpdf2 parses the whole TrueType font on every `add_font` (DejaVu Sans has about 6,000
glyphs: glyph table, names, metrics) and subsets it when it writes the PDF. Keeping the
parsed font between documents is not safe: fpdf2 subsets the parsed font in place. What is
kept instead is a reduced copy of the font file, made once per process with fontTools'
subsetter: the Latin letters of Polish and the other EU languages, punctuation and currency
signs (about 600 glyphs of 6,000), parsed several times faster. A document whose text
needs a character outside the copy (a Cyrillic or Greek name) is drawn with the full font,
so nothing that rendered before renders differently."""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from fontTools import subset, ttLib

# code point ranges kept in the reduced copy
RANGES = (
    (0x0020, 0x017F),  # Basic Latin, Latin-1, Latin Extended-A (Polish and EU letters)
    (0x2000, 0x206F),  # General Punctuation
    (0x20A0, 0x20CF),  # Currency Symbols
    (0x2100, 0x214F),  # Letterlike Symbols (№, ™)
)


@dataclass(frozen=True, slots=True)
class Reduced:
    path: str  # the reduced copy
    covers: frozenset[int]  # the code points it has glyphs for


_lock = threading.Lock()  # rendering runs in worker threads
_cache: dict[tuple[str, int, int], Reduced] = {}
_folder: Path | None = None


def _workdir() -> Path:
    global _folder
    if _folder is None:
        _folder = Path(tempfile.mkdtemp(prefix="tollgate-fonts-"))
        atexit.register(shutil.rmtree, _folder, True)
    return _folder


def _reduce(source: Path, target: Path) -> Reduced:
    font = ttLib.TTFont(str(source), recalcTimestamp=False)
    options = subset.Options(
        notdef_outline=True, recommended_glyphs=True, glyph_names=True, name_IDs=["*"]
    )
    options.drop_tables += ["FFTM"]  # a font-editor timestamp fontTools cannot subset
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=[u for lo, hi in RANGES for u in range(lo, hi + 1)])
    subsetter.subset(font)
    font.save(str(target))
    return Reduced(str(target), frozenset(font.getBestCmap()))


def reduced(path: str) -> Reduced:
    """The reduced copy of the font at `path`, made on first use (per file version)."""
    source = Path(path)
    stat = source.stat()
    key = (str(source.resolve()), stat.st_mtime_ns, stat.st_size)
    with _lock:
        found = _cache.get(key)
        if found is None:
            target = _workdir() / f"{len(_cache)}-{source.name}"
            found = _cache[key] = _reduce(source, target)
    return found


def font_for(path: str, text: str) -> str:
    """The font file to embed for `text`: the reduced copy when it has every character
    (spaces and line breaks aside), else the full font."""
    copy = reduced(path)
    needed = {ord(c) for c in text if c not in "\n\r\t"}
    return copy.path if needed <= copy.covers else path
