"""A deck's runs turned into what the import sends: COPY text for `deck_prefixes` and the
pieces of the compiled form for Redis, a block of runs at a time. Read either in the
importing process (`inline_blocks`) or in a second process (`ReaderProcess`): reading and
compiling is the import's Python work, and on a second core it goes on while this process
feeds PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import signal
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from json.encoder import encode_basestring
from multiprocessing.connection import Connection
from typing import Any

from rating.deck import DeckError
from rating.deck_rows import RateStream, Run

BLOCK_RUNS = 4096  # runs sent at a time (an async step per run cost more than the run)
_BACKSLASH, _TWO = "\\", "\\\\"

# A block: (COPY text of its runs, their compiled form's pieces joined by commas, "" when
# no draft is written)
Block = tuple[bytes, str]


class ReaderGone(RuntimeError):
    """The reading process ended without an answer (killed, out of memory)."""

    code = "DECK_READER_GONE"

    def __init__(self, exitcode: int | None) -> None:
        super().__init__(f"the deck reader process ended without an answer (exit {exitcode})")
        self.exitcode = exitcode


def blocks(stream: RateStream, drafted: bool) -> Iterator[Block]:
    """The stream read into blocks: parts in the common form compiled a column at a time
    (`deck_fast`, C speed), any other part row by row. Imported here, not above: pyarrow
    takes a while to load and only the import needs it."""
    from rating.deck_fast import fast_blocks

    yield from fast_blocks(stream, drafted)


def run_blocks(runs: Iterable[Run], drafted: bool) -> Iterator[Block]:
    """Runs, a block at a time. A compiled text has no tab or line break (JSON escapes
    them); its backslashes are doubled, as COPY's text format wants. A draft piece is
    `"<prefix>":"<rows as a JSON string>"` (a prefix is digits: no escaping)."""
    lines: list[str] = []
    pieces: list[str] = []
    for deck_id, prefix, first, rows in runs:
        lines.append(f"{deck_id}\t{prefix}\t{first}\t{rows}\n")
        if drafted:
            pieces.append(f'"{prefix}":{encode_basestring(rows)}')
        if len(lines) >= BLOCK_RUNS:
            yield _copy_text(lines), ",".join(pieces)
            lines, pieces = [], []
    if lines:
        yield _copy_text(lines), ",".join(pieces)


def _copy_text(lines: list[str]) -> bytes:
    # only the compiled texts can hold a backslash (ids, prefixes, lines are digits):
    # doubled once for the whole block
    return "".join(lines).replace(_BACKSLASH, _TWO).encode()


async def inline_blocks(stream: RateStream, drafted: bool) -> AsyncIterator[Block]:
    for block in blocks(stream, drafted):
        yield block


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the stream knew once exhausted, sent back by the reading process."""

    rows: int
    runs: int
    grouped: bool
    problem: DeckError | None
    sha256: str

    def apply(self, stream: RateStream) -> None:
        stream.rows, stream.runs = self.rows, self.runs
        stream.grouped, stream.problem = self.grouped, self.problem
        if stream.progress is not None:  # drawn by the reader: ended here, as it ends
            stream.progress(self.rows, self.rows)


class ReaderProcess:
    """The stream read in a forked process, its blocks received here in order; iterate
    it, then `outcome` is known. An error in the reader (a `DeckError` naming file and
    line) is raised here. Forked, not spawned: the child starts at once with the stream
    (its open file, its hash) as this process has it; it only reads and sends, and ends
    without running this process's clean-ups."""

    def __init__(self, stream: RateStream, drafted: bool) -> None:
        self.stream = stream
        self.drafted = drafted
        self.outcome: Outcome | None = None
        context = multiprocessing.get_context("fork")
        self._recv, send = context.Pipe(duplex=False)
        self._proc = context.Process(
            target=_read, args=(stream, drafted, send), name="deck-reader", daemon=True
        )
        self._proc.start()
        send.close()  # the child's end: EOF here once the child is gone

    async def __aiter__(self) -> AsyncIterator[Block]:
        try:
            while True:
                kind, value = await asyncio.to_thread(self._message)
                if kind == "block":
                    yield value
                elif kind == "done":
                    self.outcome = value
                    value.apply(self.stream)
                    return
                else:
                    raise value
        finally:
            self.close()

    def _message(self) -> tuple[str, Any]:
        try:
            message: tuple[str, Any] = self._recv.recv()
        except EOFError:
            self._proc.join(5)
            raise ReaderGone(self._proc.exitcode) from None
        return message

    def close(self) -> None:
        if self._proc.is_alive():
            self._proc.kill()  # the import is over (an error here): nothing more to read
        self._proc.join(5)
        self._recv.close()


def _read(stream: RateStream, drafted: bool, send: Connection) -> None:
    """In the child: every block, then the outcome, or the error that stopped it."""
    gc.disable()  # as in the importing process: the rows make no cycles
    # Ctrl-C reaches the whole process group: the importer decides, and kills the reader
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for block in blocks(stream, drafted):
            send.send(("block", block))
        outcome = Outcome(
            stream.rows, stream.runs, stream.grouped, stream.problem, stream.digest.hexdigest()
        )
        send.send(("done", outcome))
    except DeckError as exc:
        send.send(("error", exc))
    except Exception as exc:  # sent as text: it may not survive pickling
        send.send(("error", RuntimeError(f"deck reader: {type(exc).__name__}: {exc}")))
    finally:
        send.close()
