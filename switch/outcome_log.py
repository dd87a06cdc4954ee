"""Call outcomes from Asterisk's outcome log: how every call's finish reaches tollgate.

The hangup handler puts `call id|account|status|answered ms|cause|dialled|emergency|end`
into CDR(tollgate_outcome); Asterisk's cdr_custom appends it, one line per CDR, to a file of
its own (no AstDB write, nothing under AstDB's lock, no second AGI session). tollgate tails
that file: it settles each complete line in the ledger (idempotent on the call id), sets
aside lines no ledger can accept, and stores how far it got (inode + byte offset, in
PostgreSQL) only after the lines before it are settled. A line whose settlement fails (Redis
unreachable) stops the round there; the next round starts again from it.

Rotation: the operator renames the file (same directory); Asterisk opens, appends and
closes the file per record, so its next record creates a new one. tollgate finishes the old
inode first, then starts the new file once it has a line (cdr_custom writes under one lock,
so a line in the new file means nothing more can reach the old one) or the old one stayed
quiet for `rotate_grace_s`.

It also tells the sweeper how far it may go: a reservation may be expired only if a round
that started after its deadline read the log to its end with nothing failing (else the
call's outcome may still be on its way)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import asyncpg
from redis.exceptions import RedisError

from core.env import SettingsError
from rating.ledger import Ledger, LedgerError, Outcome
from switch.ami import AmiError
from switch.outcome_line import OutcomeLineError, parse_line
from switch.outcome_offsets import OffsetStore, Position, Reject
from switch.parking import ParkingLot

log = logging.getLogger("tollgate.switch.outcome_log")

ENV_PATH = "TOLLGATE_OUTCOME_LOG"
# PostgreSQL (the stored offset) unreachable or the connection lost
_PG_DOWN = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


class OutcomeLogError(RuntimeError):
    """The log could not be read (permissions, I/O): nothing was consumed."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"outcome log {path}: {why}")
        self.path = path
        self.why = why


@dataclass(frozen=True)
class OutcomeLogSettings:
    path: str = ""  # Asterisk's log/cdr-custom/tollgate-outcomes.csv, as tollgate sees it
    interval_s: float = 0.5  # how long a finished call's reservation may still be held
    batch_bytes: int = 1 << 20  # read at most this much per step
    # Lines settled at once. Small on purpose: settlements share serve's event loop and
    # Redis pipe with authorizations, which wait behind the group in flight. Measured
    # in-process (50 lines, load 14): an authorization during the burst waited p50 72-1,293
    # ms with 64 at once (about the whole burst), 11-484 ms with 8; 2 was no better.
    concurrency: int = 8
    rotate_grace_s: float = 2.0
    backoff_max_s: float = 30.0

    @property
    def enabled(self) -> bool:
        return bool(self.path)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OutcomeLogSettings:
        env = os.environ if env is None else env
        raw = env.get("TOLLGATE_OUTCOME_INTERVAL_S", "") or "0.5"
        try:
            interval = float(raw)
        except ValueError:
            raise SettingsError("TOLLGATE_OUTCOME_INTERVAL_S", f"not a number: {raw!r}") from None
        if not 0 < interval <= 60:
            raise SettingsError("TOLLGATE_OUTCOME_INTERVAL_S", "must be > 0 and <= 60")
        raw = env.get("TOLLGATE_OUTCOME_CONCURRENCY", "") or str(cls.concurrency)
        if not raw.isdigit() or not 1 <= int(raw) <= 1024:
            raise SettingsError("TOLLGATE_OUTCOME_CONCURRENCY", f"not 1..1024: {raw!r}")
        return cls(path=env.get(ENV_PATH, ""), interval_s=interval, concurrency=int(raw))


@dataclass(frozen=True)
class LogScan:
    seen: int  # outcome lines read this round
    settled: int  # of which settled now (or already settled before: replays)
    failed: int  # 0, or 1 when a settlement failed and the round stopped there
    rejected: int = 0  # set aside
    lag_bytes: int = 0  # left unread in the file being read


@dataclass
class _Round:
    seen: int = 0
    settled: int = 0
    rejected: int = 0
    failed: bool = False
    rejects: list[Reject] = field(default_factory=list)


class OutcomeLog:
    def __init__(
        self,
        settings: OutcomeLogSettings,
        ledger: Ledger,
        pool: asyncpg.Pool,
        *,
        legacy: ParkingLot | None = None,
        on_scan: Callable[[LogScan | None], None] | None = None,
        on_settled: Callable[[Outcome], None] | None = None,
    ) -> None:
        if not settings.enabled:
            raise SettingsError(ENV_PATH, "required: the path of Asterisk's outcome log")
        self.settings = settings
        self.path = Path(settings.path)
        self.ledger = ledger
        self.store = OffsetStore(pool, str(self.path))
        # AstDB parking of dialplans from before the upgrade: drained until one clean scan.
        self.legacy = legacy
        self.on_scan = on_scan or (lambda scan: None)
        self.on_settled = on_settled or (lambda outcome: None)  # first settlements only
        # Epoch start of the last round that read the log to its end cleanly (None: not yet).
        self.clear_since: float | None = None
        self._pos: Position | None = None
        self._rotated_at: float | None = None  # when the path first showed another inode
        self._lock = asyncio.Lock()

    # -- one round -------------------------------------------------------------------------

    async def collect(self) -> LogScan:
        """Read to the end of the log. Raises OutcomeLogError when it cannot be read."""
        async with self._lock:
            started = time.time()
            try:
                scan, at_end = await self._round()
            except OutcomeLogError:
                self.on_scan(None)
                raise
            if at_end and scan.failed == 0 and await self._legacy_drained():
                self.clear_since = started
            self.on_scan(scan)
            return scan

    async def _round(self) -> tuple[LogScan, bool]:
        total = _Round()
        while True:
            current = _stat(self.path)
            pos = await self._position(current)
            if pos is None:  # no log yet: nothing was ever written
                return LogScan(0, 0, 0), True
            reading = self._locate(pos, current)
            if reading is None:
                log.error(
                    "outcome log %s: the file with inode %d (read up to byte %d) is gone;"
                    " its unread outcomes are left to the sweeper",
                    self.path,
                    pos.inode,
                    pos.offset,
                )
                if current is None:
                    return LogScan(0, 0, 0), True
                pos = await self._move(Position(current.st_ino, 0))
                reading = self.path
            pos, lag = await self._consume(reading, pos, total)
            if total.failed:
                return self._scan(total, lag), False
            if current is not None and current.st_ino == pos.inode:
                self._rotated_at = None
                return self._scan(total, lag), True
            # A rotated file read to its end: go on with the new one once nothing more can
            # reach the old one (a line in the new file, or the grace time passed).
            now = time.monotonic()
            self._rotated_at = self._rotated_at or now
            quiet = now - self._rotated_at >= self.settings.rotate_grace_s
            if current is None or (current.st_size == 0 and not quiet):
                return self._scan(total, lag), quiet
            log.info(
                "outcome log %s rotated: inode %d read to byte %d", self.path, pos.inode, pos.offset
            )
            await self._move(Position(current.st_ino, 0))
            self._rotated_at = None

    def _scan(self, r: _Round, lag: int) -> LogScan:
        return LogScan(r.seen, r.settled, 1 if r.failed else 0, r.rejected, lag)

    async def _position(self, current: os.stat_result | None) -> Position | None:
        if self._pos is None:
            try:
                self._pos = await self.store.load()
            except _PG_DOWN as exc:
                raise OutcomeLogError(str(self.path), f"offset unreadable: {exc}") from exc
            if self._pos is None and current is not None:
                self._pos = Position(current.st_ino, 0)
        return self._pos

    async def _move(self, pos: Position) -> Position:
        try:
            await self.store.save(pos)
        except _PG_DOWN as exc:
            raise OutcomeLogError(str(self.path), f"offset not stored: {exc}") from exc
        self._pos = pos
        return pos

    def _locate(self, pos: Position, current: os.stat_result | None) -> Path | None:
        """The file holding `pos`: the path itself, or a rotated sibling (path.*)."""
        for candidate in self._candidates():
            st = current if candidate == self.path else _stat(candidate)
            if st is None or st.st_ino != pos.inode:
                continue
            if pos.first_line and _first_line(candidate) != pos.first_line:
                continue  # another file that got the same inode number
            if st.st_size < pos.offset:
                log.error(
                    "outcome log %s shrank below byte %d: read again from 0", candidate, pos.offset
                )
                self._pos = replace(pos, offset=0)
            return candidate
        if pos.offset == 0 and current is not None:
            return self.path  # nothing read yet: just start the file that is there
        return None

    def _candidates(self) -> Iterator[Path]:
        yield self.path
        # only listed when the path is not the file (after a rotation)
        yield from sorted(self.path.parent.glob(self.path.name + ".*"))

    # -- reading and settling ----------------------------------------------------------------

    async def _consume(self, file: Path, pos: Position, total: _Round) -> tuple[Position, int]:
        pos = self._pos or pos
        try:
            with file.open("rb") as f:
                size = os.fstat(f.fileno()).st_size
                while pos.offset < size:
                    f.seek(pos.offset)
                    chunk = f.read(self.settings.batch_bytes)
                    end = chunk.rfind(b"\n")
                    if end < 0:
                        break  # a partial last line: Asterisk has not finished it
                    pos = await self._settle_chunk(pos, chunk[: end + 1], total)
                    if total.failed:
                        break
                    size = max(size, os.fstat(f.fileno()).st_size)
                lag = max(size - pos.offset, 0)
        except OSError as exc:
            raise OutcomeLogError(str(file), exc.strerror or str(exc)) from exc
        return pos, lag

    async def _settle_chunk(self, pos: Position, chunk: bytes, total: _Round) -> Position:
        lines: list[tuple[int, bytes]] = []
        offset = pos.offset
        for raw in chunk.split(b"\n")[:-1]:
            lines.append((offset, raw))
            offset += len(raw) + 1
        # the file's first non-empty line: nothing but empty lines came before this chunk
        first = pos.first_line or next((_text(raw) for _, raw in lines if raw.strip()), "")
        done = pos.offset
        step = self.settings.concurrency
        rejects: list[Reject] = []
        for i in range(0, len(lines), step):
            group = lines[i : i + step]
            verdicts = await asyncio.gather(*(self._settle(at, raw) for at, raw in group))
            for (at, raw), verdict in zip(group, verdicts, strict=True):
                if verdict is None:  # retry: stop here, the lines before are settled
                    total.failed = True
                    break
                if isinstance(verdict, Reject):
                    rejects.append(verdict)
                    total.rejected += 1
                elif verdict:
                    total.settled += 1
                total.seen += 1 if raw.strip() else 0
                done = at + len(raw) + 1
            if total.failed:
                break
            # let the authorizations that came in meanwhile run before the next group
            await asyncio.sleep(0)
        if done == pos.offset and not rejects:
            return pos
        new = Position(pos.inode, done, first)
        try:
            await self.store.save(new, rejects)
        except _PG_DOWN as exc:
            # Settled but not recorded: the next round replays these lines (idempotent).
            log.warning("outcome log offset not stored, lines will be replayed: %s", exc)
            total.failed = True
            return pos
        self._pos = new
        return new

    async def _settle(self, at: int, raw: bytes) -> bool | Reject | None:
        """True settled, False nothing to settle (empty line), Reject set aside, None retry."""
        text = _text(raw)
        if not text:
            return False
        try:
            report = parse_line(text)
            settled = await self.ledger.finish(report.account, report.call_id, report.outcome)
        except (OutcomeLineError, LedgerError) as exc:
            log.error("outcome log %s byte %d cannot be settled: %s: %r", self.path, at, exc, text)
            return Reject(at, text[:1000], str(exc))
        except (RedisError, OSError, ConnectionError) as exc:
            log.warning("outcome at byte %d not settled yet: %s", at, exc)
            return None
        if settled.status == "FINISHED":
            self.on_settled(report.outcome)
        log.debug(
            "settled %s (%s): cost %d (%s)",
            report.call_id,
            report.account,
            settled.cost,
            settled.status,
        )
        return True

    # -- the legacy AstDB parking lot -----------------------------------------------------------

    async def _legacy_drained(self) -> bool:
        if self.legacy is None:
            return True
        try:
            scan = await self.legacy.collect()
        except AmiError as exc:
            log.warning("outcomes parked in AstDB before the upgrade not collected: %s", exc)
            return False
        if scan.failed:
            return False
        log.info("AstDB parking lot drained (%d outcome(s) from before the upgrade)", scan.settled)
        self.legacy = None
        return True

    async def run(self) -> None:
        """Collect forever: every interval while all is well, backing off while it fails."""
        delay = self.settings.interval_s
        while True:
            try:
                scan = await self.collect()
                ok = scan.failed == 0
                delay = (
                    self.settings.interval_s if ok else min(delay * 2, self.settings.backoff_max_s)
                )
            except OutcomeLogError as exc:
                log.warning("%s; retrying in %.1f s", exc, delay)
                delay = min(delay * 2, self.settings.backoff_max_s)
            await asyncio.sleep(delay)


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise OutcomeLogError(str(path), exc.strerror or str(exc)) from exc


def _first_line(path: Path) -> str:
    """The file's first complete non-empty line (what Position.first_line holds)."""
    try:
        with path.open("rb") as f:
            head = f.read(65536)
    except OSError:
        return ""
    complete = head[: head.rfind(b"\n") + 1].split(b"\n")[:-1]
    return next((_text(raw) for raw in complete if raw.strip()), "")


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace").strip()
