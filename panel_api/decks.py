"""Operators upload rate decks: the rates CSV as a file plus the manifest's fields.

The deck is validated as it is stored, in one transaction; an invalid one answers 422 with
the file and line at fault (as `tollgate deck import` would) and changes nothing."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Annotated, Any

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic_core import PydanticCustomError

from billing import price_changes
from billing.settings import BillingSettings
from panel_api import outputs
from panel_api.auth import principal
from panel_api.context import PANEL, POOL, REDIS, SETTINGS
from panel_api.endpoint import Access, Api, Reply, check_body
from panel_api.errors import BadRequest, PayloadTooLarge
from panel_api.inputs import BANDS, DECIMALS, MOMENT, Checked, Input, string, text
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


TEXT_FIELDS = tuple(name for name in DeckUpload.model_fields if name != "rates")


def _bad(name: str, why: str) -> BadRequest:
    return BadRequest(f"{name}: {why}", {"field": name, "why": why}, code="INVALID_FIELD")


async def _read_form(request: web.Request) -> tuple[dict[str, str], bytes, str]:
    if request.content_type != "multipart/form-data":
        raise BadRequest(
            "send multipart/form-data: the manifest's fields and a 'rates' file",
            {"content_type": request.content_type},
            code="UNSUPPORTED_MEDIA",
        )
    try:
        fields, rates, rates_name = await _parts(
            await request.multipart(), request.app[PANEL].max_upload_bytes
        )
    except (ValueError, HttpProcessingError) as exc:  # a malformed multipart body
        raise BadRequest(
            f"not a readable multipart/form-data body: {exc}", code="INVALID_MULTIPART"
        ) from None
    if b"\x00" in rates:  # PostgreSQL text cannot hold it; say so before the parser does
        raise DeckError(rates_name, "contains a NUL byte")
    return fields, rates, rates_name


async def _parts(reader: MultipartReader, limit: int) -> tuple[dict[str, str], bytes, str]:
    fields: dict[str, str] = {}
    rates: bytes | None = None
    rates_name = "rates.csv"
    size = 0
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise _bad("form", "nested multipart is not accepted")
        chunks: list[bytes] = []
        # multipart bodies are not held to client_max_size by aiohttp: count them here
        while chunk := await part.read_chunk():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(
                    f"the upload is larger than {limit} bytes", {"limit_bytes": limit}
                )
            chunks.append(chunk)
        data = b"".join(chunks)
        if part.name == "rates":
            rates = data
            rates_name = _text(part.name, part.filename or rates_name)
        elif part.name in TEXT_FIELDS:
            if not _utf8(data):
                raise _bad(part.name, "not UTF-8 text")
            fields[part.name] = _text(part.name, data.decode())
    if rates is None:
        raise _bad("rates", "the rates CSV file is required")
    return fields, rates, rates_name


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode()
    except UnicodeDecodeError:
        return False
    return True


def _text(name: str, value: str) -> str:
    try:
        return text(value)
    except PydanticCustomError as exc:
        raise _bad(name, exc.message()) from None


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
    fields, rates, rates_name = await _read_form(request)
    form = check_body(DeckUpload, {**fields, "rates": rates})
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
        raise _bad("reason", "force needs a reason (it is written to the audit log)")
    token = principal(request)
    return price_changes.Force(
        token.actor, reason, request.method, request.path, token_id=token.id
    )


@api.get("/api/v1/decks", "Rate deck versions", access=Access.OPERATOR, ok=outputs.DeckVersions)
async def decks(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        return web.json_response({"items": await list_decks(conn)})
