"""`tollgate asterisk check` against a live Asterisk: the session's rig (the production
configuration rendered for loopback) passes every item; a rig deliberately broken (no
res_config_pgsql, a dialplan without tollgate's contexts, no Stasis app connected) fails
exactly those items, each with its fix, and the command exits non-zero."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.conftest import E2E, PHONE_ACCOUNTS, ROOT
from tests.e2e.rig import AsteriskRig, RigConfig, free_tcp_port


def doctor(
    config: RigConfig, pg_dsn: str, *extra: str, outcome_log: str = ""
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_")}
    env |= {
        "TOLLGATE_OUTCOME_LOG": outcome_log,
        "TOLLGATE_ARI_URL": f"http://127.0.0.1:{config.ari_port}",
        "TOLLGATE_ARI_USER": config.ari_user,
        "TOLLGATE_ARI_PASSWORD": config.ari_password,
        "TOLLGATE_AMI_HOST": "127.0.0.1",
        "TOLLGATE_AMI_PORT": str(config.ami_port),
        "TOLLGATE_AMI_USER": config.ari_user,
        "TOLLGATE_AMI_SECRET": config.ari_password,
        "TOLLGATE_PG_DSN": pg_dsn,
    }
    return subprocess.run(
        [sys.executable, "-m", "tollgate.cli", "asterisk", "check", *extra],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def create_login(e2e: E2E, *extra: str) -> None:
    created = subprocess.run(
        [sys.executable, "-m", "tollgate.cli", "sip", "create", PHONE_ACCOUNTS["phone-f"], *extra],
        env=e2e.tollgate.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr


def lines_of(out: str) -> dict[str, str]:
    """item -> 'OK ...' or 'FAIL ... fix: ...'"""
    items: dict[str, str] = {}
    last = ""
    for line in out.splitlines():
        if line.startswith(("OK", "FAIL")):
            last = line.split()[1].rstrip(":")
            items[last] = line
        elif line.strip().startswith("fix:") and last:
            items[last] += " " + line.strip()
    return items


async def test_the_rig_running_the_production_configuration_passes_every_check(
    e2e: E2E,
) -> None:
    await e2e.account("phone-f")
    create_login(e2e)
    config = e2e.config
    url = f"ws://127.0.0.1:{config.ari_port}/ari/events?app=tollgate"
    auth = {"Authorization": aiohttp.encode_basic_auth(config.ari_user, config.ari_password)}
    # What `tollgate serve` with TOLLGATE_ARI_URL does: hold the app's event websocket.
    async with aiohttp.ClientSession(headers=auth) as http, http.ws_connect(url):
        res = await asyncio.to_thread(
            doctor,
            config,
            e2e.tollgate.env["TOLLGATE_PG_DSN"],
            outcome_log=str(e2e.rig.outcome_log),
        )
    assert res.returncode == 0, res.stdout + res.stderr
    items = lines_of(res.stdout)
    names = {"ari", "stasis-app", "modules", "contexts", "realtime", "outcome-log"}
    assert set(items) == names, res.stdout
    assert all(line.startswith("OK") for line in items.values()), res.stdout


@pytest.fixture
def broken_rig(rig_config: RigConfig, tmp_path: Path) -> Iterator[AsteriskRig]:
    extra = tmp_path / "broken"
    extra.mkdir()
    modules = (ROOT / "configs/asterisk/modules.conf").read_text()
    (extra / "modules.conf").write_text(modules + "noload => res_config_pgsql.so\n")
    (extra / "extensions.conf").write_text("[general]\nstatic = yes\n\n[default]\n")
    config = RigConfig.with_free_ports(
        f"doctor-{os.getpid()}", pg_dsn=rig_config.pg_dsn, extra_conf_dir=str(extra)
    )
    rig = AsteriskRig(config)
    rig.start()
    try:
        yield rig
    finally:
        rig.stop()


async def test_a_broken_rig_fails_the_missing_items_with_their_fix(
    e2e: E2E, broken_rig: AsteriskRig
) -> None:
    await e2e.account("phone-f")
    # A login Asterisk would find, were its realtime driver loaded.
    create_login(e2e, "--login", "5550001")
    res = await asyncio.to_thread(doctor, broken_rig.config, e2e.tollgate.env["TOLLGATE_PG_DSN"])
    assert res.returncode == 1, res.stdout + res.stderr
    assert "check(s) failed" in res.stderr and "Traceback" not in res.stderr
    items = lines_of(res.stdout)
    assert items["ari"].startswith("OK"), res.stdout
    modules = items["modules"]
    assert modules.startswith("FAIL") and "res_config_pgsql.so" in modules, res.stdout
    assert "load => res_config_pgsql.so" in modules, res.stdout
    contexts = items["contexts"]
    assert contexts.startswith("FAIL") and "tollgate-outbound" in contexts, res.stdout
    assert "#include" in contexts, res.stdout
    assert items["stasis-app"].startswith("FAIL") and "tollgate serve" in items["stasis-app"]
    realtime = items["realtime"]
    assert realtime.startswith("FAIL") and "5550001" in realtime, res.stdout
    outcome_log = items["outcome-log"]
    assert outcome_log.startswith("FAIL") and "TOLLGATE_OUTCOME_LOG" in outcome_log, res.stdout


def test_asterisk_metrics_are_relayed_from_its_loopback(asterisk: AsteriskRig) -> None:
    """`tollgate asterisk metrics` serves res_prometheus' samples of the rig's Asterisk
    (phones and carrier counted as endpoints) and says when Asterisk does not answer."""
    config = asterisk.config
    port = free_tcp_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tollgate.cli", "asterisk", "metrics", "--url",
         f"http://127.0.0.1:{config.ari_port}/metrics"],
        env=env | {"TOLLGATE_METRICS_PORT": str(port)},
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        text = scrape(port, proc)
        assert re.search(r"^tollgate_asterisk_up 1\.0$", text, re.M), text
        endpoints = re.search(r"^asterisk_endpoints_count\{[^}]*\} ([0-9.]+)$", text, re.M)
        assert endpoints and float(endpoints.group(1)) >= 7, text  # 6 phones + the carrier
        assert re.search(r"^asterisk_channels_count\{", text, re.M), text
    finally:
        proc.terminate()
        proc.wait(10)
    closed = free_tcp_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tollgate.cli", "asterisk", "metrics", "--url",
         f"http://127.0.0.1:{closed}/metrics"],
        env=env | {"TOLLGATE_METRICS_PORT": str(port)},
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        text = scrape(port, proc)
        assert re.search(r"^tollgate_asterisk_up 0\.0$", text, re.M), text
        assert "asterisk_channels_count" not in text
    finally:
        proc.terminate()
        proc.wait(10)


def scrape(port: int, proc: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                return str(r.read().decode())
        except OSError:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.1)
