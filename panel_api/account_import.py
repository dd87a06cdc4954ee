"""Operators onboard accounts in bulk: the CSV of `tollgate account import` uploaded.

The file is read as it arrives, up to the panel's upload limit (413 beyond it), then checked
whole: any error answers 422 listing each faulty line with its column, and nothing is
written. A valid file is stored as the CLI stores it (one PostgreSQL transaction by COPY,
then pipelined Redis writes), idempotent per account id: an id that exists is left as it
is and counted unchanged. The audit log records the file (name, size, SHA-256) and the
outcome beside the request."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime
from typing import Annotated, Any

from aiohttp import web

from panel_api import outputs
from panel_api.audit import AUDIT_NOTE
from panel_api.context import POOL, REDIS, SETTINGS
from panel_api.endpoint import Access, Api, Reply
from panel_api.inputs import Checked, Input
from panel_api.uploads import read_form
from rating.account_import import decode, import_rows, parse_accounts

api = Api("operator")
AUDITED_IDS = 1000  # created ids named in the audit entry; beyond, the count (and events)


class AccountsUpload(Input):
    """The form: one file, the accounts CSV (header line; only `id` is required)."""

    accounts: Annotated[
        bytes,
        Checked(bytes, {"type": "string", "format": "binary", "description": "Accounts CSV"}),
    ]


@api.post(
    "/api/v1/account-imports",
    "Create accounts from a CSV file (checked whole; nothing is stored when invalid)",
    access=Access.OPERATOR,
    replies=(
        Reply(201, "Accounts created (the file's other ids existed: unchanged)", outputs.Import),
        Reply(200, "Every id existed: nothing created", outputs.Import),
    ),
    errors=(413, 422),
    body_model=AccountsUpload,
    body_media="multipart/form-data",
)
async def import_accounts(request: web.Request) -> web.Response:
    _, upload = await read_form(request, AccountsUpload, file="accounts", filename="accounts.csv")
    note: dict[str, Any] = {
        "file": upload.filename,
        "bytes": len(upload.data),
        "sha256": hashlib.sha256(upload.data).hexdigest(),
    }
    request[AUDIT_NOTE] = note  # recorded with the outcome, a refusal included
    name = upload.filename
    # parsing a large file is CPU work: off the event loop, so other requests are served
    rows = await asyncio.to_thread(lambda: parse_accounts(decode(upload.data, name), name))
    keys = request.app[SETTINGS].keyspace
    done = await import_rows(
        request.app[POOL], request.app[REDIS], keys, rows, name, datetime.now(UTC)
    )
    body = {"rows": len(rows), "created": done.created, "unchanged": done.existing,
            "mirrored": done.mirrored}  # fmt: skip
    note.update(body, created_ids=done.new[:AUDITED_IDS])
    return web.json_response(body, status=201 if done.created else 200)
