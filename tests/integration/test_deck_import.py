"""A deck streamed into PostgreSQL and published to Redis: what is stored and served is the
deck the whole-file reader reads, prefixes that come in several runs are put together and
checked again, and an error anywhere (also at line 900,000) leaves nothing behind."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rating import deck_reader
from rating.deck import DeckError, load_deck, parse_head, read_manifest
from rating.deck_import import Imported, import_stream
from rating.deck_reader import Block, ReaderGone
from rating.deck_store import fetch_from_redis, load_deck_version, publish_stored
from runtime.services import Services
from tests.conftest import settings_env

HEADER = "prefix,name,connect_fee,rate,rate_unit_s,increment_s,from_s,band\n"
MANIFEST = """name = "stream"
currency = "PLN"
rates = "rates.csv"
[bands]
day = ["mon-fri 08:00-18:00"]
night = ["mon-fri 00:00-08:00", "mon-fri 18:00-24:00", "sat-sun 00:00-24:00"]
"""


def write(tmp: Path, csv: str) -> Path:
    (tmp / "rates.csv").write_text(csv)
    (tmp / "deck.toml").write_text(MANIFEST)
    return tmp / "deck.toml"


async def stream_in(
    svc: Services, path: Path, *, direct: bool = False, reader: bool = False
) -> Imported:
    """Import, and publish from PostgreSQL; `direct`: as `tollgate deck import` does, Redis
    gets the compiled form during the import (from PostgreSQL if prefixes were merged);
    `reader`: as it does too, the CSV is read in a second process."""
    manifest, rates = read_manifest(path)
    keys = svc.settings.keyspace
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        done = await import_stream(
            conn,
            parse_head(manifest, str(path)),
            manifest,
            io.BytesIO(rates.read_bytes()),
            rates_file=str(rates),
            source="test",
            redis=svc.redis if direct else None,
            keys=keys if direct else None,
            reader_process=reader,
        )
        if not done.published:
            await publish_stored(conn, svc.redis, keys, done.name, done.version)
    return done


async def stored_counts(svc: Services) -> tuple[int, int, int]:
    assert svc.pool is not None
    return (
        await svc.pool.fetchval("select count(*) from decks where name = 'stream'"),
        await svc.pool.fetchval("select count(*) from deck_prefixes"),
        await svc.pool.fetchval("select count(*) from deck_heads where name = 'stream'"),
    )


BY_BAND = (  # sorted by band: every prefix comes in two runs, each alone incomplete
    HEADER
    + "".join(f"48{n},PL {n},0.01,0.{n}1,60,60,0,day\n" for n in range(10))
    + "".join(f"48{n},PL {n},0,0.0{n}5,60,30,0,night\n48{n},PL {n},0,0.0{n}5,60,6,30,night\n"
              for n in range(10))
    + "49,DE,0,1,60,60,0,*\n"
)  # fmt: skip


@pytest.mark.parametrize(("direct", "reader"), [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize(
    "csv",
    [
        HEADER + "".join(f"48{n:03d},PL,0,0.{n:03d},60,60,0,*\n" for n in range(200)),
        BY_BAND,
        BY_BAND.replace("PL 3", '"PL, 3"'),  # quoted: read by csv
        # names JSON escapes (backslash, quote, tab), non-ASCII: COPY's text format reads
        # a backslash as an escape of its own; plain (split at commas) and quoted (csv)
        HEADER + "".join(f"48{n:03d},P\\L {n} \\t ż,0,0.{n:03d},60,60,0,*\n" for n in range(9)),
        HEADER + "".join(f'48{n},"P\\L ""{n}""\t\\tż",0,0.{n},60,60,0,*\n' for n in range(9)),
        BY_BAND.replace("PL 3", '"PL \\ 3 ""x""\tż \\\\n"'),
    ],
)
async def test_what_is_stored_and_served_is_the_deck_read_whole(
    svc: Services, tmp_path: Path, csv: str, direct: bool, reader: bool
) -> None:
    path = write(tmp_path, csv)
    whole = load_deck(path)
    done = await stream_in(svc, path, direct=direct, reader=reader)
    assert done.published == (direct and "night" not in csv)  # merged: from PostgreSQL
    assert (done.created, done.rows, done.prefixes) == (True, len(whole.rows), len(whole.prefixes))
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        stored = await load_deck_version(conn, "stream")
    served = await fetch_from_redis(svc.redis, svc.settings.keyspace, "stream", done.version)
    assert served is not None
    for deck in (stored, served):
        assert deck.sha256 == whole.sha256 and deck.rows == whole.rows
        assert deck.manifest() == whole.manifest()
        for number in ("48312345", "4899", "491234"):
            assert deck.lookup(number) == whole.lookup(number)
    again = await stream_in(svc, path, direct=direct, reader=reader)
    assert (again.version, again.created, again.published) == (done.version, False, False)
    assert await stored_counts(svc) == (1, len(whole.prefixes), 1)


@pytest.mark.parametrize(
    ("csv", "line", "words"),
    [
        (BY_BAND + "483,PL 3,0,0.1,60,60,0,day\n", 33, "first at line 5"),
        (
            BY_BAND.replace("489,PL 9,0,0.095,60,30,0,night\n489,PL 9,0,0.095,60,6,30,night\n", ""),
            11,
            "no rate at some",
        ),
        (BY_BAND.replace("489,PL 9,0,0.095,60,30,0,night\n", ""), 30, "from_s 0"),
    ],
)
@pytest.mark.parametrize("reader", [False, True])
async def test_runs_of_one_prefix_are_checked_together(
    svc: Services, tmp_path: Path, csv: str, line: int, words: str, reader: bool
) -> None:
    path = write(tmp_path, csv)
    with pytest.raises(DeckError) as whole:
        load_deck(path)
    with pytest.raises(DeckError) as streamed:
        await stream_in(svc, path, reader=reader)
    assert (streamed.value.line, streamed.value.why) == (whole.value.line, whole.value.why)
    assert words in streamed.value.why
    assert await stored_counts(svc) == (0, 0, 0)


@pytest.mark.parametrize("reader", [False, True])
async def test_a_bad_row_at_line_900000_leaves_nothing_behind(
    svc: Services, tmp_path: Path, reader: bool
) -> None:
    good = write(tmp_path, HEADER + "48,PL,0,0.1,60,60,0,*\n")
    first = await stream_in(svc, good)
    with (tmp_path / "rates.csv").open("w") as f:
        f.write(HEADER)
        for n in range(899_998):
            f.write(f"{100_000 + n},Dest,0,0.1,60,60,0,*\n")
        f.write("4,Dest,0,0.1,sixty,60,0,*\n")
    with pytest.raises(DeckError) as err:
        await stream_in(svc, good, direct=True, reader=reader)
    assert err.value.line == 900_000 and "rate_unit_s" in err.value.why
    assert await stored_counts(svc) == (1, 1, 1)  # the first version alone
    assert svc.pool is not None
    assert await svc.pool.fetchval("select current_version from deck_heads") == first.version
    keys = svc.settings.keyspace
    left = [k async for k in svc.redis.scan_iter(match=keys.deck_current("stream")[:-7] + "*")]
    first_only = (
        keys.deck_current("stream"),
        keys.deck_schedule("stream"),
        keys.deck_version("stream", 1),
    )
    assert sorted(left) == sorted(k.encode() for k in first_only)
    assert await svc.redis.hkeys(keys.deck_schedule("stream")) == [b"1"]  # v2 never told


async def test_a_reader_process_that_dies_leaves_nothing_behind(
    svc: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, HEADER + "".join(f"4{n},X,0,0.1,60,60,0,*\n" for n in range(99)))

    blocks = deck_reader.blocks

    def dies(stream: Any, drafted: bool) -> Iterator[Block]:
        yield next(blocks(stream, drafted))
        os._exit(9)  # killed after sending a block: no answer, no error

    monkeypatch.setattr(deck_reader, "blocks", dies)  # the child is forked: it has it too
    with pytest.raises(ReaderGone) as gone:
        await stream_in(svc, path, direct=True, reader=True)
    assert gone.value.exitcode == 9
    assert await stored_counts(svc) == (0, 0, 0)
    pattern = svc.settings.keyspace.deck_current("stream")[:-7] + "*"
    assert [k async for k in svc.redis.scan_iter(match=pattern)] == []  # no draft left


def test_the_progress_bar_shows_on_a_terminal_only(tmp_path: Path, svc: Services) -> None:
    path = write(
        tmp_path, HEADER + "".join(f"{10_000 + n},X,0,0.1,60,60,0,*\n" for n in range(25_000))
    )
    env = {**settings_env(svc.settings), "PATH": "/usr/bin:/bin"}
    argv = [sys.executable, "-m", "tollgate.cli", "deck", "import", str(path)]
    piped = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert piped.returncode == 0 and piped.stderr == "" and '"created": true' in piped.stdout
    (tmp_path / "rates.csv").write_text(
        HEADER + "".join(f"{10_000 + n},Y,0,0.1,60,60,0,*\n" for n in range(25_000))
    )
    master, replica = os.openpty()
    try:
        tty = subprocess.run(argv, stdout=subprocess.PIPE, stderr=replica, env=env, timeout=120)
        shown = os.read(master, 65536).decode()
    finally:
        os.close(master)
        os.close(replica)
    assert tty.returncode == 0 and b'"version": 2' in tty.stdout
    assert "deck stream: lines [" in shown and "100%" in shown and "25,000/25,000" in shown
