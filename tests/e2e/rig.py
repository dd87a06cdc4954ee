"""Drive the Asterisk test rig from Python: Asterisk itself, a SIPp carrier, SIPp phones.

Used by the e2e pytest fixtures and the demo; it imports nothing from pytest. Everything
runs as real processes on loopback. See tests/e2e/README.md for the layout and ports.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

REPO = Path(__file__).resolve().parents[2]
RIG_SH = REPO / "scripts" / "asterisk" / "rig.sh"
SIPP_DIR = Path(__file__).resolve().parent / "sipp"

# Phones are pjsip endpoints identified by source IP (configs/asterisk/pjsip.conf).
PHONES: dict[str, str] = {
    "phone-a": "127.0.0.2",
    "phone-b": "127.0.0.3",
    "phone-c": "127.0.0.4",
    "phone-d": "127.0.0.5",
    "phone-e": "127.0.0.6",
    "phone-f": "127.0.0.7",
}
DEFAULT_ACCOUNTS: dict[str, str] = {name: f"acct-{name[-1]}" for name in PHONES}

# Column order of log/cdr-custom/tollgate-cdr.csv (configs/asterisk/cdr_custom.conf).
CDR_FIELDS = (
    "accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp",
    "lastdata", "start", "answer", "end", "duration", "billsec", "disposition", "amaflags",
    "uniqueid", "linkedid", "userfield", "sequence",
)  # fmt: skip


class RigError(RuntimeError):
    pass


def free_udp_port(ip: str = "127.0.0.1") -> int:
    """A UDP port that is free on ip right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


def free_tcp_port(ip: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class RigConfig:
    """What rig.sh renders into the configs; each field maps to a TOLLGATE_* variable."""

    name: str = "default"
    sip_port: int = 5060
    sip_tcp_port: int = 5060
    sip_tls_port: int = 5061
    carrier_port: int = 5070
    agi_host: str = "127.0.0.1"
    agi_port: int = 4573
    agi_budget_s: float = 2
    ring_seconds: int = 30
    ari_port: int = 8088
    ami_port: int = 5038
    ari_user: str = "tollgate"
    ari_password: str = "tollgate"
    accounts: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_ACCOUNTS))
    extra_conf_dir: str = ""  # further *.conf rendered beside configs/asterisk
    pg_dsn: str = ""  # tollgate's database, for realtime SIP logins (default: rig.sh's)

    @classmethod
    def with_free_ports(cls, name: str, **kwargs: object) -> RigConfig:
        """A config whose SIP, carrier, AGI and ARI ports are currently free."""
        ports: dict[str, object] = {
            "sip_port": free_udp_port(),
            "sip_tcp_port": free_tcp_port(),
            "sip_tls_port": free_tcp_port(),
            "carrier_port": free_udp_port(),
            "agi_port": free_tcp_port(),
            "ari_port": free_tcp_port(),
            "ami_port": free_tcp_port(),
        }
        ports.update(kwargs)
        return cls(name=name, **ports)  # type: ignore[arg-type]

    def env(self) -> dict[str, str]:
        env = {
            "TOLLGATE_RIG_NAME": self.name,
            "TOLLGATE_SIP_PORT": str(self.sip_port),
            "TOLLGATE_SIP_TCP_PORT": str(self.sip_tcp_port),
            "TOLLGATE_SIP_TLS_PORT": str(self.sip_tls_port),
            "TOLLGATE_CARRIER_PORT": str(self.carrier_port),
            "TOLLGATE_AGI_HOST": self.agi_host,
            "TOLLGATE_AGI_PORT": str(self.agi_port),
            "TOLLGATE_AGI_BUDGET": f"{self.agi_budget_s:g}",
            "TOLLGATE_RING_SECONDS": str(self.ring_seconds),
            "TOLLGATE_ARI_PORT": str(self.ari_port),
            "TOLLGATE_AMI_PORT": str(self.ami_port),
            "TOLLGATE_ARI_USER": self.ari_user,
            "TOLLGATE_ARI_PASSWORD": self.ari_password,
        }
        if self.extra_conf_dir:
            env["TOLLGATE_RIG_EXTRA"] = self.extra_conf_dir
        if self.pg_dsn:
            env.update(pg_env(self.pg_dsn))
        for phone, account in self.accounts.items():
            env[f"TOLLGATE_ACCT_{phone[-1].upper()}"] = account
        return env


def pg_env(dsn: str) -> dict[str, str]:
    """rig.sh's TOLLGATE_RIG_PG_* variables of a postgresql:// DSN."""
    parts = urlsplit(dsn)
    return {
        "TOLLGATE_RIG_PG_HOST": parts.hostname or "127.0.0.1",
        "TOLLGATE_RIG_PG_PORT": str(parts.port or 5432),
        "TOLLGATE_RIG_PG_DB": parts.path.lstrip("/"),
        "TOLLGATE_RIG_PG_USER": unquote(parts.username or ""),
        "TOLLGATE_RIG_PG_PASSWORD": unquote(parts.password or ""),
    }


class AsteriskRig:
    """One Asterisk of the rig, started and stopped through scripts/asterisk/rig.sh."""

    def __init__(self, config: RigConfig | None = None) -> None:
        self.config = config or RigConfig()
        self._paths: dict[str, str] = {}

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = os.environ | self.config.env()
        return subprocess.run(
            [str(RIG_SH), *args], env=env, capture_output=True, text=True, timeout=timeout
        )

    def start(self) -> None:
        res = self._run("start", timeout=600)  # the first start may build the chroot
        if res.returncode != 0:
            raise RigError(f"rig.sh start failed:\n{res.stderr}")
        self._paths = self._read_paths()

    def stop(self) -> None:
        res = self._run("stop")
        if res.returncode != 0:
            raise RigError(f"rig.sh stop failed:\n{res.stderr}")

    def is_running(self) -> bool:
        return self._run("status").returncode == 0

    def cli(self, command: str) -> str:
        res = self._run("cli", command, timeout=30)
        if res.returncode != 0:
            raise RigError(f"rig.sh cli {command!r} failed:\n{res.stderr}")
        return res.stdout

    def _read_paths(self) -> dict[str, str]:
        res = self._run("paths")
        return dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)

    def _path(self, key: str) -> Path:
        if not self._paths:
            self._paths = self._read_paths()
        return Path(self._paths[key])

    @property
    def run_dir(self) -> Path:
        return self._path("RUN")

    @property
    def log_file(self) -> Path:
        return self._path("LOG")

    @property
    def cdr_csv(self) -> Path:
        """Asterisk's own CDRs, one CSV row per record, columns as in CDR_FIELDS."""
        return self._path("CDR_CSV")

    @property
    def outcome_log(self) -> Path:
        """The outcome log cdr_custom appends to (tollgate's TOLLGATE_OUTCOME_LOG)."""
        return self.cdr_csv.with_name("tollgate-outcomes.csv")

    def outcome_lines(self) -> list[str]:
        """Complete, non-empty lines of the outcome log."""
        if not self.outcome_log.exists():
            return []
        text = self.outcome_log.read_text(encoding="utf-8", errors="replace")
        return [line for line in text.split("\n")[:-1] if line.strip()]

    def wait_idle(self, timeout: float = 15) -> None:
        """Until no channel is up, and a moment more: Asterisk writes a channel's CDR (and
        its outcome line) only after the channel is gone."""
        deadline = time.monotonic() + timeout
        while not self.cli("core show channels count").startswith("0 active channels"):
            if time.monotonic() > deadline:
                raise RigError(f"channels still up after {timeout} s")
            time.sleep(0.1)
        time.sleep(0.5)

    def discard_outcomes(self) -> None:
        """Drop the outcome log (what an earlier test left) once every call's line is in it:
        Asterisk starts a new one, and no late line lands in the next test's accounts."""
        self.wait_idle()
        self.outcome_log.unlink(missing_ok=True)

    def cdr_rows(self) -> list[dict[str, str]]:
        if not self.cdr_csv.exists():
            return []
        with self.cdr_csv.open(newline="", encoding="utf-8", errors="replace") as f:
            return [dict(zip(CDR_FIELDS, row, strict=False)) for row in csv.reader(f) if row]

    def wait_for_cdrs(self, count: int, timeout: float = 10) -> list[dict[str, str]]:
        deadline = time.monotonic() + timeout
        while True:
            rows = self.cdr_rows()
            if len(rows) >= count or time.monotonic() > deadline:
                return rows
            time.sleep(0.1)

    def __enter__(self) -> AsteriskRig:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- SIPp message traces ----------------------------------------------------------------

_SEPARATOR = re.compile(r"^-+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\s*$")


@dataclass(frozen=True)
class SipMessage:
    time: float  # epoch seconds
    direction: str  # "sent" or "received"
    first_line: str
    headers: dict[str, str]  # first value of each header, lower-case names

    @property
    def is_response(self) -> bool:
        return self.first_line.startswith("SIP/2.0 ")

    @property
    def status(self) -> int | None:
        if not self.is_response:
            return None
        return int(self.first_line.split()[1])

    @property
    def method(self) -> str:
        """Request method, or the CSeq method of a response."""
        if self.is_response:
            return self.headers.get("cseq", " ").split()[-1].upper()
        return self.first_line.split()[0].upper()

    @property
    def request_user(self) -> str:
        """User part of the Request-URI (the dialled number at the carrier)."""
        m = re.match(r"^\S+\s+sips?:([^@;>\s]+)@", self.first_line)
        return m.group(1) if m else ""

    @property
    def call_id(self) -> str:
        return self.headers.get("call-id", "")

    @property
    def from_user(self) -> str:
        """User part of the From header's URI (the caller id presented)."""
        m = re.search(r"sips?:([^@;>\s]+)@", self.headers.get("from", ""))
        return m.group(1) if m else ""


def parse_sipp_trace(path: Path) -> list[SipMessage]:
    """Parse a SIPp -trace_msg message file; tolerates a partially written last entry."""
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8", errors="replace")
    messages: list[SipMessage] = []
    stamp: float | None = None
    block: list[str] = []

    def flush() -> None:
        if stamp is None:
            return
        lines = [ln.rstrip("\r") for ln in block]
        for i, ln in enumerate(lines):
            low = ln.lower()
            if "message sent" in low or "message received" in low:
                direction = "sent" if "sent" in low else "received"
                body = lines[i + 1 :]
                break
        else:
            return
        while body and not body[0].strip():
            body.pop(0)
        if not body:
            return
        headers: dict[str, str] = {}
        for ln in body[1:]:
            if not ln.strip():
                break
            name, sep, value = ln.partition(":")
            if sep:
                headers.setdefault(name.strip().lower(), value.strip())
        messages.append(SipMessage(stamp, direction, body[0].strip(), headers))

    for line in text.splitlines():
        m = _SEPARATOR.match(line)
        if m:
            flush()
            stamp = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
            block = []
        else:
            block.append(line)
    flush()
    return messages


# --- the carrier ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CarrierCall:
    call_id: str
    number: str  # Request-URI user of the INVITE
    invite_time: float
    answer_time: float | None
    bye_time: float | None  # when the BYE reached the carrier
    bye_from: str | None  # "asterisk" (received) or None
    caller: str = ""  # user part of the INVITE's From: the caller id the carrier was given


class SippCarrier:
    """The carrier behind the pjsip trunk: a SIPp UAS that answers every call with 200."""

    def __init__(
        self,
        port: int = 5070,
        workdir: Path | None = None,
        ip: str = "127.0.0.1",
        answer_delay_ms: int = 0,
        scenario: str = "uas_carrier.xml",  # uas_503.xml: a carrier refusing every call
    ) -> None:
        self.port = port
        self.ip = ip
        self.scenario = scenario
        self.answer_delay_ms = answer_delay_ms
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="tollgate-carrier-"))
        self.trace = self.workdir / f"carrier-{port}.msg"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if _udp_port_bound(self.ip, self.port):
            raise RigError(f"carrier port {self.ip}:{self.port} is already in use")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.trace.unlink(missing_ok=True)
        cmd = [
            _sipp(), "-sf", str(SIPP_DIR / self.scenario), "-i", self.ip,
            "-p", str(self.port), "-mp", str(free_udp_port(self.ip)),
            "-d", str(self.answer_delay_ms), "-nostdin",
            "-trace_msg", "-message_file", str(self.trace),
            "-trace_err", "-error_file", str(self.workdir / f"carrier-{self.port}.err"),
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd, cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 5
        while not _udp_port_bound(self.ip, self.port):
            if self.proc.poll() is not None:
                raise RigError(f"sipp carrier exited with {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise RigError("sipp carrier did not bind its port")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None

    def messages(self) -> list[SipMessage]:
        return parse_sipp_trace(self.trace)

    def calls(self) -> list[CarrierCall]:
        """Calls that reached the carrier, in arrival order."""
        by_id: dict[str, dict[str, object]] = {}
        order: list[str] = []
        for msg in self.messages():
            cid = msg.call_id
            if msg.direction == "received" and msg.method == "INVITE" and not msg.is_response:
                if cid not in by_id:
                    order.append(cid)
                    by_id[cid] = {
                        "number": msg.request_user,
                        "invite": msg.time,
                        "caller": msg.from_user,
                    }
            elif cid in by_id:
                entry = by_id[cid]
                if msg.direction == "sent" and msg.status == 200 and msg.method == "INVITE":
                    entry.setdefault("answer", msg.time)
                if msg.direction == "received" and msg.method == "BYE" and not msg.is_response:
                    entry.setdefault("bye", msg.time)
        return [
            CarrierCall(
                call_id=cid,
                number=str(by_id[cid]["number"]),
                invite_time=float(by_id[cid]["invite"]),  # type: ignore[arg-type]
                answer_time=by_id[cid].get("answer"),  # type: ignore[arg-type]
                bye_time=by_id[cid].get("bye"),  # type: ignore[arg-type]
                bye_from="asterisk" if "bye" in by_id[cid] else None,
                caller=str(by_id[cid]["caller"]),
            )
            for cid in order
        ]

    def numbers(self) -> list[str]:
        """Request-URI users (dialled numbers) of every INVITE the carrier received."""
        return [c.number for c in self.calls()]

    def wait_for_calls(
        self, count: int, ended: bool = False, timeout: float = 10
    ) -> list[CarrierCall]:
        deadline = time.monotonic() + timeout
        while True:
            calls = self.calls()
            done = [c for c in calls if c.bye_time is not None] if ended else calls
            if len(done) >= count or time.monotonic() > deadline:
                return calls
            time.sleep(0.05)

    def __enter__(self) -> SippCarrier:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- phones -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallResult:
    number: str
    phone_ip: str
    status: int | None  # final response to the INVITE; None when none arrived
    answered: bool
    invite_time: float | None
    final_time: float | None
    bye_from_asterisk: bool  # Asterisk (not the phone) ended the answered call
    answer_to_bye_s: float | None  # 200 OK -> BYE, whoever sent the BYE
    provisional: tuple[int, ...]  # 1xx codes seen
    sipp_returncode: int
    trace: Path

    @property
    def setup_s(self) -> float | None:
        """INVITE -> final response."""
        if self.invite_time is None or self.final_time is None:
            return None
        return self.final_time - self.invite_time


def _sipp() -> str:
    path = shutil.which("sipp")
    if not path:
        raise RigError("sipp not found (Debian package sip-tester)")
    return path


def _udp_port_bound(ip: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((ip, port))
        except OSError:
            return True
        return False


def place_call(
    number: str,
    account_phone: str = "phone-a",
    *,
    sip_port: int = 5060,
    hangup_after_ms: int | None = None,
    max_wait_s: float = 120,
    workdir: Path | None = None,
    caller: str | None = None,
) -> CallResult:
    """Place one call from a phone (name like "phone-a", or its IP) through Asterisk.

    Without hangup_after_ms the phone holds an answered call until Asterisk sends BYE (or
    max_wait_s passes, then it hangs up itself); with it, the phone hangs up that many ms
    after the answer unless Asterisk is faster. Blocks until the call is over.
    """
    ip = PHONES.get(account_phone, account_phone)
    work = Path(workdir or tempfile.mkdtemp(prefix="tollgate-phone-"))
    work.mkdir(parents=True, exist_ok=True)
    hold_ms = hangup_after_ms if hangup_after_ms is not None else int(max_wait_s * 1000)
    name = "uac_hangup.xml" if hangup_after_ms is not None else "uac_call.xml"
    # Rewrite the hold timeout: the only recv with ontimeout="hangup".
    scenario, n = re.subn(
        r'(<recv request="BYE" timeout=")\d+(" ontimeout="hangup")',
        rf"\g<1>{hold_ms}\g<2>",
        (SIPP_DIR / name).read_text(),
    )
    if n != 1:
        raise RigError("unexpected SIPp scenario layout")
    if caller is not None:  # the number the phone presents (its From user)
        if not re.fullmatch(r"[+0-9A-Za-z]{1,32}", caller):
            raise RigError(f"caller {caller!r} would break the scenario")
        scenario = scenario.replace("From: <sip:phone@", f"From: <sip:{caller}@")
    tag = f"{ip}-{free_udp_port(ip)}-{time.monotonic_ns()}"
    xml = work / f"uac-{tag}.xml"
    xml.write_text(scenario)
    trace = work / f"phone-{tag}.msg"
    local_port = free_udp_port(ip)
    cmd = [
        _sipp(), f"127.0.0.1:{sip_port}", "-sf", str(xml), "-s", number,
        "-i", ip, "-p", str(local_port), "-mp", str(free_udp_port(ip)), "-m", "1",
        "-nostdin", "-trace_msg", "-message_file", str(trace),
        "-timeout", f"{int(max_wait_s + hold_ms / 1000 + 90)}s", "-timeout_error",
    ]  # fmt: skip
    proc = subprocess.run(
        cmd, cwd=work, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, timeout=max_wait_s + hold_ms / 1000 + 120,
    )  # fmt: skip
    return _call_result(number, ip, parse_sipp_trace(trace), proc.returncode, trace)


def _call_result(
    number: str, ip: str, msgs: list[SipMessage], returncode: int, trace: Path
) -> CallResult:
    def first(direction: str, prefix: str) -> SipMessage | None:
        return next(
            (m for m in msgs if m.direction == direction and m.first_line.startswith(prefix)),
            None,
        )

    answers = [m for m in msgs if m.direction == "received" and m.method == "INVITE"]
    finals = [m for m in answers if (m.status or 0) >= 200]
    provisional = tuple(m.status for m in answers if m.status is not None and m.status < 200)
    invite = first("sent", "INVITE ")
    final = finals[0] if finals else None
    status = final.status if final else None
    answered = status is not None and 200 <= status < 300
    bye_in = first("received", "BYE ")
    bye_out = first("sent", "BYE ")
    bye = bye_in or bye_out
    answer_to_bye = bye.time - final.time if (answered and final and bye) else None
    return CallResult(
        number=number,
        phone_ip=ip,
        status=status,
        answered=answered,
        invite_time=invite.time if invite else None,
        final_time=final.time if final else None,
        bye_from_asterisk=bye_in is not None and (bye_out is None or bye_in.time <= bye_out.time),
        answer_to_bye_s=answer_to_bye,
        provisional=provisional,
        sipp_returncode=returncode,
        trace=trace,
    )
