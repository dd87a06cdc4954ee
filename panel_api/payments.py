"""Payments in through the panel: the payment gateway's notifications.

Public (no token): the gateway's signature is the credential, checked on the raw body
before anything is booked (billing.gateway). A notification booked before answers 200 with
created false; a forged or stale one 401 BAD_SIGNATURE; none are accepted while no
TOLLGATE_GATEWAY_SECRET is set (403 NOT_CONFIGURED, fail closed)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from aiohttp import web

from billing.gateway import GatewaySettings, Notification, receive
from panel_api import outputs
from panel_api.context import POOL, SERVICES
from panel_api.documents import BILLING
from panel_api.endpoint import Access, Api, Reply
from panel_api.errors import Forbidden
from panel_api.inputs import ACCOUNT_PATTERN, MONEY_IN, Input, string
from rating.money import format_micro

api = Api("payments")
GATEWAY = web.AppKey("gateway", GatewaySettings)


class GatewayNotification(Input):
    payment_id: Annotated[str, string(100, pattern=r"^[A-Za-z0-9_.:-]{1,100}$")]
    account: Annotated[str, string(64, pattern=ACCOUNT_PATTERN)]
    amount: Annotated[int, MONEY_IN]
    currency: Annotated[str, string(3, pattern="^[A-Z]{3}$")]


@api.post(
    "/api/v1/payments/gateway",
    "A payment gateway's notification of a payment (HMAC-signed): tops the account up",
    access=Access.PUBLIC,
    replies=(
        Reply(201, "Booked", outputs.GatewayPayment),
        Reply(200, "Booked before (a repeated notification)", outputs.GatewayPayment),
    ),
    errors=(400, 401, 403, 404, 429, 503),
)
async def gateway_notification(request: web.Request, body: GatewayNotification) -> web.Response:
    settings = request.app[GATEWAY]
    scheme = settings.scheme()
    if scheme is None:  # no secret: no notification can be the gateway's (fail closed)
        raise Forbidden("payment notifications are not configured", code="NOT_CONFIGURED")
    now = datetime.now(UTC)  # read once, here at the edge
    scheme.verify(await request.read(), request.headers, now)
    n = Notification(body.payment_id, body.account, body.amount, body.currency)
    async with request.app[POOL].acquire() as conn:
        result = await receive(
            request.app[SERVICES].accounts, conn, settings.name, n, request.app[BILLING], now
        )
    return web.json_response(
        {
            "payment_id": n.payment_id,
            "account": n.account,
            "amount": format_micro(n.amount, 2),
            "created": result.created,
            "invoice": None if result.invoice is None else result.invoice.number,
        },
        status=201 if result.created else 200,
    )


@api.get(
    "/api/v1/accounts/{account}/topup-link",
    "Where the customer pays a top-up online (url null: no payment gateway configured)",
    ok=outputs.TopUpLink,
)
async def top_up_link(request: web.Request, account: str) -> web.Response:
    settings = request.app[GATEWAY]
    found = await request.app[SERVICES].accounts.get(account)
    url = settings.top_up_url(found.id, found.currency)
    return web.json_response({"url": url, "gateway": settings.name if url else None})
