"""Commands that need no service: `classify` and `rate` (imported only when one of them runs,
and importing neither Redis nor PostgreSQL clients)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from core.cliout import CliError, instant, print_json
from rating.deck import load_deck
from rating.money import format_micro
from rating.numbers import NumberClass, normalise
from rating.tariff import rate_call


def cmd_classify(args: argparse.Namespace) -> None:
    print_json(normalise(args.number, args.country).as_dict())


def cmd_rate(args: argparse.Namespace) -> None:
    deck = load_deck(args.deck)
    number = normalise(args.to, args.country)
    zone = ZoneInfo(deck.timezone)  # a wall-clock --at is in the deck's zone, and so printed
    at = instant(args.at, "--at", zone).astimezone(zone) if args.at else datetime.now(UTC)
    if args.seconds < 0:
        raise CliError("--seconds must be >= 0")
    if number.number_class is NumberClass.EMERGENCY:
        print_json(
            {
                "cost": format_micro(0, deck.decimals),
                "billable_seconds": 0,
                "prefix": "",
                "currency": deck.currency,
                "number": number.as_dict(),
                "free": "emergency",
            }
        )
        return
    rated = rate_call(deck, number.digits, at, args.seconds)
    print_json(
        {
            "cost": format_micro(rated.cost, deck.decimals),
            "billable_seconds": rated.billable_seconds,
            "prefix": rated.prefix,
            "name": rated.name,
            "currency": rated.currency,
            "connect_fee": format_micro(rated.connect_fee, deck.decimals),
            "exact_micro": str(rated.exact),
            "cost_micro": rated.cost,
            "seconds": args.seconds,
            "at": at.isoformat(),
            "deck": deck.name,
            "number": number.as_dict(),
            "segments": [
                {
                    "from_s": s.start_s,
                    "increment_s": s.increment_s,
                    "count": s.count,
                    "band": s.row.band,
                    "rate": format_micro(s.row.rate, deck.decimals),
                    "rate_unit_s": s.row.rate_unit_s,
                    "line": s.row.line,
                }
                for s in rated.segments
            ],
        }
    )
