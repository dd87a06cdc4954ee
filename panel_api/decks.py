"""Operators upload rate decks: the rates CSV as a file plus the manifest's fields.

The deck is validated as it is stored, in one transaction; an invalid one answers 422 with
the file and line at fault (as `tollgate deck import` would) and changes nothing."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Annotated, Any

from aiohttp import web

from billing import price_changes
from billing.settings import BillingSettings
from panel_api import outputs
from panel_api.auth import principal
from panel_api.context import POOL, REDIS, SETTINGS
from panel_api.endpoint import Access, Api, Reply
from panel_api.inputs import BANDS, DECIMALS, MOMENT, Checked, Input, string
from panel_api.uploads import bad_field, read_form
from rating.deck import DeckError, parse_head
from rating.deck_import import import_stream
from rating.deck_store import list_decks, publish_stored
from rating.money import Rounding

api = Api("operator")
MANIFEST = "manifest"  # how DeckError names the manifest fields in its answers


class DeckUpload(Input):
    """The form: the manifest's fields (checked whole with the rates by the deck builder,
    which answers 422 naming the manifest) and the rates CSV file."""

    name: Annotated[str | None, string(100)] = None
    currency: Annotated[str | None, string(pattern="^[A-Z]{3}$")] = None
    timezone: Annotated[str | None, string(64)] = None
    decimals: Annotated[int | None, DECIMALS] = None
    rounding: Annotated[str | None, string(enum=[r.value for r in Rounding])] = None
    bands: Annotated[Any, BANDS] = None
    # from when the version prices calls (default: now); a price increase needs a billing
    # period's notice (terms §7.1), else 422 PRICE_NOTICE_TOO_SHORT unless `force` with a
    # `reason` (recorded on the version and in the operators' audit log)
    effective_at: Annotated[datetime | None, MOMENT] = None
    force: bool = False
    reason: Annotated[str | None, string(500)] = None
    rates: Annotated[
        bytes,
        Checked(bytes, {"type": "string", "format": "binary", "description": "The rates CSV"}),
    ]

    def manifest(self) -> dict[str, Any]:
        return self.model_dump(
            exclude={"rates", "effective_at", "force", "reason"}, exclude_none=True
        )


@api.post(
    "/api/v1/decks",
    "Upload a rate deck (validated whole; nothing is stored when invalid)",
    access=Access.OPERATOR,
    replies=(
        Reply(201, "Stored as the new current version", outputs.DeckResult),
        Reply(200, "Same as the current version: nothing stored", outputs.DeckResult),
    ),
    errors=(413, 422),
    body_model=DeckUpload,
    body_media="multipart/form-data",
)
async def upload_deck(request: web.Request) -> web.Response:
    form, upload = await read_form(request, DeckUpload, file="rates", filename="rates.csv")
    rates, rates_name = upload.data, upload.filename
    if b"\x00" in rates:  # PostgreSQL text cannot hold it; say so before the parser does
        raise DeckError(rates_name, "contains a NUL byte")
    manifest = form.manifest()
    head = parse_head(manifest, MANIFEST)
    redis, keys = request.app[REDIS], request.app[SETTINGS].keyspace
    now = datetime.now(UTC)  # the notice is given now (the edge reads the clock)
    guard = price_changes.guard(BillingSettings.from_env(), now, _force(request, form))
    async with request.app[POOL].acquire() as conn:
        done = await import_stream(
            conn, head, manifest, io.BytesIO(rates), rates_file=rates_name,
            source=f"panel:{rates_name}", redis=redis, keys=keys,
            effective_at=form.effective_at, guard=guard,
        )  # fmt: skip
        if not done.published:
            await publish_stored(conn, redis, keys, done.name, done.version)
        timing = await price_changes.outcome(conn, done.name, done.version)
    body = {**done.as_dict(), "effective_at": timing["effective_at"]}
    return web.json_response(
        {**body, "increases": timing["increases"]}, status=201 if done.created else 200
    )


def _force(request: web.Request, form: DeckUpload) -> price_changes.Force | None:
    """An early increase forced by this operator, with the reason it needs (as the CLI's
    `--force --reason`); None when not forced."""
    if not form.force:
        return None
    reason = (form.reason or "").strip()
    if not reason:
        raise bad_field("reason", "force needs a reason (it is written to the audit log)")
    token = principal(request)
    return price_changes.Force(
        token.actor, reason, request.method, request.path, token_id=token.id
    )


@api.get("/api/v1/decks", "Rate deck versions", access=Access.OPERATOR, ok=outputs.DeckVersions)
async def decks(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        return web.json_response({"items": await list_decks(conn)})
