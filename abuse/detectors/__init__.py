"""The detectors, one module each; `DETECTORS` is what the runner runs, by rule name."""

from __future__ import annotations

from typing import Any

from abuse.detectors.autodial import Autodial
from abuse.detectors.base import Detector
from abuse.detectors.broadcast import Broadcast
from abuse.detectors.forwarding import Forwarding
from abuse.detectors.premium import Premium
from abuse.detectors.revenue_share import RevenueShare
from abuse.detectors.wangiri import Wangiri

DETECTORS: dict[str, Detector[Any]] = {
    d.name: d for d in (Autodial(), Broadcast(), Forwarding(), RevenueShare(), Wangiri(), Premium())
}
