"""Multipart uploads (a rate deck, an accounts file): read part by part, the size counted
as the bytes arrive, so a body over the limit is refused (413) before it is held whole."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic_core import PydanticCustomError

from panel_api.context import PANEL
from panel_api.endpoint import check_body
from panel_api.errors import BadRequest, PayloadTooLarge
from panel_api.inputs import Input, text

Form = TypeVar("Form", bound=Input)


@dataclass(frozen=True, slots=True)
class Upload:
    fields: dict[str, str]  # the form's text fields the endpoint knows
    data: bytes  # the file
    filename: str  # the file's name as sent (the default when none was)


def bad_field(name: str, why: str) -> BadRequest:
    return BadRequest(f"{name}: {why}", {"field": name, "why": why}, code="INVALID_FIELD")


async def read_form(
    request: web.Request, model: type[Form], *, file: str, filename: str
) -> tuple[Form, Upload]:
    """An endpoint's upload form: the file part `file` and `model`'s other fields as text,
    read under the panel's upload limit (413 beyond it), then checked as `model` (400 naming
    the field)."""
    fields = tuple(name for name in model.model_fields if name != file)
    upload = await read_upload(
        request, request.app[PANEL].max_upload_bytes, file=file, filename=filename, fields=fields
    )
    return check_body(model, {**upload.fields, file: upload.data}), upload


async def read_upload(
    request: web.Request, limit: int, *, file: str, filename: str, fields: tuple[str, ...] = ()
) -> Upload:
    """The multipart form of `request`: the part named `file` and the text `fields`."""
    if request.content_type != "multipart/form-data":
        raise BadRequest(
            f"send multipart/form-data with a {file!r} file",
            {"content_type": request.content_type},
            code="UNSUPPORTED_MEDIA",
        )
    try:
        return await _parts(await request.multipart(), limit, file, filename, fields)
    except (ValueError, HttpProcessingError) as exc:  # a malformed multipart body
        raise BadRequest(
            f"not a readable multipart/form-data body: {exc}", code="INVALID_MULTIPART"
        ) from None


async def _parts(
    reader: MultipartReader, limit: int, file: str, filename: str, names: tuple[str, ...]
) -> Upload:
    fields: dict[str, str] = {}
    data: bytes | None = None
    size = 0
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise bad_field("form", "nested multipart is not accepted")
        chunks: list[bytes] = []
        # multipart bodies are not held to client_max_size by aiohttp: count them here
        while chunk := await part.read_chunk():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(
                    f"the upload is larger than {limit} bytes", {"limit_bytes": limit}
                )
            chunks.append(chunk)
        body = b"".join(chunks)
        if part.name == file:
            data = body
            filename = _text(file, part.filename or filename)
        elif part.name in names:
            if not _utf8(body):
                raise bad_field(part.name, "not UTF-8 text")
            fields[part.name] = _text(part.name, body.decode())
    if data is None:
        raise bad_field(file, f"the {file!r} file is required")
    return Upload(fields, data, filename)


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
        raise bad_field(name, exc.message()) from None
