"""A carrier's stored CDR-file column mapping: set with `carrier create|update
--csv-columns`, used by `carrier reconcile`, overridden field by field by its --columns."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.cliout import CliError
from rating.carrier_store import mirrored_carriers
from rating.carriers import CarrierError
from rating.deck import Deck
from runtime.services import Services
from tests.integration.test_carriers import T0, cli


async def test_the_stored_mapping_is_used_and_the_flag_overrides_it(
    svc: Services, retail: Deck, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from tests.panel import cdr, store_cdrs

    assert svc.pool is not None
    made = await cli(svc, capsys, "carrier", "create", "up", "--deck", "retail",
                     "--csv-columns", " start=Date , number=Called,seconds=Dur")  # fmt: skip
    assert made["csv_columns"] == "number=Called,start=Date,seconds=Dur"  # canonical order
    at = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)  # answered 10:00:05 in Warsaw
    await store_cdrs(svc.pool, [cdr("alice", 1, at, carrier="up", buy_cost=40_000)])
    theirs = tmp_path / "up.csv"
    theirs.write_text("Called,Date,Dur,Amount\n0048601234567,2026-11-10T10:00:07,60,0.0500\n")
    args = ("carrier", "reconcile", "up", "--csv", str(theirs), "--period", "2026-11")
    found = await cli(svc, capsys, *args)
    # no cost column of ours in the file ('cost' is not there): only the call is matched
    assert (found["matched"], found["differences"]) == (1, [])
    priced = await cli(svc, capsys, *args, "--columns", "cost=Amount")
    assert [d["kind"] for d in priced["differences"]] == ["cost"]  # 0.05 there, 0.04 here
    # the carrier renames its duration column: the stored mapping is updated
    theirs.write_text("Called,Date,Billed\n0048601234567,2026-11-10T10:00:07,60\n")
    with pytest.raises(CliError, match="no column 'Dur' \\(seconds\\)"):
        await cli(svc, capsys, *args)
    await cli(svc, capsys, "carrier", "update", "up", "--csv-columns",
              "number=Called,start=Date,seconds=Billed")  # fmt: skip
    assert (await cli(svc, capsys, *args))["matched"] == 1
    shown = await cli(svc, capsys, "carrier", "show", "up")
    assert shown["history"][-1]["detail"] == {
        "csv_columns": "number=Called,start=Date,seconds=Billed"
    }
    # the authorization's copy does not carry it (older processes read it during upgrades)
    mirrored = await mirrored_carriers(svc.redis, svc.settings.keyspace)
    assert mirrored is not None and mirrored[0].csv_columns == ""
    for bad in ("number", "duration=Dur", "number=A,number=B"):
        with pytest.raises(CarrierError, match="csv_columns"):
            await cli(svc, capsys, "carrier", "update", "up", "--csv-columns", bad)
    with pytest.raises(CliError, match="--columns"):
        await cli(svc, capsys, *args, "--columns", "when=Date")
    assert T0.tzinfo is UTC
