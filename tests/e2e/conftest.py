"""End-to-end fixtures: a real Asterisk (sid chroot), a SIPp carrier, and `tollgate serve`
as a real process, all on loopback, with the real Redis and PostgreSQL.

One rig, carrier and tollgate process serve the whole session; every test starts from a
clean ledger and database (same accounts ids: the phones' accountcodes are fixed)."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import functools
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from redis.exceptions import ResponseError

from rating.accounts import Account
from rating.deck import load_deck
from rating.deck_store import import_deck, publish
from rating.keys import Keyspace
from rating.ledger import LedgerSettings
from runtime.services import Services, services
from runtime.settings import Settings
from tests.conftest import RETAIL, TEST_DSN, TEST_REDIS, _truncate, drop_prefix, fresh_database
from tests.e2e.rig import (
    PHONES,
    AsteriskRig,
    CallResult,
    RigConfig,
    SippCarrier,
    free_tcp_port,
    free_udp_port,
    place_call,
)

ROOT = Path(__file__).resolve().parents[2]
INBOUND_DECK = Path(__file__).resolve().parent / "decks" / "inbound" / "deck.toml"
PHONE_ACCOUNTS = {f"phone-{c}": f"e2e-{c}" for c in "abcdef"}
PHONE_POOL = ThreadPoolExecutor(max_workers=40, thread_name_prefix="phone")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@dataclass
class TollgateProcess:
    """`tollgate serve` as the operator runs it; tests stop, kill and freeze it.

    It runs in a session of its own with its FastAGI workers (TOLLGATE_SERVE_WORKERS): a
    crash or a freeze takes the whole group, as it would take the machine's tollgate."""

    env: dict[str, str]
    agi_port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    frozen: bool = field(default=False)

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tollgate.cli", "serve"],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while not self._listening():
            if self.proc.poll() is not None:
                raise RuntimeError(f"tollgate serve exited: {self.log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("tollgate serve did not start listening")
            time.sleep(0.05)

    def _listening(self) -> bool:
        with socket.socket() as s:
            s.settimeout(0.2)
            return s.connect_ex(("127.0.0.1", self.agi_port)) == 0

    def stop(self) -> None:
        if self.proc is None:
            return
        self.thaw()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL to every process of it: no clean-up of any kind, like a crash."""
        assert self.proc is not None
        self.thaw()
        self._group(signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    def freeze(self) -> None:
        assert self.proc is not None
        self._group(signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        if self.proc is not None and self.frozen:
            self._group(signal.SIGCONT)
        self.frozen = False

    def _group(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)


@pytest.fixture(scope="session")
def e2e_settings() -> Settings:
    return Settings(
        redis_url=TEST_REDIS,
        pg_dsn=fresh_database(TEST_DSN),
        keyspace=Keyspace(f"tge2e{uuid.uuid4().hex[:8]}", 4),
        ledger=LedgerSettings(switch_host="e2e"),
        deck_refresh_s=0.0,
    )


@pytest.fixture(scope="session")
def rig_config(e2e_settings: Settings) -> RigConfig:
    # Asterisk reads realtime SIP logins (and stores registrations) in the test database.
    return RigConfig.with_free_ports(
        f"pytest-{os.getpid()}", accounts=PHONE_ACCOUNTS, pg_dsn=e2e_settings.pg_dsn
    )


@pytest.fixture(scope="session")
def asterisk(rig_config: RigConfig) -> Iterator[AsteriskRig]:
    rig = AsteriskRig(rig_config)
    rig.start()
    try:
        yield rig
    finally:
        rig.stop()


@pytest.fixture(scope="session")
def carrier(rig_config: RigConfig) -> Iterator[SippCarrier]:
    with SippCarrier(port=rig_config.carrier_port) as c:
        yield c


@pytest.fixture(scope="session")
def tollgate(
    e2e_settings: Settings, rig_config: RigConfig, asterisk: AsteriskRig
) -> Iterator[TollgateProcess]:
    env = {
        **os.environ,
        "TOLLGATE_PG_DSN": e2e_settings.pg_dsn,
        "TOLLGATE_REDIS_URL": e2e_settings.redis_url,
        "TOLLGATE_REDIS_PREFIX": e2e_settings.keyspace.prefix,
        "TOLLGATE_SHARDS": str(e2e_settings.keyspace.shards),
        "TOLLGATE_AGI_PORT": str(rig_config.agi_port),
        # every call's outcome: the file Asterisk's cdr_custom appends to
        "TOLLGATE_OUTCOME_LOG": str(asterisk.outcome_log),
        "TOLLGATE_OUTCOME_INTERVAL_S": "1",
        # AMI: drains what older dialplans parked in AstDB, `asterisk check`, SIP guard
        "TOLLGATE_AMI_HOST": "127.0.0.1",
        "TOLLGATE_AMI_PORT": str(rig_config.ami_port),
        "TOLLGATE_AMI_USER": rig_config.ari_user,
        "TOLLGATE_AMI_SECRET": rig_config.ari_password,
        "TOLLGATE_METRICS_PORT": str(free_tcp_port()),
        "TOLLGATE_SWEEP_INTERVAL_S": "1",
        "TOLLGATE_DECK_REFRESH_S": "0",
        "TOLLGATE_SWITCH_HOST": "e2e",
        "TOLLGATE_ABUSE_OVERRIDES_REFRESH_S": "0",
        "TOLLGATE_ABUSE_BLOCK_MS": "200",
        # inbound calls are rated (free for Polish numbers but one paid range)
        "TOLLGATE_INBOUND_DECK": "inbound-e2e",
    }
    log = Path(tempfile.mkdtemp(prefix="tollgate-e2e-")) / "serve.log"
    proc = TollgateProcess(env, rig_config.agi_port, log)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@dataclass
class E2E:
    svc: Services
    rig: AsteriskRig
    carrier: SippCarrier
    tollgate: TollgateProcess
    config: RigConfig
    carrier_seen: int = 0  # carrier calls before this test

    async def account(self, phone: str, balance: int = 0, **fields: object) -> Account:
        fields.setdefault("deck", "retail")
        fields.setdefault("cps", 0)
        fields.setdefault("max_calls", 0)
        status = fields.pop("status", None)
        account = await self.svc.accounts.create(Account(PHONE_ACCOUNTS[phone], **fields))  # type: ignore[arg-type]
        if balance:
            await self.svc.accounts.add_entry(account.id, "topup", balance, at=datetime.now(UTC))
        if status is not None:
            account = await self.svc.accounts.set_status(account.id, status)  # type: ignore[arg-type]
        return account

    def metric(self, sample: str) -> float:
        """One sample of tollgate serve's Prometheus metrics, e.g. 'name{label="v"}' (0 if
        absent). Blocking: call it through asyncio.to_thread."""
        port = self.tollgate.env["TOLLGATE_METRICS_PORT"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        found = re.search(rf"^{re.escape(sample)} ([0-9.e+]+)$", text, re.M)
        return float(found.group(1)) if found else 0.0

    async def call(self, number: str, phone: str = "phone-a", **kw: object) -> CallResult:
        return await asyncio.to_thread(
            place_call,
            number,
            phone,
            sip_port=self.config.sip_port,
            **kw,  # type: ignore[arg-type]
        )

    async def dialer(
        self, numbers: list[str], phone: str, rate: int, hold_ms: int
    ) -> tuple[int, int]:
        """An automatic dialler: SIPp calling `numbers` in order at `rate` calls/s, each
        answered call hung up after `hold_ms`. Returns (successful, failed) calls."""
        return await asyncio.get_running_loop().run_in_executor(
            PHONE_POOL,
            functools.partial(
                run_dialer, numbers, PHONES[phone], self.config.sip_port, rate, hold_ms
            ),
        )

    async def ring_once(self, did: str, callers: list[str], ring_ms: int) -> tuple[int, int]:
        """The carrier's gateway (127.0.0.10) calls a customer's number from each caller in
        turn, lets it ring `ring_ms` and hangs up. Returns (completed, failed)."""
        return await asyncio.get_running_loop().run_in_executor(
            PHONE_POOL,
            functools.partial(
                run_sipp_list,
                "uac_ring_once.xml",
                {"RING_MS": str(ring_ms)},
                callers,
                did,
                "127.0.0.10",
                self.config.sip_port,
                1,
            ),
        )

    def new_carrier_calls(self) -> list[str]:
        return [c.number for c in self.carrier.calls()[self.carrier_seen :]]

    async def cdrs(self, phone: str, count: int, wait_s: float = 15) -> list[dict[str, str]]:
        """Final CDRs of the phone's account in PostgreSQL (where tollgate serve's CDR writer
        puts them), waiting for `count`. Values as text, named as in the ledger's stream."""
        account = PHONE_ACCOUNTS[phone]
        assert self.svc.pool is not None
        deadline = time.monotonic() + wait_s
        while True:
            rows = await self.svc.pool.fetch(
                "select call_id, account, state, decision, reason, detail, granted_s as granted,"
                " e164, number_class as class, billsec, cost, rated_cost, disposition,"
                " prefix, deck, emergency, (extract(epoch from answered_at) * 1000)::bigint"
                " as answered_at from cdrs where account = $1"
                " and state in ('finished', 'denied') order by started_at",
                account,
            )
            mine = [{k: _cell(v) for k, v in dict(r).items()} for r in rows]
            if len(mine) >= count or time.monotonic() > deadline:
                return mine
            await asyncio.sleep(0.1)


async def _recreate_groups(svc: Services, keys: Keyspace) -> None:
    """Dropping the test's keys removed the streams' consumer groups; tollgate serve's CDR
    writer and abuse detector would back off until they noticed. Production never drops them."""
    from abuse.runner import inbound_stream_key

    streams = [keys.cdr_stream(t) for t in keys.tags()]
    for stream, group in [(s, g) for s in streams for g in ("cdr-writer", "abuse")] + [
        (inbound_stream_key(keys), "abuse")
    ]:
        with contextlib.suppress(ResponseError):  # BUSYGROUP: it is there already
            await svc.redis.xgroup_create(stream, group, id="0", mkstream=True)


def run_dialer(
    numbers: list[str], ip: str, sip_port: int, rate: int, hold_ms: int
) -> tuple[int, int]:
    return run_sipp_list(
        "uac_dialer.xml", {"HOLD_MS": str(hold_ms)}, numbers, "", ip, sip_port, rate
    )


def run_sipp_list(
    scenario_name: str,
    fill: dict[str, str],
    fields: list[str],
    service: str,
    ip: str,
    sip_port: int,
    rate: int,
) -> tuple[int, int]:
    """One SIPp run over an injection file (one call per line, [field0]); returns
    (successful, failed) calls from SIPp's statistics."""
    work = Path(tempfile.mkdtemp(prefix="tollgate-sipp-"))
    scenario = (ROOT / "tests/e2e/sipp" / scenario_name).read_text()
    for placeholder, value in fill.items():
        scenario = scenario.replace(placeholder, value)
    (work / "dialer.xml").write_text(scenario)
    (work / "numbers.csv").write_text("SEQUENTIAL\n" + "".join(f"{n};\n" for n in fields))
    hold_ms = max([int(v) for v in fill.values() if v.isdigit()] or [0])
    subprocess.run(
        [
            "sipp",
            f"127.0.0.1:{sip_port}",
            *(["-s", service] if service else []),
            "-sf",
            "dialer.xml",
            "-inf",
            "numbers.csv",
            "-i",
            ip,
            "-p",
            str(free_udp_port(ip)),
            "-mp",
            str(free_udp_port(ip)),
            "-r",
            str(rate),
            "-m",
            str(len(fields)),
            "-nostdin",
            "-trace_stat",
            "-stf",
            "stat.csv",
            "-trace_err",
            "-error_file",
            "errors.log",
            "-fd",
            "1",
            "-timeout",
            f"{len(fields) // rate + hold_ms // 1000 + 60}s",
        ],
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=300,
    )
    with (work / "stat.csv").open() as f:
        last = list(csv.DictReader(f, delimiter=";"))[-1]
    return int(last["SuccessfulCall(C)"]), int(last["FailedCall(C)"])


def _cell(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return "" if value is None else str(value)


@pytest.fixture
async def e2e(
    e2e_settings: Settings,
    asterisk: AsteriskRig,
    carrier: SippCarrier,
    tollgate: TollgateProcess,
    rig_config: RigConfig,
) -> AsyncIterator[E2E]:
    tollgate.thaw()
    # Outcomes an earlier test left in the outcome log must not land in this test's accounts.
    asterisk.discard_outcomes()
    tollgate.start()
    await _truncate(e2e_settings.pg_dsn)
    async with services(e2e_settings) as svc:
        await drop_prefix(svc.redis, e2e_settings.keyspace.prefix)
        await _recreate_groups(svc, e2e_settings.keyspace)
        assert svc.pool is not None
        async with svc.pool.acquire() as conn:
            deck, _ = await import_deck(conn, load_deck(RETAIL), "e2e")
            inbound, _ = await import_deck(conn, load_deck(INBOUND_DECK), "e2e")
        await publish(svc.redis, e2e_settings.keyspace, deck)
        await publish(svc.redis, e2e_settings.keyspace, inbound)
        yield E2E(svc, asterisk, carrier, tollgate, rig_config, len(carrier.calls()))
    tollgate.thaw()
    # Nor may they be settled while the next test truncates the CDR tables.
    asterisk.discard_outcomes()
    tollgate.start()
