"""Operators upload rate decks: the rates CSV as a file plus the manifest's fields.

The whole deck is validated before anything is stored; an invalid one answers 422 with the
file and line at fault (as `tollgate deck import` would) and changes nothing."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from panel_api.auth import operator
from panel_api.context import PANEL, POOL, REDIS, SETTINGS
from panel_api.errors import BadRequest, PayloadTooLarge
from panel_api.params import text
from rating.deck import DeckError, build_deck
from rating.deck_store import import_deck, list_decks, publish
from rating.money import MoneyError, parse_whole

routes = web.RouteTableDef()

TEXT_FIELDS = ("name", "currency", "timezone", "rounding", "decimals", "bands")
MANIFEST = "manifest"  # how DeckError names the manifest fields in its answers


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
            rates_name = text("rates", part.filename or rates_name)
        elif part.name in TEXT_FIELDS:
            if not _utf8(data):
                raise _bad(part.name, "not UTF-8 text")
            fields[part.name] = text(part.name, data.decode())
    if rates is None:
        raise _bad("rates", "the rates CSV file is required")
    return fields, rates, rates_name


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode()
    except UnicodeDecodeError:
        return False
    return True


def _manifest(fields: dict[str, str]) -> dict[str, Any]:
    manifest: dict[str, Any] = {k: v for k, v in fields.items() if k not in ("decimals", "bands")}
    if "decimals" in fields:
        try:
            manifest["decimals"] = parse_whole(fields["decimals"], low=0, high=6)
        except MoneyError:
            raise _bad("decimals", "a whole number 0..6") from None
    if fields.get("bands", "").strip():
        try:
            bands = json.loads(fields["bands"])
        except ValueError:
            raise _bad("bands", 'a JSON object: {"day": ["mon-fri 08:00-18:00"], ...}') from None
        manifest["bands"] = bands
    return manifest


@routes.post("/api/v1/decks")
async def upload_deck(request: web.Request) -> web.Response:
    operator(request)
    fields, rates, rates_name = await _read_form(request)
    deck = build_deck(_manifest(fields), rates, manifest_file=MANIFEST, rates_file=rates_name)
    async with request.app[POOL].acquire() as conn:
        stored, created = await import_deck(conn, deck, source=f"panel:{rates_name}")
    await publish(request.app[REDIS], request.app[SETTINGS].keyspace, stored)
    return web.json_response(
        {
            "name": stored.name,
            "version": stored.version,
            "created": created,
            "rows": len(stored.rows),
            "prefixes": len(stored.prefixes),
            "current": True,
        },
        status=201 if created else 200,
    )


@routes.get("/api/v1/decks")
async def decks(request: web.Request) -> web.Response:
    operator(request)
    async with request.app[POOL].acquire() as conn:
        return web.json_response({"items": await list_decks(conn)})
