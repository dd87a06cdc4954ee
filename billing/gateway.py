"""Payment-gateway notifications: signed, checked, booked once.

The gateway's signature scheme sits behind `SignatureScheme` (one per gateway: they differ
in header names and what they sign). The scheme shipped, `HmacScheme`, is the common one:
HMAC-SHA256 over "<timestamp>.<raw body>" with a shared secret, hex in a header, the
timestamp in another; a notification older or newer than `tolerance_s` is refused (a
replayed capture), and one within it books nothing twice (the gateway's payment id is
stored, and the ledger entry's reference is gateway/<gateway>/<payment id>)."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from urllib.parse import quote

from billing.errors import BillingError
from billing.payments import PaymentResult, pay
from billing.settings import BillingSettings
from core.pg import Conn
from rating.account_store import AccountStore
from runtime.settings import SettingsError


class SignatureError(BillingError):
    """The notification is not the gateway's (bad or missing signature) or is stale."""

    code = "BAD_SIGNATURE"


class SignatureScheme(Protocol):
    def verify(self, body: bytes, headers: Mapping[str, str], now: datetime) -> None:
        """Raise SignatureError unless `body` was signed by the gateway, recently."""


@dataclass(frozen=True)
class HmacScheme:
    secret: bytes
    signature_header: str = "X-Signature"
    timestamp_header: str = "X-Timestamp"
    tolerance_s: int = 300

    def sign(self, body: bytes, timestamp: int) -> str:
        """The gateway's side (tests and the demo sign with it)."""
        mac = hmac.new(self.secret, f"{timestamp}.".encode() + body, hashlib.sha256)
        return mac.hexdigest()

    def verify(self, body: bytes, headers: Mapping[str, str], now: datetime) -> None:
        given = headers.get(self.signature_header, "")
        stamp = headers.get(self.timestamp_header, "")
        if not given or not stamp.isdigit():
            raise SignatureError(self.signature_header, "missing signature or timestamp")
        if not hmac.compare_digest(given.lower(), self.sign(body, int(stamp))):
            raise SignatureError(self.signature_header, "does not match the body")
        if abs(now.timestamp() - int(stamp)) > self.tolerance_s:
            raise SignatureError(self.timestamp_header, "outside the accepted window")


@dataclass(frozen=True)
class GatewaySettings:
    """TOLLGATE_GATEWAY_*: no secret, no notifications (the endpoint refuses them all)."""

    name: str = "gateway"
    secret: str = ""
    tolerance_s: int = 300
    # the gateway's payment page for a top-up, {account} (and {currency}) filled in; the
    # gateway sends the account back in its notification
    pay_url: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GatewaySettings:
        env = os.environ if env is None else env
        tolerance = env.get("TOLLGATE_GATEWAY_TOLERANCE_S", "300")
        if not tolerance.isdigit() or not 1 <= int(tolerance) <= 86_400:
            raise SettingsError("TOLLGATE_GATEWAY_TOLERANCE_S", f"1..86400, got {tolerance!r}")
        return cls(
            name=env.get("TOLLGATE_GATEWAY_NAME", "") or "gateway",
            secret=env.get("TOLLGATE_GATEWAY_SECRET", ""),
            tolerance_s=int(tolerance),
            pay_url=_pay_url(env.get("TOLLGATE_GATEWAY_PAY_URL", "").strip()),
        )

    def top_up_url(self, account: str, currency: str) -> str | None:
        """Where a customer pays a top-up; None unless notifications can be booked too."""
        if not self.pay_url or not self.secret:
            return None
        return self.pay_url.format(account=quote(account, safe=""), currency=currency)

    def scheme(self) -> HmacScheme | None:
        if not self.secret:
            return None
        return HmacScheme(self.secret.encode(), tolerance_s=self.tolerance_s)


def _pay_url(raw: str) -> str:
    if not raw:
        return raw
    key = "TOLLGATE_GATEWAY_PAY_URL"
    if not raw.startswith("https://"):
        raise SettingsError(key, f"an https:// address, got {raw!r}")
    if "{account}" not in raw:
        raise SettingsError(key, "must contain {account}")
    try:
        raw.format(account="a", currency="PLN")
    except (KeyError, IndexError, ValueError):
        raise SettingsError(key, "only {account} and {currency} may be filled in") from None
    return raw


@dataclass(frozen=True, slots=True)
class Notification:
    payment_id: str
    account: str
    amount: int  # micro-units
    currency: str


async def receive(
    store: AccountStore,
    conn: Conn,
    gateway: str,
    n: Notification,
    settings: BillingSettings,
    now: datetime,
) -> PaymentResult:
    """Book a verified notification once: a repeat answers what the first one booked."""
    account = await store.get(n.account)
    if account.currency != n.currency:
        raise BillingError("currency", f"{n.account} is in {account.currency}, not {n.currency}")
    await conn.execute(
        "insert into gateway_payments (gateway, payment_id, account, amount, currency,"
        " received_at) values ($1,$2,$3,$4,$5,$6) on conflict do nothing",
        gateway,
        n.payment_id,
        n.account,
        n.amount,
        n.currency,
        now,
    )
    first = await conn.fetchrow(
        "select account, amount from gateway_payments where gateway = $1 and payment_id = $2",
        gateway,
        n.payment_id,
    )
    assert first is not None  # inserted above or before
    if (first["account"], first["amount"]) != (n.account, n.amount):
        raise BillingError("payment_id", f"{n.payment_id} was notified with other data before")
    return await pay(
        store,
        n.account,
        n.amount,
        f"gateway/{gateway}/{n.payment_id}",
        settings,
        now,
        f"{gateway} payment {n.payment_id}",
    )
