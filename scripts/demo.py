"""`make demo`: shows tollgate working on this machine, end to end, and says where to look.

Uses its own PostgreSQL database (tollgate_demo) and Redis key prefix (tgdemo), both reset
at every run, so it never touches real data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

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
        ["psql", "-q", "-h", "127.0.0.1", "-U", "tollgate", "-d", "tollgate", "-c",
         "drop database if exists tollgate_demo", "-c", "create database tollgate_demo"],
        check=True, env={**ENV, "PGPASSWORD": "tollgate"}, capture_output=True,
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
    print(f"  deck {deck['name']} v{deck['version']}: {deck['rows']} rows, "
          f"{deck['prefixes']} prefixes")

    say("Numbers: every dialling form normalises to one E.164 number and class")
    for raw in ("0048 701-234-567", "0701234567", "+48601234567", "112", "+88213456789"):
        n = tg("classify", raw, show=False)
        print(f"  {raw:>18} -> {n['e164']:<14} {n['class']}")

    say("Rating: Krakow, 30/6 billing, 0.05 connect fee, Friday 17:59:30 (crosses 18:00)")
    r = tg("rate", "--deck", str(DECK), "--to", "0121234567", "--at", "2026-11-20T17:59:30",
           "--seconds", "95")
    print(f"  cost {r['cost']} {r['currency']} for {r['billable_seconds']} billable seconds")
    for s in r["segments"]:
        print(f"    from {s['from_s']:>3} s: {s['count']} x {s['increment_s']} s "
              f"at {s['rate']}/{s['rate_unit_s']} s ({s['band']})")

    say("Accounts")
    tg("account", "create", "alice", "--deck", "retail")
    tg("account", "topup", "alice", "2.00", "--reference", "demo-payment-1")
    tg("account", "create", "bob", "--deck", "retail")
    tg("account", "create", "carol", "--kind", "postpaid", "--credit-limit", "100",
       "--deck", "retail")
    tg("account", "update", "carol", "--invoice-overdue", "yes")
    tg("account", "create", "dave", "--deck", "retail")
    tg("account", "topup", "dave", "50")
    tg("account", "suspend", "dave", "--reason", "abuse investigation")

    say("Authorizations (each reserves credit like a real call would)")
    calls = [("alice", "0601234567"), ("alice", "+48 701 234 567"), ("bob", "221234567"),
             ("carol", "221234567"), ("dave", "221234567"), ("dave", "112"),
             ("nobody", "221234567")]
    granted = []
    for account, number in calls:
        g = tg("authorize", "--account", account, "--to", number, show=False)
        print(f"  {account:>6} -> {number:<16} {g['decision']:<5} {g['reason']:<20} "
              f"max {g['max_seconds']:>5} s  reserved {g['reserved']}")
        if g["decision"] == "ALLOW":
            granted.append((account, g))

    say("Calls end: the exact rated cost is debited, the reservation released")
    for account, g in granted:
        billsec = min(90, g["max_seconds"]) if g["max_seconds"] else 42
        f = tg("finish", "--account", account, "--call-id", g["call_id"], "--billsec",
               str(billsec), show=False)
        print(f"  {account:>6} {g['call_id']}: {billsec} s -> cost {f['cost']}")

    say("Balances")
    for account in ("alice", "bob", "carol", "dave"):
        a = tg("account", "show", account, show=False)
        print(f"  {account:>6} {a['kind']:<8} {a['status']:<9} balance {a['balance']:>9} "
              f"reserved {a['reserved']} available {a['available']}")

    say("CDRs (Redis stream, moved to PostgreSQL by the CDR writer)")
    out = subprocess.run(
        ["sh", "-c", "for k in $(redis-cli --scan --pattern 'tgdemo:*:cdr'); do "
         "redis-cli --raw xrange $k - +; done"], capture_output=True, text=True,
    ).stdout.split("\n")
    rows = _stream_rows(out)
    for c in rows:
        print(f"  {c.get('call_id', ''):<22} {c.get('account', ''):>6} {c.get('e164', ''):<14} "
              f"{c.get('class', ''):<10} {c.get('decision', ''):<5} {c.get('reason', ''):<18} "
              f"billsec {c.get('billsec', '0'):>3} cost {int(c.get('cost') or 0) / 1e6:.4f}")

    say("Where to look next")
    print("  tollgate serve            FastAGI on 127.0.0.1:4573, metrics on :9464/metrics")
    print("  make test                 the whole suite")
    print("  python bench/authorize.py authorizations/s vs redis-benchmark on the same Lua")


def _stream_rows(lines: list[str]) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    current: dict[str, str] = {}
    i = 0
    while i < len(lines):
        line = lines[i]
        if "-" in line and line.split("-")[0].isdigit() and line.split("-")[-1].isdigit():
            if current:
                rows.append(current)
            current = {}
            i += 1
            continue
        if i + 1 < len(lines):
            current[line] = lines[i + 1]
        i += 2
    if current:
        rows.append(current)
    return rows


if __name__ == "__main__":
    main()
