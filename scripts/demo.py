"""`make demo`: shows tollgate working on this machine, end to end, and says where to look.

Uses its own PostgreSQL database (tollgate_demo) and Redis key prefix (tgdemo), both reset
at every run, so it never touches real data."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.e2e.rig import (
    AsteriskRig,
    CallResult,
    RigConfig,
    SippCarrier,
    free_tcp_port,
    place_call,
)

ROOT = Path(__file__).resolve().parent.parent
TOLLGATE = str(ROOT / ".venv" / "bin" / "tollgate")
DECK = ROOT / "examples" / "decks" / "retail" / "deck.toml"
ENV = {
    **os.environ,
    "TOLLGATE_PG_DSN": "postgresql://tollgate:tollgate@127.0.0.1:5432/tollgate_demo",
    "TOLLGATE_REDIS_PREFIX": "tgdemo",
}


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def tg(*args: str, show: bool = True, check: bool = True) -> Any:
    if show:
        print(f"$ tollgate {' '.join(args)}")
    out = subprocess.run([TOLLGATE, *args], capture_output=True, text=True, env=ENV)
    if out.returncode != 0:
        if check:
            sys.exit(f"demo: tollgate {' '.join(args)} failed: {out.stderr.strip()}")
        print(f"  -> exit {out.returncode}: {out.stderr.strip()}")
        return None
    return json.loads(out.stdout)


def reset() -> None:
    subprocess.run(
        [
            "psql",
            "-q",
            "-h",
            "127.0.0.1",
            "-U",
            "tollgate",
            "-d",
            "tollgate",
            "-c",
            "drop database if exists tollgate_demo",
            "-c",
            "create database tollgate_demo",
        ],
        check=True,
        env={**ENV, "PGPASSWORD": "tollgate"},
        capture_output=True,
    )
    subprocess.run(
        ["sh", "-c", "redis-cli --scan --pattern 'tgdemo:*' | xargs -r redis-cli del >/dev/null"],
        check=True,
    )


def main() -> None:
    say("Fresh demo database and ledger")
    reset()
    tg("db", "upgrade")
    deck = tg("deck", "import", str(DECK))
    print(
        f"  deck {deck['name']} v{deck['version']}: {deck['rows']} rows, "
        f"{deck['prefixes']} prefixes"
    )

    say("Numbers: every dialling form normalises to one E.164 number and class")
    for raw in ("0048 701-234-567", "0701234567", "+48601234567", "112", "+88213456789"):
        n = tg("classify", raw, show=False)
        print(f"  {raw:>18} -> {n['e164']:<14} {n['class']}")

    say("Rating: Krakow, 30/6 billing, 0.05 connect fee, Friday 17:59:30 (crosses 18:00)")
    r = tg(
        "rate",
        "--deck",
        str(DECK),
        "--to",
        "0121234567",
        "--at",
        "2026-11-20T17:59:30",
        "--seconds",
        "95",
    )
    print(f"  cost {r['cost']} {r['currency']} for {r['billable_seconds']} billable seconds")
    for s in r["segments"]:
        print(
            f"    from {s['from_s']:>3} s: {s['count']} x {s['increment_s']} s "
            f"at {s['rate']}/{s['rate_unit_s']} s ({s['band']})"
        )

    say("Accounts")
    tg("account", "create", "alice", "--deck", "retail")
    tg("account", "topup", "alice", "2.00", "--reference", "demo-payment-1")
    tg("account", "create", "bob", "--deck", "retail")
    tg(
        "account",
        "create",
        "carol",
        "--kind",
        "postpaid",
        "--credit-limit",
        "100",
        "--deck",
        "retail",
    )
    tg("account", "update", "carol", "--invoice-overdue", "yes")
    tg("account", "create", "dave", "--deck", "retail")
    tg("account", "topup", "dave", "50")
    tg("account", "suspend", "dave", "--reason", "abuse investigation")

    say("Authorizations (each reserves credit like a real call would)")
    calls = [
        ("alice", "0601234567"),
        ("alice", "+48 701 234 567"),
        ("bob", "221234567"),
        ("carol", "221234567"),
        ("dave", "221234567"),
        ("dave", "112"),
        ("nobody", "221234567"),
    ]
    granted = []
    for account, number in calls:
        g = tg("authorize", "--account", account, "--to", number, show=False)
        print(
            f"  {account:>6} -> {number:<16} {g['decision']:<5} {g['reason']:<20} "
            f"max {g['max_seconds']:>5} s  reserved {g['reserved']}"
        )
        if g["decision"] == "ALLOW":
            granted.append((account, g))

    say("Calls end: the exact rated cost is debited, the reservation released")
    for account, g in granted:
        billsec = min(90, g["max_seconds"]) if g["max_seconds"] else 42
        f = tg(
            "finish",
            "--account",
            account,
            "--call-id",
            g["call_id"],
            "--billsec",
            str(billsec),
            show=False,
        )
        print(f"  {account:>6} {g['call_id']}: {billsec} s -> cost {f['cost']}")

    say("Balances")
    for account in ("alice", "bob", "carol", "dave"):
        a = tg("account", "show", account, show=False)
        print(
            f"  {account:>6} {a['kind']:<8} {a['status']:<9} balance {a['balance']:>9} "
            f"reserved {a['reserved']} available {a['available']}"
        )

    say("CDRs (appended to a Redis stream by the ledger, moved to PostgreSQL by the CDR writer)")
    print_cdrs()

    payments_in()
    calls_through_asterisk()


SELLER = {
    "TOLLGATE_SELLER_NAME": "Demo Telekom Sp. z o.o.",
    "TOLLGATE_SELLER_ADDRESS": "ul. Świętokrzyska 12|00-916 Warszawa",
    "TOLLGATE_SELLER_NIP": "5260001246",
    "TOLLGATE_SELLER_IBAN": "PL61 1090 1014 0000 0712 1981 2874",
    "TOLLGATE_SELLER_BANK": "Bank Przykładowy S.A.",
}
STATEMENT = """:20:DEMO{day}
:25:/PL61109010140000071219812874
:28C:00001
:60F:C{day}PLN0,00
:61:{day}{mmdd}CN123,00S200NONREF//DEMO-BANK-0001
:86:020~00VE02~20Abonament TG-frank~21listopad~32Przykładowa Firma~38PL27114020040000300201355387
:62F:C{day}PLN123,00
-
"""


class MailSink:
    """A local SMTP server (aiosmtpd) that keeps what it receives as .eml files."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.count += 1
        (self.folder / f"mail-{self.count}.eml").write_bytes(envelope.content)
        return "250 OK"


def payments_in() -> None:
    """A top-up arriving in a bank statement: matched, booked, invoiced, printed and mailed."""
    from email import message_from_bytes, policy

    from aiosmtpd.controller import Controller

    say("Payments in: a bank statement (MT940) tops up a business customer's account")
    folder = Path(tempfile.mkdtemp(prefix="tollgate-demo-billing-"))
    sink = MailSink(folder)
    smtp_port = free_tcp_port()
    controller = Controller(sink, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    ENV.update(SELLER)
    ENV.update(
        {
            "TOLLGATE_SMTP_HOST": "127.0.0.1",
            "TOLLGATE_SMTP_PORT": str(smtp_port),
            "TOLLGATE_SMTP_FROM": "faktury@demo-telekom.example",
        }
    )
    try:
        tg("account", "create", "frank", "--deck", "retail")
        tg(
            "customer",
            "create",
            "acme",
            "--name",
            "Przykładowa Firma Sp. z o.o.",
            "--kind",
            "business",
            "--nip",
            "774-000-14-54",
            "--email",
            "faktury@acme.example",
            "--street",
            "ul. Kwiatowa 1",
            "--postal-code",
            "31-000",
            "--city",
            "Kraków",
            "--account",
            "frank",
        )
        today = datetime.now(UTC)
        statement = folder / "wyciag.sta"
        statement.write_text(
            STATEMENT.format(day=today.strftime("%y%m%d"), mmdd=today.strftime("%m%d"))
        )
        print(f"  statement file: {statement}")
        report = tg("bill", "bank", "import", str(statement))
        [booked] = report["booked"]
        print(
            f"  {booked['bank_ref']}: {booked['amount']} PLN -> account {booked['account']}"
            f" (matched by {booked['matched_by']}), invoice {booked['invoice']}"
        )
        again = tg("bill", "bank", "import", str(statement))
        print(f"  the same file again: {again['duplicates']} duplicate(s), nothing booked")
        invoice = booked["invoice"]
        pdf = folder / (invoice.replace("/", "-") + ".pdf")
        tg("bill", "pdf", invoice, "-o", str(pdf))
        print(f"  invoice PDF: {pdf}")
        xml = folder / (invoice.replace("/", "-") + ".xml")
        tg("bill", "ksef", invoice, "-o", str(xml))
        print(f"  KSeF FA(3) XML (checked against the Ministry's schema): {xml}")
        sent = tg("mail", "send")
        print(f"  e-mail sent: {sent['sent']}")
        deadline = time.monotonic() + 5
        while sink.count == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        for eml in sorted(folder.glob("mail-*.eml")):
            msg = message_from_bytes(eml.read_bytes(), policy=policy.default)
            names = [a.get_filename() for a in msg.iter_attachments()]  # type: ignore[attr-defined]
            print(
                f"  local SMTP sink got {eml}: To {msg['To']}, Subject {msg['Subject']},"
                f" attachment {names}"
            )
    finally:
        controller.stop()


def calls_through_asterisk() -> None:
    say("Real SIP calls: SIPp phones -> Asterisk 22 (sid chroot) -> SIPp carrier")
    tg("account", "create", "erin", "--deck", "retail")
    tg("account", "topup", "erin", "0.019")  # buys 6 s of mobile calls at 0.19/min
    accounts = {"phone-a": "erin", "phone-b": "alice", "phone-c": "bob", "phone-d": "dave"}
    config = RigConfig.with_free_ports("demo", accounts=accounts, pg_dsn=ENV["TOLLGATE_PG_DSN"])
    metrics_port = free_tcp_port()
    rig = AsteriskRig(config)
    env = {
        **ENV,
        "TOLLGATE_AGI_PORT": str(config.agi_port),
        "TOLLGATE_METRICS_PORT": str(metrics_port),
        "TOLLGATE_SWITCH_HOST": "demo-pbx",  # reconciliation compares this switch's calls
        # every call's outcome: the file Asterisk's cdr_custom appends to
        "TOLLGATE_OUTCOME_LOG": str(rig.outcome_log),
        # AMI: `tollgate asterisk check`, SIP guard, outcomes older dialplans left in AstDB
        "TOLLGATE_AMI_HOST": "127.0.0.1",
        "TOLLGATE_AMI_PORT": str(config.ami_port),
        "TOLLGATE_AMI_USER": config.ari_user,
        "TOLLGATE_AMI_SECRET": config.ari_password,
    }
    log = Path(tempfile.mkdtemp(prefix="tollgate-demo-")) / "serve.log"
    serve = subprocess.Popen(
        [TOLLGATE, "serve"], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    calls_from = datetime.now(UTC) - timedelta(seconds=5)
    try:
        _wait_port(config.agi_port, serve, log)
        print(
            f"  tollgate serve: FastAGI 127.0.0.1:{config.agi_port}, "
            f"metrics http://127.0.0.1:{metrics_port}/metrics"
        )
        print("  starting Asterisk (the first run builds a Debian sid chroot, about a minute)")
        rig.start()
        with SippCarrier(port=config.carrier_port) as carrier:
            plan = [
                ("phone-a", "erin", "0601234567", "allowed, cut by Asterisk at its limit"),
                ("phone-b", "alice", "+48701234567", "premium: refused"),
                ("phone-c", "bob", "221234567", "empty account: refused"),
                ("phone-d", "dave", "112", "emergency on a suspended account"),
            ]
            for phone, account, number, what in plan:
                kw: dict[str, Any] = {"hangup_after_ms": 2000} if number == "112" else {}
                r: CallResult = place_call(number, phone, sip_port=config.sip_port, **kw)
                talk = f", talked {r.answer_to_bye_s:.1f} s" if r.answer_to_bye_s else ""
                cut = " (Asterisk hung up)" if r.bye_from_asterisk else ""
                print(f"  {account:>6} dials {number:<14} -> SIP {r.status}{talk}{cut}: {what}")
            time.sleep(1.5)  # the finish reports arrive from the hangup handlers
            print(f"  the carrier received: {', '.join(carrier.numbers()) or 'nothing'}")
        rows = rig.wait_for_cdrs(4)
        print("  Asterisk's own CDRs (for reconciliation):")
        for row in rows:
            print(
                f"    {row['accountcode']:>6} dst {row['dst']:<14} {row['disposition']:<9} "
                f"billsec {row['billsec']:>2} tollgate call {row['userfield']}"
            )
    finally:
        rig.stop()
        serve.send_signal(signal.SIGTERM)
        serve.wait(15)
    say("Balances after the calls")
    for account in ("erin", "alice", "bob", "dave"):
        a = tg("account", "show", account, show=False)
        print(f"  {account:>6} balance {a['balance']:>9} reserved {a['reserved']}")
    say("Ledger CDRs of the calls")
    print_cdrs("call_id like 'demo-%'")

    say("Reconciliation: tollgate's CDRs against Asterisk's own")
    report = tg(
        "cdr",
        "reconcile",
        "--from",
        calls_from.isoformat(),
        "--to",
        (datetime.now(UTC) + timedelta(minutes=1)).isoformat(),
        "--asterisk-csv",
        str(rig.cdr_csv),
        "--switch",
        "demo-pbx",
    )
    print(
        f"  {report['asterisk_calls']} calls in Asterisk, {report['tollgate_calls']} in tollgate,"
        f" {report['matched']} matched, {len(report['differences'])} differences"
    )

    say("Erin's call listing for this month (biling)")
    month = datetime.now(UTC).strftime("%Y-%m")
    listing = tg("bill", "listing", "--account", "erin", "--period", month)
    print(f"  {json.dumps(listing.get('totals', listing), default=str)[:400]}")

    show_panel()

    say("Where to look next")
    print("  tollgate serve            FastAGI on 127.0.0.1:4573, metrics on :9464/metrics")
    print("  scripts/asterisk/rig.sh   start/stop the Asterisk rig by hand (tests/e2e/README.md)")
    print("  make test                 the whole suite, with real calls through Asterisk")
    print("  python bench/authorize.py authorizations/s vs redis-benchmark on the same Lua")
    print("  python bench/e2e_calls.py calls/s and post-dial delay with and without tollgate")


def show_panel() -> None:
    """The customer panel over the demo's data: a token, one API call, where to sign in."""
    say("Panel: customers see their balance and calls, operators everything")
    customer = tg("token", "create", "--role", "customer", "--account", "erin", show=False)
    tg("token", "create", "--role", "operator", "--label", "demo operator", show=False)
    port = free_tcp_port()
    env = {**ENV, "TOLLGATE_PANEL_PORT": str(port), "TOLLGATE_PANEL_METRICS_PORT": "0"}
    log = Path(tempfile.mkdtemp(prefix="tollgate-panel-")) / "panel.log"
    panel = subprocess.Popen(
        [TOLLGATE, "panel"], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    try:
        _wait_port(port, panel, log)
        secret = str(customer["token"])
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/accounts/erin/balance",
            headers={"Authorization": f"Bearer {secret}"},
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            print(f"  GET /api/v1/accounts/erin/balance -> {resp.read().decode()[:200]}")
        other = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/accounts/alice/balance",
            headers={"Authorization": f"Bearer {secret}"},
        )
        try:
            urllib.request.urlopen(other, timeout=10)
        except urllib.error.HTTPError as exc:
            print(f"  GET /api/v1/accounts/alice/balance with erin's token -> {exc.code}")
    finally:
        panel.send_signal(signal.SIGTERM)
        panel.wait(15)
    print(
        "  to browse it: TOLLGATE_PG_DSN=postgresql://tollgate:tollgate@127.0.0.1:5432/"
        "tollgate_demo TOLLGATE_REDIS_PREFIX=tgdemo .venv/bin/tollgate panel"
    )
    print(f"  then open http://127.0.0.1:8080/ and sign in with erin's token: {secret}")
    print("  API description: http://127.0.0.1:8080/openapi.json")


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    sys.exit(f"demo: tollgate serve did not start:\n{log.read_text()[-2000:]}")


def print_cdrs(where: str = "true") -> None:
    """CDRs as the CDR writer stored them in PostgreSQL (drained from the streams first)."""
    tg("cdr-writer", "--once", show=False)
    query = (
        "select call_id, account, e164, number_class, decision, reason, billsec,"
        " to_char(cost / 1e6, 'FM999990.0000') from cdrs"
        f" where {where} order by started_at"
    )
    out = subprocess.run(
        ["psql", "-qAtX", "-F", "\t", ENV["TOLLGATE_PG_DSN"], "-c", query],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for line in out.splitlines():
        cid, account, e164, klass, decision, reason, billsec, cost = line.split("\t")
        print(
            f"  {cid:<26} {account:>6} {e164:<14} {klass:<10} {decision:<5} {reason:<19} "
            f"billsec {billsec:>3} cost {cost}"
        )


if __name__ == "__main__":
    main()
