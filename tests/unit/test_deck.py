from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rating.deck import DeckError, load_deck

HEADER = "prefix,name,connect_fee,rate,rate_unit_s,increment_s,from_s,band\n"
MANIFEST = """name = "t"
currency = "PLN"
rates = "rates.csv"
[bands]
day = ["mon-fri 08:00-18:00"]
night = ["mon-fri 00:00-08:00", "mon-fri 18:00-24:00", "sat-sun 00:00-24:00"]
"""


def write(tmp: Path, csv: str, manifest: str = MANIFEST) -> Path:
    (tmp / "rates.csv").write_text(csv)
    (tmp / "deck.toml").write_text(manifest)
    return tmp / "deck.toml"


def test_valid_deck_loads(tmp_path: Path) -> None:
    deck = load_deck(write(tmp_path, HEADER + "48,PL,0,0.10,60,60,0,*\n"))
    assert deck.lookup("48221234567") is not None
    assert deck.timezone == "Europe/Warsaw" and deck.decimals == 4


BAD_ROWS = [
    ("prefix,name,rate\n48,x,1\n", 1, "missing column"),
    (HEADER + "48,x,0,abc,60,60,0,*\n", 2, "rate"),
    (HEADER + "48,x,0,0.1,60,60,0,*\n49,x,0,-0.5,60,60,0,*\n", 3, "negative"),
    (HEADER + "48,x,0,0.1,60,60,0,*\n48,x,0,0.1,60,60,0,weekend\n", 3, "unknown band"),
    (HEADER + "48,x,0,0.1,60,60,0,*\n48,x,0,0.2,60,60,0,*\n", 3, "duplicate"),
    (HEADER + "48,x,0,0.1,60,0,0,*\n", 2, "increment_s"),
    (HEADER + "4a,x,0,0.1,60,60,0,*\n", 2, "prefix"),
    (HEADER + "48,x,0,0.1,60,60,30,*\n", 2, "from_s 0"),
    (HEADER + "48,x,0,0.1,60,60,0,day\n", 2, "no rate at some times"),
    (HEADER + "48,x,0,0.1234567,60,60,0,*\n", 2, "6 decimal"),
    (HEADER + "48,x,0,0.1,60,60\n", 2, "fields"),
    (HEADER + "48,x,0,0.1,60,60,0,*,9\n", 2, "fields"),
    (HEADER + "48,x\n", 2, "fields"),
    (HEADER + ",x,0,0.1,60,60,0,*\n", 2, "prefix"),
    (HEADER + "\u0664\u0668,x,0,0.1,60,60,0,*\n", 2, "prefix"),
    (HEADER + "48,x,0,0.1,60,60,0,*\n\n48,y,0,0.1,60,60,0,*\n", 4, "first at line 2"),
    (HEADER + "48,x,0,0.1,60,60,0,*\n4a,x,0,abc,60,60,0,*\n", 3, "prefix"),
    ("", 1, "empty file"),
    (HEADER, None, "no rates"),
]


@pytest.mark.parametrize(("csv", "line", "words"), BAD_ROWS)
def test_bad_rows_name_file_and_line(tmp_path: Path, csv: str, line: int, words: str) -> None:
    with pytest.raises(DeckError) as err:
        load_deck(write(tmp_path, csv))
    assert err.value.line == line
    assert err.value.file.endswith("rates.csv")
    assert words in str(err.value)


@pytest.mark.parametrize(
    ("manifest", "words"),
    [
        (MANIFEST.replace('currency = "PLN"', 'currency = "zł"'), "currency"),
        (MANIFEST + 'timezone = "Mars/Olympus"\n', "timezone"),
        (
            MANIFEST.replace('rates = "rates.csv"', 'rates = "rates.csv"\nrounding = "bankers"'),
            "rounding",
        ),
        (
            MANIFEST.replace('night = ["mon-fri 00:00-08:00"', 'night = ["mon-fri 00:00-09:00"'),
            "overlaps",
        ),
        (MANIFEST.replace("mon-fri 08:00-18:00", "mon-fry 08:00-18:00"), "unknown day"),
        (MANIFEST.replace("mon-fri 08:00-18:00", "mon-fri 18:00-08:00"), "ends before"),
        ("name = [", "TOML"),
    ],
)
def test_bad_manifests_name_the_manifest(tmp_path: Path, manifest: str, words: str) -> None:
    with pytest.raises(DeckError) as err:
        load_deck(write(tmp_path, HEADER + "48,x,0,0.1,60,60,0,*\n", manifest))
    assert err.value.file.endswith("deck.toml")
    assert words in str(err.value)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tollgate.cli", *args], capture_output=True, text=True, timeout=60
    )


def test_cli_rate_contract(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "48,PL,0,0.60,60,30,0,*\n48,PL,0,0.60,60,6,30,*\n")
    ok = cli(
        "rate",
        "--deck",
        str(path),
        "--to",
        "+48221234567",
        "--at",
        "2026-11-20T11:00:00",
        "--seconds",
        "31",
    )
    assert ok.returncode == 0, ok.stderr
    assert '"cost": "0.3600"' in ok.stdout and '"billable_seconds": 36' in ok.stdout
    assert '"at": "2026-11-20T11:00:00+01:00"' in ok.stdout  # no zone: the deck's (Warsaw)
    none = cli("rate", "--deck", str(path), "--to", "+4930123456", "--seconds", "5")
    assert none.returncode == 3 and len(none.stderr.strip().splitlines()) == 1
    bad = write(tmp_path, HEADER + "48,PL,0,x,60,30,0,*\n")
    broken = cli("rate", "--deck", str(bad), "--to", "+48221234567", "--seconds", "5")
    assert broken.returncode == 2 and "rates.csv:2" in broken.stderr
    assert "Traceback" not in broken.stderr


def test_cli_classify_contract() -> None:
    ok = cli("classify", "0048 701-234-567")
    assert ok.returncode == 0 and '"class": "premium"' in ok.stdout
    assert '"e164": "+48701234567"' in ok.stdout
    bad = cli("classify", "12ab")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("cells", "words"),
    [
        ("0,1e300000,60,60,0", "rate"),
        ("0,1e999999,60,60,0", "rate"),
        ("0,1_0,60,60,0", "rate"),
        ("1e3,0.1,60,60,0", "connect_fee"),
        ("0,\u0661,60,60,0", "rate"),
        ("0,0.1,\u0666\u0660,60,0", "rate_unit_s"),
        ("0,0.1,60,\u00b2,0", "increment_s"),
    ],
)
def test_deck_cells_are_plain_numbers(tmp_path: Path, cells: str, words: str) -> None:
    with pytest.raises(DeckError) as err:
        load_deck(write(tmp_path, HEADER + f"48,x,{cells},*\n"))
    assert err.value.line == 2 and words in str(err.value)


@pytest.mark.parametrize(
    ("name", "currency"), [("../../etc", "PLN"), ("a/b", "PLN"), ("t", "XYZ"), ("t", "<B>")]
)
def test_deck_names_are_identifiers_and_currencies_iso(
    tmp_path: Path, name: str, currency: str
) -> None:
    manifest = f'name = "{name}"\ncurrency = "{currency}"\nrates = "rates.csv"\n'
    with pytest.raises(DeckError):
        load_deck(write(tmp_path, HEADER + "48,x,0,0.1,60,60,0,*\n", manifest))


def test_the_digest_of_a_deck_on_disk_is_its_sha256_without_parsing(tmp_path: Path) -> None:
    from rating.deck import deck_digest

    path = write(tmp_path, HEADER + "48,PL,0,0.10,60,60,0,*\n")
    assert deck_digest(path).sha256 == load_deck(path).sha256
    assert deck_digest(path).name == "t"
    (tmp_path / "rates.csv").write_text(HEADER + "48,PL,0,0.11,60,60,0,*\n")
    assert deck_digest(path).sha256 == load_deck(path).sha256  # another content, another hash
    (tmp_path / "rates.csv").write_text(HEADER + "48,PL,0,not a rate,60,60,0,*\n")
    with pytest.raises(DeckError):
        load_deck(path)
    assert len(deck_digest(path).sha256) == 64  # the rows were never parsed


def test_progress_is_reported_while_parsing(tmp_path: Path) -> None:
    rows = "".join(f"48{n:05d},PL,0,0.10,60,60,0,*\n" for n in range(25_000))
    seen: list[tuple[int, int]] = []
    load_deck(
        write(tmp_path, HEADER + rows), progress=lambda done, total: seen.append((done, total))
    )
    assert seen[0] == (9_999, 25_001) and seen[-1] == (25_000, 25_000)
