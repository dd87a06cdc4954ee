"""The window engine's figures and findings on a recorded flood: an autodialer, revenue-share
traffic, a wangiri bait with callbacks, a broadcaster, forwarding, premium attempts and an
ordinary office, all through the real detector (real Redis, real PostgreSQL). The expected
signals were recorded from the engine before its windows were restructured for speed
(`data/abuse_flood_signals.json`): every signal, its figures and the findings' evidence must
stay exactly the same."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from abuse.findings import Finding
from abuse.runner import AbuseDetector
from abuse.signals import Signal
from rating.deck import Deck
from runtime.services import Services
from tests.conftest import AccountFactory
from tests.integration.test_abuse import Make, listed, publish, publish_inbound
from tests.unit.test_abuse_rules import T0, ledger_entry

S = 1000
MIN = 60 * S
RECORDED = Path(__file__).parent / "data" / "abuse_flood_signals.json"
OFFICES = tuple(f"office{i}" for i in range(12))
ROLES = ("dialer", "irsf", "wangiri", "robo", "fwd", "premium", *OFFICES)


def flood(ids: dict[str, str]) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """CDR entries and inbound calls of two busy hours, in the order they end."""
    r = random.Random(21)
    out: list[dict[str, str]] = []

    def add(role: str, n: int, at: int, to: str, cls: str, billsec: int, **kw: Any) -> None:
        out.append(ledger_entry(ids[role], f"{role}-{n}", at, to, cls, billsec, **kw))

    for i in range(400):  # every 9 s, numbers in order now and then, few answered briefly
        to = f"+4860{(5_000_000 + i) if i % 7 < 3 else r.randrange(10**7):07d}"
        add(
            "dialer",
            i,
            T0 + i * 9 * S,
            to,
            "mobile",
            r.randint(2, 9) if i % 4 == 0 else 0,
            caller="+48221110000",
            cost=60_000 if i % 4 == 0 else 0,
        )
    for i in range(60):  # +882 tests, then long calls side by side, expensive
        to = f"+88213{r.randrange(10**6):06d}"
        long = i % 3 == 0
        add(
            "irsf",
            i,
            T0 + i * 2 * MIN,
            to,
            "high_risk",
            1800 if long else r.randint(0, 20),
            caller="+48221110002",
            cost=300_000_000 if long else 1_000_000,
        )
    for i in range(12):  # callbacks to the bait range
        add(
            "wangiri",
            i,
            T0 + 40 * MIN + i * 5 * MIN,
            f"+2327612{i:04d}",
            "international",
            r.randint(0, 40),
            caller="+48221110003",
            cost=500_000,
        )
    for i in range(150):  # one caller id, many numbers, short uniform recordings
        add(
            "robo",
            i,
            T0 + i * 20 * S,
            f"+4822{r.randrange(10**7):07d}",
            "geographic",
            20 if i % 3 == 0 else 0,
            caller="+48221110004",
            cost=30_000 if i % 3 == 0 else 0,
        )
    for i in range(80):  # forwarded legs, some abroad
        intl = i % 5 == 0
        add(
            "fwd",
            i,
            T0 + i * 80 * S,
            "+4930123456" if intl else f"+4860{i:07d}",
            "international" if intl else "mobile",
            60,
            cost=100_000,
            rdnis="+48221110005",
        )
    for i in range(15):
        add(
            "premium",
            i,
            T0 + i * 7 * MIN,
            "+48701234567",
            "premium",
            0,
            state="denied",
            reason="PREMIUM_BLOCKED",
        )
    for i in range(1200):
        role = f"office{r.randrange(12)}"
        answered = r.random() < 0.75
        add(
            role,
            i,
            T0 + r.randrange(2 * 60 * MIN),
            f"+4822{r.randrange(10**7):07d}",
            "geographic",
            r.randint(10, 600) if answered else 0,
            caller="+48221119999",
            cost=r.randrange(1_000_000) if answered else 0,
        )
    out.sort(key=lambda e: int(e["ended_at"]))
    bait = [
        {
            "account": ids["wangiri"],
            "caller": f"+2327612{i:04d}",
            "duration": "1",
            "ts": str(T0 + 10 * MIN + i * 20 * S),
        }
        for i in range(8)
    ]
    return out, bait


class Recording(AbuseDetector):
    """The real detector, noting every signal it stores."""

    signals: list[Signal]

    async def _found(self, signal: Signal) -> Finding | None:
        self.signals.append(signal)
        return await super()._found(signal)


def as_json(signals: list[Signal], found: list[Finding], roles: dict[str, str]) -> Any:
    def strip(call_ids: Any) -> list[str]:
        return sorted(c.rsplit("/", 1)[-1] for c in call_ids)

    rows = sorted(
        json.dumps(
            [
                roles[s.account],
                s.rule,
                s.subject,
                s.severity.value,
                s.at_ms,
                dict(s.figures),
                dict(s.threshold),
                s.window_s,
                strip(s.call_ids),
                dict(s.detail),
            ],
            sort_keys=True,
        )
        for s in signals
    )
    kept = sorted(
        json.dumps(
            [
                roles[f.account],
                f.rule,
                f.subject,
                f.window_key,
                f.severity.value,
                f.evidence.get("figures"),
                strip(f.evidence.get("call_ids", [])),
            ],
            sort_keys=True,
        )
        for f in found
    )
    return {"signals": [json.loads(x) for x in rows], "findings": [json.loads(x) for x in kept]}


async def test_a_recorded_flood_gives_the_recorded_signals(
    svc: Services,
    retail: Deck,
    make_account: AccountFactory,
    abuse_detector: Make,
    tmp_path: Path,
) -> None:
    ids = {role: (await make_account(allow_high_risk=role == "irsf")).id for role in ROLES}
    roles = {v: k for k, v in ids.items()}
    entries, bait = flood(ids)
    await publish_inbound(svc, bait)
    await publish(svc, entries)
    made = abuse_detector(batch_size=100)
    d = Recording(svc, made.settings, registry=CollectorRegistry())
    d.signals = []
    try:
        assert await d.drain_once() == len(entries) + len(bait)
    finally:
        await d.close()
    got = as_json(d.signals, await listed(svc), roles)
    (tmp_path / "signals.json").write_text(json.dumps(got, indent=1, sort_keys=True))
    assert len(got["findings"]) >= 8
    assert got == json.loads(RECORDED.read_text()), tmp_path / "signals.json"
