"""The detectors, one module each; `DETECTORS` is what the runner runs, by rule name."""

from __future__ import annotations

from typing import Any

from cdr.abuse.detectors.autodial import Autodial
from cdr.abuse.detectors.base import Detector
from cdr.abuse.detectors.broadcast import Broadcast
from cdr.abuse.detectors.forwarding import Forwarding
from cdr.abuse.detectors.premium import Premium
from cdr.abuse.detectors.revenue_share import RevenueShare
from cdr.abuse.detectors.wangiri import Wangiri

DETECTORS: dict[str, Detector[Any]] = {
    d.name: d for d in (Autodial(), Broadcast(), Forwarding(), RevenueShare(), Wangiri(), Premium())
}
